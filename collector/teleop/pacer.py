"""Realtime pacing: ticks held to the wall clock at the control period, phase-locked to the input.

Jitter is how far each tick-to-tick interval differs from the nominal period (phase-lock nudges
included); a tick that ends past the next one's start is an overrun and restarts the schedule.
While it waits the pacer lets the input reader take messages as they arrive, so their arrival
times are true (input_reader.py).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from collector.teleop.phase_lock import PhaseLock


class Pacer:
    def __init__(self, period: float, phase_lock: Optional[PhaseLock], wait_until: Callable[[float], None], stats,
                 start: float):
        """start: the monotonic time the run starts (its first tick's schedule)."""
        self.period = period
        self.phase_lock = phase_lock
        self.wait_until = wait_until
        self.stats = stats
        self._next_tick = start
        self._previous_start: Optional[float] = None

    def tick_started(self, tick_start: float) -> None:
        if self._previous_start is not None:
            self.stats.jitter_s.append(abs(tick_start - self._previous_start - self.period))
        self._previous_start = tick_start

    def wait_for_next(self, tick_start: float, latest_arrival: Optional[float]) -> None:
        """Sleep until the next tick is due (just after the inputs arrive, when phase-locked)."""
        self._next_tick += self.period
        if self.phase_lock is not None:  # tick just after inputs arrive (see phase_lock.py)
            self._next_tick -= self.phase_lock.update(tick_start, latest_arrival)
        if time.monotonic() > self._next_tick:
            self.stats.overruns += 1
            self._next_tick = time.monotonic()
        self.wait_until(self._next_tick)
