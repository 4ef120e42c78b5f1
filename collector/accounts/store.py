"""The accounts, kept in the catalogue database (SQLite or PostgreSQL) so one account works at every
station of a fleet: a name, a role and a password hash (passwords.py); never the password itself."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional

from collector.accounts.passwords import hash_password, verify_password
from collector.accounts.roles import check_role
from collector.errors import ConfigError

if TYPE_CHECKING:  # the pages import this module; the catalogue (and SQLAlchemy) only when accounts are used
    from collector.session.catalog import Catalog

_TABLE = """
CREATE TABLE IF NOT EXISTS accounts (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at REAL NOT NULL,
    changed_at REAL NOT NULL
)"""
# Login sessions (sessions.py): the SHA-256 of each token, never the token.
_SESSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS account_sessions (
    token_sha256 TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL
)"""
# Letters, digits and . _ @ - : a name is shown on pages and written into every take and label.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class Account:
    name: str
    role: str


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"account name {str(name)[:80]!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
                          "starting with a letter or digit")
    return name


class AccountStore:
    def __init__(self, catalog: "Catalog", clock: Callable[[], float] = time.time):
        self.catalog = catalog
        self.db = catalog.db
        self.clock = clock
        with self.db.writing() as conn:
            conn.execute(self.db.ddl(_TABLE))
            conn.execute(self.db.ddl(_SESSIONS_TABLE))

    def add(self, name: str, role: str, password: str) -> Account:
        name, role = check_name(name), check_role(role)
        stored = hash_password(password)  # before the transaction: hashing takes tens of milliseconds
        now = self.clock()
        with self.db.writing() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE name=?", (name,)).fetchone():
                raise ConfigError(f"account {name!r} already exists in {self.catalog.path} "
                                  "(change its password with `passwd`)")
            conn.execute("INSERT INTO accounts (name, role, password, created_at, changed_at) VALUES (?,?,?,?,?)",
                         (name, role, stored, now, now))
        return Account(name, role)

    def set_password(self, name: str, password: str) -> None:
        """A new password; every session of the account ends (whoever knew the old one is logged out)."""
        stored = hash_password(password)
        with self.db.writing() as conn:
            changed = conn.execute("UPDATE accounts SET password=?, changed_at=? WHERE name=?",
                                   (stored, self.clock(), name)).rowcount
            if changed != 1:
                raise ConfigError(f"no account {name!r} in {self.catalog.path}")
            conn.execute("DELETE FROM account_sessions WHERE name=?", (name,))

    def remove(self, name: str) -> None:
        with self.db.writing() as conn:
            removed = conn.execute("DELETE FROM accounts WHERE name=?", (name,)).rowcount
            if removed != 1:
                raise ConfigError(f"no account {name!r} in {self.catalog.path}")
            conn.execute("DELETE FROM account_sessions WHERE name=?", (name,))

    def accounts(self) -> List[Account]:
        with self.db.reading() as conn:
            rows = conn.execute("SELECT name, role FROM accounts ORDER BY name").fetchall()
        return [Account(row["name"], row["role"]) for row in rows]

    def count(self) -> int:
        with self.db.reading() as conn:
            return conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]

    def stored_hash(self, name: str) -> Optional[str]:
        with self.db.reading() as conn:
            row = conn.execute("SELECT password FROM accounts WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def check(self, name: str, password: str) -> Optional[Account]:
        """The account if `password` is its password, else None (an unknown name costs a hash too)."""
        with self.db.reading() as conn:
            row = conn.execute("SELECT name, role, password FROM accounts WHERE name=?", (name,)).fetchone()
        # An unknown name is checked against a dummy hash: answering faster would tell a guesser
        # which names exist.
        stored = row["password"] if row else _dummy_hash()
        if not verify_password(password, stored) or row is None:
            return None
        return Account(row["name"], row["role"])

    def role_of(self, name: str) -> Optional[str]:
        with self.db.reading() as conn:
            row = conn.execute("SELECT role FROM accounts WHERE name=?", (name,)).fetchone()
        return row[0] if row else None


_DUMMY: List[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password("not anyone's password"))
    return _DUMMY[0]
