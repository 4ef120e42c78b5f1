"""The policy's estimate of its target, held while a hand is near it.

Measured on the seventeenth run's steered rollouts (docs/learning.md, "Eighteenth run"): the object head
places the target to about 5 mm across the table on a take's first frame, while both hands are far from it,
and 15-37 mm off (median, per seed set, the failures) at the first close. It degrades as a hand comes into
the cameras' view around the target, which is exactly when the grasp gate and the hand steering read it.
The target does not move until a hand touches it, so the estimate seen from afar is the better one there.

`HeldEstimate` averages the newest `window` estimates taken while every hand was farther than `within_m`
from the average, and holds that average while any hand is nearer. A hand that backs away again (a missed
grasp, a pushed object) lets new estimates in, and the window forgets the old ones.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Optional

import numpy as np

from collector.errors import ConfigError


class HeldEstimate:
    def __init__(self, within_m: float = 0.12, window: int = 30):
        if not (isinstance(within_m, (int, float)) and math.isfinite(within_m) and within_m > 0):
            raise ConfigError(f"held estimate: the hold distance must be a positive number of metres, got {within_m!r}")
        if not (isinstance(window, int) and window >= 1):
            raise ConfigError(f"held estimate: window must be a whole number of ticks >= 1, got {window!r}")
        self.within_m = float(within_m)
        self._seen: deque = deque(maxlen=window)
        self.value: Optional[np.ndarray] = None
        self.held_ticks = 0

    def reset(self) -> None:
        self._seen.clear()
        self.value = None
        self.held_ticks = 0

    def update(self, estimate: np.ndarray, hands: np.ndarray) -> Optional[np.ndarray]:
        """The estimate to act on this tick. estimate: (3,) metres; hands: (3 x hands,) metres, same frame."""
        estimate = np.asarray(estimate, dtype=np.float64).reshape(3)
        if self.value is not None and self._nearest_hand_m(hands) <= self.within_m:
            self.held_ticks += 1
            return self.value
        if np.isfinite(estimate).all():
            self._seen.append(estimate)
            self.value = np.mean(self._seen, axis=0)
        return self.value

    def _nearest_hand_m(self, hands: np.ndarray) -> float:
        positions = np.asarray(hands, dtype=np.float64).reshape(-1, 3)
        return float(np.min(np.linalg.norm(positions - self.value, axis=1))) if len(positions) else math.inf
