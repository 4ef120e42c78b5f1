"""Values between two samples: linear for vectors, spherical (slerp) for wxyz quaternions.

Works on already-chosen bracket rows (lo, hi) and weights w in [0, 1], all arrays, no per-row Python.
"""
from __future__ import annotations

import functools
from typing import Sequence, Tuple

import numpy as np

from collector.errors import ConfigError, DataError

# Below this angle between two quaternions slerp's sin ratios are 1 - w and w to double precision
# (the next term is O(theta^2) ~ 1e-16), and the exact formula would divide by sin(theta) ~ 0.
_SMALL_ANGLE = 1e-8


def normalize_quat_slices(quat_slices, last_dim: int, name: str) -> Tuple[slice, ...]:
    """Quaternion column slices of the last axis; default: the whole last axis when it has size 4."""
    if quat_slices is None or len(quat_slices) == 0:
        if last_dim != 4:
            raise ConfigError(
                f"stream {name!r}: slerp needs quat_slices naming the wxyz columns of its last axis "
                f"(size {last_dim}), e.g. quat_slices=[slice(3, 7)] for a position+quaternion pose")
        return (slice(0, 4),)
    out = []
    for item in quat_slices:
        sl = item if isinstance(item, slice) else slice(*item)
        start, stop, step = sl.indices(last_dim)
        if step != 1 or stop - start != 4:
            raise ConfigError(f"stream {name!r}: quaternion slice {item!r} must cover exactly 4 adjacent "
                              f"columns of the last axis (size {last_dim})")
        out.append(slice(start, stop))
    spans = sorted((s.start, s.stop) for s in out)
    for (_, stop), (start, _) in zip(spans, spans[1:]):
        if start < stop:
            raise ConfigError(f"stream {name!r}: quaternion slices {quat_slices!r} overlap")
    return tuple(out)


def _broadcast_weight(w: np.ndarray, ndim: int) -> np.ndarray:
    return w.reshape(w.shape + (1,) * (ndim - 1))


def lerp(v_lo: np.ndarray, v_hi: np.ndarray, w: np.ndarray) -> np.ndarray:
    """v_lo + (v_hi - v_lo) * w, row-wise; exact at w == 0 and on linear signals up to rounding."""
    return v_lo + (v_hi - v_lo) * _broadcast_weight(w, v_lo.ndim)


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=-1)


def slerp(q_lo: np.ndarray, q_hi: np.ndarray, w: np.ndarray, name: str = "stream") -> np.ndarray:
    """Shortest-path spherical interpolation of wxyz quaternions (..., 4), unit-norm result.

    Inputs are normalised first (recorded quaternions drift off unit length); q and -q are the same
    rotation, so the later one is flipped onto the earlier one's hemisphere before interpolating.
    Written with few numpy calls: the online aligner runs it on a handful of rows at a time.
    """
    len_lo = np.sqrt(_row_dot(q_lo, q_lo))
    len_hi = np.sqrt(_row_dot(q_hi, q_hi))
    if np.count_nonzero(len_lo > 1e-12) + np.count_nonzero(len_hi > 1e-12) != 2 * len_lo.size:
        raise DataError(f"stream {name!r}: a quaternion to interpolate has zero or non-finite length")
    cos_theta = _row_dot(q_lo, q_hi) / (len_lo * len_hi)
    # arccos is accurate enough here: where it is not (theta ~ 1e-8) the small-angle branch takes over.
    theta = np.arccos(np.minimum(np.abs(cos_theta), 1.0))
    wb = w.reshape(w.shape + (1,) * (theta.ndim - 1)) if theta.ndim > 1 else w
    sin_theta = np.sin(theta)
    small = theta < _SMALL_ANGLE
    if np.count_nonzero(small):
        sin_theta = np.where(small, 1.0, sin_theta)
        c_lo = np.where(small, 1.0 - wb, np.sin((1.0 - wb) * theta) / sin_theta)
        c_hi = np.where(small, wb, np.sin(wb * theta) / sin_theta)
    else:
        c_lo = np.sin((1.0 - wb) * theta) / sin_theta
        c_hi = np.sin(wb * theta) / sin_theta
    # Fold normalisation and the hemisphere flip into the two coefficients.
    c_lo = c_lo / len_lo
    c_hi = np.copysign(c_hi, cos_theta) / len_hi
    out = c_lo[..., None] * q_lo + c_hi[..., None] * q_hi
    return out / np.sqrt(_row_dot(out, out))[..., None]


@functools.lru_cache(maxsize=64)
def _quat_columns(spans: Tuple[Tuple[int, int], ...]) -> np.ndarray:
    cols = np.concatenate([np.arange(start, stop) for start, stop in spans])
    cols.flags.writeable = False
    return cols


def interpolate_rows(v_lo: np.ndarray, v_hi: np.ndarray, w: np.ndarray, method: str,
                     quat_slices: Sequence[slice] = (), name: str = "stream") -> np.ndarray:
    """Interpolated rows in float64: linear everywhere, slerp on the quaternion column slices."""
    v_lo = np.asarray(v_lo, dtype=np.float64)
    v_hi = np.asarray(v_hi, dtype=np.float64)
    out = lerp(v_lo, v_hi, w)
    if method == "slerp" and quat_slices:
        # Every quaternion of a row in one call, as (..., S, 4): fewer numpy calls per online pop.
        cols = _quat_columns(tuple((sl.start, sl.stop) for sl in quat_slices))
        shape = v_lo.shape[:-1] + (len(quat_slices), 4)
        q = slerp(v_lo[..., cols].reshape(shape), v_hi[..., cols].reshape(shape), w, name)
        out[..., cols] = q.reshape(shape[:-2] + (cols.size,))
    return out
