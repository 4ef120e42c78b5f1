"""Checking one pushed sample against its stream declaration before it is queued.

Everything here runs on the producer's thread (often the control loop), so it does only cheap
checks: field names, shape, dtype kind, finite values, and stamps that never go backwards.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

from collector.recorder.streams import StreamSpec

# Short reason keys used as counter names in statistics and in the episode file.
REASONS = ("bad_stamp", "backwards", "fields", "shape", "dtype", "non_finite")


class RejectedSample(Exception):
    """A sample that must not be recorded; `reason` is one of REASONS, the message names stream and field."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SampleChecker:
    """Validates and normalises samples of one stream; remembers the last accepted stamp."""

    def __init__(self, spec: StreamSpec):
        self.spec = spec
        self._dtypes = {name: np.dtype(f.dtype) for name, f in spec.fields.items()}
        self._names = tuple(spec.fields)
        self.last_t = -math.inf

    def check(self, t, fields: Dict[str, object], copy: bool = True) -> Tuple[float, Tuple[np.ndarray, ...]]:
        """Returns (stamp, arrays in declaration order) or raises RejectedSample.

        Does not update last_t: the caller commits the stamp once the sample is really queued,
        so a sample dropped on a full queue does not block a later, older-stamped retry.
        """
        name = self.spec.name
        try:
            stamp = float(t)
        except (TypeError, ValueError):
            raise RejectedSample("bad_stamp", f"stream {name!r}: stamp {t!r} is not a number") from None
        if not math.isfinite(stamp):
            raise RejectedSample("bad_stamp", f"stream {name!r}: stamp {stamp!r} is not finite")
        if stamp < self.last_t:
            raise RejectedSample("backwards", f"stream {name!r}: stamp {stamp:.6f} s went backwards "
                                              f"(previous {self.last_t:.6f} s)")
        if len(fields) != len(self._names) or any(k not in self._dtypes for k in fields):
            raise RejectedSample("fields", f"stream {name!r}: got fields {sorted(fields)}, "
                                           f"expected {sorted(self._names)}")
        arrays = []
        for key in self._names:
            arrays.append(self._check_field(key, fields[key], copy))
        return stamp, tuple(arrays)

    def _check_field(self, key: str, value, copy: bool) -> np.ndarray:
        spec = self.spec.fields[key]
        want = self._dtypes[key]
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        if arr.shape != spec.shape:
            raise RejectedSample("shape", f"stream {self.spec.name!r} field {key!r}: shape {arr.shape}, "
                                          f"expected {spec.shape}")
        if not _compatible(arr.dtype, want):
            raise RejectedSample("dtype", f"stream {self.spec.name!r} field {key!r}: dtype {arr.dtype}, "
                                          f"expected {want}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RejectedSample("non_finite", f"stream {self.spec.name!r} field {key!r}: contains NaN or inf")
        if arr.dtype == want:
            # Copy so a producer may reuse its buffer as soon as push() returns.
            return np.array(arr, copy=True, order="C") if copy else np.ascontiguousarray(arr)
        return arr.astype(want, order="C")


def _compatible(have: np.dtype, want: np.dtype) -> bool:
    """Same kind of number: ints and floats into float fields, same-signedness ints that fit, bools.

    Images must be exactly uint8: a float image in 0..1 is a producer bug, not something to round.
    """
    if have == want:
        return True
    if want.kind == "f":
        return have.kind in "fiub"
    if want.kind in "iu":
        return have.kind in "iub" and np.can_cast(have, want, "safe")
    if want.kind == "b":
        return have.kind == "b"
    return False
