"""The VR bridge server: HTTPS page + WebSocket for the operator's headset, ZMQ to the teleop loop.

   headset browser  --wss-->  VRServer  --ZMQ PUB (teleop wire form)-->  teleop loop
   (static/ page)   <-------  camera frames + status  <--ZMQ SUB--  CameraFeedPublisher / StatusPublisher
                              episode events --ZMQ PUB-->  session layer

Everything runs on one asyncio loop (aiohttp). `ServerThread` runs that loop in a background
thread for programs that are not asyncio themselves (tests, benchmarks, a launcher).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence

import numpy as np
import zmq
import zmq.asyncio
from aiohttp import web

from collector.errors import DataError, DeviceError
from collector.teleop.messages import OperatorInput
from collector.teleop.realtime import input_context
from collector.teleop.vr.connection import DEFAULT_MAX_FRAME_AGE_S, ClientConnection
from collector.teleop.vr.controls import EpisodeRequest
from collector.teleop.vr.converter import new_seq_counter
from collector.teleop.vr.endpoints import CAMERA_ENDPOINT, DEFAULT_PORT, EVENT_ENDPOINT, STATUS_ENDPOINT
from collector.teleop.vr.events import EpisodeEventPublisher
from collector.teleop.vr.feeds import CAMERA_TOPIC, STATUS_TOPIC, decode_camera, decode_status, is_headset_camera
from collector.teleop.vr.protocol import MAX_TEXT_MESSAGE_BYTES, pack_camera_frame
from collector.teleop.vr.recording import SessionRecorder
from collector.teleop.zmq_link import InputPublisher
from collector.web_auth import COOKIE_NAME, AccessGate, new_token

log = logging.getLogger(__name__)

# Frames above the protocol's soft limit are rejected politely; far above it aiohttp drops the link (1009).
HARD_MESSAGE_LIMIT = 4 * MAX_TEXT_MESSAGE_BYTES
WS_HEARTBEAT_S = 5.0
# No status from the session/loop for this long is shown to the operator as a warning.
STATUS_STALE_S = 3.0
CAMERA_STALE_S = 2.0
WARNING_TTL_S = 10.0
MAX_WARNINGS = 8
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page URL carries the token
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self' wss: ws:; frame-ancestors 'none'"
    ),
}


def default_input_endpoint() -> str:
    """Where the teleop loop subscribes for operator input (configs/teleop.yaml control.input_endpoint)."""
    from collector.teleop.config import load_teleop_config

    return load_teleop_config().control.input_endpoint


def default_realtime_priority() -> int:
    """The station's SCHED_FIFO priority for the input path (configs/teleop.yaml control.realtime_priority)."""
    from collector.teleop.config import load_teleop_config

    return load_teleop_config().control.realtime_priority


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: Optional[str] = None  # None: a fresh random token
    ssl_context: Optional[ssl.SSLContext] = None  # None serves plain HTTP (only for loopback tools)
    input_endpoint: Optional[str] = None  # None: the teleop config's control.input_endpoint
    input_bind: bool = True
    # SCHED_FIFO priority of the ZMQ thread that sends operator input on (None: the teleop config's
    # control.realtime_priority; applied only where permitted, see collector/teleop/realtime.py).
    input_priority: Optional[int] = None
    camera_endpoint: str = CAMERA_ENDPOINT
    status_endpoint: str = STATUS_ENDPOINT
    event_endpoint: str = EVENT_ENDPOINT
    cameras: Optional[Sequence[str]] = None  # camera names to forward; None: the head camera(s); ["all"]: every one
    allow_watchers: bool = True
    record_path: Optional[Path] = None  # append the operator's page messages here (JSON lines) for replay
    max_frame_rate_hz: float = 250.0
    # Frames older than this when processed are not published (see connection.py); the teleop loop holds
    # on input older than its hold_after_s (0.1 s by default), so replaying them late only adds lag.
    max_frame_age_s: float = DEFAULT_MAX_FRAME_AGE_S
    cert_path: Optional[Path] = None  # served at /cert.pem so a headset can install it
    # Pages allowed to call this server besides its own (Origin "scheme://host:port"); see collector/web_auth.py.
    allowed_origins: Sequence[str] = ()


@dataclass
class BridgeCounters:
    """What the bridge did with the operator's frames; connections report here, /stats and the status show it."""

    published: int = 0  # inputs sent on to the teleop loop
    rejected: int = 0  # messages refused (malformed, out of order, rate limit, transport errors)
    stale_dropped: int = 0  # pose frames too old to drive the robot when processed

    def message_rejected(self) -> None:
        self.rejected += 1

    def frame_stale(self) -> None:
        self.stale_dropped += 1


def _static_bytes(name: str) -> bytes:
    return resources.files("collector.teleop.vr").joinpath("static", name).read_bytes()


class VRServer:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.token = config.token or new_token()
        self.session_id = secrets.token_hex(4)
        self.seq_counter = new_seq_counter()
        self.session_status: dict = {}
        self.recorder: Optional[SessionRecorder] = None
        self.counters = BridgeCounters()
        self._status_received_at: Optional[float] = None
        self._camera_received_at: Optional[float] = None
        self._warnings: Dict[str, float] = {}
        self._operator: Optional[ClientConnection] = None
        self._connections: Dict[int, ClientConnection] = {}
        self._conn_ids = itertools.count(1)
        self._access = AccessGate(self.token, config.allowed_origins)
        self.camera_latency_s: Deque[float] = deque(maxlen=10_000)
        self.pose_age_s: Deque[float] = deque(maxlen=10_000)
        self.camera_frames_sent: Dict[str, int] = {}
        self._tasks: List[asyncio.Task] = []
        self._runner: Optional[web.AppRunner] = None
        self._zctx: Optional[zmq.asyncio.Context] = None
        self._inputs: Optional[InputPublisher] = None
        self._input_zctx: Optional[zmq.Context] = None  # None: the process-wide context
        self._events: Optional[EpisodeEventPublisher] = None
        self.port: Optional[int] = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # release whatever was already bound, so the error is the only effect
            raise
        log.info("VR server listening on %s", self.url(with_token=False))

    async def _start(self) -> None:
        cfg = self.config
        input_endpoint = cfg.input_endpoint or default_input_endpoint()
        if not input_endpoint.startswith("inproc://"):  # inproc only reaches the process-wide context
            priority = default_realtime_priority() if cfg.input_priority is None else cfg.input_priority
            self._input_zctx = input_context(priority)
        self._inputs = InputPublisher(input_endpoint, bind=cfg.input_bind, context=self._input_zctx)
        self._events = EpisodeEventPublisher(cfg.event_endpoint, bind=True)
        self._zctx = zmq.asyncio.Context()
        camera_sub = self._bind_sub(cfg.camera_endpoint, CAMERA_TOPIC, "camera feed")
        status_sub = self._bind_sub(cfg.status_endpoint, STATUS_TOPIC, "status feed")
        if cfg.record_path is not None:
            self.recorder = SessionRecorder(cfg.record_path)
        app = web.Application(middlewares=[self._auth_middleware], client_max_size=64 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/cert.pem", self._cert)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/favicon.ico", self._no_content)
        app.router.add_get("/ws", self._websocket)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=cfg.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise DeviceError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1]
        self._tasks = [
            asyncio.create_task(self._camera_loop(camera_sub), name="vr-camera-in"),
            asyncio.create_task(self._status_loop(status_sub), name="vr-status-in"),
            asyncio.create_task(self._housekeeping(), name="vr-housekeeping"),
        ]

    def _bind_sub(self, endpoint: str, topic: bytes, what: str) -> zmq.asyncio.Socket:
        sock = self._zctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 16)
        sock.setsockopt(zmq.SUBSCRIBE, topic)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise DeviceError(f"cannot bind the {what} at {endpoint}: {exc} (is another VR server running?)") from None
        return sock

    async def stop(self) -> None:
        operator, self._operator = self._operator, None
        if operator is not None and operator.converter is not None and self._inputs is not None:
            self.publish_input(operator.converter.release(time.monotonic()))  # the robot holds at once
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for conn in list(self._connections.values()):
            await conn.ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None
        if self._input_zctx is not None:
            self._input_zctx.destroy(linger=0)
            self._input_zctx = None
        if self._events is not None:
            self._events.close()
            self._events = None
        if self._zctx is not None:
            self._zctx.destroy(linger=0)
            self._zctx = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def wait_for_subscribers(self, timeout_s: float = 5.0, inputs: bool = True, events: bool = False) -> None:
        """Block until the teleop loop (and/or a session) has subscribed: ZMQ drops what is sent before that."""
        if inputs:
            self._inputs.wait_for_subscriber(timeout_s)
        if events:
            self._events.wait_for_subscriber(timeout_s)

    def url(self, host: Optional[str] = None, with_token: bool = True) -> str:
        scheme = "https" if self.config.ssl_context is not None else "http"
        host = host or self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}/" + (f"?token={self.token}" if with_token else "")

    # -- HTTP ----------------------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler):
        peer = request.remote or "?"
        given = request.query.get("token")
        if given is None and request.path != "/ws":
            given = request.cookies.get(COOKIE_NAME)
        scheme = "https" if self.config.ssl_context is not None else "http"
        refusal = self._access.check(peer, [given], request.headers.get("Origin"), scheme,
                                     request.headers.get("Host", ""))
        if refusal is not None:
            log.warning("refused %s %s from %s: %s", request.method, request.path, peer, refusal.reason)
            return web.Response(status=refusal.status)
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _page(self, request: web.Request) -> web.Response:
        html = _static_bytes("index.html").decode().replace("__COLLECTOR_TOKEN__", self.token)
        response = web.Response(text=html, content_type="text/html")
        response.set_cookie(COOKIE_NAME, self.token, secure=self.config.ssl_context is not None,
                            httponly=True, samesite="Strict", path="/")
        return response

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES or name == "index.html":
            raise web.HTTPNotFound()
        return web.Response(body=_static_bytes(name), content_type=STATIC_FILES[name])

    async def _cert(self, request: web.Request) -> web.Response:
        path = self.config.cert_path
        if path is None:
            raise web.HTTPNotFound()
        return web.Response(body=Path(path).read_bytes(), content_type="application/x-pem-file",
                            headers={"Content-Disposition": "attachment; filename=collector-vr.pem"})

    async def _no_content(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # browsers ask for a favicon; answer instead of logging a 404

    async def _stats(self, request: web.Request) -> web.Response:
        reset = request.query.getall("reset", ["0"])
        if len(reset) != 1 or reset[0] not in ("0", "1"):
            return web.Response(status=400, text="stats: reset must be 0 or 1, given once")
        stats = self.stats()
        if reset[0] == "1":  # read-and-reset, so a monitor or benchmark sees one interval
            self.camera_latency_s.clear()
            self.camera_frames_sent.clear()
            self.pose_age_s.clear()
        return web.json_response(stats)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=HARD_MESSAGE_LIMIT, heartbeat=WS_HEARTBEAT_S, compress=False)
        await ws.prepare(request)
        conn = ClientConnection(self, ws, next(self._conn_ids), request.remote or "?")
        self._connections[conn.id] = conn
        await conn.serve()
        return ws

    @property
    def refused_requests(self) -> int:
        """Requests and WebSockets refused for a missing or wrong token or a foreign Origin."""
        return self._access.refused

    # -- connections -----------------------------------------------------------------------------

    def claim_operator(self, conn: ClientConnection) -> bool:
        if self._operator is not None and not self._operator.ws.closed:
            return False
        self._operator = conn
        return True

    def connection_closed(self, conn: ClientConnection) -> None:
        self._connections.pop(conn.id, None)
        if self._operator is conn:
            self._operator = None
            if conn.converter is not None and self._inputs is not None:
                # Tell the loop at once instead of letting it wait for the stale-input timeout.
                self.publish_input(conn.converter.release(time.monotonic()))
            log.warning("%s disconnected: the robot holds until an operator reconnects", conn.label)
        else:
            log.info("%s disconnected", conn.label)
        for other in self._connections.values():
            other.status_changed()

    def publish_input(self, msg: OperatorInput) -> None:
        self._inputs.publish(msg)
        self.counters.published += 1
        if msg.head is not None or msg.left_wrist is not None or msg.right_wrist is not None:  # not a release
            # Tracked-to-published: the bridge's whole share of the latency (page, link, server).
            self.pose_age_s.append(time.monotonic() - msg.stamp)

    def publish_episode(self, request: EpisodeRequest, conn: ClientConnection) -> None:
        self._events.publish(request.action, request.outcome, trigger=request.trigger,
                             operator=f"{conn.peer}#{conn.id}")
        self.add_warning(f"requested: {request.action}" + (f" ({request.outcome})" if request.outcome else ""))

    def add_warning(self, text: str) -> None:
        """Show text on every status panel for WARNING_TTL_S (the newest MAX_WARNINGS are kept)."""
        self._warnings.pop(text, None)
        self._warnings[text] = time.monotonic()
        while len(self._warnings) > MAX_WARNINGS:
            del self._warnings[next(iter(self._warnings))]
        for conn in self._connections.values():
            conn.status_changed()

    # -- feeds from the loop -------------------------------------------------------------------

    async def _camera_loop(self, sock: zmq.asyncio.Socket) -> None:
        wanted = set(self.config.cameras) if self.config.cameras else None
        forward_all = wanted is not None and "all" in wanted
        while True:
            frames = await sock.recv_multipart()
            try:
                header, jpeg = decode_camera(frames)
            except DataError as exc:
                log.warning("camera feed message dropped: %s", exc)
                continue
            name = header["name"]
            if not (forward_all or (name in wanted if wanted is not None else is_headset_camera(name))):
                continue
            self._camera_received_at = time.monotonic()
            packed = pack_camera_frame(header["name"], header["eye"], header["t"], header["seq"],
                                       header["w"], header["h"], jpeg)
            for conn in self._connections.values():
                if conn.role is not None:
                    conn.offer_camera(header["name"], packed, header["published_at"])

    def camera_sent(self, name: str, published_at: float, sent_at: float) -> None:
        self.camera_latency_s.append(sent_at - published_at)
        self.camera_frames_sent[name] = self.camera_frames_sent.get(name, 0) + 1

    async def _status_loop(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            frames = await sock.recv_multipart()
            try:
                status = decode_status(frames)
            except DataError as exc:
                log.warning("status feed message dropped: %s", exc)
                continue
            self._status_received_at = time.monotonic()
            if status != self.session_status:
                self.session_status = status
                if self._operator is not None and "recording" in status:
                    self._operator.controls.recording = bool(status["recording"])
                for conn in self._connections.values():
                    conn.status_changed()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for text, at in list(self._warnings.items()):
                if now - at > WARNING_TTL_S:
                    del self._warnings[text]

    def _bridge_warnings(self, now: float) -> List[str]:
        warnings = []
        if self._status_received_at is None:
            warnings.append("no status from the teleop session yet")
        elif now - self._status_received_at > STATUS_STALE_S:
            warnings.append(f"teleop session status is {now - self._status_received_at:.0f} s old")
        if self._camera_received_at is None:
            warnings.append("no camera frames yet")
        elif now - self._camera_received_at > CAMERA_STALE_S:
            warnings.append(f"camera frames stopped {now - self._camera_received_at:.0f} s ago")
        if self._operator is None:
            warnings.append("no operator in control: the robot holds")
        return warnings

    def status_for(self, conn: ClientConnection) -> dict:
        now = time.monotonic()
        session_warnings = self.session_status.get("warnings") or []
        if not isinstance(session_warnings, list):
            session_warnings = [str(session_warnings)]
        operator = self._operator
        return {
            "type": "status",
            "session": {k: v for k, v in self.session_status.items() if k != "warnings"},
            "bridge": {
                "role": conn.role,
                "operator_connected": operator is not None,
                # a session (or teleop loop) publishing status now: the page's take buttons reach someone
                "session_connected": self._status_received_at is not None
                and now - self._status_received_at <= STATUS_STALE_S,
                "watchers": sum(1 for c in self._connections.values() if c.role == "watcher"),
                "input_hz": operator.input_rate_hz(now) if operator is not None else 0.0,
                "clock": operator.clock.summary() if operator is not None else None,
                "rejected": self.counters.rejected,
                "stale_dropped": self.counters.stale_dropped,
            },
            "warnings": [str(w) for w in session_warnings] + self._bridge_warnings(now) + list(self._warnings),
        }

    def stats(self) -> dict:
        """Counters and latencies for monitoring (also served as JSON at /stats, token required)."""
        operator = self._operator
        return {
            "published": self.counters.published,
            "rejected": self.counters.rejected,
            "stale_dropped": self.counters.stale_dropped,
            "refused_requests": self.refused_requests,
            "refused_origins": self._access.refused_origins,
            "connections": len(self._connections),
            "operator": operator.label if operator is not None else None,
            "input_hz": operator.input_rate_hz(time.monotonic()) if operator is not None else 0.0,
            "pose_age_at_publish_ms": _percentiles_ms(self.pose_age_s),
            "camera_frames_sent": dict(self.camera_frames_sent),
            "camera_frames_dropped": sum(c.camera_dropped for c in self._connections.values()),
            "camera_to_send_ms": _percentiles_ms(self.camera_latency_s),
        }


def _percentiles_ms(seconds) -> dict:
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    if not values.size:
        return {"n": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"n": int(values.size), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def lan_addresses() -> List[str]:
    """This machine's non-loopback IPv4 addresses (for the URL printed when binding all interfaces)."""
    addresses = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addresses.add(info[4][0])
    except socket.gaierror:
        pass
    return sorted(a for a in addresses if not a.startswith("127."))


class ServerThread:
    """Run a VRServer on its own asyncio loop in a daemon thread (`with ServerThread(cfg) as server:`)."""

    def __init__(self, config: ServerConfig):
        self.server = VRServer(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vr-server", daemon=True)

    def start(self) -> VRServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(timeout=10)
        return self.server

    def call(self, fn, *args):
        """Run fn(*args) on the server's loop and return its result (server state is loop-owned)."""
        async def wrapper():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=5)

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> VRServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
