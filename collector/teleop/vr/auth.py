"""Session tokens for the VR server: every request and WebSocket must carry the token.

The token is random per server start (or given by the operator), compared in constant time,
and never logged. The page URL carries it as ?token=...; the first authorised page load also
sets it as an HttpOnly, SameSite=Strict cookie so the page's own scripts and styles load
without repeating it. The WebSocket accepts only the query token: another web site the
operator has open cannot read it, so it cannot open a socket in the operator's name.

Guessing is throttled per client address: after MAX_FAILURES bad tokens in FAILURE_WINDOW_S,
that address gets nothing (HTTP 429) until the window passes.
"""
from __future__ import annotations

import hmac
import secrets
import string
import time
from collections import defaultdict, deque
from typing import Deque, Dict, Optional

from collector.errors import ConfigError

COOKIE_NAME = "collector_vr_token"
TOKEN_BYTES = 12  # 96 bits: short enough to type on a headset keyboard, far beyond online guessing
MIN_TOKEN_LEN = 12
MAX_FAILURES = 20
FAILURE_WINDOW_S = 60.0
_TOKEN_ALPHABET = set(string.ascii_letters + string.digits + "-_")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def check_user_token(token: str) -> str:
    if len(token) < MIN_TOKEN_LEN or not set(token) <= _TOKEN_ALPHABET:
        raise ConfigError(f"--token must be at least {MIN_TOKEN_LEN} characters of [A-Za-z0-9_-]")
    return token


def token_matches(expected: str, given: Optional[str]) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


class FailureLimiter:
    """Counts failed token attempts per client address in a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S):
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: Dict[str, Deque[float]] = defaultdict(deque)

    def _trim(self, peer: str, now: float) -> Deque[float]:
        failures = self._failures[peer]
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[peer]
        return failures

    def blocked(self, peer: str, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._trim(peer, now)) >= self.max_failures

    def record_failure(self, peer: str, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        self._failures[peer].append(now)
