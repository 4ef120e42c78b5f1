"""The dataset folder: where episodes, discarded takes, plan snapshots and the catalogue live.

    <dataset>/
      catalog.sqlite          the catalogue (SQLite, WAL mode: also catalog.sqlite-wal / -shm), or
      catalog.url             the URL of the PostgreSQL catalogue the folder is bound to (a fleet's)
      episodes/               kept episodes, episode_000001.hdf5 ... (numbers are dataset-wide)
      discarded/              takes the operator discarded, kept until `collector catalog clean`
      sessions/<id>.yaml      the plan each session ran, as it was loaded (for auditing)
      locks/<station>.lock    held by the running session of a station (see StationLock)

Episode files are flat (not one folder per task) because the catalogue is the index: tools that
want "all pours" query it, and a flat folder keeps paths stable when an episode is re-labelled.
"""
from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Optional

from collector.errors import ConfigError, DataError
from collector.review.annotations import fold_journal, review_sidecars
from collector.session.catalog_engine import CATALOG_URL_FILE, bound_url, check_catalog_url, public_url

CATALOG_FILE = "catalog.sqlite"


class DatasetLayout:
    def __init__(self, root):
        self.root = Path(root).expanduser().resolve()

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    @property
    def discard_dir(self) -> Path:
        return self.root / "discarded"

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    def ensure(self) -> "DatasetLayout":
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"{self.root}: dataset path exists and is not a folder")
        for folder in (self.episodes_dir, self.discard_dir, self.sessions_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def catalog_url_path(self) -> Path:
        return self.root / CATALOG_URL_FILE

    @property
    def catalog_url(self) -> Optional[str]:
        """The server catalogue this folder is bound to, or None (its own catalog.sqlite)."""
        return bound_url(self.catalog_path)

    @property
    def catalog_location(self):
        """What Catalog() opens for this folder: the bound URL, else the catalog.sqlite path."""
        return self.catalog_url or self.catalog_path

    def exists(self) -> bool:
        return self.catalog_path.is_file() or self.catalog_url_path.is_file()

    def bind_catalog(self, url: Optional[str], where: str = "--catalog", migrated: bool = False) -> "DatasetLayout":
        """Make the folder's catalogue the server at `url` (None: leave the folder as it is).

        Binding is written once (catalog.url) so every later command on the folder finds the server; a
        folder that already has a SQLite catalogue (unless `migrated` into the server), or is bound elsewhere,
        is refused rather than split."""
        if url is None:
            return self
        check_catalog_url(url, where)
        current = self.catalog_url
        if current is not None:
            if current != url:
                raise ConfigError(f"{where}: {self.root} is bound to the catalogue {public_url(current)}"
                                  f" ({self.catalog_url_path.name}), not {public_url(url)}")
            return self
        if self.catalog_path.exists() and not migrated:
            raise ConfigError(f"{where}: {self.root} has its own catalogue ({CATALOG_FILE}); copy it to the server"
                              f" first: collector catalog migrate {self.root} URL")
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"{self.root}: dataset path exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.catalog_url_path.with_suffix(".url.tmp")
        partial.write_text(url + "\n", encoding="utf-8")
        partial.chmod(0o600)  # it may carry a password
        os.replace(partial, self.catalog_url_path)
        return self

    def relative(self, path: Path) -> str:
        """Path stored in the catalogue: relative to the dataset root, so the folder can be moved."""
        return str(Path(path).resolve().relative_to(self.root))

    def absolute(self, stored: str) -> Path:
        return self.root / stored

    def move_to_discard(self, path: Path) -> Path:
        """Move a take's file into discarded/ (same filesystem, so an atomic rename)."""
        return _move_without_overwriting(path, self.discard_dir, "a discarded file")

    def move_to_episodes(self, path: Path) -> Path:
        return _move_without_overwriting(path, self.episodes_dir, "an episode file")


def _move_without_overwriting(path: Path, directory: Path, what: str) -> Path:
    path = Path(path)
    target = directory / path.name
    if target.exists():
        raise DataError(f"{target}: {what} with this name already exists; not overwriting it")
    fold_journal(path)  # review labels not yet inside the file go into it, so they move with it
    for sidecar in review_sidecars(path):  # a fold that could not run (full disk): its journal moves too
        os.replace(sidecar, directory / sidecar.name)
    os.replace(path, target)
    return target


def station_slug(station: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", station) or "station"


class StationLock:
    """An exclusive flock on locks/<station>.lock while a station's session runs.

    It makes "interrupted" well defined: if this process holds its station's lock, any of the
    station's takes still marked 'recording' belong to a process that is gone (Ctrl-C, crash or
    reboot all release a flock), so they can be recovered. Other stations' takes are never touched.
    """

    def __init__(self, layout: DatasetLayout, station: str):
        self.path = layout.locks_dir / f"{station_slug(station)}.lock"
        self.station = station
        self._fd: Optional[int] = None

    def acquire(self) -> "StationLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            raise ConfigError(f"station {self.station!r} already has a session running on this dataset"
                              f" ({holder or 'unknown process'}); use another --station or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
