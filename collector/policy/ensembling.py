"""How predicted action chunks become one action per tick.

`TemporalEnsembler` is ACT's temporal ensembling: the policy is queried every tick, each query
predicts the next `chunk` actions, and the action for tick t is the weighted mean of every
prediction made for t so far, with weights exp(-m * i) where i = 0 is the *oldest* prediction
(m = 0.01 in the paper: older predictions weigh slightly more, which smooths the motion; a smaller
m follows new observations faster, a negative one weighs the newest most). The first tick therefore
returns the first chunk's first action.

`ChunkQueue` is the cheaper alternative: query once per `chunk` ticks (or every `replan` ticks) and
play the chunk out. It needs one inference per chunk instead of one per tick, at the cost of a
visible seam where one chunk ends and the next begins.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, Optional

import numpy as np


class TemporalEnsembler:
    def __init__(self, chunk: int, m: float = 0.01):
        self.chunk, self.m = int(chunk), float(m)
        self.reset()

    def reset(self) -> None:
        # slot k is the tick k ahead: the weighted sum of its predictions, the sum of their weights,
        # and how many there were (the next prediction for it weighs exp(-m * count))
        self._sums: Optional[np.ndarray] = None
        self._weights: Optional[np.ndarray] = None
        self._counts: Optional[np.ndarray] = None

    @property
    def needs_chunk(self) -> bool:
        return True  # every tick takes a fresh prediction

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted at this tick (chunk, A) and return this tick's action."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if self._sums is None:
            self._sums = np.zeros_like(chunk)
            self._weights = np.zeros(len(chunk))
            self._counts = np.zeros(len(chunk), dtype=np.int64)
        w = np.exp(-self.m * self._counts)  # the i-th prediction for a tick weighs exp(-m * i)
        self._sums += w[:, None] * chunk
        self._weights += w
        self._counts += 1
        action = self._sums[0] / self._weights[0]
        # advance one tick: drop the tick just served, open an empty slot at the far end
        self._sums = np.roll(self._sums, -1, axis=0)
        self._weights = np.roll(self._weights, -1)
        self._counts = np.roll(self._counts, -1)
        self._sums[-1], self._weights[-1], self._counts[-1] = 0.0, 0.0, 0
        return action


class ChunkQueue:
    def __init__(self, chunk: int, replan: Optional[int] = None):
        self.chunk = int(chunk)
        self.replan = int(replan or chunk)
        if not 1 <= self.replan <= self.chunk:
            raise ValueError(f"replan must be in 1..{self.chunk}, got {self.replan}")
        self.reset()

    def reset(self) -> None:
        self._queue: Deque[np.ndarray] = deque()
        self._served = 0

    @property
    def needs_chunk(self) -> bool:
        return not self._queue or self._served >= self.replan

    def update(self, chunk: Optional[np.ndarray]) -> np.ndarray:
        if chunk is not None:
            self._queue = deque(np.asarray(chunk, dtype=np.float64))
            self._served = 0
        self._served += 1
        return self._queue.popleft()
