"""A Python client that speaks the page's protocol: replays recorded sessions, drives tests and benchmarks.

It does what static/app.js does, minus the rendering: says hello, answers pings with its own
clock (so the server's clock estimate is exercised for real), sends frames, and keeps the
camera frames, status and error messages it receives.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Deque, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from collector.errors import DeviceError
from collector.teleop.vr.protocol import PROTOCOL_VERSION, unpack_camera_frame


@dataclass
class ReceivedFrame:
    header: dict
    jpeg: bytes
    received_at: float  # time.monotonic() when it arrived


@dataclass
class ReplayResult:
    sent: int
    duration_s: float
    send_times: List[float] = field(default_factory=list)  # time.monotonic() of each send

    @property
    def rate_hz(self) -> float:
        return (self.sent - 1) / self.duration_s if self.duration_s > 0 and self.sent > 1 else 0.0


def client_ssl_context(cafile: Optional[Union[str, Path]]) -> Union[ssl.SSLContext, bool]:
    """Verify the server against its own (self-signed) certificate; False for plain http."""
    if cafile is None:
        return False
    return ssl.create_default_context(cafile=str(cafile))


def ws_url(page_url: str) -> str:
    """https://host:port/?token=T -> wss://host:port/ws?token=T."""
    parts = urlsplit(page_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/ws", parts.query, ""))


class PageClient:
    def __init__(self, page_url: str, cafile: Optional[Union[str, Path]] = None, role: str = "operator",
                 client_name: str = "python-page-client", keep_frames: int = 1000):
        self.page_url = page_url
        self.ssl = client_ssl_context(cafile)
        self.role_requested = role
        self.client_name = client_name
        self.role: Optional[str] = None
        self.welcome: Optional[dict] = None
        self.refused: Optional[dict] = None
        self.camera: Deque[ReceivedFrame] = deque(maxlen=keep_frames)
        self.camera_count = 0
        self.statuses: Deque[dict] = deque(maxlen=100)
        self.errors: List[str] = []
        self.close_code: Optional[int] = None
        self._t0 = time.monotonic()
        self._session: Optional[aiohttp.ClientSession] = None
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._reader: Optional[asyncio.Task] = None
        self._seq = 0

    def device_time_ms(self) -> float:
        """This client's 'headset clock', like performance.now() on the page."""
        return (time.monotonic() - self._t0) * 1000.0

    async def connect(self, timeout_s: float = 5.0) -> dict:
        """Open the socket and exchange hello/welcome; raises DeviceError if refused."""
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(ws_url(self.page_url), ssl=self.ssl, autoping=True,
                                                      max_msg_size=16 * 1024 * 1024)
        except aiohttp.WSServerHandshakeError as exc:
            await self._session.close()
            raise DeviceError(f"VR server refused the WebSocket: HTTP {exc.status}") from None
        await self.send({"type": "hello", "v": PROTOCOL_VERSION, "role": self.role_requested,
                         "client": self.client_name, "xr": "none", "t": self.device_time_ms()})
        msg = await self._ws.receive(timeout=timeout_s)
        if msg.type != aiohttp.WSMsgType.TEXT:
            self.close_code = self._ws.close_code
            await self.close()
            raise DeviceError(f"VR server closed the connection during hello (code {self.close_code})")
        reply = json.loads(msg.data)
        if reply.get("type") != "welcome":
            self.refused = reply
            await self._ws.receive(timeout=timeout_s)  # the close frame that follows
            self.close_code = self._ws.close_code
            await self.close()
            raise DeviceError(f"VR server refused: {reply.get('reason', reply)}")
        self.welcome = reply
        self.role = reply["role"]
        self._reader = asyncio.create_task(self._read_loop())
        return reply

    async def _read_loop(self) -> None:
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                header, jpeg = unpack_camera_frame(msg.data)
                self.camera.append(ReceivedFrame(header, jpeg, time.monotonic()))
                self.camera_count += 1
            elif msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                kind = data.get("type")
                if kind == "ping":
                    await self.send({"type": "pong", "id": data["id"], "t": self.device_time_ms()})
                elif kind == "status":
                    self.statuses.append(data)
                elif kind == "error":
                    self.errors.append(data.get("reason", ""))
        self.close_code = self._ws.close_code

    async def send(self, message: Union[dict, str]) -> None:
        await self._ws.send_str(message if isinstance(message, str) else json.dumps(message, allow_nan=False))

    async def send_raw(self, data: Union[str, bytes]) -> None:
        """Send anything (tests use it for malformed input)."""
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def send_frame(self, frame: dict) -> float:
        """Send one frame, restamped with this client's clock and sequence; returns the send time."""
        frame = dict(frame, seq=self._seq, t=self.device_time_ms())
        self._seq += 1
        await self.send(frame)
        return time.monotonic()

    async def replay(self, messages: Sequence[Tuple[float, Union[dict, str]]], speed: float = 1.0,
                     rate_hz: Optional[float] = None) -> ReplayResult:
        """Send recorded messages with their recorded timing (or at a fixed rate_hz)."""
        start = time.monotonic()
        result = ReplayResult(sent=0, duration_s=0.0)
        for i, (t, message) in enumerate(messages):
            due = start + (i / rate_hz if rate_hz else t / speed)
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            obj = json.loads(message) if isinstance(message, str) else message
            if obj.get("type") == "frame":
                result.send_times.append(await self.send_frame(obj))
            elif obj.get("type") in ("control",):
                await self.send(obj)
                result.send_times.append(time.monotonic())
            else:
                continue  # hello/pong belonged to the recorded connection
            result.sent += 1
        result.duration_s = result.send_times[-1] - result.send_times[0] if result.send_times else 0.0
        return result

    async def wait_for(self, predicate, timeout_s: float = 5.0, poll_s: float = 0.01) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            await asyncio.sleep(poll_s)
        return bool(predicate())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._ws is not None and self.close_code is None:
            self.close_code = self._ws.close_code
        if self._session is not None:
            await self._session.close()
            self._session = None
