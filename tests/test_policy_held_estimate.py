"""The target estimate held while a hand is near it (collector/policy/held_estimate.py); in the runner, with
the hand steering, see tests/test_policy_hand_steering.py."""
import numpy as np
import pytest

from collector.errors import ConfigError
from collector.policy.held_estimate import HeldEstimate

FAR = np.array([0.0, 0.4, 1.0, 0.0, -0.4, 1.0])  # both hands 40 cm from the target
TARGET = np.array([0.4, 0.0, 0.95])


def test_estimates_seen_from_afar_are_averaged_and_held_while_a_hand_is_near():
    held = HeldEstimate(within_m=0.12, window=30)
    assert held.update(TARGET + [0.004, 0, 0], FAR) is not None
    seen = held.update(TARGET - [0.004, 0, 0], FAR)
    np.testing.assert_allclose(seen, TARGET)  # the mean of what was seen
    near = np.concatenate([TARGET + [0, 0, 0.10], FAR[3:]])  # the left hand 10 cm above it
    for _ in range(5):
        np.testing.assert_allclose(held.update(TARGET + [0.03, 0.02, 0], near), TARGET)
    assert held.held_ticks == 5


def test_a_hand_backing_away_lets_new_estimates_in_and_the_window_forgets_old_ones():
    held = HeldEstimate(within_m=0.12, window=3)
    for _ in range(3):
        held.update(TARGET, FAR)
    moved = TARGET + [0.05, 0, 0]  # pushed 5 cm during a missed grasp
    np.testing.assert_allclose(held.update(moved, FAR), TARGET + [0.05 / 3, 0, 0])
    for _ in range(2):
        held.update(moved, FAR)
    np.testing.assert_allclose(held.value, moved)
    held.reset()
    assert held.value is None and held.held_ticks == 0


def test_a_non_finite_estimate_is_not_averaged_in():
    held = HeldEstimate()
    assert held.update(np.full(3, np.nan), FAR) is None  # nothing seen yet: nothing to act on
    held.update(TARGET, FAR)
    np.testing.assert_allclose(held.update(np.array([np.inf, 0, 0]), FAR), TARGET)


@pytest.mark.parametrize("within_m, window, message", [
    (0.0, 30, "the hold distance must be a positive number of metres"),
    (float("nan"), 30, "the hold distance must be a positive number of metres"),
    (0.12, 0, "window must be a whole number of ticks >= 1"),
])
def test_bad_settings_are_one_line_errors(within_m, window, message):
    with pytest.raises(ConfigError, match=message):
        HeldEstimate(within_m, window)
