"""How one stream is laid out under /raw/<stream> and appended to while recording.

Three layouts, chosen from the StreamSpec:
- numeric:  t (N,) float64 and one (N, *shape) dataset per field;
- frames:   camera with codec raw or lzf: t, image (N, H, W, 3) uint8 chunked one frame per chunk
            (lzf-filtered for lzf), crc32 (N,) of the pixels;
- jpeg:     camera with codec jpeg: t, jpeg (total bytes,) uint8 holding the frames back to back,
            jpeg_offset / jpeg_size (N,) locating each frame, crc32 (N,) of each frame's JPEG bytes.
            Back-to-back bytes waste nothing on padding; only the ALOHA view pads.

Crash safety: only datasets whose chunks never move are appended to in place (unfiltered chunks are
rewritten at a fixed address; lzf chunks are written once, whole). Float datasets (t included) are
filled with NaN and jpeg_offset with -1 where nothing was written, so recovery can tell a real row
from one whose data never reached the disk (a kill mid-flush, or a write that failed on a full disk).
"""
from __future__ import annotations

from typing import List, Sequence

import h5py
import numpy as np
from h5py import h5s

from collector.recorder.streams import StreamSpec

LAYOUT_NUMERIC = "numeric"
LAYOUT_FRAMES = "frames"
LAYOUT_JPEG = "jpeg"

# Target chunk size for appendable datasets: big enough to keep the chunk index small, small enough
# that rewriting the open (partial) chunk at each flush costs little.
_CHUNK_TARGET_BYTES = 64 * 1024
_JPEG_CHUNK_BYTES = 256 * 1024


def layout_for(spec: StreamSpec) -> str:
    if not spec.is_camera:
        return LAYOUT_NUMERIC
    return LAYOUT_JPEG if spec.codec == "jpeg" else LAYOUT_FRAMES


def _rows_per_chunk(row_bytes: int) -> int:
    return int(np.clip(_CHUNK_TARGET_BYTES // max(row_bytes, 1), 64, 16384))


def _appendable(group: h5py.Group, name: str, row_shape, dtype, rows_per_chunk: int, **kw) -> h5py.Dataset:
    return group.create_dataset(
        name,
        shape=(0, *row_shape),
        maxshape=(None, *row_shape),
        dtype=dtype,
        chunks=(rows_per_chunk, *row_shape),
        **kw,
    )


class RawStreamStore:
    """Appends batches of samples of one stream; subclasses know the layout."""

    layout = ""

    def __init__(self, group: h5py.Group, spec: StreamSpec):
        self.group = group
        self.spec = spec
        self.t = group["t"]
        self.count = int(self.t.shape[0])

    @classmethod
    def create(cls, parent: h5py.Group, spec: StreamSpec) -> "RawStreamStore":
        store_cls = {LAYOUT_NUMERIC: NumericStore, LAYOUT_FRAMES: FrameStore, LAYOUT_JPEG: JpegStore}[layout_for(spec)]
        group = parent.create_group(spec.name)
        group.attrs["spec"] = spec.to_json()
        group.attrs["layout"] = store_cls.layout
        _appendable(group, "t", (), "float64", 8192, fillvalue=np.nan)
        store_cls._create_datasets(group, spec)
        return store_cls(group, spec)

    @classmethod
    def _create_datasets(cls, group: h5py.Group, spec: StreamSpec) -> None:
        raise NotImplementedError

    def estimate_bytes(self, items: Sequence) -> int:
        """Upper bound on the file growth appending `items` may cause (space guard)."""
        raise NotImplementedError

    def append(self, items: Sequence) -> None:
        raise NotImplementedError

    def _append_rows(self, ds: h5py.Dataset, start: int, rows: np.ndarray) -> None:
        """Grow `ds` to start+len(rows) rows and write them. Uses h5py's low-level calls: the
        high-level resize + slice assignment costs about four times as much Python per append."""
        rows = np.ascontiguousarray(rows)
        row_shape = ds.shape[1:]
        count = (len(rows), *row_shape)
        new_shape = (start + len(rows), *row_shape)
        # Two HDF5 calls that release the GIL (extend, write); the dataspaces are built locally rather
        # than fetched, since every GIL hand-back can cost a scheduling round on a busy machine.
        ds.id.set_extent(new_shape)
        file_space = h5s.create_simple(new_shape, (h5s.UNLIMITED, *row_shape))
        file_space.select_hyperslab((start, *([0] * len(row_shape))), count)
        ds.id.write(h5s.create_simple(count), file_space, rows)

    def _append_stamps(self, items: Sequence) -> np.ndarray:
        stamps = np.fromiter((item.t for item in items), dtype=np.float64, count=len(items))
        self._append_rows(self.t, self.count, stamps)
        return stamps


class NumericStore(RawStreamStore):
    """Items are PushedSamples (collector.recorder.queues)."""

    layout = LAYOUT_NUMERIC

    def __init__(self, group, spec):
        super().__init__(group, spec)
        self.fields = [group[name] for name in spec.fields]
        self._row_bytes = spec.sample_nbytes

    @classmethod
    def _create_datasets(cls, group, spec):
        for name, field in spec.fields.items():
            fill = {"fillvalue": np.nan} if np.dtype(field.dtype).kind == "f" else {}
            _appendable(group, name, field.shape, field.dtype, _rows_per_chunk(field.nbytes), **fill)

    def estimate_bytes(self, items):
        return len(items) * self._row_bytes

    def append(self, items: List) -> None:
        start = self.count
        for k, ds in enumerate(self.fields):
            self._append_rows(ds, start, np.stack([item.values[k] for item in items]))
        # Stamps last: a reader that sees a stamp can rely on the row being there.
        self._append_stamps(items)
        self.count = start + len(items)


class FrameStore(RawStreamStore):
    """Camera frames kept as pixels. Items are EncodedFrames whose payload is the image."""

    layout = LAYOUT_FRAMES

    def __init__(self, group, spec):
        super().__init__(group, spec)
        self.image = group["image"]
        self.crc = group["crc32"]
        self._frame_bytes = spec.fields["image"].nbytes

    @classmethod
    def _create_datasets(cls, group, spec):
        shape = spec.fields["image"].shape
        compression = {"compression": "lzf"} if spec.codec == "lzf" else {}
        # One frame per chunk: each chunk is written exactly once, whole (a compressed chunk that was
        # rewritten could move and leave the last flushed index pointing at reused space).
        _appendable(group, "image", shape, "uint8", 1, **compression)
        _appendable(group, "crc32", (), "uint32", 4096)

    def estimate_bytes(self, items):
        return len(items) * (self._frame_bytes + 16)

    def append(self, items):
        start = self.count
        self._append_rows(self.image, start, np.stack([item.payload for item in items]))
        self._append_rows(self.crc, start, np.fromiter((item.crc32 for item in items), np.uint32, len(items)))
        self._append_stamps(items)
        self.count = start + len(items)


class JpegStore(RawStreamStore):
    """Camera frames as JPEG bytes back to back. Items are EncodedFrames whose payload is 1-D uint8 JPEG bytes."""

    layout = LAYOUT_JPEG

    def __init__(self, group, spec):
        super().__init__(group, spec)
        self.jpeg = group["jpeg"]
        self.offset = group["jpeg_offset"]
        self.size = group["jpeg_size"]
        self.crc = group["crc32"]
        self.byte_count = int(self.jpeg.shape[0])

    @classmethod
    def _create_datasets(cls, group, spec):
        _appendable(group, "jpeg", (), "uint8", _JPEG_CHUNK_BYTES)
        _appendable(group, "jpeg_offset", (), "int64", 4096, fillvalue=-1)
        _appendable(group, "jpeg_size", (), "int32", 4096)
        _appendable(group, "crc32", (), "uint32", 4096)

    def estimate_bytes(self, items):
        return sum(int(item.payload.size) for item in items) + 24 * len(items) + _JPEG_CHUNK_BYTES

    def append(self, items):
        start = self.count
        sizes = np.fromiter((item.payload.size for item in items), dtype=np.int64, count=len(items))
        offsets = self.byte_count + np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self._append_rows(self.jpeg, self.byte_count, np.concatenate([item.payload for item in items]))
        self._append_rows(self.offset, start, offsets)
        self._append_rows(self.size, start, sizes.astype(np.int32))
        self._append_rows(self.crc, start, np.fromiter((item.crc32 for item in items), np.uint32, len(items)))
        self._append_stamps(items)
        self.byte_count += int(sizes.sum())
        self.count = start + len(items)


def consistent_length(group: h5py.Group, block_rows: int = 65536) -> int:
    """How many leading samples of a /raw/<stream> group are whole and trustworthy.

    After a kill or a failed write the datasets of one stream can disagree: lengths differ by a
    flush, or the metadata lists rows whose chunk never reached the disk (read back as the fill
    value, or not allocated at all). A row counts only if every dataset has it, its stamp is real and
    non-decreasing, its float values are not the NaN fill, and for frames their chunks exist.
    """
    lengths = [ds.shape[0] for name, ds in group.items() if isinstance(ds, h5py.Dataset) and name != "jpeg"]
    n = min(lengths) if lengths else 0
    if n == 0:
        return 0
    t = group["t"][:n]
    bad = ~np.isfinite(t)
    bad[1:] |= np.diff(t) < 0
    n = _first_true(bad, n)
    layout = group.attrs.get("layout")
    for name, ds in group.items():
        if n and isinstance(ds, h5py.Dataset) and name != "t" and ds.dtype.kind == "f":
            for start in range(0, n, block_rows):
                block = ds[start:min(n, start + block_rows)]
                row_bad = ~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
                if row_bad.any():
                    n = start + int(np.argmax(row_bad))
                    break
    if layout == LAYOUT_FRAMES and n:
        n = min(n, _allocated_prefix(group["image"]))
    if layout == LAYOUT_JPEG and n:
        offsets = group["jpeg_offset"][:n]
        sizes = group["jpeg_size"][:n].astype(np.int64)
        ends = offsets + sizes
        allocated_bytes = _allocated_prefix(group["jpeg"])
        n = _first_true((offsets < 0) | (sizes <= 0) | (ends > min(group["jpeg"].shape[0], allocated_bytes)), n)
        n = _complete_jpeg_prefix(group["jpeg"], offsets[:n], ends[:n])
    return n


def _complete_jpeg_prefix(jpeg: h5py.Dataset, offsets: np.ndarray, ends: np.ndarray, tail_bytes: int = 4 << 20) -> int:
    """Frames in the last few MiB must start with the JPEG SOI marker and end with EOI: a chunk whose
    rewrite failed on a full disk still holds its older bytes and zeros after them."""
    n = offsets.size
    if n == 0:
        return 0
    first = int(np.searchsorted(ends, ends[-1] - tail_bytes))
    base = int(offsets[first])
    blob = jpeg[base:int(ends[-1])]
    for k in range(first, n):
        a, b = int(offsets[k]) - base, int(ends[k]) - base
        if not (blob[a] == 0xFF and blob[a + 1] == 0xD8 and blob[b - 2] == 0xFF and blob[b - 1] == 0xD9):
            return k
    return n


def _first_true(flags: np.ndarray, default: int) -> int:
    return int(np.argmax(flags)) if flags.any() else default


def _allocated_prefix(ds: h5py.Dataset) -> int:
    """Rows (along axis 0) from the start whose chunks are all allocated in the file."""
    chunk_rows = ds.chunks[0]
    starts = []
    if hasattr(ds.id, "chunk_iter"):  # HDF5 >= 1.14: one pass over the chunk index
        ds.id.chunk_iter(lambda info: starts.append(info.chunk_offset[0]))
    else:
        starts = [ds.id.get_chunk_info(i).chunk_offset[0] for i in range(ds.id.get_num_chunks())]
    present = np.zeros(-(-ds.shape[0] // chunk_rows) if ds.shape[0] else 0, dtype=bool)
    idx = np.asarray(starts, dtype=np.int64) // chunk_rows
    present[idx[idx < present.size]] = True
    if present.all():
        return int(ds.shape[0])
    return int(np.argmin(present)) * chunk_rows


def truncate(group: h5py.Group, n: int) -> None:
    """Cut every dataset of a raw stream group to its first n samples."""
    byte_end = None
    if "jpeg" in group:
        byte_end = int(group["jpeg_offset"][n - 1] + group["jpeg_size"][n - 1]) if n else 0
    for name, ds in group.items():
        if not isinstance(ds, h5py.Dataset):
            continue
        length = byte_end if name == "jpeg" else n
        if ds.shape[0] != length:
            ds.resize(length, axis=0)
