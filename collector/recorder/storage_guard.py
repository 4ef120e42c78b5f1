"""Stopping a recording cleanly before the disk or the file-size limit runs out.

HDF5 does not survive running out of space mid-write: measured here, a write that hits
RLIMIT_FSIZE leaves a superblock that points past the end of the file (the file no longer opens)
and can crash the process when the file is closed. So the writer asks this guard before every
batch whether it still fits, with room to spare for the final flush, and stops while the file is
still consistent. A small reserve file in the same directory covers the race with other programs
filling the disk: on a real ENOSPC it is deleted to give HDF5 room to flush what it has.
"""
from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import threading
from pathlib import Path
from typing import Optional

from collector.errors import DataError

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class StorageFull(DataError):
    """Recording had to stop because the disk or the file-size limit is (nearly) exhausted."""


def ignore_file_size_signal() -> None:
    """A process over RLIMIT_FSIZE is killed by SIGXFSZ unless it ignores it; ignored, the write just
    fails with EFBIG, which the guard turns into a clean stop. Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGXFSZ) == signal.SIG_DFL:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):  # not available on this platform
        pass


def file_size_limit() -> Optional[int]:
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class StorageGuard:
    def __init__(self, path: Path, min_free_bytes: int = 64 * MiB, flush_reserve_bytes: int = 1 * MiB,
                 reserve_file_bytes: int = 8 * MiB):
        self.path = Path(path)
        self.min_free_bytes = int(min_free_bytes)
        self.flush_reserve_bytes = int(flush_reserve_bytes)
        self.reserve_file_bytes = int(reserve_file_bytes)
        self.reserve_path = self.path.with_name(f".{self.path.name}.reserve")
        self.limit = file_size_limit()

    def start(self) -> None:
        """Check there is room to record at all and set the reserve aside."""
        free = self.free_bytes()
        needed = self.min_free_bytes + self.reserve_file_bytes + self.flush_reserve_bytes
        if free < needed:
            raise StorageFull(f"not enough disk space to record in {self.path.parent}: {free / MiB:.1f} MiB free, "
                              f"need at least {needed / MiB:.1f} MiB")
        if self.limit is not None and self.limit < 2 * self.flush_reserve_bytes:
            raise StorageFull(f"the file-size limit (ulimit -f) of {self.limit} bytes is too small to record")
        if self.reserve_file_bytes > 0:
            try:
                with open(self.reserve_path, "wb") as fh:
                    os.posix_fallocate(fh.fileno(), 0, self.reserve_file_bytes)
            except OSError as exc:
                self.release_reserve()
                if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                    raise StorageFull(f"cannot reserve {self.reserve_file_bytes / MiB:.0f} MiB in "
                                      f"{self.path.parent}: {exc.strerror}") from exc
                # posix_fallocate unsupported on this filesystem (EOPNOTSUPP on some): record without it.
                log.debug("no disk reserve in %s: %s", self.path.parent, exc)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return int(st.f_bavail) * int(st.f_frsize)

    def check(self, file_bytes: int, pending_bytes: int) -> None:
        """Raise StorageFull if writing `pending_bytes` more would leave too little room to close cleanly."""
        if self.limit is not None and file_bytes + pending_bytes + self.flush_reserve_bytes > self.limit:
            raise StorageFull(
                f"file-size limit reached: {self.path.name} is {file_bytes / MiB:.1f} MiB and the limit "
                f"(ulimit -f / RLIMIT_FSIZE) is {self.limit / MiB:.1f} MiB; recording stopped, data so far kept")
        free = self.free_bytes()
        if free - pending_bytes < self.min_free_bytes:
            raise StorageFull(
                f"disk full: {free / MiB:.1f} MiB left on {self.path.parent} (keeping {self.min_free_bytes / MiB:.0f} "
                f"MiB free); recording stopped, data so far kept in {self.path.name}")

    def release_reserve(self) -> None:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            pass
