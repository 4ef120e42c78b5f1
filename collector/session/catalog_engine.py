"""The two databases a catalogue lives in, behind one SQLAlchemy Core connection API.

- SQLite (the embedded default): a dataset folder's catalog.sqlite, the file format unchanged. WAL mode,
  a generous busy timeout, connections that live for one operation (NullPool: nothing stays open on a
  file that `catalog rebuild --force` may move aside), and every write transaction opened with
  `BEGIN IMMEDIATE` (the engine's begin event) so the write lock is taken up front.
- PostgreSQL (`postgresql://...`, for a fleet of stations): a pooled engine per URL, and every write
  transaction takes one transaction-level advisory lock first: the same "one writer at a time" rule
  as SQLite's BEGIN IMMEDIATE, so episode numbers allocated as max+1 inside the transaction are never
  duplicated and, unlike a sequence, never skipped when a transaction rolls back.

Statements are written once, with `?` placeholders and SQL both engines accept (`ON CONFLICT`,
`RETURNING`); only the DDL's types, the schema version's home and the integrity check differ.
"""
from __future__ import annotations

import functools
import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

from collector.errors import ConfigError, DataError

BUSY_TIMEOUT_S = 60.0
SQLITE_MMAP_BYTES = 1 << 30  # a catalogue of a million synthetic episodes is about 0.6 GB
# A dataset folder whose catalogue is on a server holds its URL in this file, beside where catalog.sqlite
# would be: every command that opens the folder's catalogue then opens the server's.
CATALOG_URL_FILE = "catalog.url"
# Key of the PostgreSQL advisory lock every catalogue write holds (any constant; the database is the catalogue's).
WRITE_LOCK_KEY = 0x636F6C6C  # "coll"
_URL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")

_engines: Dict[str, Any] = {}
_engines_lock = threading.Lock()


def is_catalog_url(target) -> bool:
    return isinstance(target, str) and target.startswith(_URL_SCHEMES)


def check_catalog_url(text: str, where: str = "--catalog") -> str:
    """The URL if it names a PostgreSQL catalogue; a ConfigError naming `where` otherwise."""
    if not is_catalog_url(text):
        raise ConfigError(f"{where}: {text!r} is not a catalogue URL (expected postgresql://USER@HOST/DATABASE)")
    return text


def bound_url(sqlite_path: Path) -> Optional[str]:
    """The server URL the folder of `sqlite_path` is bound to (its catalog.url), or None."""
    bound = Path(sqlite_path).with_name(CATALOG_URL_FILE)
    if not bound.is_file():
        return None
    return check_catalog_url(bound.read_text(encoding="utf-8").strip(), str(bound))


def public_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(_driver_url(url)).render_as_string(hide_password=True).replace("+psycopg", "", 1)


def _driver_url(url: str) -> str:
    # SQLAlchemy's default PostgreSQL driver is psycopg2; the fleet extra installs psycopg 3.
    return re.sub(r"^(postgresql|postgres)://", "postgresql+psycopg://", url)


class Database:
    """One catalogue database: `writing()` and `reading()` yield a Connection."""

    def __init__(self, target: Union[str, Path]):
        self.is_postgres = is_catalog_url(target)
        self.where = public_url(target) if self.is_postgres else str(target)
        self.engine = _engine(target, self.is_postgres)

    @contextmanager
    def writing(self, serialized: bool = True) -> Iterator["Connection"]:
        """A write transaction. serialized=False (PostgreSQL): no catalogue-wide lock, for statements that
        lock only their rows (cell claims: SELECT ... FOR UPDATE SKIP LOCKED); SQLite has one lock anyway."""
        with self._connect(write="serialized" if serialized else "rows") as conn, conn.begin():
            yield Connection(conn)

    @contextmanager
    def one_statement(self) -> Iterator["Connection"]:
        """For one write statement that is atomic by itself (a cell claim). PostgreSQL: autocommit, so no
        BEGIN and COMMIT round trips and no catalogue-wide lock (the statement locks its own rows). SQLite:
        inside BEGIN IMMEDIATE all the same, since a statement that reads before it writes cannot turn
        its read snapshot into the write lock under WAL if another writer got there in between."""
        if not self.is_postgres:
            with self.writing(serialized=False) as conn:
                yield conn
            return
        with self._connect(write=None) as conn:
            yield Connection(conn.execution_options(isolation_level="AUTOCOMMIT"))

    @contextmanager
    def reading(self) -> Iterator["Connection"]:
        """Queries only. PostgreSQL: in autocommit, which sees what a read-committed transaction would
        (each statement its own snapshot) without the BEGIN and ROLLBACK round trips around them."""
        with self._connect(write=None) as conn:
            yield Connection(conn.execution_options(isolation_level="AUTOCOMMIT") if self.is_postgres else conn)

    @contextmanager
    def _connect(self, write):
        from sqlalchemy.exc import DBAPIError, OperationalError

        try:
            conn = self.engine.connect()
        except OperationalError as exc:
            raise DataError(f"{self.where}: cannot open catalogue: {error_reason(exc)}") from None
        try:
            yield conn.execution_options(catalog_write=write)
        except (self.engine.dialect.loaded_dbapi.Error, DBAPIError) as exc:  # server gone, disk error...: one line
            raise DataError(f"{self.where}: catalogue error: {error_reason(exc)}") from None
        finally:
            conn.close()

    # -- what differs between the engines ---------------------------------------------------------
    def schema_version(self, conn: "Connection") -> int:
        if not self.is_postgres:
            return conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("CREATE TABLE IF NOT EXISTS catalog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM catalog_meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def set_schema_version(self, conn: "Connection", version: int) -> None:
        if not self.is_postgres:
            conn.execute(f"PRAGMA user_version={int(version)}")
            return
        conn.execute("INSERT INTO catalog_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key)"
                     " DO UPDATE SET value=excluded.value", (str(version),))

    def ddl(self, statement: str) -> str:
        """A CREATE statement written for SQLite, in this engine's types."""
        if not self.is_postgres:
            return statement
        statement = statement.replace("INTEGER PRIMARY KEY AUTOINCREMENT",
                                      "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)  # PostgreSQL's REAL is single precision

    def columns(self, conn: "Connection", table: str) -> set:
        from sqlalchemy import inspect

        inspector = inspect(conn.sa)
        return {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()

    def tables(self, conn: "Connection") -> list:
        from sqlalchemy import inspect

        return inspect(conn.sa).get_table_names()

    @property
    def now(self) -> str:
        """SQL for the database's clock in seconds since the epoch: one clock for every station's leases."""
        if self.is_postgres:
            return "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
        return "((julianday('now') - 2440587.5) * 86400.0)"

    @property
    def skip_locked(self) -> str:
        """Row locking for a queue's SELECT: PostgreSQL locks the row and skips rows others hold; under
        SQLite's BEGIN IMMEDIATE the whole database is already this transaction's."""
        return " FOR UPDATE SKIP LOCKED" if self.is_postgres else ""

    def skip_locked_of(self, alias: str) -> str:
        """skip_locked for a SELECT that joins other rows (only the rows of `alias` are locked)."""
        return f" FOR UPDATE OF {alias} SKIP LOCKED" if self.is_postgres else ""

    def follow_identity(self, conn: "Connection", table: str, column: str) -> None:
        """After rows were copied with their own ids: the next generated id follows them (PostgreSQL only;
        SQLite's AUTOINCREMENT looks at the rows itself)."""
        if self.is_postgres:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                         f" COALESCE(MAX({column}), 0) + 1, false) FROM {table}")

    def integrity_ok(self) -> bool:
        with self.reading() as conn:
            if self.is_postgres:  # the server guards its own pages; being able to read is the check here
                return conn.execute("SELECT 1").fetchone()[0] == 1
            return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def prepare_file(self) -> None:
        """SQLite: WAL mode, set outside any transaction (it persists in the file). While a new file is
        still in rollback mode, another process creating it at the same moment (two stations started
        together) holds a lock that makes SQLite refuse the switch at once rather than wait in the busy
        handler, so the switch is retried until the busy timeout."""
        if self.is_postgres:
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        with self.reading() as conn:
            while True:
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    return
                except self.engine.dialect.loaded_dbapi.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.02)


class Connection:
    """A catalogue connection: `?` statements, rows readable as row[0], row["name"] and dict(row).

    SQLAlchemy owns the connection (engine, pool, transactions and their begin events, inspection);
    statements run on its DBAPI cursor, because a catalogue row has 27 columns and building
    SQLAlchemy's result metadata for each of them made a station's take 2.5x slower on SQLite."""

    def __init__(self, conn):
        self.sa = conn
        self._cursor = conn.connection.cursor()
        self._format = conn.dialect.paramstyle != "qmark"  # psycopg: %s placeholders

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Result":
        self._cursor.execute(_placeholders(sql) if self._format else sql, tuple(params))
        return Result(self._cursor)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            self._cursor.executemany(_placeholders(sql) if self._format else sql, rows)


class Result:
    def __init__(self, cursor):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def _index(self) -> Dict[str, int]:
        return _index(tuple(column[0] for column in self._cursor.description or ()))

    def fetchone(self) -> Optional["Row"]:
        row = self._cursor.fetchone() if self._cursor.description else None
        return None if row is None else Row(row, self._index())

    def fetchall(self) -> list:
        if not self._cursor.description:
            return []
        index = self._index()
        return [Row(r, index) for r in self._cursor.fetchall()]

    def dicts(self) -> list:
        """Every row as a dict of its columns (for long lists: no Row in between)."""
        if not self._cursor.description:
            return []
        names = tuple(self._index())
        return [dict(zip(names, r)) for r in self._cursor.fetchall()]


class Row(tuple):
    """A result row as sqlite3.Row was: row[0], row["name"], dict(row)."""

    def __new__(cls, row, index: Dict[str, int]):
        self = super().__new__(cls, row)
        self._index = index
        return self

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self):
        return self._index.keys()

    def as_dict(self) -> Dict[str, Any]:
        return dict(zip(self._index, self))


@functools.lru_cache(maxsize=256)
def _index(names: Tuple[str, ...]) -> Dict[str, int]:
    return {name: i for i, name in enumerate(names)}


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """`?` as the format paramstyle's `%s` (placeholders never sit inside our statements' literals)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _forget_engines_after_fork() -> None:
    # A forked child must not share its parent's pooled server connections: it opens its own.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_engines_after_fork)


def _engine(target, is_postgres: bool):
    key = str(target) if is_postgres else str(Path(target).resolve())
    with _engines_lock:
        if key not in _engines:
            _engines[key] = _postgres_engine(target) if is_postgres else _sqlite_engine(Path(target))
        return _engines[key]


def _sqlite_engine(path: Path):
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, pool_reset_on_return=None,
                           connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # the driver opens no transaction of its own; the begin event does
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps it consistent
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # Read the file through memory mapping: a connection lives for one operation, so its own page
        # cache starts empty every time, and a long list's rows are scattered over the file.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("catalog_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # readers stay outside transactions (WAL: never blocked)

    return engine


def _postgres_engine(url: str):
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ConfigError(f"{public_url(url)}: a PostgreSQL catalogue needs psycopg: "
                          "pip install 'collector[fleet]'") from None
    from sqlalchemy import create_engine, event

    engine = create_engine(_driver_url(url), pool_pre_ping=True, pool_size=2, max_overflow=8,
                           connect_args={"connect_timeout": 10})

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("catalog_write") == "serialized":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    return engine


def error_reason(exc) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
