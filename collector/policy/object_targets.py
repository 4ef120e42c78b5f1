"""Where the objects were: an auxiliary training target read from the poses the simulator recorded.

A from-scratch CNN trained on a few dozen takes learns the layouts it saw rather than where the named
object is (docs/learning.md, the study). The recorded world state says exactly where every object was
in every frame, so a policy can be asked, during training only, to say it too: one more head on the
image features regresses the named target's position and every object's position. The head's output
is never used to act (the policy still sees only cameras, joint state and the instruction); it only
shapes the features. Episodes from a real robot have no pose streams: their rows are masked out of
that loss.

Layout of the target vector (3 values per entry, metres in the world frame): the named target object
(masked for a task without one), then every object stream in `names` order.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.dataset.episode import AlignedEpisode
from collector.policy.conditioning import NO_TARGET, episode_conditioning

POSE_PREFIX = "pose_objects_"


def object_names(episodes: Sequence[AlignedEpisode]) -> List[str]:
    """Every object with a recorded pose stream in any of the episodes, sorted (a stable layout)."""
    names = set()
    for episode in episodes:
        names.update(s[len(POSE_PREFIX):] for s in episode.reader().streams if s.startswith(POSE_PREFIX))
    return sorted(names)


def target_width(names: Sequence[str]) -> int:
    return 3 * (1 + len(names))


def episode_object_targets(episode: AlignedEpisode, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """{"value": (frames, width) float32, "mask": (frames, width) bool} at the aligned view's frames:
    each object's latest recorded position at or before the frame's time."""
    reader = episode.reader()
    frames = reader.timestamps
    value = np.zeros((len(frames), target_width(names)), np.float32)
    mask = np.zeros_like(value, dtype=bool)
    positions: Dict[str, np.ndarray] = {}
    for name in names:
        at = _positions_at(reader, POSE_PREFIX + name, frames)
        if at is not None:
            positions[name] = at
    _, target = episode_conditioning(episode.metadata)
    if target != NO_TARGET and target in positions:
        value[:, 0:3], mask[:, 0:3] = positions[target], True
    for k, name in enumerate(names, start=1):
        if name in positions:
            value[:, 3 * k:3 * k + 3], mask[:, 3 * k:3 * k + 3] = positions[name], True
    return {"value": value, "mask": mask}


def _positions_at(reader, stream: str, frames: np.ndarray) -> Optional[np.ndarray]:
    if stream not in reader.streams or reader.count(stream) == 0:
        return None
    stamps = reader.stamps(stream)
    poses = reader.raw(stream, "pose")[: len(stamps)]
    index = np.clip(np.searchsorted(stamps, frames + 1e-9, side="right") - 1, 0, len(stamps) - 1)
    return poses[index, :3].astype(np.float32)


def target_statistics(targets: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Per-value mean and std over the recorded (unmasked) rows; std floored at 1 cm so an object that
    never moved in one axis does not blow its residual up."""
    width = targets[0]["value"].shape[1] if targets else 0
    total = np.zeros(width)
    square = np.zeros(width)
    count = np.zeros(width)
    for t in targets:
        v = np.where(t["mask"], t["value"], 0.0)
        total += v.sum(0)
        square += (v ** 2).sum(0)
        count += t["mask"].sum(0)
    mean = total / np.maximum(count, 1)
    std = np.sqrt(np.maximum(square / np.maximum(count, 1) - mean ** 2, 0.0))
    return {"mean": mean.astype(np.float32), "std": np.maximum(std, 0.01).astype(np.float32)}
