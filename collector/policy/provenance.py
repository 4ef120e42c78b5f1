"""Where a policy's training data came from, checkable without git: every episode's id and the SHA-256
of its file, the dataset folders, the filters and the collector version."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, List, Optional, Set

import collector
from collector.dataset.selection import EpisodeRef
from collector.errors import DataError
from collector.file_digest import file_sha256
from collector.recorder import schema

def training_provenance(refs: Iterable[EpisodeRef], sources: List[str], filters: str,
                        held_out: Iterable[EpisodeRef] = (), scene_views=None) -> dict:
    """`episodes` are the ones trained on (hashed); `held_out` the validation episodes (ids only);
    `scene_views` (collector.policy.scene_views.SceneViews) the labelled views the object head saw."""
    refs = list(refs)
    views = {} if scene_views is None else {"scene_views": {
        "files": scene_views.files, "views": len(scene_views),
        # their layouts were seen in training too, so evaluation must not reuse their seeds
        "seeds": sorted({int(s) for s in scene_views.seeds})}}
    return {
        "collector_version": collector.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "sources": [str(Path(s).expanduser().resolve()) for s in sources],
        "dataset_roots": sorted({str(r.dataset_root) for r in refs if r.dataset_root is not None}),
        "filters": filters,
        "episodes": [{"episode_id": r.episode_id, "path": str(r.path), "sha256": file_sha256(r.path),
                      "task": r.task, "lighting": r.lighting, "weight": r.weight, "outcome": r.outcome,
                      "seed": episode_seed(r.path)}
                     for r in refs],
        "held_out": [r.episode_id for r in held_out],
        # validation episodes are not trained on, but their seeds recorded this dataset all the same
        "held_out_seeds": sorted({s for s in (episode_seed(r.path) for r in held_out) if s is not None}),
        **views,
    }


def episode_seed(path) -> Optional[int]:
    """The simulator seed an episode was recorded with (its conditions), None when it has none."""
    try:
        with schema.open_episode(Path(path)) as h5:
            conditions = schema.read_metadata(h5).get("conditions")
    except (DataError, OSError):
        return None
    seed = conditions.get("seed") if isinstance(conditions, dict) else None
    return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None


def recording_seeds(provenance: dict) -> Set[int]:
    """Every seed that recorded a checkpoint's dataset (trained on or held out for validation).
    Checkpoints older than the `seed` entries: read from the episode files that are still there."""
    seeds = set(provenance.get("held_out_seeds") or [])
    seeds.update(int(s) for s in (provenance.get("scene_views") or {}).get("seeds") or [])
    for entry in provenance.get("episodes") or []:
        seed = entry.get("seed") if "seed" in entry else (episode_seed(entry["path"]) if entry.get("path") else None)
        if seed is not None:
            seeds.add(int(seed))
    return seeds
