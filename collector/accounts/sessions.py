"""Login sessions: a random token in the browser's cookie, and on the server (the catalogue database,
so a session outlives a page restart) only its SHA-256 with the person and an expiry. Reading the
database therefore gives no one a usable session. The clock is injectable so expiry is tested without
waiting."""
from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Callable, Dict, Optional, Tuple

from collector.accounts.store import Account, AccountStore
from collector.errors import ConfigError

DEFAULT_TTL_S = 12 * 3600.0  # one shift
TOKEN_BYTES = 32
# A page asks for ~30 frames a second; each request would otherwise be one database read. A logout or
# removal on this server takes effect at once; one made elsewhere within this many seconds.
CACHE_S = 10.0

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def csrf_token(session_token: str) -> str:
    """What a page sends in the X-Collector-Token header of its changes: derived from the session (so it
    needs no storage), but not the session itself (the page's scripts never see the HttpOnly cookie)."""
    return hashlib.sha256(b"collector-csrf:" + session_token.encode("utf-8", "replace")).hexdigest()[:32]


class SessionStore:
    def __init__(self, accounts: AccountStore, ttl_s: float = DEFAULT_TTL_S,
                 clock: Optional[Callable[[], float]] = None):
        if not ttl_s > 0:
            raise ConfigError(f"session expiry must be a positive number of seconds, got {ttl_s}")
        self.accounts = accounts
        self.db = accounts.db
        self.ttl_s = float(ttl_s)
        self.clock = clock or accounts.clock
        self._cache: Dict[str, Tuple[Account, float, float]] = {}  # digest -> (account, expires_at, read_at)
        self._lock = threading.Lock()

    def login(self, name: str, password: str) -> Optional[Tuple[str, Account]]:
        """(a new session token, the account) for the right password, else None."""
        account = self.accounts.check(name, password)
        if account is None:
            return None
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        with self.db.writing() as conn:
            conn.execute("DELETE FROM account_sessions WHERE expires_at <= ?", (now,))  # keep the table small
            conn.execute("INSERT INTO account_sessions (token_sha256, name, created_at, expires_at) VALUES (?,?,?,?)",
                         (_digest(token), account.name, now, now + self.ttl_s))
        return token, account

    def account(self, token: Optional[str]) -> Optional[Account]:
        """Who the session `token` belongs to, or None (unknown, expired, logged out, account removed)."""
        if not token:
            return None
        digest, now = _digest(token), self.clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now < cached[1] and now - cached[2] < CACHE_S:
            return cached[0]
        with self.db.reading() as conn:
            row = conn.execute("SELECT s.expires_at, a.name, a.role FROM account_sessions s JOIN accounts a"
                               " ON a.name = s.name WHERE s.token_sha256=?", (digest,)).fetchone()
        with self._lock:
            if row is None or now >= row["expires_at"]:
                self._cache.pop(digest, None)
                return None
            account = Account(row["name"], row["role"])
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (account, row["expires_at"], now)
            return account

    def logout(self, token: Optional[str]) -> None:
        if not token:
            return
        digest = _digest(token)
        with self._lock:
            self._cache.pop(digest, None)
        with self.db.writing() as conn:
            conn.execute("DELETE FROM account_sessions WHERE token_sha256=?", (digest,))

