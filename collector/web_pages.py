"""A base request handler for the token-protected web apps that bind to localhost (the review page).

It applies the rules the session dashboard set (collector/session/dashboard.py) and that
collector.web_auth.AccessGate holds: requests must name a loopback Host (DNS rebinding), a foreign
Origin is refused whatever its token, GETs may carry the token as the HttpOnly cookie, a header,
a bearer or `?token=`, and POSTs only in the X-Collector-Token header (a cross-site form cannot add
one). `GET /?token=T` trades the token for the cookie and redirects to `/`, so it leaves the URL bar.
Subclasses set `app` (the name errors start with), `cookie`, `access` and `hint` (what to open).
"""
from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

from collector.json_values import json_default
from collector.web_auth import AccessGate

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
LOOPBACK_BINDS = ("127.0.0.1", "localhost", "::1")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
TOKEN_HEADER = "X-Collector-Token"
_DECIMAL = re.compile(r"-?[0-9]{1,20}")


class BadRequest(Exception):
    """A request the app cannot act on; answered with `status` and the one-line message."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = int(status)


def host_is_loopback(host_header: str) -> bool:
    host = (host_header or "").strip()
    name = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    return name in LOOPBACK_HOSTS


def query_value(query: Dict[str, list], name: str, app: str) -> Optional[str]:
    """The single value of a query parameter (None when absent); BadRequest if given twice."""
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{app}: query parameter {name!r} given {len(values)} times")
    return values[0]


def query_int(query: Dict[str, list], name: str, default: int, low: int, high: int, app: str) -> int:
    """The integer query parameter `name` in [low, high]; BadRequest naming it otherwise."""
    text = query_value(query, name, app)
    if text is None:
        return default
    # Plain decimal digits only: int() would also take "1_000" or non-ASCII digits.
    if not _DECIMAL.fullmatch(text.strip()) or not low <= int(text) <= high:
        raise BadRequest(f"{app}: query parameter {name!r} must be a whole number from {low} to {high}, "
                         f"got {text[:40]!r}")
    return int(text)


def static_file(directory: Path, name: str) -> Optional[Path]:
    """The file `name` directly inside `directory` with a known type, or None (no path tricks)."""
    file = (directory / name).resolve()
    if file.parent != directory.resolve() or not file.is_file() or file.suffix not in STATIC_TYPES:
        return None
    return file


class GatedHandler(BaseHTTPRequestHandler):
    """Answers with JSON or text and checks Host, Origin and token before any route runs."""

    protocol_version = "HTTP/1.1"
    # http.server sends a response's headers and its body in two writes; with Nagle's algorithm the body
    # then waits for the client's delayed ACK (~40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True
    app = "web"
    cookie = "collector_web"
    access: AccessGate
    hint = "open the URL the command printed (it contains the access token)"
    max_body_bytes = 100_000

    def log_message(self, fmt, *args):  # the access log goes to logging, quietly
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- answers -------------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes, content_type: str, headers: Optional[Dict[str, str]] = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        headers = dict(headers or {})
        headers.setdefault("Cache-Control", "no-store")
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload) -> None:
        self.send_body(status, json.dumps(payload, default=json_default, allow_nan=False).encode(),
                       "application/json")

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"ok": False, "error": " ".join(str(message).split())})

    # -- the gate ------------------------------------------------------------------------------
    def cookie_token(self) -> Optional[str]:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return None
        return cookie[self.cookie].value if self.cookie in cookie else None

    def token_candidates(self, query: Dict[str, list]) -> Tuple[Optional[str], ...]:
        if self.command == "POST":
            # A cookie alone is not enough for a change: another site could make the browser send it.
            return (self.headers.get(TOKEN_HEADER),)
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
        return (self.cookie_token(), self.headers.get(TOKEN_HEADER), bearer, (query.get("token") or [None])[0])

    def gate(self) -> Optional[Tuple[str, Dict[str, list]]]:
        """(path, query) when the request may proceed; None after answering its refusal."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if not host_is_loopback(self.headers.get("Host") or ""):
            self.send_error_json(HTTPStatus.FORBIDDEN, f"{self.app}: requests must use a localhost address")
            return None
        peer = self.client_address[0]
        refusal = self.access.check(peer, self.token_candidates(query), self.headers.get("Origin"), "http",
                                    self.headers.get("Host") or "")
        if refusal is None:
            return parts.path, query
        log.warning("%s refused %s %s from %s: %s", self.app, self.command, parts.path, peer, refusal.reason)
        if refusal.status == HTTPStatus.TOO_MANY_REQUESTS:
            message = "too many wrong tokens from this address; wait a minute"
        elif refusal.status == HTTPStatus.FORBIDDEN:
            message = "requests from another web page (Origin) are refused; see --allow-origin"
        elif self.command == "POST":
            message = f"changes need the {TOKEN_HEADER} header"
        else:
            message = self.hint
        self.send_error_json(refusal.status, f"{self.app}: {message}")
        return None

    def trade_token_for_cookie(self, token: str) -> None:
        cookie = f"{self.cookie}={token}; HttpOnly; SameSite=Strict; Path=/"
        self.send_body(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    def read_json_body(self):
        """The request's JSON body; BadRequest for a bad length, too many bytes or not JSON."""
        # A negative or huge Content-Length would make read() wait for bytes that never come.
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isascii() or not text.isdigit():
            raise BadRequest(f"{self.app}: Content-Length must be a byte count, got {text[:40]!r}")
        length = int(text)
        if length > self.max_body_bytes:
            raise BadRequest(f"{self.app}: body of {length} bytes exceeds {self.max_body_bytes}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest(f"{self.app}: the body must be a JSON object") from None


def allowed_bind(host: str, app: str) -> str:
    from collector.errors import ConfigError

    if host not in LOOPBACK_BINDS:
        raise ConfigError(f"{app} host {host!r}: it only binds to localhost "
                          "(reach it remotely with `ssh -L PORT:localhost:PORT station`)")
    return host


__all__: Sequence[str] = ("BadRequest", "GatedHandler", "LOOPBACK_HOSTS", "STATIC_TYPES", "allowed_bind",
                          "host_is_loopback", "query_int", "query_value", "static_file")
