"""Access rules shared by the VR server and the session dashboard: session token, Origin, guess counting.

The token is random per server start (or given by the operator), compared in constant time,
and never logged. The page URL carries it as ?token=...; the first authorised page load also
sets it as an HttpOnly, SameSite=Strict cookie so the page's own scripts and styles load
without repeating it. The WebSocket accepts only the query token: another web site the
operator has open cannot read it, so it cannot open a socket in the operator's name.

Origin (cross-site WebSocket hijacking, cross-site requests): a browser names the page that made a
request in its Origin header. A request whose Origin is not the server's own page (the scheme and
Host the request was sent to) nor an origin the operator allowed (--allow-origin) is refused with
403, whatever token it carries. Requests without an Origin (curl, our own tools and tests, a
browser's same-origin GET) are judged by their token alone.

Wrong tokens are counted per client address on every method. Counting never locks out the right
token: on a station every local process shares 127.0.0.1, so refusing an address would let any
program there lock the operator out by guessing. A correct token is always accepted; after
MAX_FAILURES wrong ones in FAILURE_WINDOW_S from one address, that address's further wrong
attempts are answered 429 (a guesser sees it is throttled; 96-bit tokens are beyond online guessing).
"""
from __future__ import annotations

import hmac
import re
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Deque, Dict, Iterable, Optional, Sequence

from collector.errors import ConfigError

COOKIE_NAME = "collector_vr_token"
TOKEN_BYTES = 12  # 96 bits: short enough to type on a headset keyboard, far beyond online guessing
MIN_TOKEN_LEN = 12
MAX_FAILURES = 20
FAILURE_WINDOW_S = 60.0
_TOKEN_ALPHABET = set(string.ascii_letters + string.digits + "-_")
# scheme://host[:port] exactly as browsers send it in Origin (no path, no trailing slash).
_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_user_token(token: str) -> str:
    if len(token) < MIN_TOKEN_LEN or not set(token) <= _TOKEN_ALPHABET:
        raise ConfigError(f"--token must be at least {MIN_TOKEN_LEN} characters of [A-Za-z0-9_-]")
    return token


def token_matches(expected: str, given: Optional[str]) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def check_allowed_origin(origin: str) -> str:
    """An --allow-origin value, normalised as browsers send it ("https://host:port"); ConfigError if malformed."""
    normal = origin.strip().rstrip("/").lower()
    if not _ORIGIN.match(normal):
        raise ConfigError(f"--allow-origin {origin!r}: expected scheme://host[:port], e.g. https://192.168.1.20:8443")
    return normal


class FailureLimiter:
    """Counts failed token attempts per client address in a sliding window (at most max_failures kept)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: Dict[str, Deque[float]] = {}

    def blocked(self, peer: str, now: Optional[float] = None) -> bool:
        """Whether `peer` made max_failures failed attempts within the window (its wrong guesses get 429)."""
        now = time.monotonic() if now is None else now
        failures = self._failures.get(peer)
        if failures and failures[-1] < now - self.window_s:
            del self._failures[peer]  # forget quiet clients so the table stays small
            return False
        return bool(failures) and len(failures) >= self.max_failures and failures[0] >= now - self.window_s

    def record_failure(self, peer: str, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        # Only the newest max_failures matter, so a flood of guesses cannot grow memory.
        self._failures.setdefault(peer, deque(maxlen=self.max_failures)).append(now)


@dataclass(frozen=True)
class Refusal:
    status: int  # the HTTP status to answer with
    reason: str  # for the server's log (never the token)


class AccessGate:
    """One server's access rules: its token, the origins it accepts, and the wrong-guess counter.

    `unauthorized` is the status for a missing or wrong token (the dashboard answers 401 with a hint,
    the VR server a bare 403)."""

    def __init__(self, token: str, allowed_origins: Sequence[str] = (),
                 unauthorized: int = HTTPStatus.FORBIDDEN, limiter: Optional[FailureLimiter] = None):
        self.token = token
        self.allowed_origins = frozenset(check_allowed_origin(o) for o in allowed_origins)
        self.unauthorized = int(unauthorized)
        self.limiter = limiter or FailureLimiter()
        self.refused = 0
        self.refused_origins = 0

    def origin_allowed(self, origin: str, scheme: str, host: str) -> bool:
        """The page's own origin (scheme and the Host the request was sent to), or one the operator allowed."""
        origin = origin.strip().rstrip("/").lower()
        return origin == f"{scheme}://{host.strip().lower()}" or origin in self.allowed_origins

    def check(self, peer: str, tokens: Iterable[Optional[str]], origin: Optional[str], scheme: str,
              host: str, now: Optional[float] = None) -> Optional[Refusal]:
        """None if the request may proceed, else how to refuse it. Every refusal is counted."""
        if origin is not None and not self.origin_allowed(origin, scheme, host):
            self.refused_origins += 1
            return self._refuse(peer, HTTPStatus.FORBIDDEN, f"foreign Origin {origin[:100]!r}", now)
        tokens = [t for t in tokens if t]
        # Every candidate is compared (no early exit), each in constant time.
        if any([token_matches(self.token, t) for t in tokens]):
            return None
        reason = "wrong session token" if tokens else "no session token"
        if self.limiter.blocked(peer, now):
            return self._refuse(peer, HTTPStatus.TOO_MANY_REQUESTS, reason + " (throttled)", now)
        return self._refuse(peer, self.unauthorized, reason, now)

    def _refuse(self, peer: str, status: int, reason: str, now: Optional[float]) -> Refusal:
        self.limiter.record_failure(peer, now)
        self.refused += 1
        return Refusal(int(status), reason)
