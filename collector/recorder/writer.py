"""EpisodeWriter: record one episode to one HDF5 file, crash-safe, without ever blocking a producer.

    w = EpisodeWriter(directory, "episode_000001", streams=[...], metadata={...})
    w.start()                                  # creates <directory>/episode_000001.partial.h5
    w.push("joints", t, position=q, velocity=dq, effort=tau)   # any thread; returns False if not kept
    path = w.stop(outcome="success")           # aligned view, final attributes, atomic rename

Threads: producers only validate and enqueue (bounded queues, counted drops); one FrameWorker per
camera fingerprints and JPEG-encodes; one DiskWriter appends to /raw and flushes at least every
`flush_interval_s` (<= 1 s). stop() drains the queues, writes the aligned view with collector.sync
and renames the file; a killed writer leaves a partial file that `recover_episode` finishes.
"""
from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional

import h5py
import numpy as np

import collector
from collector.errors import ConfigError, DataError
from collector.recorder import schema
from collector.recorder.aligned import AlignedViewConfig, write_aligned_view
from collector.recorder.disk_writer import DiskWriter, fsync_path
from collector.recorder.frame_worker import FrameWorker
from collector.recorder.queues import PushedSample, SampleQueue
from collector.recorder.raw_store import RawStreamStore
from collector.recorder.samples import REASONS, RejectedSample, SampleChecker
from collector.recorder.storage_guard import MiB, StorageFull, StorageGuard, ignore_file_size_signal
from collector.recorder.streams import Sink, StreamSpec

log = logging.getLogger(__name__)

_NEW, _RECORDING, _STOPPING, _STOPPED, _FAILED, _DISCARDED = (
    "new", "recording", "stopping", "stopped", "failed", "discarded")

# How long a lockstep producer waits for room in a full queue while the recorder takes *nothing* out
# of it before the sample is dropped after all. A failed disk or worker stops the wait at once (the
# writer's error, its abort); this limit is only for a recorder that stalls without failing. 5 s was
# too short: a corrected take recorded beside CPU- and fsync-heavy jobs (load average ~28) dropped
# samples from four streams while its writer was starved.
LOCKSTEP_WAIT_S = 60.0

# HDF5 chunk cache per dataset: holds the open chunk of each appendable dataset between flushes.
_CHUNK_CACHE_BYTES = 2 * MiB


def open_for_recording(path: Path) -> h5py.File:
    """Create the partial file so that a kill leaves it readable up to the last flush.

    Default (earliest) file format: no SWMR and no superblock status flags, so a killed file opens
    with plain h5py without `h5clear`. Metadata-cache evictions are disabled so that the file's
    metadata reaches the disk only at flushes, each of which leaves a consistent file; between
    flushes nothing on disk refers to half-updated structures.
    """
    h5 = h5py.File(str(path), "x", rdcc_nbytes=_CHUNK_CACHE_BYTES)
    config = h5.id.get_mdc_config()
    config.evictions_enabled = False
    config.incr_mode = 0  # H5C_incr__off: required when evictions are disabled
    config.flash_incr_mode = 0
    config.decr_mode = 0
    h5.id.set_mdc_config(config)
    return h5


class _RateLimitedLog:
    """Logs the 1st, 10th, 100th, ... occurrence of each (stream, reason): visible, never a flood."""

    def __init__(self):
        self._counts: Dict[tuple, int] = {}

    def warn(self, key: tuple, message: str) -> None:
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n == 1 or math.log10(n).is_integer():
            log.warning("%s (occurrence %d)", message, n)


class EpisodeWriter(Sink):
    """Records one episode. See the module docstring and docs/recorder.md.

    directory, episode_id: the file becomes <directory>/<episode_id>.hdf5 (".partial.h5" while recording).
    streams: the StreamSpecs producers will push.
    metadata: root attributes (task, operator, conditions={lighting, weights}, sim, ...).
    aligned_rate_hz / aligned_reference / aligned_streams: the aligned view's timeline (fixed grid at
        aligned_rate_hz, default the fastest camera's rate or 50 Hz; or the stamps of stream
        `aligned_reference`) and which extra streams it includes besides joints, command and cameras.
    aligned_images: "jpeg" (ALOHA compress=True), "pixels", or "auto" (jpeg if every camera records JPEG).
    flush_interval_s: at most this much recorded time is lost if the process is killed (<= 1 s).
    queue_seconds: each stream's queue holds this many seconds at its nominal rate before dropping
        (in lockstep, set_lockstep(True), push waits up to LOCKSTEP_WAIT_S for room instead).
    min_free_bytes: recording stops cleanly when the disk has less free space than this.
    fsync: every flush, and the finished file before its rename, reach the disk (not only the OS), so a
        power cut or an OS crash loses no more than a killed process would (about 5 ms per flush here).
    """

    def __init__(self, directory, episode_id: str, streams: Iterable[StreamSpec],
                 metadata: Optional[Mapping] = None, aligned_rate_hz: Optional[float] = None,
                 aligned_reference: Optional[str] = None, aligned_streams: Iterable[str] = (),
                 aligned_images: str = "auto", flush_interval_s: float = 0.5, queue_seconds: float = 4.0,
                 min_free_bytes: int = 64 * MiB, reserve_bytes: int = 8 * MiB, copy_samples: bool = True,
                 fsync: bool = True):
        self.directory = Path(directory)
        self.episode_id = schema.check_episode_id(episode_id)
        specs = list(streams)
        if not specs:
            raise ConfigError("an episode needs at least one stream")
        self.specs: Dict[str, StreamSpec] = {}
        for spec in specs:
            if not isinstance(spec, StreamSpec):
                raise ConfigError(f"streams must be StreamSpec objects, got {type(spec).__name__}")
            if spec.name in self.specs:
                raise ConfigError(f"stream {spec.name!r} is declared twice")
            self.specs[spec.name] = spec
        self.metadata = schema.check_metadata(metadata or {})
        self.aligned_config = AlignedViewConfig(
            rate_hz=aligned_rate_hz, reference=aligned_reference, extra_streams=tuple(aligned_streams),
            image_format=aligned_images,
        ).resolve(self.specs)
        if not (0 < flush_interval_s <= 1.0):
            raise ConfigError(f"flush_interval_s must be in (0, 1] seconds, got {flush_interval_s!r}")
        if not queue_seconds > 0:
            raise ConfigError(f"queue_seconds must be positive, got {queue_seconds!r}")
        self.flush_interval_s = float(flush_interval_s)
        self.queue_seconds = float(queue_seconds)
        self.copy_samples = bool(copy_samples)
        self.fsync = bool(fsync)
        self.wait_for_room_s = 0.0  # set_lockstep(True): how long push may wait for a full queue
        self.partial_path = schema.partial_path(self.directory, self.episode_id)
        self.final_path = schema.final_path(self.directory, self.episode_id)
        self._guard = StorageGuard(self.partial_path, min_free_bytes=min_free_bytes, reserve_file_bytes=reserve_bytes)

        self._state = _NEW
        self._state_lock = threading.Lock()
        self._draining = threading.Event()
        self._abort = threading.Event()
        self._checkers = {name: SampleChecker(spec) for name, spec in self.specs.items()}
        self._locks = {name: threading.Lock() for name in self.specs}
        self._push_queues = {name: SampleQueue(self._capacity(spec)) for name, spec in self.specs.items()}
        # Cameras: push queue -> FrameWorker -> this queue -> disk writer; others go straight to disk.
        self._disk_queues = {
            name: SampleQueue(self._encoded_capacity(spec)) if spec.is_camera else self._push_queues[name]
            for name, spec in self.specs.items()
        }
        self._pushed = dict.fromkeys(self.specs, 0)
        self._rejected = {name: dict.fromkeys(REASONS, 0) for name in self.specs}
        self._unknown_streams: Dict[str, int] = {}
        self._added_streams: list = []  # declared mid-episode, not yet in the file (see add_stream)
        self._added_lock = threading.Lock()
        self._unknown_lock = threading.Lock()
        self._after_stop = 0
        self._log = _RateLimitedLog()
        self._h5: Optional[h5py.File] = None
        self._stores: Dict[str, RawStreamStore] = {}
        self._workers: list = []
        self._disk: Optional[DiskWriter] = None
        self._worker_error: Optional[BaseException] = None
        self._timings: Dict[str, float] = {}

    def _capacity(self, spec: StreamSpec) -> int:
        return max(16, int(math.ceil(spec.rate_hz * self.queue_seconds)))

    def _encoded_capacity(self, spec: StreamSpec) -> int:
        """JPEG frames are ~20x smaller than pixels, so their queue to the disk writer is 4x longer in
        time than the push queue: a stalled disk is absorbed by cheap encoded frames first."""
        if spec.codec == "jpeg":
            return 4 * self._capacity(spec)
        return max(4, self._capacity(spec) // 4)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "EpisodeWriter":
        with self._state_lock:
            if self._state != _NEW:
                raise DataError(f"episode {self.episode_id}: start() called twice")
            self.directory.mkdir(parents=True, exist_ok=True)
            for existing in (self.final_path, schema.final_path(self.directory, self.episode_id, legacy=True),
                             self.partial_path):
                if existing.exists():
                    raise DataError(f"episode {self.episode_id} already exists at {existing}; "
                                    "earlier episodes are never overwritten")
            ignore_file_size_signal()
            self._guard.start()
            try:
                self._h5 = open_for_recording(self.partial_path)
                self._create_layout()
                self._h5.flush()
            except FileExistsError as exc:
                self._guard.release_reserve()
                raise DataError(f"episode {self.episode_id} already exists at {self.partial_path}") from exc
            except BaseException:
                self._guard.release_reserve()
                if self._h5 is not None:
                    self._h5.close()
                    self.partial_path.unlink(missing_ok=True)
                raise
            for name, spec in self.specs.items():
                if spec.is_camera:
                    worker = FrameWorker(spec, self._push_queues[name], self._disk_queues[name],
                                         self._draining, self._abort, self._on_worker_error)
                    self._workers.append(worker)
            self._disk = DiskWriter(
                self._h5, self._stores, self._disk_queues, self._guard, self._counter_rows,
                upstream_done=lambda: not any(w.is_alive() for w in self._workers),
                draining=self._draining, abort=self._abort, flush_interval_s=self.flush_interval_s,
                fsync=self.fsync)
            for thread in [*self._workers, self._disk]:
                thread.start()
            self._state = _RECORDING
        _live_writers.add(self)
        log.info("recording episode %s to %s", self.episode_id, self.partial_path)
        return self

    def _create_layout(self) -> None:
        h5 = self._h5
        h5.attrs["schema"] = schema.SCHEMA_NAME
        h5.attrs["schema_version"] = np.int64(schema.SCHEMA_VERSION)
        h5.attrs["status"] = schema.STATUS_RECORDING
        h5.attrs["recovered"] = np.bool_(False)
        metadata = dict(self.metadata)
        metadata.setdefault("started_at", schema.utc_now_iso())
        metadata.setdefault("software_version", f"collector {collector.__version__}")
        metadata.setdefault("outcome", "unknown")
        metadata.setdefault("conditions", {})
        if "sim" not in metadata:
            log.warning("episode %s: metadata has no 'sim' flag; recording it as sim=False", self.episode_id)
            metadata["sim"] = False
        metadata["episode_id"] = self.episode_id
        metadata["duration_s"] = 0.0
        metadata["aligned_view"] = self.aligned_config.to_dict()  # recover rebuilds the view from it
        metadata["flush_interval_s"] = self.flush_interval_s
        schema.write_metadata(h5, metadata)
        raw = h5.create_group(schema.RAW_GROUP)
        raw.attrs["streams"] = json.dumps(list(self.specs))
        for spec in self.specs.values():
            self._stores[spec.name] = RawStreamStore.create(raw, spec)
        counters = h5.create_dataset(schema.COUNTERS_PATH, data=self._counter_rows())
        counters.attrs["columns"] = json.dumps(schema.COUNTER_COLUMNS)
        counters.attrs["streams"] = json.dumps(list(self.specs))

    # -- streams declared while recording -------------------------------------------------------
    def add_stream(self, spec: StreamSpec) -> None:
        """Declare a stream after start(): a topic discovered mid-episode (rosbag2 records those too).

        Pushes to it are accepted from the moment this returns. The disk writer creates its group at
        its next flush, on its own thread (the only one that may change the file while recording), and
        writes the samples queued meanwhile. Camera streams must be declared before start().
        """
        if not isinstance(spec, StreamSpec):
            raise ConfigError(f"streams must be StreamSpec objects, got {type(spec).__name__}")
        with self._state_lock:
            if self._state not in (_NEW, _RECORDING):
                raise DataError(f"episode {self.episode_id}: add_stream() while {self._state}")
            if spec.name in self.specs or spec.name in self._checkers:
                raise ConfigError(f"stream {spec.name!r} is declared twice")
            if self._state == _RECORDING and spec.is_camera:
                raise ConfigError(f"camera stream {spec.name!r} must be declared before start()")
            queue = SampleQueue(self._capacity(spec))
            # Everything push() needs exists before the checker that lets a push through.
            self._pushed[spec.name] = 0
            self._rejected[spec.name] = dict.fromkeys(REASONS, 0)
            self._locks = {**self._locks, spec.name: threading.Lock()}
            self._push_queues = {**self._push_queues, spec.name: queue}
            if self._state == _NEW:  # nothing runs yet: the layout will include it
                self._disk_queues = {**self._disk_queues, spec.name: queue}
                self.specs = {**self.specs, spec.name: spec}
            else:
                with self._added_lock:
                    self._added_streams.append((spec, queue))
            self._checkers = {**self._checkers, spec.name: SampleChecker(spec)}

    def _adopt_added_streams(self) -> None:
        """Give streams declared while recording their place in the file. Runs on the thread that owns
        the file (the disk writer, in its flush, via _counter_rows; or stop() after it), so the file
        never holds half a stream group and /recorder/counters always matches self.specs."""
        with self._added_lock:
            added, self._added_streams = self._added_streams, []
        if not added or self._h5 is None:
            return
        raw = self._h5[schema.RAW_GROUP]
        for spec, queue in added:
            store = RawStreamStore.create(raw, spec)
            self._disk_queues = {**self._disk_queues, spec.name: queue}
            if self._disk is not None:
                self._disk.add_stream(spec.name, store, queue)
            else:
                self._stores[spec.name] = store
            self.specs = {**self.specs, spec.name: spec}
        raw.attrs["streams"] = json.dumps(list(self.specs))
        del self._h5[schema.COUNTERS_PATH]
        counters = self._h5.create_dataset(schema.COUNTERS_PATH, data=np.zeros(
            (len(self.specs), len(schema.COUNTER_COLUMNS)), dtype=np.int64))
        counters.attrs["columns"] = json.dumps(schema.COUNTER_COLUMNS)
        counters.attrs["streams"] = json.dumps(list(self.specs))
        log.info("episode %s: added stream(s) %s", self.episode_id, ", ".join(spec.name for spec, _ in added))

    def _counter_rows(self) -> np.ndarray:
        self._adopt_added_streams()
        rows = np.zeros((len(self.specs), len(schema.COUNTER_COLUMNS)), dtype=np.int64)
        for i, name in enumerate(self.specs):
            store = self._stores.get(name)
            rows[i] = (self._pushed[name], store.count if store else 0, self._dropped(name),
                       sum(self._rejected[name].values()))
        return rows

    def _dropped(self, name: str) -> int:
        dropped = self._push_queues[name].dropped
        if self._disk_queues[name] is not self._push_queues[name]:
            dropped += self._disk_queues[name].dropped
        return dropped

    def _stop_waiting(self) -> bool:
        """A lockstep push stops waiting for room once the episode is aborted or a worker failed."""
        return self._abort.is_set() or self.error is not None

    def _on_worker_error(self, exc: BaseException) -> None:
        self._worker_error = exc
        log.error("recorder frame worker failed: %s", exc)

    # -- pushing --------------------------------------------------------------------------------
    def push(self, stream: str, t: float, **fields) -> bool:
        """Queue one sample stamped `t` (seconds, session clock). Thread-safe; never waits for the disk.

        Returns False when the sample is not kept: rejected (bad stamp/shape/dtype/NaN; counted and
        logged with the reason), dropped (queue full; counted), or the episode is not recording.
        """
        if self._state != _RECORDING or self._abort.is_set():
            self._after_stop += 1
            return False
        checker = self._checkers.get(stream)
        if checker is None:
            with self._unknown_lock:
                self._unknown_streams[stream] = self._unknown_streams.get(stream, 0) + 1
            self._log.warn(("?", stream), f"push to undeclared stream {stream!r} ignored "
                                          f"(declared: {sorted(self.specs)})")
            return False
        with self._locks[stream]:
            if self._state != _RECORDING:
                self._after_stop += 1
                return False
            self._pushed[stream] += 1
            try:
                stamp, arrays = checker.check(t, fields, copy=self.copy_samples)
            except RejectedSample as rejected:
                self._rejected[stream][rejected.reason] += 1
                self._log.warn((stream, rejected.reason), f"sample rejected: {rejected}")
                return False
            sample, queue = PushedSample(stamp, arrays, time.monotonic()), self._push_queues[stream]
            waits = self.wait_for_room_s > 0 and self.error is None
            if not (queue.put_wait(sample, self._stop_waiting, self.wait_for_room_s) if waits
                    else queue.put_nowait(sample)):
                self._log.warn((stream, "dropped"), f"stream {stream!r}: queue full "
                                                    f"({self._push_queues[stream].capacity} samples), sample dropped")
                return False
            checker.last_t = stamp
        return True

    def set_lockstep(self, lockstep: bool) -> None:
        self.wait_for_room_s = LOCKSTEP_WAIT_S if lockstep else 0.0

    # -- state ----------------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._state == _RECORDING and not self._abort.is_set()

    @property
    def error(self) -> Optional[DataError]:
        """Why recording stopped on its own (disk full, file-size limit, write failure), else None."""
        if self._disk is not None and self._disk.error is not None:
            return self._disk.error
        if self._worker_error is not None:
            return DataError(f"recording stopped: frame processing failed: {self._worker_error}")
        return None

    @property
    def stats(self) -> dict:
        """Counters so far: per-stream pushed/written/dropped/rejected and queue high-water marks,
        write latency (push -> in the file) and durable latency (push -> flushed), finalize timings."""
        streams = {}
        for name, spec in self.specs.items():
            push_q, disk_q = self._push_queues[name], self._disk_queues[name]
            entry = {
                "pushed": self._pushed[name],
                "written": self._stores[name].count if name in self._stores else 0,
                "dropped": self._dropped(name),
                "rejected": {k: v for k, v in self._rejected[name].items() if v},
                "queue_capacity": push_q.capacity,
                "queue_high_water": push_q.high_water,
            }
            if disk_q is not push_q:
                entry["encoded_queue_capacity"] = disk_q.capacity
                entry["encoded_queue_high_water"] = disk_q.high_water
            streams[name] = entry
        disk = self._disk
        error = self.error
        return {
            "episode_id": self.episode_id,
            "state": self._state,
            "streams": streams,
            "drops": sum(s["dropped"] for s in streams.values()),
            "rejected": sum(sum(s["rejected"].values()) for s in streams.values()),
            "unknown_stream_pushes": self._unknown_stream_counts(),
            "pushes_while_not_recording": self._after_stop,
            "write_latency": disk.write_latency.to_dict() if disk else None,
            "durable_latency": disk.durable_latency.to_dict() if disk else None,
            "flushes": disk.flushes if disk else 0,
            "max_flush_s": round(disk.max_flush_s, 6) if disk else 0.0,
            "samples_lost_to_error": disk.samples_discarded_after_error if disk else 0,
            "error": str(error) if error else None,
            **{k: round(v, 6) for k, v in self._timings.items()},
        }

    def _unknown_stream_counts(self) -> Dict[str, int]:
        with self._unknown_lock:
            return dict(self._unknown_streams)

    # -- stopping -------------------------------------------------------------------------------
    def _drain_and_join(self, abort: bool) -> None:
        self._draining.set()
        if abort:
            self._abort.set()
        for queue in self._push_queues.values():
            queue.notify()
        for worker in self._workers:
            worker.join()
        if self._disk is not None:
            self._disk.wake()
            self._disk.join()

    def stop(self, outcome: str = "unknown", metadata_updates: Optional[Mapping] = None) -> Path:
        """Finish the episode: drain, write the aligned view and final attributes, rename atomically.

        Returns the final path. If recording had stopped on an error (disk full...), raises that
        DataError; the partial file stays readable and `collector recover` can finish it later.
        """
        if outcome not in schema.OUTCOMES:
            raise ConfigError(f"outcome must be one of {schema.OUTCOMES}, got {outcome!r}")
        updates = schema.check_metadata(metadata_updates or {})
        with self._state_lock:
            if self._state != _RECORDING:
                raise DataError(f"episode {self.episode_id}: stop() while {self._state}")
            # Holding every stream lock: a push either finished queueing (and will be written) or
            # sees the new state and returns False; none can slip in after the queues drained.
            for lock in self._locks.values():
                lock.acquire()
            self._state = _STOPPING
            for lock in self._locks.values():
                lock.release()
        t0 = time.perf_counter()
        try:
            self._drain_and_join(abort=False)
            self._timings["drain_s"] = time.perf_counter() - t0
            if self.error is not None:
                self._close_partial()
                self._state = _FAILED
                raise self.error
            self._finalize(outcome, updates)
        except BaseException:
            if self._state != _FAILED:
                self._state = _FAILED
                self._close_partial()
            raise
        finally:
            _live_writers.discard(self)
        self._timings["finalize_s"] = time.perf_counter() - t0
        self._state = _STOPPED
        log.info("episode %s finished in %.3f s: %s", self.episode_id, self._timings["finalize_s"],
                 self.final_path)
        return self.final_path

    def _finalize(self, outcome: str, updates: Mapping) -> None:
        h5 = self._h5
        first, last = _stamp_range(self._stores.values())
        # Every sample is in /raw now and the outcome is known: put the outcome in the file before the
        # aligned view, so a full disk or a kill while the view is written does not lose it (recovery
        # keeps the file's outcome).
        schema.write_metadata(h5, {**updates, "outcome": outcome})
        h5.flush()
        t_view = time.perf_counter()
        try:
            view = write_aligned_view(h5, self.specs, self.aligned_config, guard=self._guard)
        except StorageFull as exc:
            raise StorageFull(f"no room to write the aligned view ({exc}); the recording itself is complete in "
                              f"{self.partial_path}: free some space and run `collector recover` on it") from exc
        self._timings["aligned_view_s"] = time.perf_counter() - t_view
        stats = self.stats
        for name, entry in stats["streams"].items():
            group = h5[schema.RAW_GROUP][name]
            group.attrs["count"] = entry["written"]
            group.attrs["dropped"] = entry["dropped"]
            group.attrs["rejected"] = json.dumps(entry["rejected"])
        final = dict(updates)
        final["outcome"] = outcome
        final["duration_s"] = float(last - first) if last >= first else 0.0
        final["t_start"] = float(first) if math.isfinite(first) else 0.0
        final["t_end"] = float(last) if math.isfinite(last) else 0.0
        final["finalized_at"] = schema.utc_now_iso()
        final["recorder_stats"] = {k: v for k, v in stats.items() if k != "state"}
        final["aligned_rows"] = view["rows"]
        schema.write_metadata(h5, final)
        h5[schema.COUNTERS_PATH][...] = self._counter_rows()
        h5.attrs["status"] = schema.STATUS_COMPLETE
        t_close = time.perf_counter()
        h5.close()
        self._h5 = None
        if self.fsync:
            fsync_path(self.partial_path)  # on the disk before the rename makes it "finished"
        t_publish = time.perf_counter()
        publish(self.partial_path, self.final_path)
        self._guard.release_reserve()
        self._timings["close_s"] = t_publish - t_close
        self._timings["rename_s"] = time.perf_counter() - t_publish

    def _close_partial(self) -> None:
        """Leave the partial file closed and readable (used on errors and at interpreter exit)."""
        if self._h5 is not None:
            try:
                self._h5.flush()
                self._h5.close()
            except Exception as exc:  # the file was flushed before; report and keep going
                log.error("closing %s failed: %s", self.partial_path, exc)
            self._h5 = None
        self._guard.release_reserve()

    def discard(self) -> None:
        """Abandon the episode and delete its partial file (an operator's "throw this take away")."""
        with self._state_lock:
            if self._state in (_STOPPED, _DISCARDED):
                raise DataError(f"episode {self.episode_id}: discard() after it was {self._state}")
            previous, self._state = self._state, _DISCARDED
        if previous != _NEW:
            self._drain_and_join(abort=True)
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            self.partial_path.unlink(missing_ok=True)
        self._guard.release_reserve()
        _live_writers.discard(self)
        log.info("episode %s discarded", self.episode_id)

    def abandon(self) -> None:
        """Stop threads and close the file as a partial episode (for `collector recover` later)."""
        with self._state_lock:
            if self._state not in (_RECORDING, _STOPPING):
                return
            self._state = _FAILED
        self._drain_and_join(abort=False)
        self._close_partial()
        _live_writers.discard(self)

    def __enter__(self) -> "EpisodeWriter":
        return self.start() if self._state == _NEW else self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._state == _RECORDING:
            if exc_type is None:
                self.stop()
            else:
                # The producer failed: keep everything recorded, as an episode of unknown outcome.
                self.stop(outcome="unknown", metadata_updates={"stop_reason": f"{exc_type.__name__}: {exc}"})


def _stamp_range(stores) -> tuple:
    first, last = math.inf, -math.inf
    for store in stores:
        if store.count:
            first = min(first, float(store.t[0]))
            last = max(last, float(store.t[store.count - 1]))
    return first, last


def publish(partial: Path, final: Path) -> None:
    """Atomically give the finished file its final name, never replacing an existing episode."""
    try:
        os.link(partial, final)  # fails if `final` exists: no earlier episode is ever overwritten
    except FileExistsError as exc:
        raise DataError(f"{final} already exists; the finished episode is kept as {partial}") from exc
    except OSError:
        # Filesystems without hard links: rename after checking (not atomic against a racing writer).
        if final.exists():
            raise DataError(f"{final} already exists; the finished episode is kept as {partial}") from None
        os.rename(partial, final)
    else:
        os.unlink(partial)
    try:
        fsync_path(final.parent)  # make the rename itself durable
    except OSError:
        pass


# Writers still recording when the interpreter exits are closed as partial files, so a producer
# that forgot stop() (or crashed with an exception) loses at most what was never pushed.
_live_writers: "weakref.WeakSet[EpisodeWriter]" = weakref.WeakSet()


@atexit.register
def _close_live_writers() -> None:
    for writer in list(_live_writers):
        try:
            writer.abandon()
        except Exception as exc:
            log.error("closing episode %s at exit failed: %s", writer.episode_id, exc)
