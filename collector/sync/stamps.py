"""Stamp checks and explicit repairs: every problem is named (stream, position, stamp), never hidden.

The alignment core assumes each stream's stamps are finite and non-decreasing. Recorded data is not
always so: a driver republishes a frame (duplicate stamp), a transport reorders packets (a stamp goes
backwards), a clock glitch produces NaN. `check_stamps` raises a DataError that says exactly what is
wrong; `repair_stamps` fixes it under a policy the caller chose and returns a report of what it did.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from collector.errors import DataError

REPAIR_POLICIES = ("error", "drop", "sort")
DUPLICATE_POLICIES = ("error", "keep", "drop")


def as_stamps(t, name: str, what: str = "stamps") -> np.ndarray:
    """`t` as a 1-D float64 array (no copy when it already is one), or a DataError naming the stream."""
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"stream {name!r}: {what} are not numbers ({exc})") from None
    if arr.ndim != 1:
        raise DataError(f"stream {name!r}: {what} must be a 1-D array, got shape {arr.shape}")
    return arr


def _first_nonfinite(t: np.ndarray) -> str:
    bad = np.flatnonzero(~np.isfinite(t))
    return f"{bad.size} non-finite stamp(s), first at index {bad[0]} ({float(t[bad[0]])})"


def _first_decrease(t: np.ndarray) -> str:
    back = np.flatnonzero(t[1:] < t[:-1])
    i = int(back[0]) + 1
    return (f"{back.size} stamp(s) go backwards, first at index {i} "
            f"({float(t[i])!r} after {float(t[i - 1])!r}); repair with repair_stamps(policy='sort' or 'drop')")


def check_stamps(t, name: str, allow_empty: bool = False, what: str = "stamps") -> Tuple[np.ndarray, bool]:
    """Validate one stream's stamps; return them as float64 and whether any stamp repeats.

    One pass in the common case: an increasing array holds no NaN (every comparison with NaN is
    False), so finiteness then only needs checking at both ends. The slower diagnosis runs only when
    something is wrong, to name the first offending sample.
    """
    arr = as_stamps(t, name, what)
    n = arr.size
    if n == 0:
        if allow_empty:
            return arr, False
        raise DataError(f"stream {name!r}: no {what} (empty stream)")
    if n == 1:
        if not np.isfinite(arr[0]):
            raise DataError(f"stream {name!r}: {_first_nonfinite(arr)}")
        return arr, False
    ends_finite = np.isfinite(arr[0]) and np.isfinite(arr[-1])
    # The common case, strictly increasing, settles sortedness, repeats and NaN in one pass.
    if ends_finite and np.count_nonzero(arr[1:] > arr[:-1]) == n - 1:
        return arr, False
    if not (ends_finite and np.count_nonzero(arr[1:] >= arr[:-1]) == n - 1):
        if not np.isfinite(arr).all():
            raise DataError(f"stream {name!r}: {_first_nonfinite(arr)}")
        raise DataError(f"stream {name!r}: {what} are not sorted: {_first_decrease(arr)}")
    return arr, True  # sorted, with repeated stamps


def _first_duplicate(t: np.ndarray) -> str:
    dup = np.flatnonzero(t[1:] == t[:-1]) + 1
    return f"{dup.size} duplicated stamp(s), first at index {dup[0]} ({float(t[dup[0]])!r})"


def duplicate_message(t: np.ndarray, name: str) -> str:
    return (f"stream {name!r}: {_first_duplicate(t)}; pass duplicates='keep' (as-of semantics) "
            f"or 'drop' (keep the first), or repair_stamps()")


@dataclass
class StampRepair:
    """What `repair_stamps` did to one stream. `keep` indexes the input: values[keep] matches t_fixed."""

    name: str
    policy: str
    n_in: int
    n_out: int
    n_duplicates: int
    n_non_monotonic: int
    reordered: bool
    first_problem_index: Optional[int] = None
    keep: np.ndarray = field(default=None, repr=False)

    @property
    def n_dropped(self) -> int:
        return self.n_in - self.n_out

    @property
    def changed(self) -> bool:
        return self.n_dropped > 0 or self.reordered

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "policy": self.policy,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "n_dropped": self.n_dropped,
            "n_duplicates": self.n_duplicates,
            "n_non_monotonic": self.n_non_monotonic,
            "reordered": self.reordered,
            "first_problem_index": self.first_problem_index,
        }


def repair_stamps(t, policy: str = "error", name: str = "stream") -> Tuple[np.ndarray, StampRepair]:
    """Make stamps strictly increasing under an explicit policy; report what changed.

    policy:
      "error": raise DataError if any stamp repeats or goes backwards (the check, with a precise message).
      "drop":  keep a sample only if its stamp is later than every sample before it (in arrival order);
               right for a stream whose late samples are stale resends. One wild future stamp makes
               everything after it look stale, which the report's counts show.
      "sort":  stable sort by stamp, then drop repeated stamps keeping the first to arrive; right for
               a transport that reorders packets.
    Non-finite stamps are always an error: there is no honest place to put them.
    """
    if policy not in REPAIR_POLICIES:
        raise DataError(f"stream {name!r}: repair policy {policy!r} not in {REPAIR_POLICIES}")
    arr = as_stamps(t, name)
    n = arr.size
    if n and not np.isfinite(arr).all():
        raise DataError(f"stream {name!r}: {_first_nonfinite(arr)}")
    steps = np.diff(arr)
    n_back = int(np.count_nonzero(steps < 0))
    if n_back == 0:
        n_dup = int(np.count_nonzero(steps == 0))
    else:
        # Duplicates are counted on the sorted stamps so a reordered repeat still counts once.
        n_dup = int(np.count_nonzero(np.diff(np.sort(arr)) == 0))
    problems = np.flatnonzero(steps <= 0)
    first = int(problems[0]) + 1 if problems.size else None

    if policy == "error" or first is None:
        if first is not None:
            detail = _first_decrease(arr) if n_back else _first_duplicate(arr)
            raise DataError(f"stream {name!r}: {detail}")
        keep = np.arange(n, dtype=np.int64)
        reordered = False
    elif policy == "drop":
        running_max = np.maximum.accumulate(arr)
        is_new = np.empty(n, dtype=bool)
        is_new[0] = True
        is_new[1:] = arr[1:] > running_max[:-1]
        keep = np.flatnonzero(is_new).astype(np.int64)
        reordered = False
    else:  # sort
        order = np.argsort(arr, kind="stable").astype(np.int64)
        sorted_t = arr[order]
        is_new = np.empty(n, dtype=bool)
        is_new[0] = True
        is_new[1:] = sorted_t[1:] != sorted_t[:-1]
        keep = order[is_new]
        reordered = n_back > 0
    fixed = arr[keep]
    return fixed, StampRepair(name, policy, n, int(keep.size), n_dup, n_back, reordered, first, keep)
