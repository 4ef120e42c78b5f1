"""Device clock -> host (session) clock: offset and drift from (device stamp, host receive stamp) pairs.

A host receive stamp is the device event's time plus a transport delay that is never negative and
occasionally huge (a USB hiccup, a busy ROS executor). A least-squares line through the pairs would
ride up with every spike; instead the fit is the lower envelope of the pairs: the line under all of
them that is as high as possible at their mean device time (the classic one-way-delay clock
estimator). Spikes sit above the envelope and cannot move it. The constant part of the delay cannot
be told apart from the offset with one-way stamps, so the offset includes the smallest delay seen.

Two guards: a robust first line (Theil-Sen through per-window minima) rejects the rare impossible
"early" pairs that would otherwise pull the envelope down, and the envelope is found by bisection on
the slope with vectorised evaluations, so the fit costs O(n log(1/eps)) numpy work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.errors import DataError
from collector.sync.stamps import as_stamps

# Windows for the robust first line: enough to be robust, few enough for an all-pairs Theil-Sen.
_MAX_WINDOWS = 128
# An "early" pair (host stamp before the envelope) this far below the robust line is a stamping fault.
_EARLY_FLOOR_S = 20e-6
_EARLY_SCALES = 8.0


@dataclass
class ClockMap:
    """host = device + offset_s + drift_ppm * 1e-6 * (device - device_ref_s)."""

    offset_s: float  # host - device at device_ref_s
    drift_ppm: float  # how much faster the host clock runs, in parts per million
    device_ref_s: float  # device time the offset refers to (the first device stamp of the fit)
    residual_std_s: float  # std of host - fitted (the transport delay above the envelope)
    residual_p99_s: float
    residual_median_s: float
    n_used: int
    n_rejected: int = 0  # pairs dropped as impossible (host stamp before the envelope)

    def apply(self, device_t) -> np.ndarray:
        """Device stamps on the host (session) clock."""
        d = as_stamps(device_t, "clock", "device stamps")
        return d + (self.offset_s + self.drift_ppm * 1e-6 * (d - self.device_ref_s))

    def inverse(self, host_t) -> np.ndarray:
        """Host stamps on the device clock (the inverse of apply)."""
        h = as_stamps(host_t, "clock", "host stamps")
        k = self.drift_ppm * 1e-6
        return (h - self.offset_s + k * self.device_ref_s) / (1.0 + k)

    def offset_at(self, device_t: float) -> float:
        return self.offset_s + self.drift_ppm * 1e-6 * (float(device_t) - self.device_ref_s)

    def to_dict(self) -> dict:
        return {key: (float(v) if isinstance(v, (float, np.floating)) else v) for key, v in self.__dict__.items()}


def _window_minima(x: np.ndarray, y: np.ndarray):
    """The lowest pair in each of up to _MAX_WINDOWS equal-count windows (x sorted)."""
    n = x.size
    n_windows = int(min(_MAX_WINDOWS, max(2, n // 8)))
    starts = (np.arange(n_windows) * n) // n_windows
    lowest = np.minimum.reduceat(y, starts)
    counts = np.diff(np.append(starts, n))
    at_min = np.flatnonzero(y == np.repeat(lowest, counts))
    window_of = np.searchsorted(starts, at_min, side="right") - 1
    _, first = np.unique(window_of, return_index=True)
    picked = at_min[first]
    return x[picked], y[picked]


def _theil_sen(x: np.ndarray, y: np.ndarray):
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    ok = dx > 0
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    return slope, float(np.median(y - slope * x))


def _envelope_slope(x: np.ndarray, y: np.ndarray, guess: float) -> float:
    """Slope of the highest line under all points at x = 0 (x centred): maximise min(y - s x) over s.

    min(y - s x) is concave in s; its slope is -x at the minimising point, so bisection on the sign
    of that x finds the optimum (where the minimiser switches from x < 0 to x > 0).
    """
    def minimiser_x(s: float) -> float:
        return float(x[np.argmin(y - s * x)])

    span = 1e-3
    lo, hi = guess - span, guess + span
    for _ in range(60):  # widen until the optimum is bracketed: minimiser left of 0 at lo, right at hi
        if minimiser_x(lo) <= 0.0 and minimiser_x(hi) >= 0.0:
            break
        span *= 2.0
        lo, hi = guess - span, guess + span
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if minimiser_x(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def fit_clock(device_t, host_t, name: str = "clock") -> ClockMap:
    """Fit the device -> host clock map from matched (device stamp, host receive stamp) pairs."""
    d = as_stamps(device_t, name, "device stamps")
    h = as_stamps(host_t, name, "host stamps")
    if d.size != h.size:
        raise DataError(f"stream {name!r}: {d.size} device stamps but {h.size} host stamps")
    if d.size < 3:
        raise DataError(f"stream {name!r}: a clock fit needs at least 3 stamp pairs, got {d.size}")
    for label, arr in (("device", d), ("host", h)):
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise DataError(f"stream {name!r}: non-finite {label} stamp at index {bad} ({arr[bad]})")
    order = np.argsort(d, kind="stable")
    d, h = d[order], h[order]
    if d[-1] == d[0]:
        raise DataError(f"stream {name!r}: all device stamps are equal; drift cannot be fitted")

    device_ref = float(d[0])
    x = d - device_ref
    y = h - d  # apparent offset: true offset + drift * x + delay

    # 1. A robust first line through the lowest pair of each window.
    xm, ym = _window_minima(x, y)
    slope0, icpt0 = _theil_sen(xm, ym)
    spread = ym - (icpt0 + slope0 * xm)
    scale = 1.4826 * float(np.median(np.abs(spread - np.median(spread))))
    floor = float(np.median(spread)) - max(_EARLY_SCALES * scale, _EARLY_FLOOR_S)
    keep = (y - (icpt0 + slope0 * x)) >= floor
    n_rejected = int(keep.size - np.count_nonzero(keep))
    xk, yk = x[keep], y[keep]

    # 2. The lower envelope, centred at the kept pairs' mean device time for conditioning.
    x_mid = float(xk.mean())
    xc = xk - x_mid
    slope = _envelope_slope(xc, yk, slope0)
    icpt_mid = float(np.min(yk - slope * xc))
    residual = yk - (icpt_mid + slope * xc)
    return ClockMap(
        offset_s=icpt_mid - slope * x_mid,
        drift_ppm=slope * 1e6,
        device_ref_s=device_ref,
        residual_std_s=float(residual.std()),
        residual_p99_s=float(np.percentile(residual, 99)),
        residual_median_s=float(np.median(residual)),
        n_used=int(xk.size),
        n_rejected=n_rejected,
    )
