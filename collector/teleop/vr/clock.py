"""Headset clock -> host clock (time.monotonic) for one WebSocket connection.

The page stamps every frame with the XRFrame time (its performance.now() timeline). Two kinds of
evidence relate it to the host clock:

* frames: host receive time = headset time + offset + inbound delay (never negative). The alignment
  core's `collector.sync.fit_clock` fits exactly this case (the lower envelope of the pairs, robust
  to delay spikes, with drift) over a sliding window; it is refitted twice a second. The envelope
  still contains the smallest inbound delay, and if the server is *persistently* behind (a busy
  machine: "receive" is when the server gets to a message, not when it arrived) all of that too.
* pings: the server pings twice a second and the page answers at once with its own time, so at
  that headset time the host clock read at least the ping's send time. The outbound direction has
  no queue in the server, so this bound stays tight when inbound messages are backed up.

The map is the frame fit shifted down until it meets the ping bound, then up by half the
smallest round trip seen on the connection (the outbound delay, for a symmetric link at its
best; capped at MAX_LINK_RTT_S, beyond which a round trip is queueing rather than the link). A
stamp is therefore when the pose was tracked, even while the server lags, and a lagging server
sees its frames as old (and drops them) instead of absorbing the lag into the map.

Clock jumps are detected and the estimate rebuilt: a headset time that runs backwards (the
page's clock restarted) or a frame that maps into the future (no real delay is negative).
"""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import Deque, Optional, Tuple

import numpy as np

from collector.errors import DataError
from collector.sync.clock import ClockMap, fit_clock

log = logging.getLogger(__name__)

PING_INTERVAL_S = 0.5
PING_WINDOW = 60  # 30 s of pings
FIT_WINDOW_S = 10.0
REFIT_INTERVAL_S = 0.5
MIN_FIT_PAIRS = 10
# A frame mapping this far into the future is a jump, not jitter.
JUMP_THRESHOLD_S = 0.25
# Wi-Fi round trips are a few ms; a longer best round trip contains queueing, not link delay.
MAX_LINK_RTT_S = 0.02
# One pong answered late (the page was busy) would pull the map early by that delay; the smallest
# excess over a few pongs includes a prompt answer.
MIN_PONGS_FOR_CORRECTION = 3


class HeadsetClock:
    def __init__(self, jump_threshold_s: float = JUMP_THRESHOLD_S):
        self.jump_threshold_s = float(jump_threshold_s)
        self.jumps = 0
        self.last_jump_reason: Optional[str] = None
        self._rtts: Deque[float] = deque(maxlen=PING_WINDOW)
        self._best_rtt = math.inf  # the link's best round trip survives clock resets
        self._reset()

    def _reset(self) -> None:
        self._pairs: Deque[Tuple[float, float]] = deque()  # (headset t, host receive t)
        self._pongs: Deque[Tuple[float, float]] = deque(maxlen=PING_WINDOW)  # (headset t, ping sent host t)
        self._map: Optional[ClockMap] = None
        self._next_fit_t = -math.inf
        self._last_device_t: Optional[float] = None
        self._min_offset: Optional[float] = None  # running min of host - headset until the first fit
        self._correction = 0.0  # subtracted from the frame estimate (see the module docstring)

    def reset(self, reason: str) -> None:
        self.jumps += 1
        self.last_jump_reason = reason
        log.warning("headset clock: %s; re-estimating the offset", reason)
        self._reset()

    # -- evidence --------------------------------------------------------------------------

    def observe_pong(self, device_t: float, sent_host_t: float, received_host_t: float) -> None:
        """A ping sent at sent_host_t was answered with the headset time device_t."""
        rtt = received_host_t - sent_host_t
        if not (math.isfinite(device_t) and 0.0 <= rtt < 5.0):
            return
        if self._pongs and device_t < self._pongs[-1][0]:
            self.reset(f"headset clock went backwards by {self._pongs[-1][0] - device_t:.3f} s (pong)")
        self._pongs.append((device_t, sent_host_t))
        self._rtts.append(rtt)
        self._best_rtt = min(self._best_rtt, rtt)
        self._update_correction()

    def _raw(self, device_t: float) -> Optional[float]:
        """The frame-based estimate: the fitted envelope, or the running minimum before the first fit."""
        if self._map is not None:
            return float(self._map.apply(np.array([device_t]))[0])
        if self._min_offset is not None:
            return device_t + self._min_offset
        return None

    def _update_correction(self) -> None:
        if len(self._pongs) < MIN_PONGS_FOR_CORRECTION or (self._map is None and self._min_offset is None):
            self._correction = 0.0
            return
        # How far the frame estimate sits above the ping bound; the smallest excess over the window is
        # (inbound envelope delay + any persistent server lag + the best outbound delay).
        excess = min(self._raw(d) - sent for d, sent in self._pongs)
        self._correction = max(0.0, excess - 0.5 * min(self._best_rtt, MAX_LINK_RTT_S))

    def _maybe_refit(self, now: float) -> None:
        if now < self._next_fit_t or len(self._pairs) < MIN_FIT_PAIRS:
            return
        self._next_fit_t = now + REFIT_INTERVAL_S
        device, host = np.array(self._pairs).T
        try:
            self._map = fit_clock(device, host, name="headset")
        except DataError as exc:  # e.g. identical stamps: keep the previous estimate
            log.debug("headset clock fit skipped: %s", exc)
        self._update_correction()

    # -- mapping ---------------------------------------------------------------------------

    def map(self, device_t: float) -> Optional[float]:
        """Host time of a headset time with the current estimate (None before any evidence)."""
        raw = self._raw(device_t)
        return None if raw is None else raw - self._correction

    def to_host(self, device_t: float, received_host_t: float) -> float:
        """Host time at which a frame stamped device_t was taken; detects and recovers from jumps."""
        if self._last_device_t is not None and device_t < self._last_device_t:
            self.reset(f"headset clock went backwards by {self._last_device_t - device_t:.3f} s")
        mapped = self.map(device_t)
        if mapped is not None and received_host_t - mapped < -self.jump_threshold_s:
            self.reset(f"frame stamped {mapped - received_host_t:.3f} s in the future")
        self._last_device_t = device_t
        self._pairs.append((device_t, received_host_t))
        while self._pairs and self._pairs[0][1] < received_host_t - FIT_WINDOW_S:
            self._pairs.popleft()
        offset = received_host_t - device_t
        if self._min_offset is None or offset < self._min_offset:
            self._min_offset = offset
            if self._map is None:
                self._update_correction()
        self._maybe_refit(received_host_t)
        # Causality: a sample cannot have been taken after it arrived.
        return min(self.map(device_t), received_host_t)

    # -- reporting -------------------------------------------------------------------------

    @property
    def fitted(self) -> bool:
        return self._map is not None

    def summary(self) -> dict:
        out = {
            "source": "fit_clock" if self._map is not None else ("running-min" if self._pairs else "none"),
            "pairs": len(self._pairs),
            "pongs": len(self._pongs),
            "rtt_ms": 1000.0 * float(np.median(self._rtts)) if self._rtts else None,
            "correction_ms": 1000.0 * self._correction,
            "jumps": self.jumps,
        }
        if self._map is not None:
            out.update(offset_s=self._map.offset_s, device_ref_s=self._map.device_ref_s,
                       drift_ppm=self._map.drift_ppm, residual_std_ms=1000.0 * self._map.residual_std_s)
        return out
