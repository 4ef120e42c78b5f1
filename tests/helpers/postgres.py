"""A real PostgreSQL server for the tests: Debian's binaries, a throw-away cluster in a temporary folder,
loopback TCP on a free port, trust authentication, stopped and deleted at the end.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account the Debian
package creates (or `nobody`) through `runuser`. `scripts/install_test_deps.sh` installs the package.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): "
                           "run `bash scripts/install_test_deps.sh` (apt-get install postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> Optional[str]:
    """None to run as ourselves; otherwise the unprivileged account to run the server as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` account exists")


class PostgresServer:
    def __init__(self):
        self.bin = postgres_bin()
        self.user = _server_user()
        self.folder = Path(tempfile.mkdtemp(prefix="collector-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._names = itertools.count(1)

    def _run(self, args: List[str], **kwargs) -> subprocess.CompletedProcess:
        command = (["runuser", "-u", self.user, "--"] if self.user else []) + args
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120, **kwargs)

    def start(self) -> "PostgresServer":
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        os.chmod(self.folder, 0o755)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "-E", "UTF8", "--no-sync", "--locale=C"])
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                       str(self.folder / "server.log"), "-w", "start"])
        except subprocess.CalledProcessError:
            log = (self.folder / "server.log")
            raise RuntimeError(f"PostgreSQL did not start: {log.read_text() if log.exists() else ''}") from None
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = f"catalog_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass  # it was not running; the folder goes anyway
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
