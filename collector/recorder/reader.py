"""EpisodeReader: open an episode and read its metadata, raw streams and aligned view lazily.

    with EpisodeReader(path) as r:
        r.metadata["conditions"]["lighting"]
        r.streams                       # {name: StreamSpec}
        t, q = r.stamps("joints"), r.raw("joints", "position")[:]   # raw() is a lazy h5py dataset
        frame = r.images("head")[10]    # decoded (H, W, 3) uint8 whatever the codec
        qpos = r.aligned("qpos")[:]     # /observations/qpos
        r.aligned_images("head")[0]     # the ALOHA view's frame at row 0, decoded
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Union

import h5py
import numpy as np

from collector.errors import DataError
from collector.recorder import schema
from collector.recorder.frames import decode_jpeg
from collector.recorder.raw_store import LAYOUT_JPEG, consistent_length
from collector.recorder.streams import StreamSpec
from collector.recorder.structure import HDF5_ERRORS, check_structure, read_counters
from collector.recorder.vocabulary import camera_stream_name


class FrameSequence:
    """Lazily decoded camera frames: len(), [i] -> (H, W, 3) uint8, [a:b] -> (n, H, W, 3), iteration."""

    def __init__(self, images: h5py.Dataset = None, jpeg: h5py.Dataset = None, offsets=None, sizes=None,
                 count: Optional[int] = None):
        self._images = images  # (N, H, W, 3) pixels, or (T, L) padded JPEG rows when `sizes` is given
        self._jpeg = jpeg  # flat JPEG bytes (raw layout)
        self._offsets = offsets
        self._sizes = sizes
        if count is not None:
            self._count = count
        elif images is not None:
            self._count = int(images.shape[0])
        else:
            self._count = int(len(sizes))

    def __len__(self) -> int:
        return self._count

    @property
    def is_jpeg(self) -> bool:
        return self._sizes is not None

    def encoded(self, i: int) -> bytes:
        """The stored JPEG bytes of frame i (JPEG codecs only)."""
        if not self.is_jpeg:
            raise DataError("frames are stored as pixels, not JPEG")
        i = self._check(i)
        size = int(self._sizes[i])
        if self._jpeg is not None:
            start = int(self._offsets[i])
            return self._jpeg[start:start + size].tobytes()
        return self._images[i, :size].tobytes()

    def _check(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(f"frame {i} out of range (0..{self._count - 1})")
        return i

    def __getitem__(self, key: Union[int, slice]) -> np.ndarray:
        if isinstance(key, slice):
            indices = range(*key.indices(self._count))
            if not self.is_jpeg and key.step in (None, 1):
                return self._images[indices.start:indices.stop]
            frames = [self[i] for i in indices]
            return np.stack(frames) if frames else np.zeros((0,), np.uint8)
        i = self._check(key)
        if self.is_jpeg:
            return decode_jpeg(np.frombuffer(self.encoded(i), dtype=np.uint8))
        return self._images[i]

    def __iter__(self):
        for i in range(self._count):
            yield self[i]


class EpisodeReader:
    """Opening checks the file's structure (collector.recorder.structure): a damaged file is refused
    at once with a DataError naming it. Errors raised inside `with EpisodeReader(...)` that come from
    reading damaged data (h5py) or that do not say which file they are about leave it as a DataError
    naming this file, so no command has to catch them itself."""

    def __init__(self, path):
        self.path = Path(path)
        self._h5 = schema.open_episode(self.path, "r")
        self._counts: Dict[str, int] = {}
        try:
            self._metadata: dict = schema.read_metadata(self._h5)
            self._streams: Dict[str, StreamSpec] = check_structure(self._h5, self.path, self._metadata)
        except BaseException as exc:
            self._h5.close()
            if isinstance(exc, HDF5_ERRORS):
                raise DataError(f"{self.path}: damaged file, HDF5 cannot read its attributes "
                                f"({type(exc).__name__}: {exc})") from exc
            raise

    # -- file ------------------------------------------------------------------------------------
    @property
    def h5(self) -> h5py.File:
        """The open h5py file, for anything this API does not cover."""
        return self._h5

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> "EpisodeReader":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
        if exc is not None:
            named = about_file(self.path, exc)
            if named is not exc:
                raise named from exc

    # -- metadata --------------------------------------------------------------------------------
    @property
    def metadata(self) -> dict:
        """Every root attribute as Python values (conditions, calibration and stats decoded from JSON)."""
        return dict(self._metadata)

    @property
    def status(self) -> str:
        return str(self.metadata.get("status", ""))

    @property
    def is_partial(self) -> bool:
        """True for a file still recording or whose writer died (not finalized, no aligned view)."""
        return self.status == schema.STATUS_RECORDING

    @property
    def conditions(self) -> dict:
        return dict(self.metadata.get("conditions") or {})

    @property
    def recorder_stats(self) -> dict:
        return dict(self.metadata.get("recorder_stats") or {})

    @property
    def counters(self) -> Dict[str, Dict[str, int]]:
        """Per-stream pushed/written/dropped/rejected as of the last flush (all a killed file has)."""
        return read_counters(self._h5)  # checked when the file was opened

    # -- raw streams -----------------------------------------------------------------------------
    @property
    def streams(self) -> Dict[str, StreamSpec]:
        return dict(self._streams)  # read and checked when the file was opened

    def _group(self, stream: str) -> h5py.Group:
        if stream not in self.streams:
            raise DataError(f"{self.path}: no stream {stream!r} (streams: {sorted(self.streams)})")
        return self._h5[schema.RAW_GROUP][stream]

    def count(self, stream: str) -> int:
        """Samples of a stream; in a partial file only the ones every dataset of the stream holds."""
        if stream not in self._counts:
            group = self._group(stream)
            self._counts[stream] = consistent_length(group) if self.is_partial else int(group["t"].shape[0])
        return self._counts[stream]

    def stamps(self, stream: str) -> np.ndarray:
        return self._group(stream)["t"][: self.count(stream)]

    def raw(self, stream: str, field: str) -> h5py.Dataset:
        """A field's raw dataset (lazy: slice it to read). Camera images: use images()."""
        group = self._group(stream)
        spec = self.streams[stream]
        if field not in spec.fields:
            raise DataError(f"stream {stream!r} has no field {field!r} (fields: {sorted(spec.fields)})")
        if spec.is_camera:
            raise DataError(f"stream {stream!r} is a camera: read its frames with images({stream!r})")
        return group[field]

    def _camera_stream(self, camera: str) -> str:
        for candidate in (camera, camera_stream_name(camera)):
            if candidate in self.streams and self.streams[candidate].is_camera:
                return candidate
        cams = [s.camera_name for s in self.streams.values() if s.is_camera]
        raise DataError(f"{self.path}: no camera {camera!r} (cameras: {cams})")

    def images(self, camera: str) -> FrameSequence:
        """The raw frames of a camera ("head" or "camera_head"), decoded lazily."""
        stream = self._camera_stream(camera)
        group = self._group(stream)
        n = self.count(stream)
        if group.attrs.get("layout") == LAYOUT_JPEG:
            return FrameSequence(jpeg=group["jpeg"], offsets=group["jpeg_offset"][:n], sizes=group["jpeg_size"][:n])
        return FrameSequence(images=group["image"], count=n)

    def frame_crc32(self, camera: str) -> np.ndarray:
        stream = self._camera_stream(camera)
        return self._group(stream)["crc32"][: self.count(stream)]

    # -- aligned view ----------------------------------------------------------------------------
    @property
    def has_aligned_view(self) -> bool:
        return schema.TIMESTAMPS in self._h5

    def _require_view(self) -> None:
        if not self.has_aligned_view:
            raise DataError(f"{self.path} has no aligned view (a partial episode: run `collector recover` on it)")

    @property
    def timestamps(self) -> np.ndarray:
        self._require_view()
        return self._h5[schema.TIMESTAMPS][...]

    def aligned(self, name: str) -> h5py.Dataset:
        """An aligned-view dataset, lazily: "qpos", "qvel", "effort", "action", "<stream>/<field>",
        or a full path such as "/observations/qpos"."""
        self._require_view()
        candidates = [name.lstrip("/"), f"{schema.OBSERVATIONS}/{name}"]
        for path in candidates:
            node = self._h5.get(path)
            if isinstance(node, h5py.Dataset):
                return node
        raise DataError(f"{self.path}: aligned view has no {name!r}")

    @property
    def aligned_cameras(self) -> list:
        self._require_view()
        return sorted(self._h5[schema.IMAGES].keys()) if schema.IMAGES in self._h5 else []

    def aligned_images(self, camera: str) -> FrameSequence:
        """The aligned view's frames of a camera, one per row of /timestamps, decoded lazily."""
        self._require_view()
        name = self.streams[self._camera_stream(camera)].camera_name
        images = self._h5.get(f"{schema.IMAGES}/{name}")
        if images is None:
            raise DataError(f"{self.path}: aligned view has no images for camera {name!r}")
        if images.attrs.get("codec") == "jpeg":
            lengths = self._h5[schema.COMPRESS_LEN]
            row = json.loads(lengths.attrs["cameras"]).index(name)
            return FrameSequence(images=images, sizes=lengths[row])
        return FrameSequence(images=images)

    def sync(self, stream: str) -> Dict[str, np.ndarray]:
        """For each aligned row: index of the raw sample used, its stamp error (s), within tolerance."""
        self._require_view()
        group = self._h5.get(f"{schema.SYNC_GROUP}/{stream}")
        if group is None:
            raise DataError(f"{self.path}: stream {stream!r} is not in the aligned view")
        return {key: group[key][...] for key in ("index", "error", "valid")}

    @property
    def synced_streams(self) -> list:
        self._require_view()
        return sorted(self._h5[schema.SYNC_GROUP].keys())


def about_file(path: Path, exc: BaseException) -> BaseException:
    """The error to report for `exc`, raised while reading `path`: a DataError that names the file
    for a DataError that does not, or for an error h5py raised on damaged data; else `exc` itself."""
    if isinstance(exc, DataError):
        return exc if str(path) in str(exc) else DataError(f"{path}: {exc}")
    if isinstance(exc, HDF5_ERRORS) and _raised_by_h5py(exc):
        return DataError(f"{path}: damaged file, HDF5 cannot read part of it ({type(exc).__name__}: {exc})")
    return exc


def _raised_by_h5py(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and f"{os.sep}h5py{os.sep}" in last
