"""The robot's clock as seen from another process: the stamps of its /joint_states.

A robot stamps its messages with its own time: sim time for the sim-hardware node, the host clock
for a real driver. Anything that has to put its own samples on that timeline (the ROS backend's
`now()`, the recorder's stamp for a header-less Float64MultiArray command) estimates the current
robot time as the newest joint-state stamp plus the host time elapsed since it arrived. Joint states
arrive every 2 ms, so the estimate is off by at most a transport latency plus one period; it is
kept non-decreasing because a timeline that steps back would be rejected by the recorder.

For the ROS backend (whose estimate stamps the teleop's commands) "arrived" is when DDS received the
message (the middleware's reception time), not when the callback ran: on a busy machine a sample can
wait tens of milliseconds for its executor, and counting from the callback would stamp commands that
much too early, before robot states recorded after them.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

# A reception time further back than this is not believed (another clock, or none): the callback's time is used.
MAX_DELIVERY_DELAY_S = 1.0


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


def delivery_delay(message_info) -> float:
    """Seconds a message waited between DDS reception and its callback, from the rmw MessageInfo
    (`received_timestamp`, nanoseconds of the host's system clock); 0 when it is missing or implausible."""
    received_ns = (message_info or {}).get("received_timestamp") or 0
    if received_ns <= 0:
        return 0.0
    delay = time.time() - received_ns * 1e-9
    return delay if 0.0 <= delay < MAX_DELIVERY_DELAY_S else 0.0
