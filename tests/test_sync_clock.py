"""Clock mapping: a known offset and drift are recovered through heavy-tailed transport delays."""
import json

import numpy as np
import pytest

from collector.errors import DataError
from collector.sync import fit_clock, stream_report


def simulate(seed, offset=2.5, drift_ppm=50.0, n=20_000, duration=600.0, early_faults=0):
    """Device stamps and host receive stamps: true map + delay (exponential core, Pareto spikes) + stamp noise."""
    r = np.random.default_rng(seed)
    device = np.sort(r.uniform(0.0, duration, n)) + 1000.0  # a device clock that does not start at 0
    delay = r.exponential(200e-6, n)
    spikes = r.random(n) < 0.05
    delay[spikes] += (r.pareto(1.5, spikes.sum()) + 1.0) * 2e-3  # 2 ms .. seconds, heavy-tailed
    true_host = device + offset + drift_ppm * 1e-6 * device
    host = true_host + delay + r.normal(0.0, 10e-6, n)
    if early_faults:
        host[r.choice(n, early_faults, replace=False)] -= r.uniform(0.01, 1.0, early_faults)
    return device, host, true_host


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_offset_and_drift_within_a_tenth_of_a_millisecond(seed):
    device, host, true_host = simulate(seed)
    clock = fit_clock(device, host, name="camera")
    assert clock.drift_ppm == pytest.approx(50.0, abs=0.5)
    assert clock.offset_at(0.0) == pytest.approx(2.5, abs=1e-4)
    np.testing.assert_allclose(clock.apply(device), true_host, rtol=0, atol=1e-4)
    # The residual describes the transport delay above the fitted line: mostly small, spikes in the tail.
    assert 0 < clock.residual_median_s < 1e-3 and clock.residual_p99_s > clock.residual_median_s
    assert clock.n_used == device.size and clock.n_rejected == 0
    json.dumps(clock.to_dict())


def test_least_squares_would_not_do_it():
    """The delay spikes bias a plain least-squares line far beyond the tolerance the robust fit meets."""
    device, host, true_host = simulate(5)
    slope, intercept = np.polyfit(device - device[0], host - device, 1)
    lsq = device + intercept + slope * (device - device[0])
    assert np.abs(lsq - true_host).max() > 5e-4
    assert np.abs(fit_clock(device, host).apply(device) - true_host).max() < 1e-4


def test_impossible_early_stamps_are_rejected_and_counted():
    device, host, true_host = simulate(3, early_faults=25)
    clock = fit_clock(device, host)
    assert clock.n_rejected >= 25
    np.testing.assert_allclose(clock.apply(device), true_host, atol=1e-4)


def test_unordered_pairs_and_inverse():
    device, host, _ = simulate(4, n=3000, offset=-1.25, drift_ppm=-120.0)
    order = np.random.default_rng(0).permutation(device.size)
    clock = fit_clock(device[order], host[order])
    assert clock.drift_ppm == pytest.approx(-120.0, abs=1.0)
    np.testing.assert_allclose(clock.inverse(clock.apply(device)), device, atol=1e-9)


def test_mapped_stream_lines_up_with_the_session_clock():
    """Apply the map to a device-stamped 30 Hz stream: its report on the host clock shows the true rate."""
    device, host, _ = simulate(6, n=5000)
    clock = fit_clock(device, host)
    frames = 1000.0 + np.arange(0, 600, 1 / 30)
    report = stream_report(clock.apply(frames), name="camera", nominal_rate_hz=30.0)
    assert report.effective_rate_hz == pytest.approx(30.0 / (1 + 50e-6), rel=1e-6)
    assert report.n_gaps == 0


@pytest.mark.parametrize("device,host,match", [
    ([0.0, 1.0, 2.0], [0.0, 1.0], "3 device stamps but 2 host stamps"),
    ([0.0, 1.0], [0.0, 1.0], "at least 3 stamp pairs"),
    ([0.0, np.nan, 2.0], [0.0, 1.0, 2.0], "non-finite device stamp at index 1"),
    ([0.0, 1.0, 2.0], [0.0, np.inf, 2.0], "non-finite host stamp at index 1"),
    ([1.0, 1.0, 1.0], [0.0, 1.0, 2.0], "all device stamps are equal"),
])
def test_bad_pairs_are_named(device, host, match):
    with pytest.raises(DataError, match=f"stream 'imu': .*{match}"):
        fit_clock(device, host, name="imu")
