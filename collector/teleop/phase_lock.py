"""Phase-locking the realtime loop's ticks to the operator stream.

An input that lands just after a tick waits a whole period for the next one. When the operator
sends at the loop's rate (a 100 Hz bridge into a 100 Hz loop), the ticks can instead be placed a
fixed, small lag after the messages arrive. The lock:

- only engages once the inputs arrive at the loop's period (a 90 Hz headset into a 100 Hz loop has
  no fixed phase to lock to: the loop then free-runs at its nominal rate);
- acquires in one step: the first locked tick moves the schedule by the whole phase error, taking the
  shorter way round (at most half a period; one longer or shorter interval, once);
- then tracks with small bounded nudges (at most `max_slew` of a period per tick), which keeps the
  average rate at the nominal one and the jitter low;
- re-acquires if the error stays large (the sender restarted with another phase), and lets go if the
  arrival intervals stop matching the period.
"""
from __future__ import annotations

import math
from typing import Optional


class PhaseLock:
    def __init__(self, period_s: float, target_lag_s: float, gain: float = 0.3, max_slew: float = 0.02,
                 rate_tolerance: float = 0.1, acquire_after: int = 5, release_after: int = 5,
                 reacquire_after: int = 10):
        if not period_s > 0:
            raise ValueError(f"phase lock period must be > 0, got {period_s!r}")
        self.period = float(period_s)
        self.target_lag = float(target_lag_s)
        self.gain = float(gain)
        self.max_step = float(max_slew) * self.period
        self.rate_tolerance = float(rate_tolerance)
        self.acquire_after = int(acquire_after)
        self.release_after = int(release_after)
        self.reacquire_after = int(reacquire_after)
        self.acquisitions = 0
        self.reset()

    def reset(self) -> None:
        self.locked = False
        self._last_arrival: Optional[float] = None
        self._matched = 0
        self._mismatched = 0
        self._far = 0

    def phase_error(self, tick_start: float, arrival: float) -> float:
        """How much later than the target lag this tick started after the message, wrapped to +-period/2."""
        error = (tick_start - arrival) - self.target_lag
        return error - self.period * math.floor(error / self.period + 0.5)

    def update(self, tick_start: float, arrival: Optional[float]) -> float:
        """Seconds by which to move the next tick earlier (negative: later), given this tick's start and
        the arrival time of the newest operator message, if a new one came in since the last update."""
        if arrival is None or arrival == self._last_arrival:
            return 0.0
        if self._last_arrival is not None:
            interval = arrival - self._last_arrival
            if abs(interval - self.period) <= self.rate_tolerance * self.period:
                self._matched += 1
                self._mismatched = 0
            else:
                self._mismatched += 1
                self._matched = 0
        self._last_arrival = arrival
        if self.locked and self._mismatched >= self.release_after:
            self.locked = False
        error = self.phase_error(tick_start, arrival)
        if not self.locked:
            if self._matched < self.acquire_after:
                return 0.0
            self.locked = True
            self.acquisitions += 1
            self._far = 0
            return error
        self._far = self._far + 1 if abs(error) > 0.25 * self.period else 0
        if self._far >= self.reacquire_after:
            self._far = 0
            self.acquisitions += 1
            return error
        return max(-self.max_step, min(self.max_step, self.gain * error))
