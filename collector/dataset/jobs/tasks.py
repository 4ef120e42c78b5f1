"""The per-episode tasks of dataset-wide jobs, and the reductions that combine their results.

Each task is a pure function of one episode (an EpisodeRef) so it can run on any worker; the
reductions run in the caller, in selection order (hence the same result on any number of workers).
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.dataset.normalization import DEFAULT_IMAGE_SAMPLES, episode_feature_stats
from collector.dataset.selection import EpisodeRef
from collector.dataset.statistics import FeatureStats, merge_all
from collector.recorder.reader import EpisodeReader

DEFAULT_STAT_KEYS = ("observations/qpos", "observations/qvel", "observations/effort", "action")


# -- validation --------------------------------------------------------------------------------------

def validate_task(ref: EpisodeRef, limits=None, required_streams: Optional[Sequence[str]] = None,
                  min_duration_s: float = 1.0, frozen_s: float = 1.0) -> List[str]:
    """Problems the recorder's QA rules find in one episode (empty: it passes)."""
    from collector.recorder.qa import DEFAULT_REQUIRED_STREAMS, validate_episode

    required = DEFAULT_REQUIRED_STREAMS if required_streams is None else tuple(required_streams)
    return validate_episode(ref.path, robot_limits=limits, required_streams=required, min_duration_s=min_duration_s,
                            frozen_s=frozen_s)


# -- statistics --------------------------------------------------------------------------------------

def statistics_task(ref: EpisodeRef, keys: Sequence[str] = DEFAULT_STAT_KEYS, images: bool = True,
                    image_samples: int = DEFAULT_IMAGE_SAMPLES) -> Dict[str, object]:
    """Feature statistics and a summary (length, streams, drops, sync error) of one episode."""
    from collector.recorder.summary import stream_summaries, sync_summaries

    with EpisodeReader(ref.path) as reader:
        present = [k for k in keys if k in reader.h5]
        cameras = reader.aligned_cameras if images and reader.has_aligned_view else []
        rows = int(reader.h5["timestamps"].shape[0]) if reader.has_aligned_view else 0
        meta = reader.metadata
        streams = stream_summaries(reader)
        sync = sync_summaries(reader)
    stats = episode_feature_stats(ref.path, present, cameras, image_samples=image_samples)
    summary = {
        "episode_id": ref.episode_id, "task": ref.task, "lighting": ref.lighting, "weight": ref.weight,
        "outcome": ref.outcome, "rows": rows, "duration_s": float(meta.get("duration_s") or 0.0),
        "dropped": {name: s.get("dropped", 0) for name, s in streams.items()},
        "gaps": {name: s.get("gaps", 0) for name, s in streams.items() if "gaps" in s},
        "samples": {name: s["count"] for name, s in streams.items()},
        "sync_max_ms": {name: s["abs_error_max_ms"] for name, s in sync.items()},
        "sync_invalid_rows": {name: s["invalid_rows"] for name, s in sync.items()},
    }
    return {"summary": summary, "stats": stats}


def reduce_statistics(values: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Dataset totals from statistics_task results (given in selection order)."""
    summaries = [v["summary"] for v in values]
    features: Dict[str, FeatureStats] = merge_all(v["stats"] for v in values)
    coverage = Counter((s["task"], s["lighting"], s["weight"], s["outcome"]) for s in summaries)
    streams: Dict[str, Dict[str, float]] = {}
    for s in summaries:
        for name, count in s["samples"].items():
            entry = streams.setdefault(name, {"samples": 0, "dropped": 0, "gaps": 0, "sync_max_ms": None,
                                              "sync_invalid_rows": 0})
            entry["samples"] += count
            entry["dropped"] += s["dropped"].get(name, 0)
            entry["gaps"] += s["gaps"].get(name, 0)
            if s["sync_max_ms"].get(name) is not None:
                entry["sync_max_ms"] = max(entry["sync_max_ms"] or 0.0, s["sync_max_ms"][name])
            entry["sync_invalid_rows"] += s["sync_invalid_rows"].get(name, 0)
    durations = np.array([s["duration_s"] for s in summaries], dtype=np.float64)
    return {
        "episodes": len(summaries),
        "frames": int(sum(s["rows"] for s in summaries)),
        "duration_s": float(durations.sum()),
        "episode_duration_s": {"min": float(durations.min()), "mean": float(durations.mean()),
                               "max": float(durations.max())} if durations.size else {},
        "coverage": [{"task": k[0], "lighting": k[1], "weight": k[2], "outcome": k[3], "episodes": n}
                     for k, n in sorted(coverage.items())],
        "streams": streams,
        "features": {name: s.as_dict() for name, s in features.items()},
        "_feature_stats": features,
    }
