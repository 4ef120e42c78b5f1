"""PhaseLock: ticks settle a fixed lag after inputs arrive when the rates match, and only then."""
import math

import numpy as np
import pytest

from collector.teleop.phase_lock import PhaseLock

PERIOD = 0.01
LAG = 0.001


def simulate(input_period, n_ticks=400, first_arrival=0.0037, noise_s=0.0, seed=0, phase_jump_at=None):
    """Tick a loop against a stream of arrivals; returns (tick starts, lag of the newest input at each tick, lock)."""
    rng = np.random.default_rng(seed)
    n_inputs = int(n_ticks * PERIOD / input_period) + 20
    arrivals = first_arrival + np.arange(n_inputs) * input_period + rng.normal(0, noise_s, n_inputs)
    if phase_jump_at is not None:
        arrivals[phase_jump_at:] += 0.45 * input_period  # the sender restarted with another phase
    arrivals.sort()
    lock = PhaseLock(PERIOD, LAG)
    next_tick = 0.0
    starts, lags = [], []
    for _ in range(n_ticks):
        tick = next_tick
        k = int(np.searchsorted(arrivals, tick, side="right")) - 1
        newest = float(arrivals[k]) if k >= 0 else None
        starts.append(tick)
        lags.append(tick - newest if newest is not None else math.nan)
        next_tick = tick + PERIOD - lock.update(tick, newest)
    return np.array(starts), np.array(lags), lock


def test_matching_rate_locks_in_one_step_then_holds_the_lag():
    starts, lags, lock = simulate(PERIOD, first_arrival=0.0037)
    assert lock.locked and lock.acquisitions == 1
    # Before the lock an input waited up to a period; after it, LAG (the first ticks are acquisition).
    assert np.abs(lags[20:] - LAG).max() < 1e-5
    intervals = np.diff(starts)
    off_nominal = np.abs(intervals - PERIOD) > 1e-9
    assert off_nominal.sum() <= 3  # one acquisition step and a few decaying nudges, no more
    assert np.abs(intervals - PERIOD).max() <= PERIOD / 2 + 1e-12  # at most half a period, once


def test_an_input_just_after_the_tick_moves_the_ticks_later_not_a_period_earlier():
    lock = PhaseLock(PERIOD, LAG)
    # Inputs arrive 0.3 ms after each tick (so each waits 9.7 ms): the short way is 1.3 ms later.
    corrections = [lock.update(k * PERIOD, (k - 1) * PERIOD + 0.0003) for k in range(1, 8)]
    assert lock.locked and lock.acquisitions == 1
    acquired = corrections.index(next(c for c in corrections if c != 0.0))
    assert corrections[acquired] == pytest.approx(-(0.0003 + LAG), abs=1e-12)  # later, by 1.3 ms
    assert all(c == 0.0 for c in corrections[:acquired])
    assert lock.phase_error(1.0, 1.0 - PERIOD + 0.0003) == pytest.approx(-(0.0003 + LAG))


@pytest.mark.parametrize("input_hz", [90.0, 72.0, 120.0])
def test_other_input_rates_never_lock_and_the_loop_keeps_its_nominal_period(input_hz):
    starts, _, lock = simulate(1.0 / input_hz)
    assert not lock.locked and lock.acquisitions == 0
    np.testing.assert_allclose(np.diff(starts), PERIOD, atol=1e-12)


def test_noisy_arrivals_keep_the_lock_and_the_rate():
    starts, lags, lock = simulate(PERIOD, noise_s=0.0002, seed=4)
    assert lock.locked
    assert abs(np.median(lags[50:]) - LAG) < 3e-4
    # Tracking nudges are bounded by 2 % of a period; the average rate stays the nominal one.
    assert np.abs(np.diff(starts)[30:] - PERIOD).max() <= 0.02 * PERIOD + 1e-12
    assert abs(np.mean(np.diff(starts)[30:]) - PERIOD) < 2e-6


def test_a_sender_that_restarts_with_another_phase_is_reacquired():
    _, lags, lock = simulate(PERIOD, n_ticks=300, phase_jump_at=150)
    assert lock.acquisitions == 2
    assert np.abs(lags[-50:] - LAG).max() < 1e-5


def test_no_new_input_means_no_correction():
    lock = PhaseLock(PERIOD, LAG)
    assert lock.update(0.0, None) == 0.0
    assert lock.update(0.01, 0.005) == 0.0  # first message: nothing to compare with yet
    assert lock.update(0.02, 0.005) == 0.0  # the same message again
    with pytest.raises(ValueError, match="period"):
        PhaseLock(0.0, LAG)
