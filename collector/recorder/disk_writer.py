"""The thread that owns the HDF5 file while an episode records.

Every `poll_s` (100 ms: larger batches, fewer HDF5 calls) it drains each stream's queue in batches
and appends them to /raw; at least every `flush_interval_s` it rewrites the counters and flushes the
file (and fsyncs it: also a power cut or OS crash loses at most one flush interval), which is what
makes a killed recording readable up to its last flush. Before every batch it
asks the StorageGuard whether the batch still fits, so a full disk or a file-size limit ends the
recording while the file is consistent.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional

import h5py
import numpy as np

from collector.errors import DataError
from collector.recorder.queues import LatencyHistogram, SampleQueue
from collector.recorder.raw_store import RawStreamStore
from collector.recorder.schema import COUNTERS_PATH
from collector.recorder.storage_guard import StorageFull, StorageGuard

log = logging.getLogger(__name__)

# Bound the memory of one batch (np.stack copies it) no matter how large a sample is.
_MAX_BATCH_BYTES = 8 * 1024 * 1024


def fsync_h5(h5: h5py.File) -> None:
    """Push what H5Fflush handed the OS on to the disk: without it a power cut or an OS crash can lose
    data a process kill would not. Drivers without a file descriptor (in-memory files) have nothing to sync."""
    handle = h5.id.get_vfd_handle()
    if isinstance(handle, int):
        os.fsync(handle)


def fsync_path(path) -> None:
    """fsync a closed file by path (HDF5 writes its last metadata at close)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskWriter(threading.Thread):
    def __init__(self, h5: h5py.File, stores: Dict[str, RawStreamStore], queues: Dict[str, SampleQueue],
                 guard: StorageGuard, counter_rows: Callable[[], np.ndarray], upstream_done: Callable[[], bool],
                 draining: threading.Event, abort: threading.Event,
                 flush_interval_s: float = 0.5, poll_s: float = 0.1, fsync: bool = True):
        super().__init__(name="recorder-disk-writer", daemon=True)
        self.h5 = h5
        self.stores = stores
        self.queues = queues
        self.guard = guard
        self._counter_rows = counter_rows
        self._upstream_done = upstream_done
        self._draining = draining
        self._abort = abort
        self.flush_interval_s = flush_interval_s
        self.poll_s = poll_s
        self.fsync = bool(fsync)
        self._wake = threading.Event()
        self._batch_limit = {name: max(1, _MAX_BATCH_BYTES // max(store.spec.sample_nbytes, 1))
                             for name, store in stores.items()}
        self.error: Optional[DataError] = None
        self.write_latency = LatencyHistogram()
        self.durable_latency = LatencyHistogram()
        self._unflushed_enqueue_times: List[np.ndarray] = []
        self.flushes = 0
        self.max_flush_s = 0.0
        self.last_flush_monotonic = time.monotonic()
        self.samples_discarded_after_error = 0

    def wake(self) -> None:
        self._wake.set()

    def add_stream(self, name: str, store: RawStreamStore, queue: SampleQueue) -> None:
        """Start writing a stream declared mid-episode. Called on this thread (from the flush's
        counter_rows), so no round is iterating the queues meanwhile."""
        self._batch_limit[name] = max(1, _MAX_BATCH_BYTES // max(store.spec.sample_nbytes, 1))
        self.stores[name] = store
        self.queues = {**self.queues, name: queue}

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval_s
        try:
            while not self._abort.is_set():
                cycle_start = time.monotonic()
                finishing = self._draining.is_set() and self._upstream_done()
                self._write_pending()
                now = time.monotonic()
                if now >= next_flush or finishing:
                    self.flush()
                    next_flush = now + self.flush_interval_s
                if finishing and not any(len(q) for q in self.queues.values()):
                    return
                # One round per poll_s whatever arrives meanwhile: batches stay large (few HDF5 calls).
                self._wake.wait(max(0.0, self.poll_s - (time.monotonic() - cycle_start)))
                self._wake.clear()
        except StorageFull as exc:
            self._fail(exc, exc)
        except BaseException as exc:  # h5py raises OSError or RuntimeError for failed writes
            self._fail(exc, self._describe_error(exc))

    def _write_pending(self) -> bool:
        """Write everything queued. The space check runs once per round (not per stream): each call
        that leaves Python hands the GIL back, which costs a scheduling round on a busy machine."""
        batches = []
        for name, queue in self.queues.items():
            while True:
                items = queue.drain(self._batch_limit[name])
                if items:
                    batches.append((self.stores[name], items))
                if len(items) < self._batch_limit[name]:
                    break
        if not batches:
            return False
        try:
            self.guard.check(self.h5.id.get_filesize(), sum(store.estimate_bytes(items) for store, items in batches))
        except StorageFull:
            self.samples_discarded_after_error += sum(len(items) for _, items in batches)
            raise
        for store, items in batches:
            store.append(items)
            done = time.monotonic()
            enqueued = np.fromiter((item.enqueued for item in items), dtype=np.float64, count=len(items))
            self.write_latency.add(done - enqueued)
            self._unflushed_enqueue_times.append(enqueued)
        return True

    def flush(self) -> None:
        start = time.monotonic()
        self.h5[COUNTERS_PATH][...] = self._counter_rows()
        self.h5.flush()
        if self.fsync:
            fsync_h5(self.h5)
        end = time.monotonic()
        self.flushes += 1
        self.max_flush_s = max(self.max_flush_s, end - start)
        self.last_flush_monotonic = end
        for enqueued in self._unflushed_enqueue_times:
            self.durable_latency.add(end - enqueued)
        self._unflushed_enqueue_times.clear()

    # -- failure --------------------------------------------------------------------------------
    def _describe_error(self, exc: BaseException) -> DataError:
        text = str(exc)
        code = getattr(exc, "errno", None)
        if code == errno.ENOSPC or "errno = 28" in text or "No space left" in text:
            what = "disk full"
        elif code == errno.EFBIG or "errno = 27" in text or "File too large" in text:
            what = "file-size limit reached"
        else:
            what = "write failed"
        first_line = text.splitlines()[0] if text else type(exc).__name__
        return DataError(f"recording stopped: {what} while writing {self.guard.path.name} "
                         f"({type(exc).__name__}: {first_line})")

    def _fail(self, exc: BaseException, error: DataError) -> None:
        """Stop recording but keep the file readable: flush what HDF5 holds, using the disk reserve."""
        self.error = error
        log.error("%s", error)
        if not isinstance(exc, StorageFull):
            # A real write error: free the reserve so the final flush has room.
            log.error("%s", exc)
            self.guard.release_reserve()
        for attempt in range(2):
            try:
                self.flush()
                break
            except Exception as flush_exc:  # keep trying once with the reserve released
                log.error("flush after the error failed (%s)", flush_exc)
                self.guard.release_reserve()
        # Nothing more will be written: release producers' frame workers and count what is left.
        self._abort.set()
        for queue in self.queues.values():
            self.samples_discarded_after_error += len(queue.drain())
