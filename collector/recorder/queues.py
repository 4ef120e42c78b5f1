"""Bounded hand-off between producer threads and the recorder's worker threads.

A full queue never makes a realtime producer wait: the new sample is dropped and counted, because
a control loop stalled by the disk is worse than a missing sample (and the count is recorded). A
lockstep producer (simulated time) has no deadline, so the recorder makes it wait for room instead.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Any, Callable, List, NamedTuple, Optional, Union

import numpy as np


class PushedSample(NamedTuple):
    """A sample as push() queues it."""

    t: float  # its stamp (session clock)
    values: tuple  # the checked field arrays, in the stream spec's field order
    enqueued: float  # time.monotonic() at push: write and durable latencies start here


class EncodedFrame(NamedTuple):
    """A camera frame as its FrameWorker hands it to the disk writer."""

    t: float
    payload: Any  # the image itself (raw / lzf codecs) or its JPEG bytes (uint8 array)
    enqueued: float  # carried over from the PushedSample
    crc32: int  # of the payload as stored


class SampleQueue:
    """FIFO of at most `capacity` items with drop counting and a high-water mark."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = int(capacity)
        self._items: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self.dropped = 0
        self.high_water = 0
        self.total_in = 0
        self.total_out = 0

    def put_nowait(self, item: Any) -> bool:
        """Queue the item, or count it as dropped if the queue is full. Never blocks."""
        with self._lock:
            if len(self._items) >= self.capacity:
                self.dropped += 1
                return False
            self._items.append(item)
            self.total_in += 1
            if len(self._items) > self.high_water:
                self.high_water = len(self._items)
            return True

    def put_wait(self, item: Any, stop: Union[threading.Event, Callable[[], bool]],
                 stall_timeout: Optional[float] = None) -> bool:
        """Wait for room (back-pressure) unless `stop` is set (an Event, or a callable that says so:
        e.g. the consumer failed) or the consumer takes nothing out for `stall_timeout` seconds (then
        drop): a slow consumer is waited for, only a stalled or failed one is not."""
        stopped = stop.is_set if isinstance(stop, threading.Event) else stop
        deadline = None if stall_timeout is None else time.monotonic() + stall_timeout
        with self._not_full:
            taken = self.total_out
            while len(self._items) >= self.capacity:
                if self.total_out != taken:  # the consumer is making progress: the stall clock restarts
                    taken = self.total_out
                    deadline = None if stall_timeout is None else time.monotonic() + stall_timeout
                if stopped() or (deadline is not None and time.monotonic() >= deadline):
                    self.dropped += 1
                    return False
                self._not_full.wait(0.05)
            self._items.append(item)
            self.total_in += 1
            if len(self._items) > self.high_water:
                self.high_water = len(self._items)
            return True

    def drain(self, limit: int = 0) -> List[Any]:
        """Remove and return up to `limit` items (all if 0), oldest first."""
        with self._lock:
            n = len(self._items) if limit <= 0 else min(limit, len(self._items))
            out = [self._items.popleft() for _ in range(n)]
            self.total_out += len(out)
            if out:
                self._not_full.notify_all()
            return out

    def get(self, timeout: float) -> Any:
        """Oldest item, or None after `timeout` seconds without one (polling keeps shutdown simple)."""
        with self._not_full:
            if not self._items:
                self._not_full.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self.total_out += 1
            self._not_full.notify_all()
            return item

    def notify(self):
        """Wake a consumer blocked in get() (used after pushing, and at shutdown)."""
        with self._not_full:
            self._not_full.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class LatencyHistogram:
    """Fixed log-spaced bins from 10 us to 100 s: percentiles of millions of samples in constant memory."""

    def __init__(self, lo_s: float = 1e-5, hi_s: float = 100.0, bins_per_decade: int = 40):
        decades = np.log10(hi_s / lo_s)
        self._edges = lo_s * 10 ** (np.arange(int(decades * bins_per_decade) + 1) / bins_per_decade)
        self._counts = np.zeros(len(self._edges) + 1, dtype=np.int64)
        self.max_s = 0.0
        self.count = 0

    def add(self, latencies_s) -> None:
        values = np.asarray(latencies_s, dtype=np.float64).ravel()
        if values.size == 0:
            return
        idx = np.searchsorted(self._edges, values, side="right")
        np.add.at(self._counts, idx, 1)
        self.count += int(values.size)
        self.max_s = max(self.max_s, float(values.max()))

    def percentile(self, q: float) -> float:
        """Upper edge of the bin holding the q-th percentile (a slight over-estimate, never under)."""
        if self.count == 0:
            return 0.0
        rank = int(np.ceil(q / 100.0 * self.count))
        cumulative = np.cumsum(self._counts)
        bin_index = int(np.searchsorted(cumulative, max(rank, 1)))
        if bin_index >= len(self._edges):
            return self.max_s
        return float(min(self._edges[bin_index], self.max_s))

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "p50_ms": round(self.percentile(50) * 1e3, 3),
            "p99_ms": round(self.percentile(99) * 1e3, 3),
            "max_ms": round(self.max_s * 1e3, 3),
        }
