"""Offline alignment of one recorded stream onto reference stamps (a camera's, or a fixed-rate grid).

Every reference row gets: the source sample it came from (`index`), how far off in time that sample
is (`error`, signed t[index] - ref), whether that is within the stream's tolerance (`valid`), and,
when values are given, the aligned value (taken, or interpolated linearly / spherically). Rows out of
tolerance are marked invalid, never silently filled: their index is -1, their error and float values
NaN (integer values, e.g. image frames, are zero there: rely on `valid`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from collector.errors import ConfigError, DataError
from collector.sync.interpolate import interpolate_rows, normalize_quat_slices
from collector.sync.lookup import all_true, lookup
from collector.sync.stamps import DUPLICATE_POLICIES, StampRepair, check_stamps, duplicate_message

METHODS = ("nearest", "backward", "forward", "linear", "slerp")
# A grid longer than this is a unit mistake (ms for s, or a rate in Hz given as a period).
MAX_GRID_ROWS = 1_000_000_000


@dataclass
class AlignResult:
    """One stream aligned onto T reference rows."""

    name: str
    method: str
    tolerance: float
    index: np.ndarray  # (T,) int64 chosen source sample (the nearer bracket when interpolating), -1 if none
    error: np.ndarray  # (T,) float64 t[index] - ref in seconds, NaN where index == -1
    valid: np.ndarray  # (T,) bool: within tolerance (interpolation: both brackets within tolerance) == index >= 0
    values: Optional[np.ndarray] = None  # (T, ...) aligned values; invalid rows: NaN (float) or 0 (integer)
    repair: Optional[StampRepair] = None  # set when duplicates="drop" removed repeated stamps

    def __len__(self) -> int:
        return int(self.index.size)

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(self.valid))

    def summary(self) -> dict:
        """JSON-able quality figures: how many rows are valid, how far off the valid ones are."""
        abs_err = np.abs(self.error[self.valid])
        return {
            "name": self.name,
            "method": self.method,
            "tolerance_s": None if math.isinf(self.tolerance) else self.tolerance,
            "rows": len(self),
            "valid": self.n_valid,
            "valid_fraction": self.n_valid / len(self) if len(self) else None,
            "abs_error_max_s": float(abs_err.max()) if abs_err.size else None,
            "abs_error_p99_s": float(np.percentile(abs_err, 99)) if abs_err.size else None,
            "repair": self.repair.to_dict() if self.repair is not None else None,
        }


# ---- reference grids ----

def _check_grid_args(t_start: float, rate_hz: float) -> None:
    try:
        rate_ok = math.isfinite(float(rate_hz)) and float(rate_hz) > 0
    except (TypeError, ValueError):
        rate_ok = False
    if not rate_ok:
        raise ConfigError(f"grid rate must be a positive number of Hz, got {rate_hz!r}")
    if not math.isfinite(float(t_start)):
        raise DataError(f"grid start must be a finite time, got {t_start!r}")


def grid_stamps(t_start: float, rate_hz: float, k_start: int, k_stop: int) -> np.ndarray:
    """Rows k_start..k_stop-1 of the grid t_start + k / rate_hz (the one formula every grid row uses)."""
    return float(t_start) + np.arange(k_start, k_stop, dtype=np.float64) / float(rate_hz)


def grid_row(t_start: float, rate_hz: float, k: int) -> float:
    # The same two IEEE operations as grid_stamps, in Python floats: bit-identical, and cheap per call.
    return float(t_start) + float(k) / float(rate_hz)


def grid_rows_before(t_start: float, rate_hz: float, x: float, inclusive: bool = False) -> int:
    """How many grid rows (k >= 0) have a stamp < x (or <= x when inclusive), by the exact row formula."""
    if not math.isfinite(x):
        if x < 0:
            return 0
        raise DataError(f"grid end must be finite, got {x!r}")
    t_start, rate_hz = float(t_start), float(rate_hz)
    if x < t_start or (x == t_start and not inclusive):
        return 0
    k = max(int(math.floor((x - t_start) * rate_hz)) - 1, 0)  # an estimate a row or two low
    if k + 2 > MAX_GRID_ROWS:
        raise ConfigError(f"grid from {t_start} to {x} at {rate_hz} Hz would have over {MAX_GRID_ROWS} rows")
    # Rows are compared exactly as grid_row computes them (t_start + k / rate_hz), inlined: the
    # online aligner calls this for every stream on every pop.
    if inclusive:
        while k > 0 and not t_start + (k - 1) / rate_hz <= x:
            k -= 1
        while t_start + k / rate_hz <= x:
            k += 1
    else:
        while k > 0 and not t_start + (k - 1) / rate_hz < x:
            k -= 1
        while t_start + k / rate_hz < x:
            k += 1
    return k


def fixed_grid(t_start: float, t_end: float, rate_hz: float) -> np.ndarray:
    """Stamps t_start + k / rate_hz for every k >= 0 up to t_end (both ends inclusive when on the grid)."""
    _check_grid_args(t_start, rate_hz)
    if not math.isfinite(t_end):
        raise DataError(f"grid end must be a finite time, got {t_end!r}")
    if t_end < t_start:
        raise DataError(f"grid end {t_end!r} is before its start {t_start!r}")
    n = grid_rows_before(t_start, rate_hz, t_end, inclusive=True)
    return grid_stamps(t_start, rate_hz, 0, n)


# ---- one stream onto reference stamps ----

def _check_method(method: str, tolerance: float, name: str) -> float:
    if method not in METHODS:
        raise ConfigError(f"stream {name!r}: align method {method!r} not in {METHODS}")
    try:
        tol = float(tolerance)
    except (TypeError, ValueError):
        raise ConfigError(f"stream {name!r}: tolerance must be a number of seconds, got {tolerance!r}") from None
    if not tol >= 0.0:  # also rejects NaN
        raise ConfigError(f"stream {name!r}: tolerance must be >= 0 seconds, got {tolerance!r}")
    return tol


def align_stream(ref, t, values=None, method: str = "nearest", tolerance: float = np.inf,
                 name: str = "stream", quat_slices: Sequence = (), duplicates: str = "error",
                 check_finite: bool = True) -> AlignResult:
    """Align one stream (stamps `t`, optional `values` with len(t) rows) onto reference stamps `ref`.

    method: nearest | backward | forward (take a sample) or linear | slerp (interpolate between the
      two samples bracketing each row; slerp treats the `quat_slices` columns of the last axis as wxyz
      quaternions, default the whole last axis of size 4, and interpolates the rest linearly).
    tolerance: largest |t[index] - ref| (s) a valid row may have; for interpolation, both brackets.
    duplicates: what to do with repeated stamps in `t`: "error" (DataError), "keep" (as-of semantics:
      backward takes the last copy, forward the first) or "drop" (keep the first copy; reported in
      `result.repair`). Indices always refer to the rows of `t` as given.
    check_finite: raise DataError when a non-finite value lands in a valid row (instead of passing NaN
      off as data).
    """
    tol = _check_method(method, tolerance, name)
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"stream {name!r}: duplicates={duplicates!r} not in {DUPLICATE_POLICIES}")
    ref, _ = check_stamps(ref, name, allow_empty=True, what="reference stamps")
    t, has_duplicates = check_stamps(t, name)
    if values is not None:
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[0] != t.size:
            got = "a scalar" if values.ndim == 0 else f"{values.shape[0]} rows of values"
            raise DataError(f"stream {name!r}: {t.size} stamps but {got}")
    quats = ()
    if method == "slerp" and values is not None:
        if values.ndim < 2:
            raise DataError(f"stream {name!r}: slerp needs (N, ..., D) values with quaternion columns, "
                            f"got shape {values.shape}")
        quats = normalize_quat_slices(quat_slices, values.shape[-1], name)
    keep = None
    repair = None
    if has_duplicates and duplicates == "error":
        raise DataError(duplicate_message(t, name))
    if has_duplicates and duplicates == "drop":
        first_copy = np.empty(t.size, dtype=bool)
        first_copy[0] = True
        np.not_equal(t[1:], t[:-1], out=first_copy[1:])
        keep = np.flatnonzero(first_copy)
        n_dup = t.size - keep.size
        repair = StampRepair(name, "drop", t.size, keep.size, n_dup, 0, False,
                             int(np.flatnonzero(~first_copy)[0]), keep)
        t = t[keep]
    result = align_sorted(ref, t, values, method, tol, name, quats, check_finite, keep)
    result.repair = repair
    return result


def align_sorted(ref: np.ndarray, t: np.ndarray, values: Optional[np.ndarray], method: str, tol: float,
                 name: str, quat_slices: Sequence[slice] = (), check_finite: bool = True,
                 keep: Optional[np.ndarray] = None) -> AlignResult:
    """The alignment itself, for callers that already validated everything (the online aligner).

    `t` sorted and non-empty, `ref` sorted; `keep` (optional) maps rows of `t` to rows of `values`.
    """
    found = lookup(t, ref, "linear" if method in ("linear", "slerp") else method, tol)
    index = found.index
    aligned = None
    if values is not None:
        if method in ("linear", "slerp"):
            aligned = _interpolated(ref, t, values, found, method, name, quat_slices, keep)
        else:
            aligned = _taken(values, index, found.valid, keep)
        if check_finite and aligned.dtype.kind == "f":
            _require_finite(aligned, found.valid, index, keep, name)
    if keep is not None:
        index = np.where(index >= 0, keep.take(index, mode="clip"), -1)
    return AlignResult(name, method, tol, index, found.error, found.valid, aligned)


def _source_rows(rows: np.ndarray, keep: Optional[np.ndarray]) -> np.ndarray:
    return rows if keep is None else keep[rows]


def _taken(values: np.ndarray, index: np.ndarray, valid: np.ndarray, keep) -> np.ndarray:
    # Unmatched rows take row 0 and are then blanked: NaN for floats, zero for integers and bytes.
    rows = _source_rows(np.maximum(index, 0), keep)
    out = values.take(rows, axis=0)
    if not all_true(valid):
        out[~valid] = np.nan if out.dtype.kind in "fc" else 0
    return out


def _interpolated(ref, t, values, found, method, name, quat_slices, keep) -> np.ndarray:
    if values.dtype.kind not in "iuf":
        raise DataError(f"stream {name!r}: {method} interpolation needs numeric values, got {values.dtype}")
    all_valid = all_true(found.valid)
    # The common case (every row valid) skips the row selection: fewer numpy calls per online pop.
    rows = slice(None) if all_valid else np.flatnonzero(found.valid)
    q = ref[rows]
    if q.size == 0:
        return np.full((ref.size,) + values.shape[1:], np.nan, dtype=np.float64)
    lo = found.count_le[rows] - 1  # valid rows always have a sample at or before them
    t_lo = t[lo]
    exact = t_lo == q
    hi = lo + ~exact  # an exact hit is its own upper bracket
    span = t[hi] - t_lo
    span[exact] = 1.0
    w = (q - t_lo) / span  # 0 on exact hits
    v_lo = values.take(_source_rows(lo, keep), axis=0)
    v_hi = values.take(_source_rows(hi, keep), axis=0)
    inside = interpolate_rows(v_lo, v_hi, w, method, quat_slices, name)
    if all_valid:
        return inside
    out = np.full((ref.size,) + values.shape[1:], np.nan, dtype=np.float64)
    out[rows] = inside
    return out


def _require_finite(aligned: np.ndarray, valid: np.ndarray, index: np.ndarray, keep, name: str) -> None:
    if aligned.size == 0 or all_true(np.isfinite(aligned if all_true(valid) else aligned[valid])):
        return
    flat = aligned.reshape(aligned.shape[0], -1)
    bad_rows = valid & ~np.isfinite(flat).all(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        sample = int(_source_rows(np.array([index[row]]), keep)[0])
        raise DataError(f"stream {name!r}: non-finite value in {int(bad_rows.sum())} aligned row(s), "
                        f"first at row {row} (source sample {sample} or its neighbour); pass "
                        f"check_finite=False to let NaN through")
