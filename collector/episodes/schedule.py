"""Every raw sample of an episode in time order, read lazily: what a bag player walks through.

`Schedule` merges the stamps of the chosen streams into one time-ordered list of (t, stream, row)
without reading any data; `SampleSource` reads the data of a row when it is due, numeric streams in
blocks (one HDF5 read per `block` rows instead of one per sample), camera frames one by one.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader


class Schedule:
    def __init__(self, reader: EpisodeReader, streams: Sequence[str], start_offset_s: float = 0.0,
                 duration_s: Optional[float] = None):
        if start_offset_s < 0:
            raise ConfigError(f"start offset must be >= 0 s, got {start_offset_s}")
        stamps = {name: reader.stamps(name) for name in streams}
        nonempty = [t for t in stamps.values() if t.size]
        if not nonempty:
            raise DataError(f"{reader.path}: the selected streams hold no samples")
        self.t_first = float(min(t[0] for t in nonempty))
        self.t_last = float(max(t[-1] for t in nonempty))
        self.t_begin = self.t_first + start_offset_s
        if self.t_begin > self.t_last:
            raise ConfigError(f"start offset {start_offset_s:g} s is past the end of the episode "
                              f"({self.t_last - self.t_first:.3f} s long)")
        self.t_end = self.t_last if duration_s is None else min(self.t_last, self.t_begin + duration_s)
        times, which, rows = [], [], []
        self.streams = list(streams)
        for k, name in enumerate(self.streams):
            t = stamps[name]
            keep = np.flatnonzero((t >= self.t_begin) & (t <= self.t_end))
            times.append(t[keep])
            which.append(np.full(keep.size, k, np.int32))
            rows.append(keep)
        t_all = np.concatenate(times)
        # Stable sort: samples with equal stamps keep stream order (joints before the command of a tick).
        order = np.argsort(t_all, kind="stable")
        self.t = t_all[order]
        self.stream_index = np.concatenate(which)[order]
        self.row = np.concatenate(rows)[order]

    def __len__(self) -> int:
        return int(self.t.size)

    def __iter__(self) -> Iterator[Tuple[float, str, int]]:
        for t, k, row in zip(self.t.tolist(), self.stream_index.tolist(), self.row.tolist()):
            yield t, self.streams[k], row

    def counts(self) -> Dict[str, int]:
        return {name: int(np.count_nonzero(self.stream_index == k)) for k, name in enumerate(self.streams)}


class SampleSource:
    def __init__(self, reader: EpisodeReader, block: int = 512):
        self.reader = reader
        self.block = block
        self._cache: Dict[str, Tuple[int, Dict[str, np.ndarray]]] = {}
        self._frames: Dict[str, object] = {}

    def sample(self, stream: str, row: int) -> Dict[str, np.ndarray]:
        spec = self.reader.streams[stream]
        if spec.is_camera:
            if stream not in self._frames:
                self._frames[stream] = self.reader.images(stream)
            return {"image": self._frames[stream][row]}
        start, fields = self._cache.get(stream, (-1, {}))
        if not (0 <= row - start < self.block) or start < 0:
            start = row
            stop = min(row + self.block, self.reader.count(stream))
            fields = {name: self.reader.raw(stream, name)[start:stop] for name in spec.fields}
            self._cache[stream] = (start, fields)
        return {name: values[row - start] for name, values in fields.items()}

    def streams_with_data(self, names: Sequence[str]) -> List[str]:
        return [n for n in names if self.reader.count(n) > 0]
