"""Random access to one episode's aligned (ALOHA-style) view, made for training loaders.

The recorder's EpisodeReader is the general tool (raw streams, recovery, validation); this class is
the hot path of `EpisodeDataset`: it keeps one HDF5 handle per process, reads only the rows a sample
needs and decodes only the camera frames asked for. It is safe to pickle and to use after fork (a
torch DataLoader's workers): the handle is never pickled and is reopened in any process that did not
open it, because an HDF5 handle inherited through fork must not be used.

Camera frames are raw pixels (T, H, W, 3) uint8, read as a block, or ALOHA's padded JPEG rows
(decoded one by one through the recorder's FrameSequence, which knows /compress_len).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np

from collector.dataset.control import RowControl, read_row_control
from collector.errors import DataError
from collector.recorder import schema
from collector.recorder.reader import EpisodeReader, FrameSequence, about_file

STATE_KEY = "observations/qpos"
ACTION_KEY = "action"


class AlignedEpisode:
    def __init__(self, path):
        self.path = Path(path)
        self._reader: Optional[EpisodeReader] = None
        self._pid: Optional[int] = None
        self._frames: Dict[str, FrameSequence] = {}
        # h5py resolves a path in ~0.1-0.5 ms; a training sample touches ~10 datasets, so keep them.
        self._datasets: Dict[str, Optional[h5py.Dataset]] = {}
        self._length: Optional[int] = None
        self._metadata: Optional[Dict] = None
        self._control: Optional[RowControl] = None

    # -- handle management ----------------------------------------------------------------------
    def reader(self) -> EpisodeReader:
        """The recorder's reader on this file, opened once per process."""
        if self._reader is None or self._pid != os.getpid():
            # An inherited handle is dropped without closing: closing it would touch the parent's state.
            self._reader = EpisodeReader(self.path)
            self._pid = os.getpid()
            self._frames = {}
            self._datasets = {}
        return self._reader

    def file(self) -> h5py.File:
        return self.reader().h5

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None
        self._frames = {}
        self._datasets = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_reader=None, _pid=None, _frames={}, _datasets={})
        return state

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        if exc is not None:
            named = about_file(self.path, exc)  # damaged data: a DataError naming this file
            if named is not exc:
                raise named from exc

    # -- metadata -------------------------------------------------------------------------------
    @property
    def metadata(self) -> Dict:
        if self._metadata is None:
            self._metadata = schema.read_metadata(self.file())
        return self._metadata

    @property
    def episode_id(self) -> str:
        return str(self.metadata.get("episode_id") or self.path.stem)

    @property
    def conditions(self) -> Dict:
        conditions = self.metadata.get("conditions") or {}
        return conditions if isinstance(conditions, dict) else {}

    @property
    def length(self) -> int:
        if self._length is None:
            h5 = self.file()
            for key in (schema.TIMESTAMPS, ACTION_KEY, STATE_KEY):
                if key in h5:
                    self._length = int(h5[key].shape[0])
                    break
            else:
                raise DataError(f"{self.path}: no aligned view (/{schema.TIMESTAMPS}, /action or "
                                f"/{STATE_KEY}); was the episode finalized? (`collector recover` it)")
        return self._length

    def control(self) -> RowControl:
        """Who commanded each row (collector.dataset.control): all `operator` without a control stream."""
        if self._control is None:
            self._control = read_row_control(self.reader())
        return self._control

    def has(self, key: str) -> bool:
        return self._lookup(key) is not None

    def shape(self, key: str) -> tuple:
        return tuple(self._dataset(key).shape)

    @property
    def cameras(self) -> List[str]:
        return self.reader().aligned_cameras if self.reader().has_aligned_view else []

    def image_shape(self, camera: str) -> tuple:
        """(H, W, 3) of a camera, from the data if raw, else from the first frame."""
        ds = self._image_dataset(camera)
        if ds.ndim == 4:
            return tuple(ds.shape[1:])
        return self.images(camera, [0])[0].shape

    # -- data -----------------------------------------------------------------------------------
    def _lookup(self, key: str) -> Optional[h5py.Dataset]:
        reader = self.reader()
        if key not in self._datasets:
            node = reader.h5.get(key)
            self._datasets[key] = node if isinstance(node, h5py.Dataset) else None
        return self._datasets[key]

    def _dataset(self, key: str) -> h5py.Dataset:
        ds = self._lookup(key)
        if ds is None:
            raise DataError(f"{self.path}: no /{key} dataset in the episode")
        return ds

    def read(self, key: str, rows=None) -> np.ndarray:
        """Rows of a dataset: all (rows=None), a slice, or any sequence of row indices (repeats allowed)."""
        ds = self._dataset(key)
        if rows is None:
            return ds[()]
        if isinstance(rows, slice):
            return ds[rows]
        return _take_rows(ds, np.asarray(rows, dtype=np.int64))

    def _image_dataset(self, camera: str) -> h5py.Dataset:
        return self._dataset(f"{schema.IMAGES}/{camera}")

    def _frame_sequence(self, camera: str) -> FrameSequence:
        reader = self.reader()
        if camera not in self._frames:
            self._frames[camera] = reader.aligned_images(camera)
        return self._frames[camera]

    def images(self, camera: str, rows: Sequence[int]) -> np.ndarray:
        """(len(rows), H, W, 3) uint8 RGB frames of one camera, decoded if stored as JPEG."""
        ds = self._image_dataset(camera)
        rows = np.asarray(rows, dtype=np.int64)
        if ds.ndim == 4:
            return _take_rows(ds, rows)
        frames = self._frame_sequence(camera)
        try:
            decoded = {int(r): frames[int(r)] for r in np.unique(rows)}
        except (DataError, IndexError) as exc:
            raise DataError(f"{self.path}: camera {camera!r}: {exc}") from None
        return np.stack([decoded[int(r)] for r in rows])


def _take_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """ds[rows] for any row list: h5py fancy indexing needs sorted unique indices, training asks for
    repeats (edge padding) and any order, so read the unique sorted rows once and scatter them."""
    if rows.size == 0:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    n = ds.shape[0]
    if rows.min() < 0 or rows.max() >= n:
        raise DataError(f"{ds.file.filename}: rows {rows.min()}..{rows.max()} outside /{ds.name.lstrip('/')} "
                        f"of length {n}")
    first, last = int(rows.min()), int(rows.max())
    # A contiguous read of the covering range is much cheaper than fancy indexing when rows are dense.
    if last - first + 1 <= 4 * rows.size:
        block = ds[first:last + 1]
        return block[rows - first]
    unique, inverse = np.unique(rows, return_inverse=True)
    return ds[unique][inverse]
