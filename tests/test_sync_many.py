"""align_streams: several streams at once, in threads, with exactly align_stream's results."""
import numpy as np
import pytest

from collector.errors import ConfigError, DataError
from collector.sync import align_stream, align_streams, fixed_grid


def _session(seed=3):
    rng = np.random.default_rng(seed)
    joints_t = np.sort(rng.uniform(0.0, 20.0, 20_000))
    cam_t = np.arange(0.0, 20.0, 1 / 30) + rng.normal(0, 0.002, 600)
    cam_t.sort()
    vr_t = np.sort(rng.uniform(0.0, 20.0, 1_800))
    quats = rng.normal(size=(vr_t.size, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return {
        "joints": {"t": joints_t, "values": np.sin(joints_t)[:, None] * np.arange(1, 8), "method": "linear",
                   "tolerance": 0.004},
        "camera": {"t": cam_t, "method": "nearest", "tolerance": 0.02},
        "vr": {"t": vr_t, "values": quats, "method": "slerp", "tolerance": 0.03},
        "backward": {"t": cam_t, "values": np.arange(cam_t.size), "method": "backward", "tolerance": 0.05},
    }


def _same(a, b):
    assert a.name == b.name and a.method == b.method
    for field in ("index", "error", "valid", "values"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)


@pytest.mark.parametrize("workers", [None, 1, 2, 4])
def test_results_equal_align_stream_one_by_one_and_keep_the_given_order(workers):
    ref = fixed_grid(0.0, 20.0, 50.0)
    streams = _session()
    results = align_streams(ref, streams, workers=workers)
    assert list(results) == list(streams)
    for name, spec in streams.items():
        _same(results[name], align_stream(ref, name=name, **spec))
    assert results["joints"].n_valid > 0.9 * ref.size  # a real alignment, not all rows rejected


def test_a_failing_stream_raises_its_own_named_error():
    ref = fixed_grid(0.0, 20.0, 50.0)
    streams = _session()
    bad_t = streams["camera"]["t"].copy()
    bad_t[100] = np.nan
    streams["camera"] = {**streams["camera"], "t": bad_t}
    with pytest.raises(DataError, match="'camera'.*non-finite stamp.*index 100"):
        align_streams(ref, streams, workers=2)


@pytest.mark.parametrize("spec, message", [
    ({"t": [0.0, 1.0], "metod": "nearest"}, "unknown key.*metod"),
    ({"values": [1.0]}, "no stamps"),
    ([0.0, 1.0], "expected a mapping"),
])
def test_malformed_stream_specs_are_named(spec, message):
    with pytest.raises(ConfigError, match=f"stream 'cam': {message}"):
        align_streams([0.0, 0.5], {"cam": spec})


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        align_streams([0.0], {"a": {"t": [0.0]}}, workers=workers)


def test_bad_reference_is_named():
    with pytest.raises(DataError, match="'reference'.*not sorted"):
        align_streams([1.0, 0.0], {"a": {"t": [0.0, 1.0]}})


def test_default_workers_one_per_core_for_big_inputs_one_for_small():
    import os

    from collector.sync.many import PARALLEL_MIN_SAMPLES, default_workers

    assert default_workers(7, PARALLEL_MIN_SAMPLES - 1) == 1  # threads would cost more than they save
    assert default_workers(7, 4_000_000) == min(7, os.cpu_count() or 1)
    assert default_workers(1, 4_000_000) == 1
