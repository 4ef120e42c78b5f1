"""The durable upload queue: `<dataset>/publish.sqlite`, one row per file to publish.

It survives restarts and kill -9: a row is `pending` until its remote copy has been read back and its
SHA-256 matched the local file, and only then `verified` (with the URL and the hash). A row left
`uploading` by a process that died is pending again on the next start, and the upload is redone from
the start (an unfinished object never became visible, see storage.py). Nothing else says an episode
is published, so a crash can delay publishing but never report it falsely.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, List, Optional

QUEUE_FILE = "publish.sqlite"
STATES = ("pending", "uploading", "verified", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    key         TEXT NOT NULL,
    destination TEXT NOT NULL,
    episode_id  TEXT NOT NULL,
    local_path  TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    size        INTEGER,
    sha256      TEXT,
    url         TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT '',
    local_deleted INTEGER NOT NULL DEFAULT 0,
    local_mtime_ns INTEGER,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (destination, key)
);
CREATE INDEX IF NOT EXISTS uploads_episode ON uploads (episode_id, state);
"""


@dataclass(frozen=True)
class Upload:
    key: str
    destination: str
    episode_id: str
    local_path: str
    state: str
    size: Optional[int]
    sha256: Optional[str]
    url: Optional[str]
    attempts: int
    last_error: str
    local_deleted: bool
    local_mtime_ns: Optional[int]
    updated_at: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class UploadQueue:
    def __init__(self, dataset_root):
        self.path = Path(dataset_root) / QUEUE_FILE
        with self._connection() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=60.0, isolation_level=None)) as conn:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # `verified` must be on disk before a local copy goes
            yield conn

    def add(self, destination: str, key: str, episode_id: str, local_path: Path) -> bool:
        """Queue a file unless this destination already has it queued or published; True if added."""
        with self._connection() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO uploads (key, destination, episode_id, local_path, updated_at) "
                "VALUES (?, ?, ?, ?, ?)", (key, destination, episode_id, str(local_path), _now()))
            return cursor.rowcount == 1

    def reset_interrupted(self, destination: str) -> int:
        """Rows a dead publisher left mid-upload go back to pending; returns how many."""
        with self._connection() as conn:
            return conn.execute("UPDATE uploads SET state='pending', updated_at=? WHERE destination=? "
                                "AND state='uploading'", (_now(), destination)).rowcount

    def retry_failed(self, destination: str) -> int:
        with self._connection() as conn:
            return conn.execute("UPDATE uploads SET state='pending', updated_at=? WHERE destination=? "
                                "AND state='failed'", (_now(), destination)).rowcount

    def pending(self, destination: str) -> List[Upload]:
        return self._select("destination=? AND state='pending' ORDER BY key", (destination,))

    def all(self, destination: Optional[str] = None) -> List[Upload]:
        if destination is None:
            return self._select("1 ORDER BY destination, key", ())
        return self._select("destination=? ORDER BY key", (destination,))

    def mark_uploading(self, upload: Upload) -> None:
        self._set(upload, state="uploading", attempts=upload.attempts + 1)

    def mark_verified(self, upload: Upload, *, url: str, sha256: str, size: int, local_mtime_ns: int) -> None:
        self._set(upload, state="verified", url=url, sha256=sha256, size=size, last_error="",
                  local_mtime_ns=local_mtime_ns)

    def requeue(self, upload: Upload, reason: str) -> None:
        """Publish again: the local file changed since (a review folded in) or the remote copy is bad."""
        self._set(upload, state="pending", attempts=0, last_error=reason[:500])

    def mark_local_deleted(self, upload: Upload) -> None:
        self._set(upload, local_deleted=1)

    def mark_attempt_failed(self, upload: Upload, error: str, give_up: bool) -> None:
        self._set(upload, state="failed" if give_up else "pending", last_error=error[:500])

    def published(self, episode_id: str) -> List[Upload]:
        return self._select("episode_id=? AND state='verified' ORDER BY updated_at DESC", (episode_id,))

    def _set(self, upload: Upload, **fields) -> None:
        fields["updated_at"] = _now()
        names = ", ".join(f"{name}=?" for name in fields)
        with self._connection() as conn:
            conn.execute(f"UPDATE uploads SET {names} WHERE destination=? AND key=?",
                         (*fields.values(), upload.destination, upload.key))

    def _select(self, where: str, params) -> List[Upload]:
        with self._connection() as conn:
            rows = conn.execute(f"SELECT * FROM uploads WHERE {where}", params).fetchall()
        return [Upload(**{**dict(row), "local_deleted": bool(row["local_deleted"])}) for row in rows]


def published_location(dataset, episode_id: str) -> Optional[str]:
    """The URL of an episode's verified remote copy (the latest, if published to several places), or None."""
    path = Path(dataset) / QUEUE_FILE
    if not path.is_file():
        return None
    from collector.recorder import schema

    for upload in UploadQueue(dataset).published(episode_id):
        if schema.is_final_name(upload.key):
            return upload.url
    return None
