"""Joint state and action normalization for policies: the dataset's statistics, ACT's std floor.

The statistics themselves are `collector.dataset.normalization`'s (computed over the training
episodes, cached by file content; FeatureStats from collector.dataset.statistics). What differs from
`EpisodeDataset(normalize=True)` is the floor under the standard deviation: the dataset floors it at
1e-6 only to avoid dividing by zero, which blows a joint that barely moved (an idle arm jittering by
0.001 rad under IK) up to unit scale, so the policy spends its capacity predicting noise and its
loss says little. ACT clips the std at 1e-2 for the same reason; so does this (0.01 rad is about
half a degree: motion below it is not a demonstration's intent).
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from collector.dataset.statistics import FeatureStats

STATE = "observation.state"
ACTION = "action"
STD_FLOOR = 1e-2


class Normalizer:
    def __init__(self, stats: Mapping[str, FeatureStats], std_floor: float = STD_FLOOR):
        self.stats = {name: stats[name] for name in (STATE, ACTION) if name in stats}
        self.std_floor = float(std_floor)
        self._mean_std = {name: (s.mean.astype(np.float32), np.maximum(s.std, self.std_floor).astype(np.float32))
                          for name, s in self.stats.items()}

    def normalize(self, name: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        if name not in self._mean_std:
            return values
        mean, std = self._mean_std[name]
        return (values - mean) / std

    def unnormalize(self, name: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        if name not in self._mean_std:
            return values
        mean, std = self._mean_std[name]
        return values * std + mean

    def to_state(self) -> dict:
        return {"std_floor": self.std_floor, "features": {n: s.to_state() for n, s in self.stats.items()}}

    @classmethod
    def from_state(cls, state: Mapping) -> "Normalizer":
        return cls({n: FeatureStats.from_state(s) for n, s in state["features"].items()}, state["std_floor"])

    def mean(self, name: str) -> Optional[np.ndarray]:
        return self._mean_std[name][0] if name in self._mean_std else None

    def std(self, name: str) -> Optional[np.ndarray]:
        return self._mean_std[name][1] if name in self._mean_std else None
