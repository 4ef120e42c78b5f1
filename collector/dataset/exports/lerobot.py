"""Export to the LeRobot dataset format v3.0 (parquet + MP4 + meta/), encoded with PyAV.

    out/
      meta/info.json                       codebase_version v3.0, fps, features, path templates, + "collector"
      meta/stats.json                      mean/std/min/max/count per feature (images: per channel, (3,1,1))
      meta/tasks.parquet                   index = task string, column task_index: every phrasing of every
                                           episode's language instruction (recorded, then the reviewers')
      meta/episodes/chunk-000/file-000.parquet
                                           one row per episode: length, tasks (the episode's phrasings; its
                                           frames' task_index is the first), data/video file pointers,
                                           dataset_from/to_index, video from/to_timestamp, stats/<feature>/<stat>,
                                           and collector/* provenance columns (episode id, source file,
                                           conditions JSON, lighting, weight, outcome, operator, session,
                                           review_verdict, review JSON, ...), and the reviewers' subtasks as
                                           LeRobot's subtask annotations (SARM) store them: subtask_names,
                                           subtask_start_times / subtask_end_times (s from the episode start),
                                           subtask_start_frames / subtask_end_frames
      data/chunk-000/file-000.parquet      frames of many episodes: observation.state, action,
                                           observation.velocity/effort, timestamp, frame_index, episode_index,
                                           index, task_index, and who commanded each frame:
                                           complementary_info.control_source (int64 code; the names in order
                                           are info.json collector.control_sources: operator, policy, ...) and
                                           complementary_info.is_intervention (float32 1 where the operator
                                           commanded: LeRobot's human-in-the-loop convention), and
                                           complementary_info.subtask_index (int64: the subtask at the frame, a
                                           position in info.json collector.subtasks; -1 outside every segment)
                                           Robots with hands add observation.hand_touch.<side>,
                                           observation.grasp_force.<side>, observation.hand_tracking.tracked/lost
                                           (and observation.retarget_residual.<side>), named in info.json
      videos/observation.images.<cam>/chunk-000/file-000.mp4
                                           frames of many episodes back to back

How it runs: every episode is converted by a worker of the job engine (decode JPEG, encode one MP4
per camera, compute per-episode stats); the caller then packs the episodes, in selection order,
into data and video files (videos joined by copying packets, never re-encoded) and writes meta/.
The output appears under its final name only when complete.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.dataset.control import OPERATOR, RowControl, source_vocabulary
from collector.dataset.episode import AlignedEpisode
from collector.dataset.exports.common import (atomic_output, episode_rate, export_header, hand_observations,
                                              instructions_of, joint_names, provenance)
from collector.dataset.normalization import (DEFAULT_IMAGE_SAMPLES, IMAGE_PREFIX, STANDARD_FEATURES, feature_name,
                                             image_sample_rows)
from collector.dataset.selection import EpisodeRef
from collector.dataset.statistics import FeatureStats, merge_all
from collector.episodes.video import encode_video, probe, concat_videos
from collector.errors import ConfigError, DataError
from collector.recorder.vocabulary import COMMAND, JOINTS

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"

# aligned-view dataset -> (LeRobot feature, stream whose joint names label it).
LOWDIM_FEATURES = {key: (STANDARD_FEATURES[key], COMMAND if key == "action" else JOINTS)
                   for key in ("observations/qpos", "action", "observations/qvel", "observations/effort")}
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}
# Per-frame control source, under LeRobot's prefix for data beside observation and action (its
# human-in-the-loop recordings mark the operator's frames with complementary_info.is_intervention).
CONTROL_SOURCE = "complementary_info.control_source"
IS_INTERVENTION = "complementary_info.is_intervention"
SUBTASK_INDEX = "complementary_info.subtask_index"
CONTROL_FEATURES = {CONTROL_SOURCE: ("int64", ["control_source"]), IS_INTERVENTION: ("float32", ["is_intervention"]),
                    SUBTASK_INDEX: ("int64", ["subtask_index"])}
# Per-episode subtask columns, named as LeRobot's subtask annotation (SARM) writes them into meta/episodes.
SUBTASK_COLUMNS = ("subtask_names", "subtask_start_times", "subtask_end_times", "subtask_start_frames",
                   "subtask_end_frames")


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise ConfigError("the LeRobot export needs pyarrow: pip install pyarrow") from exc
    return pyarrow


def convert_episode(item, workdir: str, cameras: Optional[Sequence[str]], codec: str, crf: int,
                    image_samples: int = DEFAULT_IMAGE_SAMPLES) -> Dict[str, object]:
    """Worker task: one episode -> arrays, per-episode stats and one MP4 per camera in `workdir`."""
    position, ref = item
    with AlignedEpisode(ref.path) as episode:
        fps = episode_rate(episode)
        length = episode.length
        columns: Dict[str, np.ndarray] = {}
        names: Dict[str, Optional[List[str]]] = {}
        for key, (feature, stream) in LOWDIM_FEATURES.items():
            if episode.has(key):
                values = episode.read(key).astype(np.float32).reshape(length, -1)
                columns[feature] = values
                names[feature] = joint_names(episode, stream, values.shape[1])
        for key, _, hand_names in hand_observations(episode):
            feature = feature_name(key)
            columns[feature] = episode.read(key).astype(np.float32).reshape(length, -1)
            names[feature] = hand_names
        if "observation.state" not in columns or "action" not in columns:
            raise DataError(f"{ref.path}: needs /observations/qpos and /action for a LeRobot export")
        stats = {name: FeatureStats.of(values.astype(np.float64), axis=0) for name, values in columns.items()}
        cams = list(episode.cameras if cameras is None else cameras)
        videos, shapes, codecs = {}, {}, {}
        for cam in cams:
            if cam not in episode.cameras:
                raise DataError(f"{ref.path}: no camera {cam!r} (has {episode.cameras})")
            target = Path(workdir) / "videos" / cam / f"{position:06d}.mp4"
            frames = (episode.images(cam, [row])[0] for row in range(length))
            count = encode_video(target, frames, fps, codec=codec, crf=crf)
            if count != length:
                raise DataError(f"{ref.path}: camera {cam}: encoded {count} frames for {length} rows")
            videos[cam] = str(target)
            codecs[cam] = probe(target)
            sample = episode.images(cam, image_sample_rows(length, image_samples))
            shapes[cam] = list(sample.shape[1:])
            stats[IMAGE_PREFIX + cam] = FeatureStats.of_pixels(sample)
        record = provenance(ref, episode)
        return {"position": position, "length": length, "fps": fps, "columns": columns, "names": names,
                "stats": stats, "videos": videos, "shapes": shapes, "codecs": codecs,
                "control": episode.control(), "provenance": record,
                "subtasks": _subtasks(episode, record, fps)}


def _subtasks(episode: AlignedEpisode, record: Dict, fps: float) -> Dict[str, object]:
    """The reviewers' segments, in the export's time (s from the episode's first frame) and frames, and
    the subtask name at every frame ("" outside)."""
    from collector.review.annotations import Labels, Review

    review = Review([Labels.from_json(r) for r in (record.get("review") or {}).get("records", [])])
    stamps = episode.read("timestamps") if episode.has("timestamps") else np.arange(episode.length) / fps
    t0 = float(stamps[0])
    segments = review.subtasks
    return {"subtask_names": [s.name for s in segments],
            "subtask_start_times": [float(s.start_t - t0) for s in segments],
            "subtask_end_times": [float(s.end_t - t0) for s in segments],
            "subtask_start_frames": [int(round((s.start_t - t0) * fps)) for s in segments],
            "subtask_end_frames": [int(round((s.end_t - t0) * fps)) for s in segments],
            "per_frame": [str(n) for n in review.subtask_at(stamps)]}


def export_lerobot(refs: Sequence[EpisodeRef], out_dir, engine, *, cameras: Optional[Sequence[str]] = None,
                   codec: str = "h264", crf: int = 23, overwrite: bool = False, source="", filters: str = "",
                   data_file_mb: float = DATA_FILES_SIZE_MB, video_file_mb: float = VIDEO_FILES_SIZE_MB,
                   robot_type: Optional[str] = None) -> Dict[str, object]:
    """Write a LeRobot v3 dataset of `refs` to out_dir. Returns a summary (episodes, frames, files)."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    with atomic_output(out_dir, overwrite=overwrite) as root:
        work = root / ".work"
        outcomes = engine.map(convert_episode, list(enumerate(refs)), desc="lerobot export", workdir=str(work),
                              cameras=cameras, codec=codec, crf=crf)
        bad = [o for o in outcomes if not o.ok]
        if bad:
            listed = "; ".join(f"{o.item[1].path.name}: {o.error}" for o in bad[:5])
            raise DataError(f"LeRobot export failed for {len(bad)} episode(s): {listed}")
        parts = [o.value for o in outcomes]
        _check_consistent(parts)
        fps = parts[0]["fps"]
        control_sources = source_vocabulary(name for part in parts for name in part["control"].names)
        subtask_names = sorted({name for part in parts for name in part["subtasks"]["subtask_names"]})

        tasks: Dict[str, int] = {}
        episode_rows: List[Dict[str, object]] = []
        tables = []
        start = 0
        for episode_index, part in enumerate(parts):
            phrasings = instructions_of(part["provenance"]) or [str(part["provenance"].get("task") or "")]
            for phrasing in phrasings:
                tasks.setdefault(phrasing, len(tasks))
            task_index = tasks[phrasings[0]]
            n = part["length"]
            frame_index = np.arange(n, dtype=np.int64)
            table = {feature: _fixed_list(pa, values) for feature, values in part["columns"].items()}
            table["timestamp"] = pa.array((frame_index / fps).astype(np.float32))
            table["frame_index"] = pa.array(frame_index)
            table["episode_index"] = pa.array(np.full(n, episode_index, np.int64))
            table["index"] = pa.array(start + frame_index)
            table["task_index"] = pa.array(np.full(n, task_index, np.int64))
            control = _control_columns(part["control"], control_sources)
            control[SUBTASK_INDEX] = np.array([subtask_names.index(n) if n else -1
                                               for n in part["subtasks"]["per_frame"]], dtype=np.int64)
            table.update({name: pa.array(values) for name, values in control.items()})
            tables.append(pa.table(table))
            part["stats"].update(_index_stats(fps, n, episode_index, start, task_index))
            part["stats"].update({name: FeatureStats.of(values.astype(np.float64)[:, None])
                                  for name, values in control.items()})
            episode_rows.append({"episode_index": episode_index, "tasks": phrasings, "length": n,
                                 "dataset_from_index": start, "dataset_to_index": start + n})
            start += n

        data_files = _write_data_files(pq, pa, root, tables, episode_rows, data_file_mb)
        video_keys = sorted(parts[0]["videos"])
        for cam in video_keys:
            _write_video_files(root, cam, [p["videos"][cam] for p in parts], [p["length"] for p in parts], fps,
                               episode_rows, video_file_mb)
        shutil.rmtree(work, ignore_errors=True)

        for row, part in zip(episode_rows, parts):
            for feature, s in part["stats"].items():
                for stat, value in _stats_dict(feature, s).items():
                    row[f"stats/{feature}/{stat}"] = value
            _add_provenance(row, part["provenance"])
        row_layout = {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
        for row in episode_rows:
            row.update(row_layout)
        episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_with_subtask_columns(pa, pa.Table.from_pylist(episode_rows), parts), episodes_path)

        _write_tasks(root / "meta" / "tasks.parquet", tasks)

        merged = merge_all(p["stats"] for p in parts)
        stats_json = {feature: _stats_dict(feature, s) for feature, s in merged.items()}
        (root / "meta" / "stats.json").write_text(json.dumps(stats_json, indent=2))

        info = _info(parts, fps, len(tasks), start, data_files, video_keys, data_file_mb, video_file_mb,
                     robot_type or str(parts[0]["provenance"].get("robot") or ""))
        info["collector"] = {**export_header(source, filters, "lerobot"),
                             "episode_ids": [p["provenance"].get("episode_id") for p in parts],
                             "control_sources": control_sources, "subtasks": subtask_names}
        (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return {"episodes": len(parts), "frames": start, "fps": fps, "tasks": len(tasks), "cameras": video_keys,
            "path": str(out_dir)}


def _control_columns(control: RowControl, vocabulary: List[str]) -> Dict[str, np.ndarray]:
    """The per-frame control columns of one episode, coded in the export's vocabulary."""
    recoded = control.recoded(vocabulary)
    return {CONTROL_SOURCE: recoded,
            IS_INTERVENTION: (recoded == vocabulary.index(OPERATOR)).astype(np.float32)}


def _with_subtask_columns(pa, table, parts: List[Dict]):
    """The SARM subtask columns, typed explicitly (an episode without segments has empty lists)."""
    types = {"subtask_names": pa.string(), "subtask_start_times": pa.float64(), "subtask_end_times": pa.float64(),
             "subtask_start_frames": pa.int64(), "subtask_end_frames": pa.int64()}
    for name in SUBTASK_COLUMNS:
        table = table.append_column(name, pa.array([p["subtasks"][name] for p in parts], type=pa.list_(types[name])))
    return table


def _write_tasks(path: Path, tasks: Dict[str, int]) -> None:
    """tasks.parquet as LeRobot reads it with pandas: the task strings are the index."""
    import pandas as pd

    names = sorted(tasks, key=tasks.get)
    frame = pd.DataFrame({"task_index": np.array([tasks[t] for t in names], np.int64)},
                         index=pd.Index(names, name="task"))
    frame.to_parquet(path)


def _fixed_list(pa, values: np.ndarray):
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _check_consistent(parts: List[Dict]) -> None:
    first = parts[0]
    for part in parts[1:]:
        where = part["provenance"].get("source_path")
        if not math.isclose(part["fps"], first["fps"], rel_tol=1e-6):
            raise DataError(f"{where}: aligned at {part['fps']:g} fps, the first episode at {first['fps']:g}; "
                            "a LeRobot dataset has one frame rate")
        shapes = {k: v.shape[1:] for k, v in part["columns"].items()}
        first_shapes = {k: v.shape[1:] for k, v in first["columns"].items()}
        if shapes != first_shapes or part["shapes"] != first["shapes"]:
            raise DataError(f"{where}: features {shapes, part['shapes']} differ from the first episode's "
                            f"{first_shapes, first['shapes']}")


def _index_stats(fps: float, n: int, episode_index: int, start: int, task_index: int) -> Dict[str, FeatureStats]:
    frame_index = np.arange(n, dtype=np.float64)[:, None]
    return {
        "timestamp": FeatureStats.of(frame_index / fps),
        "frame_index": FeatureStats.of(frame_index),
        "episode_index": FeatureStats.of(np.full((n, 1), episode_index, np.float64)),
        "index": FeatureStats.of(start + frame_index),
        "task_index": FeatureStats.of(np.full((n, 1), task_index, np.float64)),
    }


def _stats_dict(feature: str, stats: FeatureStats) -> Dict[str, list]:
    out = stats.as_dict()
    if feature.startswith(IMAGE_PREFIX):  # LeRobot keeps image stats as (C, 1, 1) to broadcast over pixels
        out = {k: (v if k == "count" else [[[x]] for x in v]) for k, v in out.items()}
    return out


def _add_provenance(row: Dict[str, object], record: Dict[str, object]) -> None:
    for key, value in record.items():
        row[f"collector/{key}"] = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _write_data_files(pq, pa, root: Path, tables, episode_rows, limit_mb: float) -> int:
    """Pack episode tables into data files of at most ~limit_mb, in order; returns the file count."""
    chunk = file = 0
    batch: List = []
    batch_bytes = 0
    written = 0

    def flush():
        nonlocal chunk, file, batch, batch_bytes, written
        if not batch:
            return
        path = root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(batch), path)
        written += 1
        file += 1
        if file >= CHUNKS_SIZE:
            chunk, file = chunk + 1, 0
        batch, batch_bytes = [], 0

    for table, row in zip(tables, episode_rows):
        if batch and batch_bytes + table.nbytes > limit_mb * 1e6:
            flush()
        row["data/chunk_index"], row["data/file_index"] = chunk, file
        batch.append(table)
        batch_bytes += table.nbytes
    flush()
    return written


def _write_video_files(root: Path, cam: str, parts: List[str], lengths: List[int], fps: float, episode_rows,
                       limit_mb: float) -> None:
    key = IMAGE_PREFIX + cam
    chunk = file = 0
    group: List[int] = []
    group_bytes = 0

    def flush():
        nonlocal chunk, file, group, group_bytes
        if not group:
            return
        path = root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        starts = concat_videos([parts[i] for i in group], path)
        for i, begin in zip(group, starts):
            row = episode_rows[i]
            row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = chunk, file
            row[f"videos/{key}/from_timestamp"] = begin
            row[f"videos/{key}/to_timestamp"] = begin + lengths[i] / fps
        file += 1
        if file >= CHUNKS_SIZE:
            chunk, file = chunk + 1, 0
        group, group_bytes = [], 0

    for i, part in enumerate(parts):
        size = Path(part).stat().st_size
        if group and group_bytes + size > limit_mb * 1e6:
            flush()
        group.append(i)
        group_bytes += size
    flush()


def _info(parts, fps, total_tasks, total_frames, data_files, video_keys, data_mb, video_mb, robot_type) -> Dict:
    first = parts[0]
    features: Dict[str, Dict] = {}
    for feature, values in first["columns"].items():
        names = first["names"].get(feature)
        features[feature] = {"dtype": "float32", "shape": [int(values.shape[1])],
                             "names": names if names else [f"{feature.rsplit('.', 1)[-1]}_{i}"
                                                           for i in range(values.shape[1])]}
    for cam in video_keys:
        info = first["codecs"][cam]
        height, width, channels = first["shapes"][cam]
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video", "shape": [height, width, channels], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": info["codec"],
                     "video.pix_fmt": info["pix_fmt"], "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": channels, "has_audio": False}}
    for name, dtype in INDEX_FEATURES.items():
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    for name, (dtype, labels) in CONTROL_FEATURES.items():
        features[name] = {"dtype": dtype, "shape": [1], "names": labels}
    fps_value = int(round(fps)) if math.isclose(fps, round(fps), rel_tol=1e-9) else fps
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type or None,
        "total_episodes": len(parts), "total_frames": int(total_frames), "total_tasks": total_tasks,
        "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": data_mb, "video_files_size_in_mb": video_mb,
        "fps": fps_value, "splits": {"train": f"0:{len(parts)}"},
        "data_path": DATA_PATH, "video_path": VIDEO_PATH if video_keys else None, "features": features,
    }
