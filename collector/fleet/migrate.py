"""Copy a dataset folder's SQLite catalogue into an empty PostgreSQL catalogue, check it, bind the folder.

The fleet's tables come along when the folder has them: the stations, the plans' cell slots (claims and
completed slots keep their holders, leases and takes) and the accounts with their login sessions.
Nothing is lost and nothing is changed unless the copy succeeds: the SQLite file is read through a
snapshot (SQLite's backup API into a temporary file, so opening it never upgrades the original), every
table is copied in one server transaction, the copy is compared row by row with the snapshot before
that transaction commits, and only then is the folder bound (catalog.url). catalog.sqlite stays as it
was, a backup. The target must hold nothing else; running stations must be stopped first (their
writes after the snapshot would be lost).
"""
from __future__ import annotations

import fcntl
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Sequence

from collector.errors import ConfigError, DataError
from collector.session.catalog import Catalog
from collector.session.catalog_engine import Database, check_catalog_url, public_url
from collector.session.layout import DatasetLayout

# Copied in this order (foreign keys point backwards), each with the key its rows are compared by.
TABLES = (("episodes", "episode_index"), ("sessions", "session_id"), ("policies", "policy_id"),
          ("evaluations", "evaluation_id"), ("evaluation_cells", None), ("reviews", "review_id"))
# Tables of the fleet's parts, created when first used: copied when the folder has them (compared by
# Python's order: their keys are text, which the engines collate differently).
FLEET_TABLES = ("stations", "cell_slots", "accounts", "account_sessions")
# Tables the server's identity columns number: their next value must follow the copied rows.
IDENTITIES = (("policies", "policy_id"), ("evaluations", "evaluation_id"), ("reviews", "review_id"))
BATCH = 5000


@dataclass
class MigrationReport:
    url: str
    counts: Dict[str, int]

    def __str__(self) -> str:
        copied = ", ".join(f"{n} {table}" for table, n in self.counts.items())
        return (f"copied the catalogue into {public_url(self.url)} and checked it ({copied});"
                " the folder now uses it (catalog.url); catalog.sqlite is kept as it was, as a backup")


def migrate_catalog(layout: DatasetLayout, url: str) -> MigrationReport:
    check_catalog_url(url, "migrate")
    _check_source(layout, url)
    _check_target_empty(url)
    with tempfile.TemporaryDirectory(prefix="collector-migrate-") as folder:
        snapshot = Path(folder) / "catalog.sqlite"
        _snapshot(layout.catalog_path, snapshot)
        Catalog(snapshot)  # the snapshot, not the original, is brought to the current schema
        target = Catalog(url)
        with sqlite3.connect(snapshot) as source:
            tables = list(TABLES) + [(table, None) for table in _fleet_tables(source, target)]
        with sqlite3.connect(snapshot) as source, target.transaction() as conn:
            counts = {table: _copy_table(source, conn, table) for table, _ in tables}
            for table, column in IDENTITIES:
                target.db.follow_identity(conn, table, column)
            for table, key in tables:
                _compare_table(source, conn, table, key)
                arrived = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                if arrived != counts[table]:
                    raise DataError(f"migrate: {table}: {arrived} rows on the server, {counts[table]} in the"
                                    " original; nothing was changed")
        source.close()
    layout.bind_catalog(url, "migrate", migrated=True)
    return MigrationReport(url, counts)


def _fleet_tables(source: sqlite3.Connection, target: Catalog) -> List[str]:
    """The fleet tables the snapshot has, created (empty) on the server by their own modules."""
    from collector.accounts.store import AccountStore
    from collector.fleet.claims import CellClaims
    from collector.fleet.stations import StationRegistry

    present = {row[0] for row in source.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    tables = [table for table in FLEET_TABLES if table in present]
    if "stations" in tables:
        StationRegistry(target)
    if "cell_slots" in tables:
        CellClaims(target, plan="")
    if {"accounts", "account_sessions"} & set(tables):
        AccountStore(target)
    return tables


def _check_source(layout: DatasetLayout, url: str) -> None:
    if layout.catalog_url is not None:
        raise ConfigError(f"{layout.root}: already uses the catalogue {public_url(layout.catalog_url)}"
                          f" ({layout.catalog_url_path.name}); nothing to migrate")
    if not layout.catalog_path.is_file():
        raise ConfigError(f"{layout.root}: no {layout.catalog_path.name} to migrate")
    for lock in sorted(layout.locks_dir.glob("*.lock")) if layout.locks_dir.is_dir() else ():
        if _held(lock):
            raise ConfigError(f"{lock}: station {lock.stem!r} is recording into this catalogue; stop it first"
                              " (takes recorded after the copy would be lost)")


def _held(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _check_target_empty(url: str) -> None:
    """Refuse a database that holds any table with rows, so a migration never mixes two catalogues."""
    db = Database(url)
    with db.reading() as conn:
        for table in db.tables(conn):
            if table == "catalog_meta":
                continue
            rows = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
            if rows:
                raise ConfigError(f"migrate: {public_url(url)} already holds data (table {table}: {rows} rows);"
                                  " give an empty database")


def _snapshot(original: Path, snapshot: Path) -> None:
    try:
        source = sqlite3.connect(f"file:{original}?mode=ro", uri=True)
        with sqlite3.connect(snapshot) as copy:
            source.backup(copy)
        source.close()
        copy.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{original}: cannot read the catalogue ({exc})") from None


def _columns(source: sqlite3.Connection, table: str) -> List[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({table})")]


def _rows(source: sqlite3.Connection, table: str, columns: Sequence[str]) -> Iterator[list]:
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
    while True:
        batch = cursor.fetchmany(BATCH)
        if not batch:
            return
        yield batch


def _copy_table(source: sqlite3.Connection, conn, table: str) -> int:
    columns = _columns(source, table)
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"
    copied = 0
    for batch in _rows(source, table, columns):
        conn.executemany(statement, batch)
        copied += len(batch)
    return copied


def _compare_table(source: sqlite3.Connection, conn, table: str, key) -> None:
    columns = _columns(source, table)
    if key is not None and key != "session_id":
        pairs = _pages(source, conn, table, columns, key)
    else:  # small tables, and text keys whose collation differs between the engines: Python's order
        select = f"SELECT {', '.join(columns)} FROM {table}"
        pairs = [(sorted(source.execute(select).fetchall(), key=repr),
                  sorted((tuple(r) for r in conn.execute(select).fetchall()), key=repr))]
    for ours, theirs in pairs:
        if len(ours) != len(theirs):
            raise DataError(f"migrate: {table}: the copy's rows do not match the original's; nothing was changed")
        for mine, copied in zip(ours, theirs):
            if tuple(mine) != tuple(copied):
                raise DataError(f"migrate: {table}: a row differs after the copy ({tuple(mine)!r:.120} became"
                                f" {tuple(copied)!r:.120}); nothing was changed")


def _pages(source: sqlite3.Connection, conn, table: str, columns: Sequence[str], key: str):
    """Both sides in pages of BATCH rows by integer key (which both engines order alike)."""
    select = f"SELECT {', '.join(columns)} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {BATCH}"
    position = columns.index(key)
    last = -1
    while True:
        ours = source.execute(select, (last,)).fetchall()
        theirs = [tuple(r) for r in conn.execute(select, (last,)).fetchall()]
        yield ours, theirs
        if len(ours) < BATCH:
            return
        last = ours[-1][position]
