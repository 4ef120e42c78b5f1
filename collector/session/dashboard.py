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

Security (the gate shared with the review page, collector/web_pages.py over collector.web_auth.AccessGate,
the VR server's access rules): the token is random per start and compared in constant time; wrong tokens
are counted per client on every method and a guesser is answered 429, but the right token is always
accepted (every local process shares 127.0.0.1, so locking an address out would lock the operator out);
a request whose Origin is neither this dashboard's page nor an --allow-origin is refused with 403 whatever
its token; the cookie is HttpOnly and SameSite=Strict; POSTs must also carry the token in an
X-Collector-Token header, which a cross-site form cannot add; requests whose Host is not a loopback name
are refused (DNS rebinding). Errors are JSON {"ok": false, "error": one line}: a malformed query value
(`?limit=abc`) is answered 400 naming the parameter, a button the session cannot act on now 409.

Beyond loopback (`collector session --listen` with TLS and accounts, collector/web_pages.py) every request
needs a login with the operator or admin role, and whoever presses Start (or Re-record) is recorded as the
operator of the takes that follow (`take_operator`).
"""
from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from collector.errors import CollectorError
from collector.json_values import tolerant_json_bytes
from collector.session.live import LiveState
from collector.web_pages import STATIC_TYPES, BadRequest, GatedHandler, GatedServer, query_int

log = logging.getLogger(__name__)

APP = "dashboard"
STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "collector_dashboard"
ACTIONS = ("start", "stop", "discard", "success", "failure", "rerecord")
EVENT_INTERVAL_S = 0.25
JPEG_QUALITY = 80
MAX_EPISODE_ROWS = 1000
MAX_FRAME_SEQ = 2**63 - 1
MAX_BODY_BYTES = 10_000  # {"action": "..."} is a few dozen bytes


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


class DashboardServer(GatedServer):
    """Serves the dashboard for one session. `control(action)` runs a button press and returns a message."""

    app = APP

    def __init__(self, live: LiveState, control: Callable[[str], str], *, host: str = "127.0.0.1",
                 port: int = 8787, token: Optional[str] = None,
                 recent_episodes: Optional[Callable[[int], list]] = None, allowed_origins: Sequence[str] = (),
                 floor=None, take_operator: Optional[Callable[[str], None]] = None):
        self.live = live
        self.control = control
        self.recent_episodes = recent_episodes
        self.take_operator = take_operator  # called with the logged-in name before a take starts
        self.jpeg = _JpegCache()
        super().__init__(_Handler, host=host, port=port, token=token, allowed_origins=allowed_origins,
                         floor=floor)


class _Handler(GatedHandler):
    server_app: DashboardServer
    app = APP
    cookie = COOKIE
    server_version = "collector-dashboard"
    hint = "open the URL printed by `collector session` (it contains the access token)"
    max_body_bytes = MAX_BODY_BYTES

    def json_bytes(self, payload) -> bytes:
        return tolerant_json_bytes(payload)

    # -- GET -------------------------------------------------------------------------------------
    def route_get(self, path: str, query: Dict[str, list]) -> None:
        dashboard = self.server_app
        if path == "/" and "token" in query:
            self.trade_token_for_cookie(dashboard.token)  # and drop it from the address bar and history
        elif path in ("/", "/index.html"):
            page = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
            page = page.replace("{{TOKEN}}", self.page_token())
            self.send_body(HTTPStatus.OK, self.page_html(page).encode(), STATIC_TYPES[".html"])
        elif path.startswith("/static/"):
            self.send_static(STATIC_DIR, path.removeprefix("/static/"), APP)
        elif path == "/api/state":
            self.send_json(HTTPStatus.OK, dashboard.live.snapshot())
        elif path == "/api/events":
            self._events()
        elif path == "/api/episodes":
            limit = query_int(query, "limit", 20, 1, MAX_EPISODE_ROWS, APP)
            self.send_json(HTTPStatus.OK, dashboard.recent_episodes(limit) if dashboard.recent_episodes else [])
        elif path.startswith("/camera/") and path.endswith(".jpg"):
            after = query_int(query, "after", 0, 0, MAX_FRAME_SEQ, APP)
            self._camera(path[len("/camera/"):-len(".jpg")], after)
        else:
            super().route_get(path, query)

    def _camera(self, camera: str, after: int) -> None:
        live = self.server_app.live
        if after:
            frame = live.wait_for_frame(camera, after, timeout_s=2.0)
            if frame is None:  # nothing newer yet: tell the page to ask again
                self.send_body(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                return
        else:
            frame = live.frame(camera)
            if frame is None:
                raise BadRequest(f"{APP}: no frames from camera {camera[:80]!r} yet", HTTPStatus.NOT_FOUND)
        data = self.server_app.jpeg.encode(camera, frame.seq, frame.image)
        self.send_body(HTTPStatus.OK, data, "image/jpeg",
                       {"X-Frame-Seq": str(frame.seq), "X-Frame-Time": f"{frame.t:.4f}"})

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        live, closing = self.server_app.live, self.server_app.closing
        while not closing.is_set():
            snapshot = live.snapshot()
            self.wfile.write(b"data: " + self.json_bytes(snapshot) + b"\n\n")
            self.wfile.flush()
            live.wait_for_change(snapshot["version"], EVENT_INTERVAL_S)

    # -- POST ------------------------------------------------------------------------------------
    def route_post(self, path: str, query: Dict[str, list]) -> None:
        if path != "/api/control":
            return super().route_post(path, query)  # 404
        body = self.read_json_body()
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ACTIONS:
            raise BadRequest(f"{APP}: unknown action {str(action)[:40]!r} (one of {', '.join(ACTIONS)})")
        if self.person is not None and action in ("start", "rerecord") and self.server_app.take_operator:
            self.server_app.take_operator(self.person.name)  # the take records who started it
        try:
            message = self.server_app.control(action)
        except CollectorError as exc:  # the operator's message as the session said it, e.g. nothing to discard
            self.send_json(HTTPStatus.CONFLICT, {"ok": False, "error": str(exc)})
            return
        self.send_json(HTTPStatus.OK, {"ok": True, "message": message})

