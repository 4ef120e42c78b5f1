"""Per-stream timing health: effective rate, jitter, gaps, repeated and backwards stamps.

Rate, jitter and gaps are measured on the distinct stamps in time order, so one reordered or
repeated sample is counted as such (n_non_monotonic, n_duplicates) instead of showing up as a
negative or zero interval that distorts the statistics.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.sync.stamps import as_stamps


def _json_number(x):
    """NaN/inf are not JSON: report them as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class StreamReport:
    name: str
    count: int
    duration_s: float
    effective_rate_hz: float  # (distinct samples - 1) / duration
    nominal_rate_hz: Optional[float]
    period_s: float  # the period gaps are measured in: nominal, else the median interval
    median_interval_s: float
    jitter_std_s: float  # std of the inter-sample intervals (gaps included)
    jitter_p99_s: float  # 99th percentile of the inter-sample intervals
    max_interval_s: float
    gap_periods: float
    gaps: List[Tuple[float, float]] = field(default_factory=list)  # (last stamp before, first after)
    n_duplicates: int = 0  # samples whose stamp repeats an earlier one
    n_non_monotonic: int = 0  # samples stamped earlier than the sample before them (arrival order)
    t_first: float = math.nan
    t_last: float = math.nan

    @property
    def n_gaps(self) -> int:
        return len(self.gaps)

    @property
    def missing_estimate(self) -> int:
        """Samples the gaps are missing at the period: how many a drop counter should have seen."""
        return int(sum(round((b - a) / self.period_s) - 1 for a, b in self.gaps)) if self.period_s > 0 else 0

    def to_dict(self) -> dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = _json_number(value)
        out["gaps"] = [[_json_number(a), _json_number(b)] for a, b in self.gaps]
        out["n_gaps"] = self.n_gaps
        out["gap_total_s"] = _json_number(sum(b - a for a, b in self.gaps))
        out["missing_estimate"] = self.missing_estimate
        return out


def stream_report(t, name: str = "stream", nominal_rate_hz: Optional[float] = None,
                  gap_periods: float = 3.0) -> StreamReport:
    """Measure one stream's stamps. A gap is an interval longer than `gap_periods` periods."""
    if nominal_rate_hz is not None and not (math.isfinite(nominal_rate_hz) and nominal_rate_hz > 0):
        raise ConfigError(f"stream {name!r}: nominal_rate_hz must be a positive number, got {nominal_rate_hz!r}")
    if not (math.isfinite(gap_periods) and gap_periods > 0):
        raise ConfigError(f"stream {name!r}: gap_periods must be a positive number, got {gap_periods!r}")
    arr = as_stamps(t, name)
    if arr.size == 0:
        raise DataError(f"stream {name!r}: no stamps (empty stream)")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"stream {name!r}: {bad.size} non-finite stamp(s), first at index {bad[0]} ({arr[bad[0]]})")

    n_non_monotonic = int(np.count_nonzero(arr[1:] < arr[:-1]))
    ordered = np.sort(arr) if n_non_monotonic else arr
    distinct = np.empty(ordered.size, dtype=bool)
    distinct[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=distinct[1:])
    n_duplicates = int(ordered.size - np.count_nonzero(distinct))
    stamps = ordered[distinct] if n_duplicates else ordered
    intervals = np.diff(stamps)
    duration = float(stamps[-1] - stamps[0])

    if intervals.size:
        median = float(np.median(intervals))
        jitter_std = float(intervals.std())
        jitter_p99 = float(np.percentile(intervals, 99))
        max_interval = float(intervals.max())
    else:
        median = jitter_std = jitter_p99 = max_interval = math.nan
    period = 1.0 / nominal_rate_hz if nominal_rate_hz else median
    if intervals.size and math.isfinite(period) and period > 0:
        at = np.flatnonzero(intervals > gap_periods * period)
        gaps = list(zip(stamps[at].tolist(), stamps[at + 1].tolist()))
    else:
        gaps = []
    return StreamReport(
        name=name,
        count=int(arr.size),
        duration_s=duration,
        effective_rate_hz=(stamps.size - 1) / duration if duration > 0 else math.nan,
        nominal_rate_hz=float(nominal_rate_hz) if nominal_rate_hz else None,
        period_s=period,
        median_interval_s=median,
        jitter_std_s=jitter_std,
        jitter_p99_s=jitter_p99,
        max_interval_s=max_interval,
        gap_periods=float(gap_periods),
        gaps=gaps,
        n_duplicates=n_duplicates,
        n_non_monotonic=n_non_monotonic,
        t_first=float(stamps[0]),
        t_last=float(stamps[-1]),
    )
