"""The robot's clock as seen from another process: the stamps of its /joint_states.

A robot stamps its messages with its own time: sim time for the sim-hardware node, the host clock
for a real driver. Anything that has to put its own samples on that timeline (the ROS backend's
`now()`, the recorder's stamp for a header-less Float64MultiArray command) estimates the current
robot time as the newest joint-state stamp plus the host time elapsed since it arrived. Joint states
arrive every 2 ms, so the estimate is off by at most a transport latency plus one period; it is
kept non-decreasing because a timeline that steps back would be rejected by the recorder.
"""
from __future__ import annotations

import threading
import time
from typing import Optional


class RobotClock:
    def __init__(self):
        self._lock = threading.Lock()
        self._stamp: Optional[float] = None
        self._received: float = 0.0  # time.monotonic() when that stamp arrived
        self._last_reported = -float("inf")

    def observe(self, stamp_s: float, received_monotonic: Optional[float] = None) -> None:
        with self._lock:
            self._stamp = float(stamp_s)
            self._received = time.monotonic() if received_monotonic is None else received_monotonic

    @property
    def synced(self) -> bool:
        return self._stamp is not None

    def age(self) -> float:
        """Host seconds since the newest stamp arrived (inf before the first one)."""
        with self._lock:
            return float("inf") if self._stamp is None else time.monotonic() - self._received

    def now(self) -> Optional[float]:
        """Estimated current robot time, or None before the first joint state."""
        with self._lock:
            if self._stamp is None:
                return None
            estimate = self._stamp + (time.monotonic() - self._received)
            if estimate < self._last_reported:
                estimate = self._last_reported
            self._last_reported = estimate
            return estimate
