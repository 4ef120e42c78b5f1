"""Online alignment for the recorder: streams pushed in chunks, aligned grid rows emitted once final.

Rows are the fixed grid t0 + k / rate_hz. A row is emitted when, for every stream, it is final:

* exactly final: no sample that can still arrive could change it. Samples may arrive out of order,
  but at most `reorder_window_s` behind the newest stamp of their own stream (later ones are "late":
  dropped and counted, or an error). So a stream's future stamps are >= its watermark
  w = newest - reorder_window_s, and a row at t_r is final for it once
  backward: t_r < w;  nearest / forward / linear / slerp: a buffered sample in [t_r, w) exists.
  Rows emitted this way are identical to offline `align_stream` on the same samples.
* expired: the newest stamp on any stream is more than max_latency_s + min(tolerance, max_latency_s)
  past the row. A stream that stalls (or never existed) then stops holding every row back. If every
  sample arrives within max_latency_s of the newest stamp seen on any stream and the tolerance is
  <= max_latency_s, expired rows are still exactly the offline rows: any sample that could still come
  is out of tolerance for them, and rows out of tolerance carry no index (-1). Samples later than that
  can make an expired row differ from offline; expired rows are counted per stream in stats().

Memory stays bounded: after each pop every stream keeps only the samples later rows can still use
(from the backward neighbour of the next row on), so buffers hold about reorder window + latency
worth of samples however long the session runs, provided pop_ready() is called regularly.

Indices count a stream's accepted samples in time order (arrival order among equal stamps), i.e.
the rows of the stream after a stable sort; for in-order data that is the recorded order.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from collector.errors import ConfigError, DataError
from collector.sync.align import METHODS, align_sorted, grid_row, grid_rows_before, grid_stamps
from collector.sync.interpolate import normalize_quat_slices
from collector.sync.stamps import DUPLICATE_POLICIES, as_stamps

LATE_POLICIES = ("drop", "error")
# Buffers are trimmed every few emissions rather than every one: the trim costs a few searches per
# stream, and keeping a few more pops' worth of samples changes nothing but memory (still bounded).
_TRIM_EVERY = 4
_STREAM_KEYS = {"method", "tolerance", "quat_slices", "duplicates", "values"}


class _StreamBuffer:
    """One stream's pending samples, kept sorted, in an array that grows and compacts amortised."""

    def __init__(self, name: str, method: str, tolerance: float, quat_slices, duplicates: str,
                 has_values: Optional[bool]):
        self.name = name
        self.method = method
        self.tolerance = tolerance
        self.quat_slices_arg = quat_slices
        self.quat_slices = ()
        self.duplicates = duplicates
        self.has_values = has_values  # None until the first push says
        self.t = np.empty(64, dtype=np.float64)
        self.values: Optional[np.ndarray] = None
        self.start = 0  # buffered samples are t[start:stop]
        self.stop = 0
        self.offset = 0  # index (in the stream's accepted samples) of t[start]
        self.newest = -math.inf
        self.received = 0
        self.late_dropped = 0
        self.duplicates_dropped = 0
        self.expired_rows = 0

    # -- storage --
    @property
    def size(self) -> int:
        return self.stop - self.start

    def stamps(self) -> np.ndarray:
        return self.t[self.start:self.stop]

    def rows(self) -> Optional[np.ndarray]:
        return None if self.values is None else self.values[self.start:self.stop]

    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        if self.stop + extra <= self.t.size:
            return
        capacity = max(64, self.t.size)
        while capacity < 2 * need:
            capacity *= 2
        new_t = np.empty(capacity, dtype=np.float64)
        new_t[:self.size] = self.stamps()
        if self.values is not None:
            new_v = np.empty((capacity,) + self.values.shape[1:], dtype=self.values.dtype)
            new_v[:self.size] = self.rows()
            self.values = new_v
        self.t = new_t
        self.stop = self.size
        self.start = 0

    def append(self, t: np.ndarray, values: Optional[np.ndarray]) -> None:
        self._reserve(t.size)
        self.t[self.stop:self.stop + t.size] = t
        if values is not None:
            self.values[self.stop:self.stop + t.size] = values
        self.stop += t.size

    def replace(self, t: np.ndarray, values: Optional[np.ndarray]) -> None:
        """Swap the buffered samples for a merged, re-sorted set (out-of-order arrivals)."""
        self.start = self.stop = 0
        self.append(t, values)

    def trim(self, count: int) -> None:
        self.start += count
        self.offset += count

    def init_values(self, values: np.ndarray) -> None:
        self.values = np.empty((self.t.size,) + values.shape[1:], dtype=values.dtype)
        if self.method == "slerp":
            if values.ndim < 2:
                raise DataError(f"stream {self.name!r}: slerp needs (N, ..., D) values, got shape {values.shape}")
            self.quat_slices = normalize_quat_slices(self.quat_slices_arg, values.shape[-1], self.name)


class OnlineAligner:
    """Align streams onto a fixed-rate grid as they arrive; see the module doc for when rows come out.

    streams: {name: {"method": ..., "tolerance": s, "quat_slices": [...], "duplicates": "error"|"keep"|"drop",
              "values": True/False (optional: decided by the first push)}}
    """

    def __init__(self, streams: Dict[str, dict], rate_hz: float = 50.0, t0: Optional[float] = None,
                 reorder_window_s: float = 0.05, max_latency_s: float = 0.5, late: str = "drop",
                 check_finite: bool = True):
        if not streams:
            raise ConfigError("OnlineAligner needs at least one stream")
        if not (isinstance(rate_hz, (int, float, np.number)) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f"OnlineAligner rate_hz must be a positive number, got {rate_hz!r}")
        for label, value in (("reorder_window_s", reorder_window_s), ("max_latency_s", max_latency_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"OnlineAligner {label} must be a finite number >= 0, got {value!r}")
        if late not in LATE_POLICIES:
            raise ConfigError(f"OnlineAligner late={late!r} not in {LATE_POLICIES}")
        if t0 is not None and not math.isfinite(t0):
            raise ConfigError(f"OnlineAligner t0 must be finite, got {t0!r}")
        self.rate_hz = float(rate_hz)
        self.t0 = None if t0 is None else float(t0)
        self.reorder_window_s = float(reorder_window_s)
        self.max_latency_s = float(max_latency_s)
        self.late = late
        self.check_finite = check_finite
        self._buffers: Dict[str, _StreamBuffer] = {}
        for name, cfg in streams.items():
            self._buffers[name] = self._make_buffer(name, dict(cfg or {}))
        self._next_row = 0
        self._newest = -math.inf  # newest stamp on any stream
        self._finished = False
        self._emits_since_trim = 0
        self.rows_emitted = 0

    @staticmethod
    def _make_buffer(name: str, cfg: dict) -> _StreamBuffer:
        if name == "t" or not isinstance(name, str) or not name:
            raise ConfigError(f"stream name {name!r} is not allowed (non-empty, and 't' names the row stamps)")
        unknown = set(cfg) - _STREAM_KEYS
        if unknown:
            raise ConfigError(f"stream {name!r}: unknown settings {sorted(unknown)}; known: {sorted(_STREAM_KEYS)}")
        method = cfg.get("method", "nearest")
        if method not in METHODS:
            raise ConfigError(f"stream {name!r}: align method {method!r} not in {METHODS}")
        tolerance = cfg.get("tolerance", math.inf)
        try:
            tolerance = math.inf if tolerance is None else float(tolerance)
        except (TypeError, ValueError):
            tolerance = math.nan
        if not tolerance >= 0:
            raise ConfigError(f"stream {name!r}: tolerance must be a number >= 0 seconds, got {cfg.get('tolerance')!r}")
        duplicates = cfg.get("duplicates", "error")
        if duplicates not in DUPLICATE_POLICIES:
            raise ConfigError(f"stream {name!r}: duplicates={duplicates!r} not in {DUPLICATE_POLICIES}")
        return _StreamBuffer(name, method, float(tolerance), cfg.get("quat_slices", ()), duplicates,
                             cfg.get("values"))

    # ---- input ----

    def push(self, name: str, t_chunk, values_chunk=None) -> int:
        """Add samples of one stream (any order within the reorder window). Returns how many were kept."""
        if self._finished:
            raise DataError(f"stream {name!r}: push after finish()")
        buf = self._buffers.get(name)
        if buf is None:
            raise DataError(f"push to unknown stream {name!r}; declared: {sorted(self._buffers)}")
        t = as_stamps(t_chunk, name)
        if t.size == 0:
            return 0
        values = self._check_values(buf, t, values_chunk)
        # One pass over the steps tells whether the chunk is in order (NaN makes it compare False);
        # for an ordered chunk the ends are its oldest and newest stamps and the only ones to check.
        smallest_step = float((t[1:] - t[:-1]).min()) if t.size > 1 else math.inf
        if smallest_step >= 0.0:
            oldest, newest = float(t[0]), float(t[-1])
        else:
            oldest, newest = float(t.min()), float(t.max())  # NaN propagates into both
        if not (math.isfinite(oldest) and math.isfinite(newest)):
            bad = int(np.flatnonzero(~np.isfinite(t))[0])
            raise DataError(f"stream {name!r}: non-finite stamp at chunk index {bad} ({t[bad]})")
        buf.received += t.size
        watermark = buf.newest - self.reorder_window_s
        if oldest < watermark:
            late = t < watermark
            if self.late == "error":
                first = float(t[np.flatnonzero(late)[0]])
                raise DataError(f"stream {name!r}: {int(late.sum())} sample(s) arrived later than the "
                                f"reorder window allows (stamp {first!r} < watermark {watermark!r})")
            buf.late_dropped += int(late.sum())
            t = t[~late]
            values = None if values is None else values[~late]
            if t.size == 0:
                return 0
            oldest = float(t.min())
            smallest_step = float((t[1:] - t[:-1]).min()) if t.size > 1 else math.inf
        if self.t0 is None:
            self.t0 = oldest
        kept = self._insert(buf, t, values, smallest_step)
        buf.newest = max(buf.newest, newest)
        self._newest = max(self._newest, newest)
        return kept

    def _check_values(self, buf: _StreamBuffer, t: np.ndarray, values_chunk) -> Optional[np.ndarray]:
        if buf.has_values is None:
            buf.has_values = values_chunk is not None
        if values_chunk is None:
            if buf.has_values:
                raise DataError(f"stream {buf.name!r}: values missing (this stream carries values)")
            return None
        if not buf.has_values:
            raise DataError(f"stream {buf.name!r}: values given to a stream declared without values")
        values = np.asarray(values_chunk)
        if values.ndim == 0 or values.shape[0] != t.size:
            got = "a scalar" if values.ndim == 0 else f"{values.shape[0]} rows of values"
            raise DataError(f"stream {buf.name!r}: {t.size} stamps but {got}")
        if buf.values is None:
            buf.init_values(values)
        elif values.shape[1:] != buf.values.shape[1:]:
            raise DataError(f"stream {buf.name!r}: value rows of shape {values.shape[1:]}, "
                            f"earlier ones were {buf.values.shape[1:]}")
        return values

    def _insert(self, buf: _StreamBuffer, t: np.ndarray, values: Optional[np.ndarray], smallest_step: float) -> int:
        last = buf.t[buf.stop - 1] if buf.size else -math.inf
        in_order = smallest_step >= 0.0
        strictly = smallest_step > 0.0
        if in_order and t[0] >= last:
            merged_t, merged_v, fresh = t, values, None
            repeats = (t[0] == last) or not strictly
            if not repeats or buf.duplicates == "keep":
                buf.append(t, values)
                return t.size
            merged_t = np.concatenate((buf.stamps(), t))
            merged_v = None if values is None else np.concatenate((buf.rows(), values))
            fresh = np.arange(buf.size, merged_t.size)
        else:
            # Out of order: merge with what is buffered; the stable sort keeps arrival order among equals.
            both_t = np.concatenate((buf.stamps(), t))
            order = np.argsort(both_t, kind="stable")
            merged_t = both_t[order]
            merged_v = None if values is None else np.concatenate((buf.rows(), values))[order]
            fresh = np.flatnonzero(order >= buf.size)
        repeat = np.zeros(merged_t.size, dtype=bool)
        repeat[1:] = merged_t[1:] == merged_t[:-1]
        if repeat.any() and buf.duplicates != "keep":
            if buf.duplicates == "error":
                at = int(np.flatnonzero(repeat)[0])
                raise DataError(f"stream {buf.name!r}: duplicated stamp {float(merged_t[at])!r}; declare the "
                                f"stream with duplicates='keep' or 'drop' to accept repeats")
            # The first copy to arrive sorts first; later copies are the ones dropped.
            buf.duplicates_dropped += int(repeat.sum())
            merged_t = merged_t[~repeat]
            merged_v = None if merged_v is None else merged_v[~repeat]
            kept = t.size - int(repeat[fresh].sum())
        else:
            kept = t.size
        buf.replace(merged_t, merged_v)
        return kept

    # ---- output ----

    def _final_rows(self, buf: _StreamBuffer) -> int:
        """How many grid rows (from row 0) are exactly final for this stream."""
        if buf.size == 0:
            return 0
        watermark = buf.newest - self.reorder_window_s
        if buf.method == "backward":
            return grid_rows_before(self.t0, self.rate_hz, watermark)
        stamps = buf.stamps()
        below = int(stamps.searchsorted(watermark, side="left"))
        if below == 0:
            return 0
        return grid_rows_before(self.t0, self.rate_hz, float(stamps[below - 1]), inclusive=True)

    def _expired_rows(self, buf: _StreamBuffer) -> int:
        wait = self.max_latency_s + min(buf.tolerance, self.max_latency_s)
        return grid_rows_before(self.t0, self.rate_hz, self._newest - wait)

    def pop_ready(self) -> dict:
        """Rows that no future sample can change (or that waited too long), in a dict:
        {"t": (R,) stamps, <stream>: {"index", "error", "valid", "values"}}; R may be 0."""
        if self._finished or self.t0 is None:
            return self._emit(self._next_row, self._next_row, {})
        ready = math.inf
        exact = {}
        for name, buf in self._buffers.items():
            exact[name] = self._final_rows(buf)
            ready = min(ready, max(exact[name], self._expired_rows(buf)))
        return self._emit(self._next_row, int(ready), exact)

    def finish(self) -> dict:
        """No more samples: emit every remaining row up to the newest stamp seen."""
        if self._finished or self.t0 is None:
            self._finished = True
            return self._emit(self._next_row, self._next_row, {})
        last = grid_rows_before(self.t0, self.rate_hz, self._newest, inclusive=True)
        out = self._emit(self._next_row, last, {})
        self._finished = True
        return out

    def _emit(self, k_start: int, k_stop: int, exact: Dict[str, int]) -> dict:
        k_stop = max(k_stop, k_start)
        rows = grid_stamps(self.t0, self.rate_hz, k_start, k_stop) if self.t0 is not None else np.empty(0)
        out = {"t": rows}
        for name, buf in self._buffers.items():
            out[name] = self._align_rows(buf, rows)
            if name in exact:
                buf.expired_rows += max(0, k_stop - max(exact[name], k_start))
        if rows.size:
            self._next_row = k_stop
            self.rows_emitted += rows.size
            self._emits_since_trim += 1
            if self._emits_since_trim >= _TRIM_EVERY:
                self._trim(grid_row(self.t0, self.rate_hz, k_stop))
                self._emits_since_trim = 0
        return out

    def _align_rows(self, buf: _StreamBuffer, rows: np.ndarray) -> dict:
        n = rows.size
        if buf.size == 0 or n == 0:
            values = None
            if buf.values is not None:
                shape = (n,) + buf.values.shape[1:]
                interpolated = buf.method in ("linear", "slerp")
                if interpolated or buf.values.dtype.kind in "fc":
                    values = np.full(shape, np.nan, dtype=np.float64 if interpolated else buf.values.dtype)
                else:
                    values = np.zeros(shape, dtype=buf.values.dtype)
            return {"index": np.full(n, -1, dtype=np.int64), "error": np.full(n, np.nan),
                    "valid": np.zeros(n, dtype=bool), "values": values}
        res = align_sorted(rows, buf.stamps(), buf.rows(), buf.method, buf.tolerance, buf.name,
                           buf.quat_slices, self.check_finite)
        index = res.index
        if buf.offset:
            index = np.where(index >= 0, index + buf.offset, -1)
        return {"index": index, "error": res.error, "valid": res.valid, "values": res.values}

    def _trim(self, t_next: float) -> None:
        """Forget samples no later row can use: everything before the next row's backward neighbour.

        Never past the stream's watermark, so a sample that may still arrive always sorts after
        the forgotten ones and indices stay those of the offline alignment.
        """
        for buf in self._buffers.values():
            stamps = buf.stamps()
            if stamps.size == 0:
                continue
            before = int(stamps.searchsorted(t_next, side="right")) - 1
            if before <= 0:
                continue
            cut = int(stamps.searchsorted(stamps[before], side="left"))  # first copy of a repeat
            cut = min(cut, int(stamps.searchsorted(buf.newest - self.reorder_window_s, side="left")))
            if cut > 0:
                buf.trim(cut)

    def stats(self) -> dict:
        """Counters per stream (received, late/duplicate drops, expired rows, buffered) and rows emitted."""
        return {
            "rows_emitted": self.rows_emitted,
            "t0": self.t0,
            "newest": None if math.isinf(self._newest) else self._newest,
            "streams": {
                name: {
                    "received": buf.received,
                    "late_dropped": buf.late_dropped,
                    "duplicates_dropped": buf.duplicates_dropped,
                    "expired_rows": buf.expired_rows,
                    "buffered": buf.size,
                }
                for name, buf in self._buffers.items()
            },
        }
