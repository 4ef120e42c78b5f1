"""nearest / backward / forward with tolerance agree with pandas.merge_asof on random streams.

Stamps are drawn from a coarse lattice (multiples of 1/4) so that exact hits, ties halfway between two
samples, repeated stamps and distances exactly equal to the tolerance all happen often.
"""
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import DataError
from collector.sync import align_stream
from collector.sync import lookup as lookup_module

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lattice = st.integers(min_value=-8, max_value=48).map(lambda k: k / 4.0)
sorted_stamps = st.lists(lattice, min_size=0, max_size=40).map(lambda xs: np.array(sorted(xs), dtype=np.float64))
source_stamps = st.lists(lattice, min_size=1, max_size=40).map(lambda xs: np.array(sorted(xs), dtype=np.float64))
tolerances = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.25, np.inf]) | st.floats(0.0, 5.0)
directions = st.sampled_from(["nearest", "backward", "forward"])


def pandas_index(ref, t, direction, tolerance):
    """merge_asof's matched row of `t` for each row of `ref`, -1 where it matches nothing."""
    left = pd.DataFrame({"t": ref})
    right = pd.DataFrame({"t": t, "row": np.arange(t.size)})
    merged = pd.merge_asof(left, right, on="t", direction=direction,
                           tolerance=None if np.isinf(tolerance) else float(tolerance))
    return merged["row"].fillna(-1).astype(np.int64).to_numpy()


@SETTINGS
@given(ref=sorted_stamps, t=source_stamps, direction=directions, tolerance=tolerances)
def test_matches_pandas_with_repeated_stamps_kept(ref, t, direction, tolerance):
    result = align_stream(ref, t, method=direction, tolerance=tolerance, name="s", duplicates="keep")
    np.testing.assert_array_equal(result.index, pandas_index(ref, t, direction, tolerance))
    # Error is the signed distance to the chosen sample, within tolerance; unmatched rows have none.
    has = result.index >= 0
    np.testing.assert_array_equal(result.valid, has)
    np.testing.assert_array_equal(result.error[has], t[result.index[has]] - ref[has])
    assert (np.abs(result.error[has]) <= tolerance).all()
    assert np.isnan(result.error[~has]).all()


@SETTINGS
@given(ref=sorted_stamps, t=source_stamps, direction=directions, tolerance=tolerances)
def test_drop_policy_matches_pandas_on_first_copies(ref, t, direction, tolerance):
    first = np.r_[True, t[1:] != t[:-1]]
    keep = np.flatnonzero(first)
    result = align_stream(ref, t, method=direction, tolerance=tolerance, name="s", duplicates="drop")
    expected = pandas_index(ref, t[keep], direction, tolerance)
    np.testing.assert_array_equal(result.index, np.where(expected >= 0, keep[np.maximum(expected, 0)], -1))
    if keep.size < t.size:
        assert result.repair is not None and result.repair.n_duplicates == t.size - keep.size
    else:
        assert result.repair is None


@SETTINGS
@given(ref=sorted_stamps, t=source_stamps, direction=directions, tolerance=tolerances)
def test_error_policy_names_the_repeat(ref, t, direction, tolerance):
    if np.all(t[1:] != t[:-1]):
        align_stream(ref, t, method=direction, tolerance=tolerance, name="cam")
    else:
        with pytest.raises(DataError, match="stream 'cam'.*duplicated stamp"):
            align_stream(ref, t, method=direction, tolerance=tolerance, name="cam")


@SETTINGS
@given(ref=sorted_stamps, t=source_stamps, direction=directions, tolerance=tolerances)
def test_dense_and_chunked_search_paths_match_pandas(ref, t, direction, tolerance):
    """The merge path (dense queries), the chunked binary search and the arithmetic guess for evenly
    spaced stamps agree with pandas too. At these sizes the public function takes the plain path,
    so the thresholds are lowered (lattice stamps are evenly spaced often enough to use the guess).
    """
    expected = pandas_index(ref, t, direction, tolerance)
    expected_error = np.where(expected >= 0, t[np.maximum(expected, 0)] - ref, np.nan)
    with mock.patch.object(lookup_module, "SEARCH_CHUNK", 2), mock.patch.object(lookup_module, "GUESS_MIN", 1):
        tol = lookup_module.capped_tolerance(tolerance)
        for found in (lookup_module._lookup_runs(t, ref, direction, tol),
                      lookup_module._lookup_rows(t, ref, direction, tol, merge=True),
                      lookup_module._lookup_rows(t, ref, direction, tol, merge=False)):
            np.testing.assert_array_equal(found.index, expected)
            np.testing.assert_array_equal(found.error, expected_error)
            np.testing.assert_array_equal(found.valid, expected >= 0)


@SETTINGS
@given(ref=sorted_stamps, t=source_stamps, tolerance=tolerances)
def test_linear_brackets_agree_with_pandas_backward_and_forward(ref, t, tolerance):
    """Interpolation is valid exactly where both as-of neighbours exist within tolerance."""
    backward = pandas_index(ref, t, "backward", tolerance)
    forward = pandas_index(ref, t, "forward", tolerance)
    nearest = pandas_index(ref, t, "nearest", np.inf)
    t_unique = t[np.r_[True, t[1:] != t[:-1]]]
    values = np.searchsorted(t_unique, t).astype(np.float64)  # any per-stamp signal will do
    for path in ("public", "merge", "search"):
        if path == "public":
            result = align_stream(ref, t, values, method="linear", tolerance=tolerance, name="s", duplicates="keep")
            index, valid = result.index, result.valid
        else:
            with mock.patch.object(lookup_module, "SEARCH_CHUNK", 2), mock.patch.object(lookup_module, "GUESS_MIN", 1):
                found = lookup_module._lookup_rows(t, ref, "linear", lookup_module.capped_tolerance(tolerance),
                                                   merge=path == "merge")
            index, valid = found.index, found.valid
        np.testing.assert_array_equal(valid, (backward >= 0) & (forward >= 0))
        np.testing.assert_array_equal(index, np.where(valid, nearest, -1))  # the nearer bracket, ties backward
    assert np.isnan(result.values[~result.valid]).all()


@pytest.mark.parametrize("side", ["left", "right"])
def test_sorted_search_guess_on_grids_and_fallback_on_jittered_stamps(side):
    grid = 12.5 + np.arange(200_000) / 50.0
    r = np.random.default_rng(3)
    needles = np.sort(np.r_[grid[::7], r.uniform(0, 4100, 50_000), grid[5] + 1e-9, grid[-1], grid[0]])
    assert lookup_module._guessed_search(grid, needles, side) is not None  # the arithmetic path
    np.testing.assert_array_equal(lookup_module.sorted_search(grid, needles, side), np.searchsorted(grid, needles, side))
    jittered = np.sort(np.delete(grid + r.normal(0, 1e-3, grid.size), np.arange(1000, 1300)))
    assert lookup_module._guessed_search(jittered, needles, side) is None  # too uneven: binary search
    np.testing.assert_array_equal(lookup_module.sorted_search(jittered, needles, side),
                                  np.searchsorted(jittered, needles, side))


def test_mostly_even_queries_with_an_uneven_stretch_match_pandas():
    """Queries evenly spaced except for one jittered stretch: the grid guess holds for most needles,
    the rest are searched exactly (the switch fix-up's fallback)."""
    r = np.random.default_rng(5)
    queries = np.arange(400_000) / 1000.0
    queries[100_000:103_000] += r.uniform(-4e-4, 4e-4, 3000)
    queries.sort()
    source = np.sort(r.uniform(0, 400, 150_000))
    assert lookup_module._guess_usable(queries, source, "right")
    for direction in ("nearest", "backward", "forward"):
        result = align_stream(queries, source, method=direction, tolerance=0.004, name="s")
        np.testing.assert_array_equal(result.index, pandas_index(queries, source, direction, 0.004))


def test_realistic_rates_both_directions_match_pandas():
    """Jittered 1 kHz and 30 Hz streams, large enough for the chunked search and the merge path."""
    rng = np.random.default_rng(7)
    joints = np.sort(np.arange(60_000) / 1000.0 + rng.normal(0, 5e-5, 60_000))
    camera = np.sort(np.arange(1_800) / 30.0 + 0.004 + rng.normal(0, 1e-3, 1_800))
    camera = np.delete(camera, np.arange(100, 130))  # a one-second drop
    grid = np.arange(3_000) / 50.0
    for ref, t, tol in ((grid, joints, 0.0015), (joints, camera, 0.02), (grid, camera, 0.02)):
        for direction in ("nearest", "backward", "forward"):
            result = align_stream(ref, t, method=direction, tolerance=tol, name="s")
            np.testing.assert_array_equal(result.index, pandas_index(ref, t, direction, tol))


def test_queries_on_exact_midpoints_tie_backward_as_pandas_on_the_merge_path():
    """A grid whose rows fall exactly halfway between source samples (and on repeated samples): the
    cheap rounding-margin test must send every such row to the exact rule, so ties go backward."""
    grid = np.arange(40_000) / 64.0  # exact binary fractions: so are the midpoints below
    samples = np.arange(20_000) / 32.0 + 1 / 64.0  # odd grid rows are samples, even rows midpoints
    source = np.sort(np.r_[samples, samples[100:110]])
    mids = source[:-1] + (source[1:] - source[:-1]) * 0.5
    assert np.isin(grid, mids).sum() > 19_000
    result = align_stream(grid, source, method="nearest", tolerance=0.01, name="s", duplicates="keep")
    np.testing.assert_array_equal(result.index, pandas_index(grid, source, "nearest", 0.01))
