"""Read a LeRobot v3 dataset with pyarrow and PyAV, sampling the same items EpisodeDataset does.

It exists to check exports (round trips in the tests) and to measure what training from the
exported copy costs against reading our HDF5 (benchmarks/bench_dataset.py). It follows the v3
layout from meta/: frames of episode e and camera c live in the MP4 the episode row points at, from
`videos/<key>/from_timestamp` on, one frame every 1/fps.

Worker processes: start them with "spawn" or "forkserver" (DataLoader(multiprocessing_context=...)).
FFmpeg is not fork-safe once the parent has used it: a forked child's first av.open() can hang
on a lock held by a thread of the parent (seen here).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.dataset.exports.lerobot import CONTROL_SOURCE, DATA_PATH, SUBTASK_INDEX, VIDEO_PATH
from collector.dataset.normalization import IMAGE_PREFIX
from collector.episodes.video import VideoFrameReader
from collector.errors import DataError


class LeRobotV3Reader:
    def __init__(self, root, history: int = 1, chunk: int = 1, cameras: Optional[Sequence[str]] = None):
        import pyarrow.parquet as pq

        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise DataError(f"{self.root}: no meta/info.json; not a LeRobot dataset")
        self.info = json.loads(info_path.read_text())
        if self.info.get("codebase_version") != "v3.0":
            raise DataError(f"{self.root}: codebase_version {self.info.get('codebase_version')!r}, expected v3.0")
        self.fps = float(self.info["fps"])
        self.history, self.chunk = int(history), int(chunk)
        episode_files = sorted((self.root / "meta" / "episodes").rglob("*.parquet"))
        self.episodes = [row for f in episode_files for row in pq.read_table(f).to_pylist()]
        self.episodes.sort(key=lambda r: r["episode_index"])
        video_keys = [k for k, v in self.info["features"].items() if v["dtype"] == "video"]
        self.cameras = [k[len(IMAGE_PREFIX):] for k in video_keys] if cameras is None else list(cameras)

        columns: Dict[str, List[np.ndarray]] = {"observation.state": [], "action": [], "timestamp": [],
                                                "task_index": []}
        for optional in (CONTROL_SOURCE, SUBTASK_INDEX):  # older exports have neither
            if optional in self.info["features"]:
                columns[optional] = []
        seen = set()
        for row in self.episodes:
            key = (row["data/chunk_index"], row["data/file_index"])
            if key in seen:
                continue
            seen.add(key)
            table = pq.read_table(self.root / DATA_PATH.format(chunk_index=key[0], file_index=key[1]),
                                  columns=list(columns))
            for name in columns:
                column = table.column(name).combine_chunks()
                if not hasattr(column.type, "list_size"):  # a scalar per frame
                    columns[name].append(column.to_numpy())
                else:
                    width = column.type.list_size
                    columns[name].append(column.values.to_numpy().reshape(-1, width))
        self.state = np.concatenate(columns["observation.state"])
        self.action = np.concatenate(columns["action"])
        self.control_source = np.concatenate(columns[CONTROL_SOURCE]) if CONTROL_SOURCE in columns else None
        self.control_sources = list(self.info.get("collector", {}).get("control_sources") or [])
        self.task_index = np.concatenate(columns["task_index"])
        self.subtask_index = np.concatenate(columns[SUBTASK_INDEX]) if SUBTASK_INDEX in columns else None
        self.subtasks = list(self.info.get("collector", {}).get("subtasks") or [])
        tasks = pq.read_table(self.root / "meta" / "tasks.parquet").to_pandas()
        self.tasks = {int(index): str(task) for task, index in zip(tasks.index, tasks["task_index"])}
        self.starts = np.array([r["dataset_from_index"] for r in self.episodes]
                               + [self.episodes[-1]["dataset_to_index"]])
        self._videos: Dict[tuple, VideoFrameReader] = {}

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _video(self, camera: str, chunk_index: int, file_index: int) -> VideoFrameReader:
        key = (camera, chunk_index, file_index)
        if key not in self._videos:
            path = self.root / VIDEO_PATH.format(video_key=IMAGE_PREFIX + camera, chunk_index=chunk_index,
                                                 file_index=file_index)
            self._videos[key] = VideoFrameReader(path)
        return self._videos[key]

    def frames(self, episode: int, camera: str, frame_indices: Sequence[int]) -> np.ndarray:
        row = self.episodes[episode]
        key = IMAGE_PREFIX + camera
        start = row[f"videos/{key}/from_timestamp"]
        video = self._video(camera, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
        return video.frames_at([start + i / self.fps for i in frame_indices])

    def __getitem__(self, index: int) -> Dict[str, object]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        e = int(np.searchsorted(self.starts, index, side="right") - 1)
        begin, end = int(self.starts[e]), int(self.starts[e + 1])
        t = index - begin
        past = np.clip(np.arange(t - self.history + 1, t + 1), 0, end - begin - 1)
        future = np.arange(t, t + self.chunk)
        sample: Dict[str, object] = {
            "observation.state": self.state[begin + past] if self.history > 1 else self.state[begin + t],
            "action": self.action[begin + np.clip(future, 0, end - begin - 1)],
            "action_is_pad": future >= end - begin,
            "episode_index": np.int64(e), "frame_index": np.int64(t),
        }
        if self.control_source is not None:
            sample[CONTROL_SOURCE] = np.int64(self.control_source[begin + t])
        sample["task"] = self.tasks[int(self.task_index[begin + t])]  # as LeRobotDataset gives it: the string
        if self.subtask_index is not None:
            code = int(self.subtask_index[begin + t])
            sample["subtask"] = self.subtasks[code] if code >= 0 else ""
        for camera in self.cameras:
            frame = self.frames(e, camera, [t])[0]
            sample[IMAGE_PREFIX + camera] = frame.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255.0)
        return sample
