"""The operator's web dashboard: a small HTTP server on localhost, protected by a token.

Why plain HTTP from the standard library: the dashboard is bound to loopback, so the browser treats
it as a secure context without TLS, and it reaches a remote station unchanged through
`ssh -L 8787:localhost:8787 station`. Nothing in it needs a framework.

Pages and endpoints (all need the token):
  GET  /?token=T            sets the token cookie and redirects to / (the token leaves the URL bar)
  GET  /                    the page (static/dashboard.html), with the token in a meta tag for POSTs
  GET  /static/<file>       the page's script and style
  GET  /api/state           one JSON snapshot of LiveState
  GET  /api/events          Server-Sent Events: a snapshot on every change, and at least 4 per second
  GET  /api/episodes        the most recent catalogue rows of this dataset (`?limit=N`, 1..1000, default 20)
  GET  /camera/<name>.jpg   the newest frame of a camera; `?after=SEQ` waits (up to 2 s) for a newer one.
                            The page asks for the next frame when the previous one arrived, so a slow
                            link gets fewer frames instead of a growing backlog (unlike MJPEG).
  POST /api/control         {"action": "start" | "stop" | "discard" | "success" | "failure" | "rerecord"}

Security (the access rules shared with the VR server, collector.web_auth.AccessGate): the token
is random per start and compared in constant time; wrong tokens are counted per client on every method
and a guesser is answered 429, but the right token is always accepted (every local process shares
127.0.0.1, so locking an address out would lock the operator out); a request whose Origin is neither
this dashboard's page nor an --allow-origin is refused with 403 whatever its token; the cookie is
HttpOnly and SameSite=Strict; POSTs must also carry the token in an X-Collector-Token header, which a
cross-site form cannot add; requests whose Host is not a loopback name are refused (DNS rebinding).
A malformed query value (`?limit=abc`) is answered 400 naming the parameter.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import numpy as np

from collector.errors import CollectorError, ConfigError
from collector.session.live import LiveState
from collector.web_auth import AccessGate, check_user_token, new_token, token_matches
from collector.json_values import json_default

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
COOKIE = "collector_dashboard"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
ACTIONS = ("start", "stop", "discard", "success", "failure", "rerecord")
EVENT_INTERVAL_S = 0.25
JPEG_QUALITY = 80
MAX_EPISODE_ROWS = 1000
MAX_FRAME_SEQ = 2**63 - 1
MAX_BODY_BYTES = 10_000  # {"action": "..."} is a few dozen bytes
_DECIMAL = re.compile(r"-?[0-9]{1,20}")


class BadRequest(Exception):
    """A request the dashboard cannot act on; the message is sent back with 400 (or `status`)."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def query_int(query: Dict, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter `name` in [low, high]; BadRequest naming it otherwise."""
    values = query.get(name)
    if not values:
        return default
    if len(values) > 1:
        raise BadRequest(f"dashboard: query parameter {name!r} given {len(values)} times")
    text = values[0].strip()
    # Plain decimal digits only: int() would also take "1_000" or non-ASCII digits.
    if not _DECIMAL.fullmatch(text) or not low <= int(text) <= high:
        raise BadRequest(f"dashboard: query parameter {name!r} must be a whole number from {low} to {high}, "
                         f"got {values[0][:40]!r}")
    return int(text)


class _JpegCache:
    """Encodes each camera frame at most once, however many browsers watch it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cache: Dict[str, Tuple[int, bytes]] = {}

    def encode(self, camera: str, seq: int, image: np.ndarray) -> bytes:
        with self._lock:
            cached = self._cache.get(camera)
            if cached and cached[0] == seq:
                return cached[1]
        import cv2

        # Frames are RGB (MuJoCo and the recorder's convention); OpenCV encodes BGR.
        ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]),
                                  [int(cv2.IMWRITE_JPEG_QUALITY), JPEG_QUALITY])
        if not ok:
            raise ValueError(f"camera {camera}: frame could not be JPEG-encoded")
        data = buffer.tobytes()
        with self._lock:
            self._cache[camera] = (seq, data)
        return data


class DashboardServer:
    """Serves the dashboard for one session. `control(action)` runs a button press and returns a message."""

    def __init__(self, live: LiveState, control: Callable[[str], str], *, host: str = "127.0.0.1",
                 port: int = 8787, token: Optional[str] = None,
                 recent_episodes: Optional[Callable[[int], list]] = None, allowed_origins: Sequence[str] = ()):
        if host not in ("127.0.0.1", "localhost", "::1"):
            # The dashboard starts and discards recordings: it is never exposed beyond this machine.
            # Remote operators use SSH port forwarding (see docs/sessions.md).
            raise ConfigError(f"dashboard host {host!r}: the dashboard only binds to localhost "
                              "(reach it remotely with `ssh -L PORT:localhost:PORT station`)")
        self.live = live
        self.control = control
        self.token = check_user_token(token) if token else new_token()
        self.access = AccessGate(self.token, allowed_origins, unauthorized=HTTPStatus.UNAUTHORIZED)
        self.recent_episodes = recent_episodes
        self.jpeg = _JpegCache()
        self.closing = threading.Event()
        handler = type("DashboardHandler", (_Handler,), {"dashboard": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/?token={self.token}"

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dashboard", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def token_ok(self, candidate: Optional[str]) -> bool:
        return token_matches(self.token, candidate)

    @property
    def refused_requests(self) -> int:
        """Requests refused for a missing or wrong token or a foreign Origin, on any method."""
        return self.access.refused


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body of every keep-alive answer
    # (each camera frame) waited ~40 ms for the browser's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "collector-dashboard"

    def log_message(self, fmt, *args):  # route the access log to logging, quietly
        log.debug("%s %s", self.address_string(), fmt % args)

    # -- helpers -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: Optional[Dict[str, str]] = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload, default=_json_default).encode(), "application/json")

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _cookie_token(self) -> Optional[str]:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie[COOKIE].value if COOKIE in cookie else None

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in LOOPBACK_HOSTS

    def _token_candidates(self, query: Dict) -> Tuple[Optional[str], ...]:
        if self.command == "POST":
            # A cookie alone is not enough for an action: another site could make the browser send it.
            return (self.headers.get("X-Collector-Token"),)
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
        return (self._cookie_token(), self.headers.get("X-Collector-Token"), bearer, (query.get("token") or [None])[0])

    def _gate(self) -> Optional[Tuple[str, Dict]]:
        """Checks host, Origin and token (every method); returns (path, query) or None after answering the refusal."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if not self._host_ok():
            self._text(HTTPStatus.FORBIDDEN, "dashboard: requests must use a localhost address")
            return None
        peer = self.client_address[0]
        refusal = self.dashboard.access.check(peer, self._token_candidates(query), self.headers.get("Origin"),
                                              "http", self.headers.get("Host") or "")
        if refusal is None:
            return parts.path, query
        log.warning("dashboard refused %s %s from %s: %s", self.command, parts.path, peer, refusal.reason)
        if refusal.status == HTTPStatus.TOO_MANY_REQUESTS:
            self._text(refusal.status, "dashboard: too many wrong tokens from this address; wait a minute")
        elif refusal.status == HTTPStatus.FORBIDDEN:
            self._text(refusal.status, "dashboard: requests from another web page (Origin) are refused; "
                                       "see --allow-origin")
        elif self.command == "POST":
            self._text(refusal.status, "dashboard: actions need the X-Collector-Token header")
        else:
            self._text(refusal.status, "dashboard: open the URL printed by `collector session` "
                                       "(it contains the access token)")
        return None

    # -- GET -------------------------------------------------------------------------------------
    def do_GET(self):
        gated = self._gate()
        if gated is None:
            return
        path, query = gated
        try:
            if path == "/" and "token" in query:
                # Trade the URL token for a cookie, and drop it from the address bar and history.
                cookie = f"{COOKIE}={self.dashboard.token}; HttpOnly; SameSite=Strict; Path=/"
                self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
            elif path in ("/", "/index.html"):
                page = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
                page = page.replace("{{TOKEN}}", self.dashboard.token)
                self._send(HTTPStatus.OK, page.encode(), STATIC_TYPES[".html"])
            elif path.startswith("/static/"):
                self._static(path.removeprefix("/static/"))
            elif path == "/api/state":
                self._json(HTTPStatus.OK, self.dashboard.live.snapshot())
            elif path == "/api/events":
                self._events()
            elif path == "/api/episodes":
                limit = query_int(query, "limit", 20, 1, MAX_EPISODE_ROWS)
                rows = self.dashboard.recent_episodes(limit) if self.dashboard.recent_episodes else []
                self._json(HTTPStatus.OK, rows)
            elif path.startswith("/camera/") and path.endswith(".jpg"):
                after = query_int(query, "after", 0, 0, MAX_FRAME_SEQ)
                self._camera(path[len("/camera/"):-len(".jpg")], after)
            else:
                self._text(HTTPStatus.NOT_FOUND, f"dashboard: no page {path}")
        except BadRequest as exc:
            self._text(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away mid-answer

    do_HEAD = do_GET

    def _static(self, name: str) -> None:
        file = (STATIC_DIR / name).resolve()
        if file.parent != STATIC_DIR.resolve() or not file.is_file() or file.suffix not in STATIC_TYPES:
            self._text(HTTPStatus.NOT_FOUND, f"dashboard: no file {name}")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), STATIC_TYPES[file.suffix])

    def _camera(self, camera: str, after: int) -> None:
        live = self.dashboard.live
        if after:
            frame = live.wait_for_frame(camera, after, timeout_s=2.0)
            if frame is None:  # nothing newer yet: tell the page to ask again
                self._send(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                return
        else:
            frame = live.frame(camera)
            if frame is None:
                self._text(HTTPStatus.NOT_FOUND, f"dashboard: no frames from camera {camera!r} yet")
                return
        data = self.dashboard.jpeg.encode(camera, frame.seq, frame.image)
        self._send(HTTPStatus.OK, data, "image/jpeg", {"X-Frame-Seq": str(frame.seq), "X-Frame-Time": f"{frame.t:.4f}"})

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        live, closing = self.dashboard.live, self.dashboard.closing
        version = -1
        while not closing.is_set():
            snapshot = live.snapshot()
            version = snapshot["version"]
            payload = json.dumps(snapshot, default=_json_default)
            self.wfile.write(f"data: {payload}\n\n".encode())
            self.wfile.flush()
            live.wait_for_change(version, EVENT_INTERVAL_S)

    # -- POST ------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        # A negative or huge Content-Length would make read() wait for bytes that never come.
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isascii() or not text.isdigit():
            raise BadRequest(f"dashboard: Content-Length must be a byte count, got {text[:40]!r}")
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise BadRequest(f"dashboard: body of {length} bytes exceeds {MAX_BODY_BYTES}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(length)

    def do_POST(self):
        gated = self._gate()
        if gated is None:
            self.close_connection = True  # the unread body must not be taken for the next request
            return
        path, _ = gated
        if path != "/api/control":
            self.close_connection = True
            self._text(HTTPStatus.NOT_FOUND, f"dashboard: no action endpoint {path}")
            return
        try:
            body = json.loads(self._read_body() or b"{}")
            action = body.get("action") if isinstance(body, dict) else None
        except BadRequest as exc:
            self.close_connection = True
            self._json(exc.status, {"ok": False, "error": str(exc)})
            return
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": "body must be JSON like {\"action\": \"start\"}"})
            return
        if action not in ACTIONS:
            self._json(HTTPStatus.BAD_REQUEST, {"ok": False, "error": f"unknown action {action!r} (one of {ACTIONS})"})
            return
        try:
            message = self.dashboard.control(action)
        except CollectorError as exc:
            self._json(HTTPStatus.CONFLICT, {"ok": False, "error": str(exc)})
            return
        self._json(HTTPStatus.OK, {"ok": True, "message": message})


def _json_default(value):
    # The live view must keep going whatever a driver puts in its status: unknown objects show as text.
    try:
        return json_default(value)
    except TypeError:
        return str(value)
