"""The aligned training view: every stream resampled onto one timeline, in ALOHA/ACT layout.

Written once, at finalize (or by recover), from /raw, with the alignment core collector.sync:
  /timestamps (T,) float64                 the reference timeline (session clock)
  /observations/qpos|qvel|effort (T, n)    float32, from stream joints (position/velocity/effort)
  /action (T, n)                           float32, from stream command (position)
  /observations/images/<cam>               (T, H, W, 3) uint8 for raw/lzf cameras, or (T, L) uint8
                                           zero-padded JPEG bytes with /compress_len (n_cams, T) and
                                           root attr compress=True for JPEG cameras (ALOHA's layout)
  /observations/<stream>/<field>           extra streams the writer was asked to align
  /sync/<stream>/{index,error,valid}       which raw sample fed each row and how far off it was
The timeline is a fixed grid (default: the fastest camera's rate, else 50 Hz) or one stream's own
stamps, spanning the time every aligned stream has data. Raw data is read in blocks of rows, so a
long episode is never loaded whole.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import h5py
import numpy as np

from collector.errors import ConfigError
from collector.recorder import schema
from collector.recorder.frames import decode_jpeg, encode_jpeg
from collector.recorder.raw_store import LAYOUT_FRAMES, LAYOUT_JPEG, layout_for
from collector.recorder.streams import StreamSpec

DEFAULT_RATE_HZ = 50.0
# Reference rows per block; the raw window read per block is bounded by _MAX_WINDOW_SAMPLES as well.
_BLOCK_ROWS = 2048
_MAX_WINDOW_SAMPLES = 200_000
_VIEW_NODES = (schema.TIMESTAMPS, schema.OBSERVATIONS, schema.ACTION, schema.COMPRESS_LEN, schema.SYNC_GROUP)


IMAGE_FORMATS = ("auto", "jpeg", "pixels")


@dataclass(frozen=True)
class AlignedViewConfig:
    """rate_hz: fixed-grid timeline; reference: a stream whose stamps are the timeline instead;
    extra_streams: streams besides joints/command/cameras to include under /observations/<stream>/;
    image_format: how the view stores frames: "jpeg" (ALOHA compress=True), "pixels" (T, H, W, 3),
    or "auto" = jpeg when every camera records JPEG, else pixels (cameras in another codec are
    converted at finalize, which costs time: ~1 ms per frame)."""

    rate_hz: Optional[float] = None
    reference: Optional[str] = None
    extra_streams: Tuple[str, ...] = field(default_factory=tuple)
    image_format: str = "auto"

    def resolve(self, specs: Mapping[str, StreamSpec]) -> "AlignedViewConfig":
        """Check names against the declared streams and fill in the defaults."""
        rate = self.rate_hz
        if rate is not None and not (float(rate) > 0 and np.isfinite(rate)):
            raise ConfigError(f"aligned_rate_hz must be positive, got {rate!r}")
        if self.reference is not None:
            if rate is not None:
                raise ConfigError("give either aligned_rate_hz (a fixed grid) or aligned_reference (a stream's "
                                  "stamps), not both")
            if self.reference not in specs:
                raise ConfigError(f"aligned_reference {self.reference!r} is not a declared stream "
                                  f"({sorted(specs)})")
        elif rate is None:
            cameras = [s.rate_hz for s in specs.values() if s.is_camera]
            rate = max(cameras) if cameras else DEFAULT_RATE_HZ
        for name in self.extra_streams:
            if name not in specs:
                raise ConfigError(f"aligned_streams names {name!r}, which is not a declared stream")
            if specs[name].is_camera:
                raise ConfigError(f"aligned_streams: camera {name!r} is always in the view; list only other streams")
        cameras = [s for s in specs.values() if s.is_camera]
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"aligned image format {self.image_format!r} not in {IMAGE_FORMATS}")
        image_format = self.image_format
        if image_format == "auto":
            image_format = "jpeg" if cameras and all(s.codec == "jpeg" for s in cameras) else "pixels"
        names = [s.camera_name for s in cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"two camera streams map to the same image name: {names}")
        for s in cameras:
            if s.default_align not in ("nearest", "backward", "forward"):
                raise ConfigError(f"camera {s.name!r}: frames cannot be interpolated; align must be "
                                  "nearest, backward or forward")
        return AlignedViewConfig(None if self.reference else float(rate), self.reference,
                                 tuple(self.extra_streams), image_format)

    def to_dict(self) -> dict:
        return {"rate_hz": self.rate_hz, "reference": self.reference, "extra_streams": list(self.extra_streams),
                "image_format": self.image_format}

    @classmethod
    def from_dict(cls, data: Mapping) -> "AlignedViewConfig":
        return cls(data.get("rate_hz"), data.get("reference"), tuple(data.get("extra_streams", ())),
                   data.get("image_format", "auto"))


def view_targets(specs: Mapping[str, StreamSpec], config: AlignedViewConfig) -> List[Tuple[str, str, str]]:
    """(stream, field, dataset path) of every numeric dataset in the view."""
    targets = []
    for (stream, field_name), path in schema.STANDARD_VIEW.items():
        if stream in specs and field_name in specs[stream].fields:
            targets.append((stream, field_name, path))
    for stream in config.extra_streams:
        for field_name in specs[stream].fields:
            targets.append((stream, field_name, f"{schema.OBSERVATIONS}/{stream}/{field_name}"))
    return targets


def _stamps(raw: h5py.Group, name: str) -> np.ndarray:
    return raw[name]["t"][...]


def reference_timeline(raw: h5py.Group, config: AlignedViewConfig, streams: List[str]) -> np.ndarray:
    """The view's rows: a fixed grid, or the reference stream's stamps, over the span all `streams` cover."""
    from collector.sync import fixed_grid

    spans = [(t[0], t[-1]) for t in (_stamps(raw, s) for s in streams) if t.size]
    if not spans:
        return np.zeros(0)
    t_start = max(a for a, _ in spans)
    t_end = min(b for _, b in spans)
    if t_end < t_start:
        return np.zeros(0)
    if config.reference:
        ref = _stamps(raw, config.reference)
        return ref[(ref >= t_start) & (ref <= t_end)]
    return np.asarray(fixed_grid(t_start, t_end, config.rate_hz), dtype=np.float64)


def _blocks(ref: np.ndarray, t: np.ndarray):
    """Yield (row slice, raw window start, raw window stop): the window holds every sample any
    alignment method may pick for those rows (one sample either side of their span)."""
    r0 = 0
    n = ref.size
    while r0 < n:
        r1 = min(n, r0 + _BLOCK_ROWS)
        lo = max(int(np.searchsorted(t, ref[r0], "left")) - 1, 0)
        hi = min(int(np.searchsorted(t, ref[r1 - 1], "right")) + 1, t.size)
        while hi - lo > _MAX_WINDOW_SAMPLES and r1 - r0 > 1:
            r1 = r0 + max(1, (r1 - r0) // 2)
            hi = min(int(np.searchsorted(t, ref[r1 - 1], "right")) + 1, t.size)
        yield slice(r0, r1), lo, hi
        r0 = r1


def _align(ref_block, t_window, values, method, tolerance, name):
    from collector.sync import align_stream

    # Equal stamps are accepted at push (a driver re-sending a frame); align them as-of, not as an error.
    return align_stream(ref_block, t_window, values=values, method=method, tolerance=tolerance, name=name,
                        duplicates="keep")


def _fill_index(index: np.ndarray, error: np.ndarray, ref: np.ndarray, t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rows the alignment left without a sample (index -1: out of tolerance, or beyond a stream's
    edge for backward/forward) take the nearest sample, so every row of the view holds real data
    that ACT-style loaders can train on; their `valid` stays False and `error` says how far off it is."""
    missing = index < 0
    if missing.any():
        query = ref[missing]
        after = np.clip(np.searchsorted(t, query), 0, t.size - 1)
        before = np.clip(after - 1, 0, t.size - 1)
        nearest = np.where(np.abs(t[before] - query) <= np.abs(t[after] - query), before, after)
        index = index.copy()
        index[missing] = nearest
        error = error.copy()
        error[missing] = t[nearest] - query
    return index, error


def write_aligned_view(h5: h5py.File, specs: Mapping[str, StreamSpec], config: AlignedViewConfig,
                       guard=None) -> dict:
    """(Re)write the aligned view from /raw. Returns {"rows": T, "streams": [...], "missing": [...]}."""
    for node in _VIEW_NODES:
        if node in h5:
            del h5[node]
    raw = h5[schema.RAW_GROUP]
    targets = view_targets(specs, config)
    cameras = [s for s in specs.values() if s.is_camera]
    wanted = sorted({s for s, _, _ in targets} | {c.name for c in cameras}
                    | ({config.reference} if config.reference else set()))
    counts = {name: int(raw[name]["t"].shape[0]) for name in wanted}
    present = [name for name in wanted if counts[name] > 0]
    missing = [name for name in wanted if counts[name] == 0]
    if config.reference and config.reference in missing:
        present = []
    ref = reference_timeline(raw, config, present)
    T = int(ref.size)
    if guard is not None:
        guard.check(h5.id.get_filesize(), _estimate_view_bytes(raw, specs, targets, cameras, present, T,
                                                                 config.image_format))

    h5.create_dataset(schema.TIMESTAMPS, data=ref)
    obs = h5.require_group(schema.OBSERVATIONS)
    images = h5.require_group(schema.IMAGES)
    sync = h5.create_group(schema.SYNC_GROUP)
    sync.attrs["reference"] = config.reference or "grid"
    if config.rate_hz:
        sync.attrs["rate_hz"] = float(config.rate_hz)

    sync_index: Dict[str, np.ndarray] = {}
    for name in present:
        spec = specs[name]
        t = _stamps(raw, name)
        index = np.empty(T, dtype=np.int64)
        error = np.empty(T, dtype=np.float64)
        valid = np.empty(T, dtype=bool)
        for rows, lo, hi in _blocks(ref, t):
            res = _align(ref[rows], t[lo:hi], None, spec.default_align, spec.tolerance, name)
            block_index = np.where(res.index >= 0, res.index + lo, -1)
            index[rows], error[rows] = _fill_index(block_index, res.error, ref[rows], t)
            valid[rows] = res.valid
        group = sync.create_group(name)
        group.create_dataset("index", data=index)
        group.create_dataset("error", data=error)
        group.create_dataset("valid", data=valid)
        group.attrs["method"] = spec.default_align
        group.attrs["tolerance_s"] = float(spec.tolerance)
        sync_index[name] = index

    for stream, field_name, path in targets:
        if stream not in sync_index:
            continue
        _write_numeric(h5, raw[stream], specs[stream], field_name, path, ref, sync_index[stream])

    view_cams = [c for c in cameras if c.name in sync_index]
    as_jpeg = config.image_format == "jpeg"
    if as_jpeg and view_cams:
        lengths = h5.create_dataset(schema.COMPRESS_LEN, shape=(len(view_cams), T), dtype=np.int32)
        lengths.attrs["cameras"] = json.dumps([c.camera_name for c in view_cams])
        for k, cam in enumerate(view_cams):
            lengths[k] = _write_jpeg_rows(images, raw[cam.name], cam, sync_index[cam.name])
    else:
        for cam in view_cams:
            _write_pixel_rows(images, raw[cam.name], cam, sync_index[cam.name])
    h5.attrs["compress"] = np.bool_(as_jpeg and bool(view_cams))
    obs.attrs["cameras"] = json.dumps([c.camera_name for c in view_cams])
    return {"rows": T, "streams": present, "missing": missing}


def _estimate_view_bytes(raw, specs, targets, cameras, present, T, image_format) -> int:
    total = T * 8 * (1 + 3 * len(present))
    for stream, field_name, _ in targets:
        if stream in present:
            total += T * max(4, specs[stream].fields[field_name].nbytes)
    for cam in cameras:
        if cam.name not in present:
            continue
        group = raw[cam.name]
        n = max(int(group["t"].shape[0]), 1)
        if layout_for(cam) == LAYOUT_JPEG and image_format == "jpeg":
            total += T * int(group["jpeg_size"][:].max(initial=0))
        elif layout_for(cam) == LAYOUT_JPEG or image_format == "jpeg":
            total += T * cam.fields["image"].nbytes // (8 if image_format == "jpeg" else 1)
        else:
            total += T * max(group["image"].id.get_storage_size() // n, 1)
    return total


def _write_numeric(h5, group, spec: StreamSpec, field_name: str, path: str, ref, index) -> None:
    """One view dataset. nearest/backward/forward copy the indexed rows; linear/slerp interpolate
    through collector.sync over a raw window per block."""
    field = spec.fields[field_name]
    method = spec.method_for(field_name)
    standard = path in schema.STANDARD_VIEW.values()
    interpolating = method in ("linear", "slerp")
    dtype = np.float32 if standard else (np.float64 if interpolating and np.dtype(field.dtype).kind != "f"
                                         else np.dtype(field.dtype))
    T = ref.size
    out = h5.create_dataset(path, shape=(T, *field.shape), dtype=dtype,
                            chunks=(max(1, min(T, 65536 // max(field.nbytes, 1))), *field.shape) if T else None)
    out.attrs["source"] = f"/{schema.RAW_GROUP}/{spec.name}/{field_name}"
    out.attrs["method"] = method
    if T == 0:
        return
    source = group[field_name]
    t = group["t"][...]
    for rows, lo, hi in _blocks(ref, t):
        window = source[lo:hi]
        if interpolating or method != spec.default_align:
            res = _align(ref[rows], t[lo:hi], window, method, spec.tolerance, spec.name)
            values = np.asarray(res.values)
            bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1) if values.dtype.kind == "f" else None
            if bad is not None and bad.any():
                # No bracket on one side: hold the sample the sync index chose (row stays invalid in /sync).
                values = values.copy()
                values[bad] = window[index[rows][bad] - lo]
        else:
            values = window[index[rows] - lo]
        out[rows] = values.astype(dtype, copy=False)


def _image_attrs(out: h5py.Dataset, cam: StreamSpec, source: str, codec: str) -> None:
    out.attrs["source"] = f"/{schema.RAW_GROUP}/{cam.name}/{source}"
    out.attrs["codec"] = codec
    out.attrs["channel_order"] = "rgb"
    if codec == "jpeg":
        out.attrs["decode"] = "cv2.imdecode(row, cv2.IMREAD_COLOR) returns RGB (ALOHA convention)"


def _write_pixel_rows(images: h5py.Group, group: h5py.Group, cam: StreamSpec, index: np.ndarray) -> None:
    """(T, H, W, 3) uint8 rows. Stored frames are copied chunk by chunk without decompressing (one
    frame per chunk on both sides, same filter); JPEG frames are decoded."""
    T = index.size
    H, W, C = cam.fields["image"].shape
    if layout_for(cam) == LAYOUT_FRAMES:
        kwargs = {"compression": "lzf"} if cam.codec == "lzf" else {}
        out = images.create_dataset(cam.camera_name, shape=(T, H, W, C), dtype=np.uint8,
                                    chunks=(1, H, W, C), **kwargs)
        _image_attrs(out, cam, "image", cam.codec)
        src_id, dst_id = group["image"].id, out.id
        for row, k in enumerate(index.tolist()):
            mask, chunk = src_id.read_direct_chunk((k, 0, 0, 0))
            dst_id.write_direct_chunk((row, 0, 0, 0), chunk, mask)
        return
    out = images.create_dataset(cam.camera_name, shape=(T, H, W, C), dtype=np.uint8, chunks=(1, H, W, C))
    _image_attrs(out, cam, "jpeg", "raw")
    offsets, sizes, jpeg = group["jpeg_offset"][...], group["jpeg_size"][...], group["jpeg"]
    for row, k in enumerate(index.tolist()):
        start = int(offsets[k])
        out[row] = decode_jpeg(jpeg[start:start + int(sizes[k])])


def _jpeg_source(group: h5py.Group, cam: StreamSpec):
    """Returns get(indices) -> list of JPEG byte arrays for those raw frames, whatever the codec."""
    if layout_for(cam) == LAYOUT_JPEG:
        offsets, sizes, jpeg = group["jpeg_offset"][...], group["jpeg_size"][...], group["jpeg"]

        def get(indices):
            start = int(offsets[indices].min())
            stop = int((offsets[indices] + sizes[indices]).max())
            blob = jpeg[start:stop]  # one read for the whole block (indices are non-decreasing)
            return [blob[int(offsets[k]) - start:int(offsets[k]) - start + int(sizes[k])] for k in indices.tolist()]
        return get
    image = group["image"]

    def encode(indices):
        return [encode_jpeg(image[k], cam.jpeg_quality) for k in indices.tolist()]
    return encode


def _write_jpeg_rows(images: h5py.Group, group: h5py.Group, cam: StreamSpec, index: np.ndarray) -> np.ndarray:
    """Zero-padded (T, L) JPEG rows as ALOHA stores them; returns each row's true length (/compress_len).

    For a camera recorded as pixels the frames are encoded here, a block at a time; L is not known in
    advance then, so the dataset's width grows as needed (rows stay readable as ALOHA reads them)."""
    T = index.size
    get = _jpeg_source(group, cam)
    recorded_jpeg = layout_for(cam) == LAYOUT_JPEG
    row_sizes = np.zeros(T, dtype=np.int32)
    width = int(group["jpeg_size"][...][index].max(initial=1)) if recorded_jpeg and T else 0
    out = None
    rows_per_write = 64 if not recorded_jpeg else max(1, min(256, (64 << 20) // max(width, 1)))
    for r0 in range(0, T, rows_per_write):
        idx = index[r0:r0 + rows_per_write]
        frames = get(idx)
        block_width = max(frame.size for frame in frames)
        if out is None and recorded_jpeg:
            # Width known up front (the longest frame): contiguous storage, no chunk index to build,
            # and a row is still one contiguous read for a loader.
            out = images.create_dataset(cam.camera_name, shape=(T, width), dtype=np.uint8)
        elif out is None:
            # Encoded here: width unknown until the end; chunked rows with headroom, widened if needed.
            width = block_width + block_width // 4
            out = images.create_dataset(cam.camera_name, shape=(T, width), maxshape=(T, None), dtype=np.uint8,
                                        chunks=(1, width))
        elif block_width > out.shape[1]:
            out.resize(block_width, axis=1)
        block = np.zeros((idx.size, out.shape[1]), dtype=np.uint8)
        for j, frame in enumerate(frames):
            block[j, :frame.size] = frame
            row_sizes[r0 + j] = frame.size
        out[r0:r0 + idx.size] = block
    if out is None:
        out = images.create_dataset(cam.camera_name, shape=(0, 1), dtype=np.uint8)
    _image_attrs(out, cam, "jpeg" if recorded_jpeg else "image", "jpeg")
    return row_sizes
