"""Training samples for a policy: `EpisodeDataset`'s state and action chunks (normalized here with the
policy's Normalizer), camera frames downscaled to the policy's image size, the conditioning ids.

The frames are read here rather than by `EpisodeDataset` (which is built with no cameras) so each is
decoded and downscaled once and then kept, small, in memory: a 320x240 JPEG costs ~0.4 ms to decode,
an 80x60 frame 14 KB to keep, and a training run visits every frame dozens of times. Past
`cache_mb` new frames are decoded every time instead. The cache lives in the process that reads, so
it pays off with the default `num_workers=0` (CPU training on a small machine).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from collector.dataset.episode_dataset import EpisodeDataset, view_camera_name
from collector.errors import DataError
from collector.policy.images import downscale, to_chw_float
from collector.policy.normalization import ACTION, STATE, Normalizer


class PolicySamples(Dataset):
    def __init__(self, episodes: EpisodeDataset, cameras: Sequence[str], image_size: Tuple[int, int],
                 conditioning: Sequence[Sequence[int]], normalizer: Normalizer, cache_mb: float = 1024.0,
                 object_targets: Optional[Sequence[Dict[str, np.ndarray]]] = None,
                 object_statistics: Optional[Dict[str, np.ndarray]] = None, kinematics=None):
        if episodes.normalize:
            raise ValueError("build the EpisodeDataset with normalize=False; the Normalizer normalizes")
        self.episodes = episodes
        self.normalizer = normalizer
        self.image_size = tuple(image_size)
        self.cameras = resolve_cameras(episodes, cameras)
        if len(conditioning) != len(episodes.refs):
            raise ValueError("one conditioning entry per episode is needed")
        self.conditioning = [np.asarray(ids, dtype=np.int64) for ids in conditioning]
        # collector.policy.object_targets: per episode {"value", "mask"} per frame, for an auxiliary loss
        self.object_targets = object_targets
        self.object_statistics = object_statistics
        self.kinematics = kinematics  # collector.policy.end_effectors: the hands' positions from the joint state
        self._cache: Dict[Tuple[int, int, int], np.ndarray] = {}
        h, w = self.image_size
        self._cache_limit = int(cache_mb * 1e6 // max(1, h * w * 3))

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index) -> Dict[str, np.ndarray]:
        sample = self.episodes[int(index)]
        e, t = int(sample["episode_index"]), int(sample["frame_index"])
        h, w = self.image_size
        images = np.stack([self._frame(e, t, c) for c in range(len(self.cameras))]) if self.cameras \
            else np.zeros((0, 3, h, w), np.float32)
        item = {"images": images, "state": self.normalizer.normalize(STATE, sample["observation.state"]),
                "conditioning": self.conditioning[e], "action": self.normalizer.normalize(ACTION, sample["action"]),
                "action_is_pad": sample["action_is_pad"]}
        if self.object_targets is not None:
            targets, stats = self.object_targets[e], self.object_statistics
            item["objects"] = ((targets["value"][t] - stats["mean"]) / stats["std"]).astype(np.float32)
            item["objects_mask"] = targets["mask"][t]
        if self.kinematics is not None:
            item["ee"] = self.kinematics.positions(sample["observation.state"])
        return item

    def _frame(self, e: int, t: int, camera: int) -> np.ndarray:
        key = (e, t, camera)
        small = self._cache.get(key)
        if small is None:
            frame = self.episodes.episodes[e].images(self.cameras[camera], [t])[0]
            small = downscale(frame, self.image_size)
            if len(self._cache) < self._cache_limit:
                self._cache[key] = small
        return to_chw_float(small)


def resolve_cameras(episodes: EpisodeDataset, cameras: Sequence[str]) -> List[str]:
    """The aligned view's names of the requested cameras; a DataError names an episode lacking one."""
    resolved: Optional[List[str]] = None
    for episode in episodes.episodes:
        available = episode.cameras
        names = [view_camera_name(c, available) for c in cameras]
        missing = [c for c in names if c not in available]
        if missing:
            raise DataError(f"{episode.path}: no camera {', '.join(missing)} in the aligned view "
                            f"(cameras: {', '.join(available) or 'none'})")
        resolved = resolved or names
    return resolved or list(cameras)
