"""Offline alignment: grids, taken and interpolated values, slerp, and input validation."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation, Slerp

from collector.errors import ConfigError, DataError
from collector.sync import align_stream, fixed_grid, grid_row, grid_rows_before, grid_stamps

rng = np.random.default_rng(11)


# ---- grids ----

@pytest.mark.parametrize("t_start,t_end,rate", [(0.0, 1.0, 50.0), (12.345, 3612.345, 30.0),
                                                (1.7e9, 1.7e9 + 10.0, 1000.0), (-3.0, -2.99, 7.0)])
def test_fixed_grid_covers_start_to_end_at_rate(t_start, t_end, rate):
    grid = fixed_grid(t_start, t_end, rate)
    assert grid[0] == t_start
    assert grid[-1] <= t_end < grid[-1] + 1.0 / rate * (1 + 1e-9)
    # Spacing is 1/rate up to the float resolution at these magnitudes (epoch seconds: ~0.24 us).
    np.testing.assert_allclose(np.diff(grid), 1.0 / rate, atol=4 * np.spacing(abs(t_end)))
    # Every row is the same formula the online aligner uses, bit for bit.
    ks = np.arange(grid.size)[:: max(1, grid.size // 50)]
    assert all(grid[k] == grid_row(t_start, rate, int(k)) for k in ks)
    np.testing.assert_array_equal(grid[1:], grid_stamps(t_start, rate, 1, grid.size))


def test_grid_end_on_a_row_is_included_and_counts_are_exact():
    grid = fixed_grid(0.0, 2.0, 50.0)
    assert grid.size == 101 and grid[-1] == 2.0
    assert grid_rows_before(0.0, 50.0, 2.0) == 100
    assert grid_rows_before(0.0, 50.0, 2.0, inclusive=True) == 101
    assert grid_rows_before(0.0, 50.0, -1.0) == 0


def test_bad_grids_are_named():
    with pytest.raises(ConfigError, match="rate"):
        fixed_grid(0.0, 1.0, 0.0)
    with pytest.raises(DataError, match="before its start"):
        fixed_grid(2.0, 1.0, 50.0)
    with pytest.raises(DataError, match="finite"):
        fixed_grid(0.0, np.nan, 50.0)
    with pytest.raises(ConfigError, match="rows"):
        fixed_grid(0.0, 3600.0, 1e9)


# ---- taken values ----

def test_nearest_values_are_the_chosen_samples_and_nan_when_invalid():
    t = np.array([0.0, 0.1, 0.2, 0.5, 0.6])
    values = np.arange(10.0).reshape(5, 2)
    ref = np.array([-0.2, 0.04, 0.16, 0.35, 0.61, 0.9])
    res = align_stream(ref, t, values, method="nearest", tolerance=0.05, name="j")
    np.testing.assert_array_equal(res.index, [-1, 0, 2, -1, 4, -1])  # nearest 0, 0, 2, 2, 4, 4 but out of tolerance
    np.testing.assert_array_equal(res.valid, [False, True, True, False, True, False])
    np.testing.assert_allclose(res.error, [np.nan, -0.04, 0.04, np.nan, -0.01, np.nan], atol=1e-15)
    np.testing.assert_array_equal(res.values[res.valid], values[res.index[res.valid]])
    assert np.isnan(res.values[~res.valid]).all()


def test_integer_frames_are_the_chosen_sample_or_zero_when_unmatched():
    t = np.array([0.0, 1.0, 2.0])
    frames = np.arange(1, 3 * 2 * 2 * 3 + 1, dtype=np.uint8).reshape(3, 2, 2, 3)
    res = align_stream(np.array([-5.0, 0.9, 1.3, 1.6, 9.0]), t, frames, method="backward", tolerance=0.5, name="cam")
    np.testing.assert_array_equal(res.index, [-1, -1, 1, -1, -1])
    np.testing.assert_array_equal(res.valid, [False, False, True, False, False])
    assert res.values.dtype == np.uint8 and res.values.shape == (5, 2, 2, 3)
    np.testing.assert_array_equal(res.values[2], frames[1])
    assert not res.values[~res.valid].any()
    assert np.isnan(res.error[[0, 1, 3, 4]]).all() and res.error[2] == pytest.approx(-0.3)


def test_index_only_alignment_without_values():
    res = align_stream(fixed_grid(0, 1, 10), np.linspace(0, 1, 31), None, method="nearest", tolerance=0.02, name="cam")
    assert res.values is None and res.valid.all()
    summary = res.summary()
    json.dumps(summary)
    assert summary["rows"] == 11 and summary["valid"] == 11 and summary["abs_error_max_s"] < 0.017


# ---- interpolation ----

@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), slope=st.floats(-100, 100), icpt=st.floats(-1e3, 1e3), seed=st.integers(0, 2**31))
def test_linear_interpolation_reproduces_a_linear_signal(n, slope, icpt, seed):
    r = np.random.default_rng(seed)
    t = np.unique(np.round(np.sort(r.uniform(0, 10, n)), 9))
    coef = np.array([slope, -2.0 * slope, 0.5])
    values = icpt + t[:, None] * coef
    ref = np.sort(r.uniform(-1, 11, 40))
    res = align_stream(ref, t, values, method="linear", tolerance=np.inf, name="j")
    inside = (ref >= t[0]) & (ref <= t[-1])
    np.testing.assert_array_equal(res.valid, inside)
    expected = icpt + ref[inside, None] * coef
    np.testing.assert_allclose(res.values[inside], expected, rtol=1e-12, atol=1e-9 * (1 + abs(icpt) + 10 * abs(slope)))
    assert np.isnan(res.values[~inside]).all()


def test_linear_interpolation_is_bit_exact_on_dyadic_data():
    t = np.arange(0, 64) / 8.0  # exactly representable stamps and values
    values = 3.0 * t + 0.25
    ref = np.arange(1, 500) / 64.0
    res = align_stream(ref[ref <= t[-1]], t, values, method="linear", name="j")
    np.testing.assert_array_equal(res.values, 3.0 * ref[ref <= t[-1]] + 0.25)


def test_linear_needs_both_brackets_within_tolerance_and_exact_hits_stand_alone():
    t = np.array([0.0, 1.0, 1.1, 3.0])
    values = np.array([0.0, 10.0, 11.0, 30.0])
    ref = np.array([0.5, 1.0, 1.05, 2.0, 3.0])
    res = align_stream(ref, t, values, method="linear", tolerance=0.6, name="j")
    np.testing.assert_array_equal(res.valid, [True, True, True, False, True])
    np.testing.assert_allclose(res.values[[0, 1, 2, 4]], [5.0, 10.0, 10.5, 30.0])
    np.testing.assert_array_equal(res.index, [0, 1, 1, -1, 3])  # the nearer bracket; ties go backward


def random_unit_quats(n, r):
    q = r.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_slerp_is_unit_and_matches_scipy():
    t = np.sort(rng.uniform(0, 10, 200))
    t = np.unique(t)
    quats = random_unit_quats(t.size, rng) * rng.uniform(0.5, 2.0, (t.size, 1))  # not unit: normalised first
    ref = np.sort(rng.uniform(t[0], t[-1], 1000))
    res = align_stream(ref, t, quats, method="slerp", name="head")
    assert res.valid.all()
    np.testing.assert_allclose(np.linalg.norm(res.values, axis=1), 1.0, atol=1e-12)
    wxyz = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    reference = Slerp(t, Rotation.from_quat(wxyz[:, [1, 2, 3, 0]]))(ref).as_quat()[:, [3, 0, 1, 2]]
    sign = np.sign(np.sum(reference * res.values, axis=1, keepdims=True))
    np.testing.assert_allclose(res.values, reference * sign, atol=1e-9)


def test_slerp_small_and_opposite_angles():
    q0 = np.array([1.0, 0.0, 0.0, 0.0])
    tiny = np.array([np.cos(1e-10), np.sin(1e-10), 0.0, 0.0])
    flipped = -np.array([np.cos(0.3), 0.0, np.sin(0.3), 0.0])  # same rotation family, other hemisphere
    t = np.array([0.0, 1.0, 2.0])
    res = align_stream(np.array([0.5, 1.5]), t, np.stack([q0, tiny, flipped]), method="slerp", name="q")
    np.testing.assert_allclose(res.values[0], [np.cos(5e-11), np.sin(5e-11), 0, 0], atol=1e-15)
    # Shortest path from `tiny` to -flipped: half-way is the rotation about y (plus a hair of x).
    half = res.values[1] * np.sign(res.values[1][0])
    np.testing.assert_allclose(half, [np.cos(0.15), 0.0, np.sin(0.15), 0.0], atol=1e-9)


def test_pose_slerp_interpolates_positions_linearly_and_quaternion_slices_spherically():
    t = np.array([0.0, 1.0])
    qa = np.array([1.0, 0.0, 0.0, 0.0])
    qb = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # 90 deg about z
    poses = np.array([np.r_[0, 0, 0, qa, 1, 1, 1, qb], np.r_[2, 4, 6, qb, 3, 3, 3, qa]])
    res = align_stream(np.array([0.5]), t, poses, method="slerp", name="vr", quat_slices=[slice(3, 7), (10, 14)])
    row = res.values[0]
    np.testing.assert_allclose(row[:3], [1, 2, 3])
    np.testing.assert_allclose(row[7:10], [2, 2, 2])
    eighth = [np.cos(np.pi / 8), 0.0, 0.0, np.sin(np.pi / 8)]
    np.testing.assert_allclose(row[3:7], eighth, atol=1e-12)
    np.testing.assert_allclose(row[10:14], eighth, atol=1e-12)


def test_slerp_configuration_errors_are_named():
    t = np.array([0.0, 1.0])
    with pytest.raises(ConfigError, match="quat_slices"):
        align_stream(np.array([0.5]), t, np.zeros((2, 7)), method="slerp", name="vr")
    with pytest.raises(ConfigError, match="4 adjacent"):
        align_stream(np.array([0.5]), t, np.zeros((2, 7)), method="slerp", name="vr", quat_slices=[slice(3, 6)])
    with pytest.raises(ConfigError, match="overlap"):
        align_stream(np.array([0.5]), t, np.ones((2, 8)), method="slerp", name="vr",
                     quat_slices=[slice(0, 4), slice(2, 6)])
    with pytest.raises(DataError, match="zero or non-finite length"):
        align_stream(np.array([0.5]), t, np.zeros((2, 4)), method="slerp", name="vr")


# ---- validation ----

@pytest.mark.parametrize("t,values,match", [
    ([0.0, np.nan, 1.0], None, r"stream 'joints': 1 non-finite stamp\(s\), first at index 1"),
    ([0.0, np.inf], None, "non-finite"),
    ([0.0, 2.0, 1.0], None, r"not sorted: 1 stamp\(s\) go backwards, first at index 2"),
    ([], None, "empty stream"),
    ([0.0, 1.0, 2.0], np.zeros((2, 3)), "3 stamps but 2 rows of values"),
    ([[0.0, 1.0]], None, "1-D"),
    (["a", "b"], None, "not numbers"),
])
def test_bad_stamps_raise_data_errors_naming_stream_and_problem(t, values, match):
    with pytest.raises(DataError, match=match):
        align_stream(np.array([0.5]), t, values, name="joints")


def test_bad_reference_and_settings_are_named():
    with pytest.raises(DataError, match="reference stamps are not sorted"):
        align_stream(np.array([1.0, 0.0]), [0.0, 1.0], name="joints")
    with pytest.raises(ConfigError, match="method 'cubic'"):
        align_stream(np.array([0.5]), [0.0, 1.0], method="cubic", name="joints")
    with pytest.raises(ConfigError, match="tolerance"):
        align_stream(np.array([0.5]), [0.0, 1.0], tolerance=-1.0, name="joints")
    with pytest.raises(ConfigError, match="duplicates"):
        align_stream(np.array([0.5]), [0.0, 1.0], duplicates="ignore", name="joints")


def test_nan_values_in_valid_rows_are_reported_not_passed_off_as_data():
    t = np.array([0.0, 1.0, 2.0])
    values = np.array([0.0, np.nan, 2.0])
    with pytest.raises(DataError, match="stream 'lux': non-finite value"):
        align_stream(np.array([0.5, 1.5]), t, values, method="linear", name="lux")
    res = align_stream(np.array([0.5, 1.5]), t, values, method="linear", name="lux", check_finite=False)
    assert res.valid.all() and np.isnan(res.values).all()
    # A NaN sample nobody aligns to is not an error.
    ok = align_stream(np.array([0.1, 1.9]), t, values, method="nearest", name="lux")
    np.testing.assert_array_equal(ok.values, [0.0, 2.0])


def test_drop_policy_reports_and_indexes_the_original_rows():
    t = np.array([0.0, 1.0, 1.0, 1.0, 2.0])
    values = np.array([0.0, 10.0, 99.0, 98.0, 20.0])
    res = align_stream(np.array([1.0, 1.5]), t, values, method="linear", name="j", duplicates="drop")
    np.testing.assert_array_equal(res.index, [1, 1])  # the first copy of the repeated stamp
    np.testing.assert_allclose(res.values, [10.0, 15.0])
    assert res.repair.to_dict()["n_dropped"] == 2
    assert json.dumps(res.summary())
