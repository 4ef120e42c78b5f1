"""Stream declarations shared by every producer (teleop loop, ROS 2 nodes) and the recorder.

A producer describes what it will push with `StreamSpec`s; the recorder registers them
before an episode starts and then accepts `sink.push(stream, t, **fields)` calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Protocol, Tuple

import numpy as np

from collector.errors import ConfigError

# How the aligned view fills a reference row from a stream (see collector.sync).
ALIGN_METHODS = ("nearest", "backward", "forward", "linear", "slerp")
# Camera storage: raw uint8 frames, lzf-compressed frames, or JPEG bytes.
CAMERA_CODECS = ("raw", "lzf", "jpeg")


@dataclass(frozen=True)
class FieldSpec:
    shape: Tuple[int, ...]
    dtype: str = "float64"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        np.dtype(self.dtype)  # raises TypeError on an unknown dtype name


@dataclass(frozen=True)
class StreamSpec:
    """One stamped stream: every sample carries its own time on the session clock.

    kind: "camera" streams carry one field `image` (H, W, 3) uint8 and a `codec`;
    other kinds are free-form names used for display and QA ("joints", "command", "pose", "input", "sensor").
    align: per-field alignment method for the aligned view; fields not named use `default_align`.
    """

    name: str
    fields: Dict[str, FieldSpec]
    rate_hz: float
    tolerance_s: Optional[float] = None
    kind: str = "generic"
    codec: str = "raw"
    jpeg_quality: int = 90
    default_align: str = "nearest"
    align: Dict[str, str] = field(default_factory=dict)
    attrs: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or "/" in self.name:
            raise ConfigError(f"stream name {self.name!r} must be non-empty and contain no '/'")
        if not self.fields:
            raise ConfigError(f"stream {self.name!r} declares no fields")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ConfigError(f"stream {self.name!r}: rate_hz must be positive, got {self.rate_hz!r}")
        if self.kind == "camera":
            if set(self.fields) != {"image"}:
                raise ConfigError(f"camera stream {self.name!r} must have exactly one field 'image'")
            if self.codec not in CAMERA_CODECS:
                raise ConfigError(f"camera stream {self.name!r}: codec {self.codec!r} not in {CAMERA_CODECS}")
        for name, method in {**self.align, "<default>": self.default_align}.items():
            if method not in ALIGN_METHODS:
                raise ConfigError(f"stream {self.name!r} field {name!r}: align {method!r} not in {ALIGN_METHODS}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def tolerance(self) -> float:
        """Largest distance to a sample the aligned view accepts: 1.5 periods unless set."""
        return self.tolerance_s if self.tolerance_s is not None else 1.5 * self.period_s

    def method_for(self, field_name: str) -> str:
        return self.align.get(field_name, self.default_align)


def camera_stream(name: str, width: int, height: int, fps: float, codec: str = "jpeg", **kw) -> StreamSpec:
    return StreamSpec(
        name=name,
        fields={"image": FieldSpec((height, width, 3), "uint8")},
        rate_hz=fps,
        kind="camera",
        codec=codec,
        **kw,
    )


class Sink(Protocol):
    """What producers push samples into (the recorder's EpisodeWriter implements it)."""

    def push(self, stream: str, t: float, **fields: np.ndarray) -> bool:
        """Queue one sample; never blocks on disk. Returns False if it was rejected or dropped."""
        ...
