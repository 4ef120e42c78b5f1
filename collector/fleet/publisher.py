"""Publishing a dataset's episodes to shared storage: queue, upload, verify, then (optionally) free the disk.

Episodes are recorded locally first (fast, crash-safe); the publisher copies every kept episode in
`episodes/` (and its review journal, if one is waiting to be folded) to `<destination>/episodes/`,
reads each copy back to check its SHA-256, and records it in the durable queue (upload_queue.py).
Failed attempts are retried with exponential backoff. The local file is deleted only when asked
(`keep_local=False`) and only after its remote copy was verified.

A verified episode's URL is also written into the dataset's catalogue (`location`), before its local
copy may go: the queue is this station's, the catalogue (a fleet's, on its server) is what every
reader on any machine opens, so that is where a reader finds an episode whose local file is gone.
"""
from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from collector.errors import CollectorError, ConfigError, DataError
from collector.file_digest import file_sha256
from collector.fleet.storage import Store
from collector.fleet.upload_queue import Upload, UploadQueue

log = logging.getLogger(__name__)
PUBLISH_LOCK = "publish.lock"  # held by the publisher working on the dataset (flock: gone with its process)


@dataclass
class PublishSummary:
    published: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: List[str] = field(default_factory=list)
    already: int = 0
    deleted_local: int = 0

    def line(self, destination: str) -> str:
        rate = self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
        text = (f"published {self.published} file(s), {self.bytes / 1e6:.1f} MB at {rate:.1f} MB/s to {destination}; "
                f"{self.already} already published, {len(self.failed)} failed")
        return text + (f", {self.deleted_local} local copies deleted" if self.deleted_local else "")


class Publisher:
    def __init__(self, dataset, destination: str, *, keep_local: bool = True, retries: int = 5,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0, storage_options: Optional[Dict] = None,
                 report: Optional[Callable[[str], None]] = None, stop: Optional[threading.Event] = None):
        from collector.session.layout import DatasetLayout

        self.layout = DatasetLayout(dataset)
        if not self.layout.episodes_dir.is_dir():
            raise DataError(f"{self.layout.root}: not a dataset folder (no episodes/ in it)")
        self.store = Store(destination, storage_options)
        self.destination = self.store.url
        self.queue = UploadQueue(self.layout.root)
        self.keep_local = keep_local
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.report = report or (lambda text: log.info("%s", text))
        self.stop = stop or threading.Event()
        self._catalogued = False  # verified episodes of earlier runs written into the catalogue

    # -- what to publish ---------------------------------------------------------------------------

    def scan(self) -> int:
        """Queue every kept episode (and review journal) not yet published here; returns how many were added.

        A published episode whose local file changed since (a review folded into it) is queued again."""
        from collector.recorder import schema
        from collector.review.annotations import review_sidecars

        self.queue.reset_interrupted(self.destination)
        known = {u.key: u for u in self.queue.all(self.destination)}
        added = 0
        for path in schema.episode_files_under(self.layout.episodes_dir, final_only=True, recursive=False):
            episode_id = schema.episode_id_from_name(path.name)
            for local in [path, *review_sidecars(path)]:
                key = f"episodes/{local.name}"
                upload = known.get(key)
                if upload is None:
                    added += self.queue.add(self.destination, key, episode_id, local)
                elif upload.state == "verified" and _changed_since(local, upload):
                    self.queue.requeue(upload, "local file changed after it was published")
                    added += 1
        return added

    def verify_remote(self) -> int:
        """Read back every verified copy; a copy that no longer matches is queued again. Returns how many."""
        bad = 0
        for upload in self.queue.all(self.destination):
            if upload.state != "verified" or self.stop.is_set():
                continue
            if self.store.sha256(upload.key) == upload.sha256:
                continue
            bad += 1
            if upload.local_deleted or not Path(upload.local_path).is_file():
                self.queue.mark_attempt_failed(upload, "remote copy damaged and no local copy left", give_up=True)
                self.report(f"DAMAGED {upload.url}: remote copy does not match its SHA-256 and there is no local copy")
            else:
                self.queue.requeue(upload, "remote copy did not match its SHA-256")
                self.report(f"damaged {upload.url}: remote copy does not match; uploading it again")
        return bad

    # -- publishing --------------------------------------------------------------------------------

    def publish_pending(self) -> PublishSummary:
        self._catalogue_verified()
        summary = PublishSummary(already=sum(u.state == "verified" for u in self.queue.all(self.destination)))
        for upload in self.queue.pending(self.destination):
            if self.stop.is_set():
                break
            self._publish_with_retries(upload, summary)
        return summary

    def run_once(self, verify_remote: bool = False) -> PublishSummary:
        with self._exclusive():
            self.scan()
            if verify_remote:
                self.verify_remote()
            return self.publish_pending()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One publisher per dataset at a time: then a row left `uploading` can only be a dead one's."""
        with open(self.layout.root / PUBLISH_LOCK, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise ConfigError(f"{self.layout.root}: another publisher is running on this dataset ({holder})") \
                    from None
            handle.truncate(0)
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _publish_with_retries(self, upload: Upload, summary: PublishSummary) -> None:
        local = Path(upload.local_path)
        for attempt in range(self.retries + 1):
            if not local.is_file():
                self.queue.mark_attempt_failed(upload, "local file is gone", give_up=True)
                summary.failed.append(upload.key)
                self.report(f"FAILED {upload.key}: {local} is gone (moved or discarded before it was published)")
                return
            self.queue.mark_uploading(upload)
            started = time.monotonic()
            try:
                url, digest, size, mtime_ns = self._upload_and_verify(local, upload.key)
            except Exception as exc:  # network and store errors come in many types (OSError, botocore, aiohttp)
                error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
                give_up = attempt == self.retries
                self.queue.mark_attempt_failed(upload, error, give_up=give_up)
                if give_up:
                    summary.failed.append(upload.key)
                    self.report(f"FAILED {upload.key} after {attempt + 1} attempt(s): {error}")
                    return
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
                self.report(f"retry {upload.key} in {delay:.2f} s (attempt {attempt + 1} failed: {error})")
                if self.stop.wait(delay):
                    self.queue.mark_attempt_failed(upload, "stopped before it was published", give_up=False)
                    return
                continue
            elapsed = time.monotonic() - started
            self.queue.mark_verified(upload, url=url, sha256=digest, size=size, local_mtime_ns=mtime_ns)
            located = self._record_locations({upload.episode_id: url} if _is_episode_file(upload.key) else {})
            summary.published += 1
            summary.bytes += size
            summary.seconds += elapsed
            self.report(f"published {upload.key} ({size / 1e6:.1f} MB, {size / 1e6 / max(elapsed, 1e-6):.1f} MB/s, "
                        f"sha256 {digest[:12]}) -> {url}")
            if not self.keep_local and located:
                self._delete_local(upload, local, summary)
            return

    def _catalogue_verified(self) -> None:
        """Episodes verified before the catalogue had a location (or while it was unreachable) get theirs."""
        if self._catalogued:
            return
        verified = {u.episode_id: u.url for u in self.queue.all(self.destination)
                    if u.state == "verified" and _is_episode_file(u.key)}
        self._catalogued = self._record_locations(verified)

    def _record_locations(self, locations: Dict[str, str]) -> bool:
        """Write episodes' URLs into the catalogue; False if it could not be reached (the copy stays local)."""
        if not locations or not self.layout.exists():  # a folder of episode files without a catalogue
            return True
        from collector.session.catalog import Catalog

        try:
            Catalog(self.layout.catalog_location).set_locations(locations)
        except DataError as exc:
            self.report(f"catalogue not updated with where {len(locations)} episode(s) live: {exc}")
            return False
        return True

    def _upload_and_verify(self, local: Path, key: str):
        stat = local.stat()
        digest = file_sha256(local)
        url = self.store.put(local, key)
        remote = self.store.sha256(key)
        if remote != digest:
            raise DataError(f"remote copy's SHA-256 {remote} differs from the local file's {digest}")
        if local.stat().st_mtime_ns != stat.st_mtime_ns:
            raise DataError("local file changed while it was uploaded")
        return url, digest, stat.st_size, stat.st_mtime_ns

    def _delete_local(self, upload: Upload, local: Path, summary: PublishSummary) -> None:
        # The journal of reviews not yet folded is tiny and still being written: only episode files go.
        from collector.recorder import schema

        if not schema.is_final_name(local.name):
            return
        local.unlink()
        self.queue.mark_local_deleted(upload)
        summary.deleted_local += 1


def _is_episode_file(key: str) -> bool:
    from collector.recorder import schema

    return schema.is_final_name(key.rsplit("/", 1)[-1])


def _changed_since(local: Path, upload: Upload) -> bool:
    if upload.local_deleted or not local.is_file():
        return False
    if upload.local_mtime_ns is not None and local.stat().st_mtime_ns == upload.local_mtime_ns:
        return False
    return file_sha256(local) != upload.sha256


class BackgroundPublisher:
    """Publishes in a thread while a session records: `notify()` after each take, `stop()` at the end."""

    def __init__(self, dataset, destination: str, *, keep_local: bool = True, poll_s: float = 30.0, **options):
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._finishing = threading.Event()
        self.publisher = Publisher(dataset, destination, keep_local=keep_local, stop=self._stop, **options)
        self.poll_s = poll_s
        self.last: Optional[PublishSummary] = None
        self._thread = threading.Thread(target=self._loop, name="publisher", daemon=True)

    def start(self) -> "BackgroundPublisher":
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def stop(self, drain_s: float = 60.0) -> None:
        """Publish what is waiting (for up to drain_s), then stop; anything left stays queued for the next start."""
        self._finishing.set()
        self._wake.set()
        self._thread.join(drain_s)
        self._stop.set()  # ends the wait of a retry, or the run after the file in flight
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            finishing = self._finishing.is_set()
            try:
                self.last = self.publisher.run_once()
            except CollectorError as exc:  # e.g. a `collector publish` is already at it: try again later
                log.warning("%s", exc)
            except Exception:  # keep recording whatever the store does; the queue keeps what is left
                log.exception("publishing to %s failed; retrying later", self.publisher.destination)
            if finishing:
                return
            self._wake.wait(self.poll_s)
