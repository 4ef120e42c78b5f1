"""Stream declarations shared by every producer (teleop loop, ROS 2 nodes) and the recorder.

A producer describes what it will push with `StreamSpec`s; the recorder registers them
before an episode starts and then accepts `sink.push(stream, t, **fields)` calls.
Specs round-trip through `to_dict`/`from_dict` so an episode file carries its own declarations.
"""
from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from collector.errors import ConfigError
from collector.json_values import json_default

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
        if any(s < 0 for s in self.shape):
            raise ConfigError(f"field shape {self.shape} has a negative dimension")
        try:
            canonical = np.dtype(self.dtype)
        except TypeError as exc:
            raise ConfigError(f"unknown dtype {self.dtype!r}") from exc
        if canonical.kind not in "biuf":
            raise ConfigError(f"dtype {self.dtype!r}: only bool, integer and float fields can be recorded")
        object.__setattr__(self, "dtype", canonical.name)

    @property
    def nbytes(self) -> int:
        """Bytes one sample of this field occupies uncompressed."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


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
            image = self.fields["image"]
            if len(image.shape) != 3 or image.shape[2] != 3 or image.dtype != "uint8":
                raise ConfigError(f"camera stream {self.name!r}: image must be (H, W, 3) uint8, "
                                  f"got {image.shape} {image.dtype}")
            if not 1 <= int(self.jpeg_quality) <= 100:
                raise ConfigError(f"camera stream {self.name!r}: jpeg_quality {self.jpeg_quality} not in 1..100")
        if self.tolerance_s is not None and not (self.tolerance_s > 0 and math.isfinite(self.tolerance_s)):
            raise ConfigError(f"stream {self.name!r}: tolerance_s must be positive, got {self.tolerance_s!r}")
        for name, method in {**self.align, "<default>": self.default_align}.items():
            if method not in ALIGN_METHODS:
                raise ConfigError(f"stream {self.name!r} field {name!r}: align {method!r} not in {ALIGN_METHODS}")
        unknown = set(self.align) - set(self.fields)
        if unknown:
            raise ConfigError(f"stream {self.name!r}: align names unknown fields {sorted(unknown)}")

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def tolerance(self) -> float:
        """Largest distance to a sample the aligned view accepts: 1.5 periods unless set."""
        return self.tolerance_s if self.tolerance_s is not None else 1.5 * self.period_s

    def method_for(self, field_name: str) -> str:
        return self.align.get(field_name, self.default_align)

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"

    @property
    def camera_name(self) -> str:
        """Name under /observations/images/: the stream name without its "camera_" prefix."""
        from collector.recorder.vocabulary import camera_of_stream  # the vocabulary builds on this module

        return camera_of_stream(self.name) or self.name

    @property
    def sample_nbytes(self) -> int:
        """Uncompressed bytes of one sample, stamp included (sizes queues and disk-space estimates)."""
        return 8 + sum(f.nbytes for f in self.fields.values())

    def to_dict(self) -> dict:
        """Plain JSON-able description, stored with the stream in every episode file."""
        return {
            "name": self.name,
            "fields": {k: {"shape": list(f.shape), "dtype": f.dtype} for k, f in self.fields.items()},
            "rate_hz": float(self.rate_hz),
            "tolerance_s": None if self.tolerance_s is None else float(self.tolerance_s),
            "kind": self.kind,
            "codec": self.codec,
            "jpeg_quality": int(self.jpeg_quality),
            "default_align": self.default_align,
            "align": dict(self.align),
            "attrs": dict(self.attrs),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=json_default)

    @classmethod
    def from_dict(cls, data: dict) -> "StreamSpec":
        try:
            fields = {k: FieldSpec(tuple(v["shape"]), v["dtype"]) for k, v in data["fields"].items()}
            return cls(
                name=data["name"],
                fields=fields,
                rate_hz=float(data["rate_hz"]),
                tolerance_s=data.get("tolerance_s"),
                kind=data.get("kind", "generic"),
                codec=data.get("codec", "raw"),
                jpeg_quality=int(data.get("jpeg_quality", 90)),
                default_align=data.get("default_align", "nearest"),
                align=dict(data.get("align", {})),
                attrs=dict(data.get("attrs", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"stream description {data!r} is incomplete: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "StreamSpec":
        return cls.from_dict(json.loads(text))


def camera_stream(name: str, width: int, height: int, fps: float, codec: str = "jpeg", **kw) -> StreamSpec:
    return StreamSpec(
        name=name,
        fields={"image": FieldSpec((height, width, 3), "uint8")},
        rate_hz=fps,
        kind="camera",
        codec=codec,
        **kw,
    )


class Sink(ABC):
    """What producers push samples into: the recorder's EpisodeWriter, or a tap in front of it
    (the dashboard's LiveTap, the headset's CameraFeedSink) that passes every sample on."""

    @abstractmethod
    def push(self, stream: str, t: float, **fields: np.ndarray) -> bool:
        """Queue one sample; never blocks on disk. Returns False if it was rejected or dropped."""

    def set_lockstep(self, lockstep: bool) -> None:
        """Told by the producer whether it runs in lockstep (simulated time, no wall-clock deadline).
        A recorder then waits for room in a full queue instead of dropping the sample: a lockstep sim
        outruns the disk on a loaded machine, and waiting costs it nothing. Taps pass it on."""
