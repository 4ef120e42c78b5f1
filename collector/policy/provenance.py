"""Where a policy's training data came from, checkable without git: every episode's id and the SHA-256
of its file, the dataset folders, the filters and the collector version."""
from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, List

import collector
from collector.dataset.selection import EpisodeRef

HASH_BLOCK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def training_provenance(refs: Iterable[EpisodeRef], sources: List[str], filters: str,
                        held_out: Iterable[EpisodeRef] = ()) -> dict:
    """`episodes` are the ones trained on (hashed); `held_out` the validation episodes (ids only)."""
    refs = list(refs)
    return {
        "collector_version": collector.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "sources": [str(Path(s).expanduser().resolve()) for s in sources],
        "dataset_roots": sorted({str(r.dataset_root) for r in refs if r.dataset_root is not None}),
        "filters": filters,
        "episodes": [{"episode_id": r.episode_id, "path": str(r.path), "sha256": file_sha256(r.path),
                      "task": r.task, "lighting": r.lighting, "weight": r.weight, "outcome": r.outcome}
                     for r in refs],
        "held_out": [r.episode_id for r in held_out],
    }
