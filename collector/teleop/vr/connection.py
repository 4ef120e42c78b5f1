"""One WebSocket client of the VR server: the operator (whose frames drive the robot) or a watcher.

The reader turns each page message into action (publish an OperatorInput, an episode event,
a clock sample) or rejects it with a logged reason and an `error` reply. The sender pushes
camera frames (newest per camera only, so a slow link drops frames instead of building a
backlog), status updates and clock pings. Reader and sender run concurrently, so a slow
camera send never delays pose input.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Deque, Dict, Optional, Tuple

from aiohttp import WSMsgType, web

from collector.errors import DataError
from collector.teleop.vr.clock import PING_INTERVAL_S, HeadsetClock
from collector.teleop.vr.controls import ControlMapper
from collector.teleop.vr.converter import FrameConverter
from collector.teleop.vr.protocol import (
    PROTOCOL_VERSION,
    Control,
    Hello,
    Pong,
    decode_message,
    parse_client_message,
    parse_frame,
    parse_message,
    server_message,
)

if TYPE_CHECKING:
    from collector.teleop.vr.server import VRServer

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 5.0
# So many rejected messages in a row means the client is broken or hostile: disconnect it.
MAX_CONSECUTIVE_REJECTS = 100
# Error replies are rate limited so a flood of bad frames cannot turn into a flood of replies.
MAX_ERROR_REPLIES_PER_S = 5
STATUS_REFRESH_S = 1.0
# A frame older than this when it is processed is dropped: the teleop loop holds on input this old
# (its hold_after_s default), so replaying it late would only move the robot along a stale path.
DEFAULT_MAX_FRAME_AGE_S = 0.1

# WebSocket close codes in the application range (4000-4999).
CLOSE_REFUSED = 4003
CLOSE_PROTOCOL = 4002
CLOSE_TOO_MANY_ERRORS = 4008


class RateLimiter:
    """Token bucket: `allow()` is False once more than rate_hz (plus a burst) arrive."""

    def __init__(self, rate_hz: float, burst: float):
        self.rate_hz, self.burst = rate_hz, burst
        self._tokens, self._t = burst, time.monotonic()

    def allow(self, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate_hz)
        self._t = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ClientConnection:
    def __init__(self, server: "VRServer", ws: web.WebSocketResponse, conn_id: int, peer: str):
        self.server = server
        self.ws = ws
        self.id = conn_id
        self.peer = peer
        self.role: Optional[str] = None  # "operator" | "watcher" once the hello is accepted
        self.client = ""
        self.converter: Optional[FrameConverter] = None
        self.clock = HeadsetClock()
        self.controls = ControlMapper()
        self.rate = RateLimiter(server.config.max_frame_rate_hz, burst=server.config.max_frame_rate_hz / 4)
        self._camera: Dict[str, Tuple[bytes, float]] = {}
        self._status_dirty = True
        self._wake = asyncio.Event()
        self._pings: Dict[int, float] = {}
        self._ping_id = 0
        self._error_times: Deque[float] = deque()
        self.rejects: Counter = Counter()
        self._consecutive_rejects = 0
        self.frames = 0
        self.stale_dropped = 0
        self._frame_times: Deque[float] = deque()
        self.camera_sent = 0
        self.camera_dropped = 0

    @property
    def label(self) -> str:
        return f"client {self.id} ({self.peer}, {self.role or 'no role yet'})"

    # -- called by the server ------------------------------------------------------------

    def offer_camera(self, name: str, packed: bytes, published_at: float) -> None:
        if name in self._camera:
            self.camera_dropped += 1
        self._camera[name] = (packed, published_at)
        self._wake.set()

    def status_changed(self) -> None:
        self._status_dirty = True
        self._wake.set()

    def input_rate_hz(self, now: float) -> float:
        while self._frame_times and self._frame_times[0] < now - 1.0:
            self._frame_times.popleft()
        return float(len(self._frame_times))

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            hello = await self._receive_hello()
            if hello is None:
                return
            if not await self._assign_role(hello):
                return
            sender = asyncio.create_task(self._send_loop(), name=f"vr-send-{self.id}")
            try:
                await self._read_loop()
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        finally:
            self.server.connection_closed(self)

    async def _close(self, code: int, reason: str) -> None:
        log.warning("%s: closing: %s", self.label, reason)
        await self.ws.close(code=code, message=reason[:120].encode())

    async def _receive_hello(self) -> Optional[Hello]:
        try:
            msg = await self.ws.receive(timeout=HELLO_TIMEOUT_S)
        except asyncio.TimeoutError:
            await self._close(CLOSE_PROTOCOL, f"no hello within {HELLO_TIMEOUT_S:.0f} s")
            return None
        if msg.type != WSMsgType.TEXT:
            if msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                await self._close(CLOSE_PROTOCOL, "first message must be a JSON hello")
            return None
        try:
            parsed = parse_client_message(msg.data)
        except DataError as exc:
            await self._close(CLOSE_PROTOCOL, f"bad hello: {exc}")
            return None
        if not isinstance(parsed, Hello):
            await self._close(CLOSE_PROTOCOL, "first message must be a hello")
            return None
        return parsed

    async def _assign_role(self, hello: Hello) -> bool:
        self.client = hello.client
        warnings = []
        if hello.role == "operator" and self.server.claim_operator(self):
            self.role = "operator"
            self.controls.recording = bool(self.server.session_status.get("recording", False))
            self.converter = FrameConverter(self.server.seq_counter, self.controls)
        elif self.server.config.allow_watchers:
            self.role = "watcher"
            if hello.role == "operator":
                warnings.append("another operator is in control: you can watch only")
                log.warning("%s: operator slot taken, admitted as watcher", self.label)
        else:
            reason = "another operator is in control" if hello.role == "operator" else "watching is disabled"
            await self.ws.send_str(server_message("refused", reason=reason))
            await self._close(CLOSE_REFUSED, f"{reason} (watchers are not allowed)")
            return False
        log.info("%s connected (client %r, xr %r)", self.label, hello.client, hello.xr)
        await self.ws.send_str(server_message(
            "welcome", v=PROTOCOL_VERSION, role=self.role, session=self.server.session_id,
            warnings=warnings, max_frame_rate_hz=self.server.config.max_frame_rate_hz,
            ping_interval_s=PING_INTERVAL_S,
        ))
        return True

    # -- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        async for msg in self.ws:
            received = time.monotonic()
            if msg.type == WSMsgType.TEXT:
                try:
                    await self._handle_text(msg.data, received)
                    self._consecutive_rejects = 0
                except DataError as exc:
                    if await self._reject(str(exc), received):
                        return
            elif msg.type == WSMsgType.BINARY:
                if await self._reject("binary messages are not part of the protocol", received):
                    return
            elif msg.type == WSMsgType.ERROR:
                # aiohttp reports a message above HARD_MESSAGE_LIMIT here (WebSocketError code 1009).
                exc = self.ws.exception()
                self.rejects["transport"] += 1
                self.server.counters.message_rejected()
                await self._close(getattr(exc, "code", None) or 1011, f"transport error: {exc}")
                return

    async def _reject(self, reason: str, now: float) -> bool:
        """Count and log a rejected message; True if the client must now be disconnected."""
        key = reason.split(":")[0][:60]
        if self.rejects[key] == 0 or self.rejects[key] % 100 == 0:
            log.warning("%s: rejected message (%d so far): %s", self.label, sum(self.rejects.values()) + 1, reason)
        self.rejects[key] += 1
        self.server.counters.message_rejected()
        self._consecutive_rejects += 1
        while self._error_times and self._error_times[0] < now - 1.0:
            self._error_times.popleft()
        if len(self._error_times) < MAX_ERROR_REPLIES_PER_S and not self.ws.closed:
            self._error_times.append(now)
            await self.ws.send_str(server_message("error", reason=reason[:300]))
            if self.role == "operator":  # the operator sees it on the status panel, not only in the log
                self.server.add_warning(f"rejected: {key}")
        if self._consecutive_rejects >= MAX_CONSECUTIVE_REJECTS:
            await self._close(CLOSE_TOO_MANY_ERRORS, f"{MAX_CONSECUTIVE_REJECTS} bad messages in a row")
            return True
        return False

    async def _handle_text(self, text: str, received: float) -> None:
        obj = decode_message(text)
        if obj.get("type") == "frame":
            await self._handle_frame(obj, text, received)
            return
        msg = parse_message(obj)
        await self._handle(msg, received)
        if self.server.recorder is not None and isinstance(msg, Control):
            self.server.recorder.write(received, text)

    async def _handle_frame(self, obj: dict, text: str, received: float) -> None:
        # Role and rate first (a watcher's or a flood's frames cost nothing more); then the whole frame is
        # validated before it may change any state (sequence, clock estimate, buttons).
        if self.role != "operator":
            raise DataError("pose frame from a watcher: only the operator in control may send poses")
        if not self.rate.allow(received):
            raise DataError(f"rate limit: more than {self.server.config.max_frame_rate_hz:.0f} frames/s")
        frame = parse_frame(obj)
        self.converter.accept_seq(frame.seq)
        if self.server.recorder is not None:
            # Everything valid the operator sent is kept, including frames too late to drive the robot.
            self.server.recorder.write(received, text)
        jumps_before = self.clock.jumps
        stamp = self.clock.to_host(frame.device_t, received)
        if self.clock.jumps != jumps_before:
            self.server.add_warning(f"headset clock jump: {self.clock.last_jump_reason}")
        age = received - stamp
        max_age = self.server.config.max_frame_age_s
        if age > max_age:
            # Poses queued behind a stall are not replayed late: the loop holds on stale input and the
            # next fresh frame moves the robot to where the operator is *now*. Buttons still count: a
            # start/stop/discard press must not be lost to a slow link.
            self.stale_dropped += 1
            self.server.counters.frame_stale()
            if self.stale_dropped == 1 or self.stale_dropped % 100 == 0:
                log.warning("%s: dropped %d pose frame(s) older than %.0f ms (link or server too slow)",
                            self.label, self.stale_dropped, max_age * 1000)
            _, _, requests = self.controls.update(frame)
        else:
            op_input, requests = self.converter.convert(frame, stamp)
            self.server.publish_input(op_input)
            self.frames += 1
            self._frame_times.append(received)
        for request in requests:
            self.server.publish_episode(request, self)

    async def _handle(self, msg, received: float) -> None:
        """Every message but frames (see _handle_frame)."""
        if isinstance(msg, Control):
            if self.role != "operator":
                raise DataError("episode control from a watcher: only the operator in control may start/stop")
            self.server.publish_episode(self.controls.page_request(msg.action, msg.outcome), self)
        elif isinstance(msg, Pong):
            sent = self._pings.pop(msg.ping_id, None)
            if sent is None:
                raise DataError(f"pong for unknown ping {msg.ping_id}")
            self.clock.observe_pong(msg.device_t, sent, received)
        elif isinstance(msg, Hello):
            raise DataError("hello sent twice")

    # -- sending -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        next_ping = time.monotonic()
        next_status = time.monotonic()
        while not self.ws.closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(next_ping, next_status) - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            camera, self._camera = self._camera, {}
            for name, (packed, published_at) in camera.items():
                await self.ws.send_bytes(packed)
                self.camera_sent += 1
                self.server.camera_sent(name, published_at, time.monotonic())
            if now >= next_ping:
                next_ping = now + PING_INTERVAL_S
                self._ping_id += 1
                # Only the latest few pings can still be answered usefully.
                if len(self._pings) > 8:
                    self._pings.pop(min(self._pings))
                self._pings[self._ping_id] = time.monotonic()
                await self.ws.send_str(server_message("ping", id=self._ping_id, t=self._pings[self._ping_id]))
            if self._status_dirty or now >= next_status:
                self._status_dirty = False
                next_status = now + STATUS_REFRESH_S
                await self.ws.send_str(json.dumps(self.server.status_for(self), allow_nan=False, default=str))
