"""Normalization statistics of a set of episodes: computed once (on a job engine), cached by content.

`episode_feature_stats` is the per-episode task (pure: same file, same answer), `dataset_feature_stats`
maps it over episodes and merges in episode order. The cache key is a hash of every episode's path,
size and modification time plus the feature list, so adding, removing or rewriting an episode
recomputes, and nothing else does.

Features are named the LeRobot way: "observation.state" (the qpos of the aligned view), "action",
"observation.velocity" / "observation.effort" (qvel / effort), "observation.<name>" for other
low-dimensional observations, "observation.images.<camera>" for
cameras (per-channel statistics of pixel values scaled to [0, 1], from evenly spaced frames).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.dataset.episode import ACTION_KEY, STATE_KEY, AlignedEpisode
from collector.dataset.statistics import FeatureStats, merge_all
from collector.errors import DataError

CACHE_VERSION = 1
IMAGE_PREFIX = "observation.images."
# Frames per episode sampled for image statistics: enough for stable channel means, cheap to decode.
DEFAULT_IMAGE_SAMPLES = 16


# The aligned view's standard datasets and their feature names (shared with the LeRobot export).
STANDARD_FEATURES = {STATE_KEY: "observation.state", "observations/qvel": "observation.velocity",
                     "observations/effort": "observation.effort", ACTION_KEY: "action"}


def feature_name(key: str) -> str:
    """LeRobot-style feature name of an HDF5 key of the aligned view."""
    if key in STANDARD_FEATURES:
        return STANDARD_FEATURES[key]
    if key.startswith("observations/images/"):
        return IMAGE_PREFIX + key.rsplit("/", 1)[1]
    if key.startswith("observations/"):
        return "observation." + key.split("/", 1)[1].replace("/", ".")
    return key.replace("/", ".")


def image_sample_rows(length: int, samples: int) -> np.ndarray:
    return np.unique(np.linspace(0, length - 1, min(length, samples)).round().astype(np.int64))


def episode_feature_stats(path, keys: Sequence[str], cameras: Sequence[str] = (),
                          image_samples: int = DEFAULT_IMAGE_SAMPLES) -> Dict[str, FeatureStats]:
    """Statistics of one episode's low-dimensional keys (over rows) and cameras (per channel)."""
    with AlignedEpisode(path) as episode:
        out: Dict[str, FeatureStats] = {}
        for key in keys:
            values = episode.read(key)
            if values.ndim == 1:
                values = values[:, None]
            try:
                out[feature_name(key)] = FeatureStats.of(values.reshape(len(values), -1), axis=0)
            except DataError as exc:
                raise DataError(f"{path}: /{key}: {exc}") from None
        for camera in cameras:
            frames = episode.images(camera, image_sample_rows(episode.length, image_samples))
            out[IMAGE_PREFIX + camera] = FeatureStats.of_pixels(frames)
        return out


def dataset_feature_stats(paths: Sequence, keys: Sequence[str], cameras: Sequence[str] = (), engine=None,
                          image_samples: int = DEFAULT_IMAGE_SAMPLES) -> Dict[str, FeatureStats]:
    """Merged statistics over episodes; `engine` (a JobEngine) spreads the episodes over workers."""
    from collector.dataset.jobs.engine import JobEngine

    paths = [str(p) for p in paths]
    owned = engine is None
    engine = engine or JobEngine("inline")
    try:
        outcomes = engine.map(episode_feature_stats, paths, desc="statistics", keys=list(keys),
                              cameras=list(cameras), image_samples=image_samples)
    finally:
        if owned:
            engine.close()
    bad = [o for o in outcomes if not o.ok]
    if bad:
        listed = "; ".join(f"{o.item}: {o.error}" for o in bad[:3])
        raise DataError(f"statistics failed for {len(bad)} episode(s): {listed}")
    return merge_all(o.value for o in outcomes)


# -- cache ------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    root = os.environ.get("COLLECTOR_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME")
                                                             or os.path.expanduser("~/.cache"), "collector")
    return Path(root) / "stats"


def content_key(paths: Sequence, keys: Sequence[str], cameras: Sequence[str], image_samples: int) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, list(keys), list(cameras), image_samples]).encode())
    for p in sorted(str(Path(p).resolve()) for p in paths):
        st = os.stat(p)
        digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def cached_feature_stats(paths: Sequence, keys: Sequence[str], cameras: Sequence[str] = (), engine=None,
                         cache_dir: Optional[Path] = None,
                         image_samples: int = DEFAULT_IMAGE_SAMPLES) -> Dict[str, FeatureStats]:
    """dataset_feature_stats, read from the cache when these exact files were seen before."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    cache_file = cache_dir / f"{content_key(paths, keys, cameras, image_samples)}.json"
    if cache_file.is_file():
        try:
            state = json.loads(cache_file.read_text())
            return {name: FeatureStats.from_state(s) for name, s in state["features"].items()}
        except (ValueError, KeyError, DataError):
            pass  # a damaged cache entry is recomputed and overwritten
    stats = dataset_feature_stats(paths, keys, cameras, engine=engine, image_samples=image_samples)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "episodes": len(paths),
                                   "features": {n: s.to_state() for n, s in stats.items()}}))
        os.replace(tmp, cache_file)  # atomic: concurrent trainers never read half a file
    except OSError:
        pass  # a read-only cache only costs a recomputation next time
    return stats


def stats_table(stats: Dict[str, FeatureStats]) -> Dict[str, Dict[str, List]]:
    return {name: s.as_dict() for name, s in stats.items()}
