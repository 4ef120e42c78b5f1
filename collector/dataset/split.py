"""Train/validation split by episode, never by frame (frames of one take are nearly identical, so a
frame split leaks the validation set into training).

Each episode's side is decided by a hash of (seed, episode id) alone, not by its position in a list:
when new episodes are recorded, no existing episode changes side, and a model's validation numbers
stay comparable across dataset versions.
"""
from __future__ import annotations

import hashlib
from typing import List, Sequence, Tuple, TypeVar

from collector.errors import ConfigError

T = TypeVar("T")
SPLITS = ("train", "val", "all")


def _unit_hash(seed: int, episode_id: str) -> float:
    digest = hashlib.sha256(f"{seed}:{episode_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_episodes(items: Sequence[T], ids: Sequence[str], val_fraction: float,
                   seed: int = 0) -> Tuple[List[T], List[T]]:
    """(train, val) keeping the input order in each; at least one validation episode when
    val_fraction > 0 and there are two or more episodes."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if len(items) != len(ids):
        raise ValueError("items and ids differ in length")
    scores = [_unit_hash(seed, i) for i in ids]
    is_val = [s < val_fraction for s in scores]
    if val_fraction > 0 and len(items) >= 2 and not any(is_val):
        is_val[min(range(len(items)), key=scores.__getitem__)] = True
    if all(is_val):  # never leave training empty
        is_val[max(range(len(items)), key=scores.__getitem__)] = False
    train = [x for x, v in zip(items, is_val) if not v]
    val = [x for x, v in zip(items, is_val) if v]
    return train, val
