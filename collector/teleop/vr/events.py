"""Episode control events from the headset (start / stop / discard), for the session layer.

Wire form (EVENT_VERSION 1): ZMQ PUB/SUB, two frames [EVENT_TOPIC, msgpack map]:
  {"v": 1, "event": "start"|"stop"|"discard", "outcome": "success"|"failure"|None,
   "seq": int (per publisher, from 0), "t": float (time.monotonic() on the bridge host),
   "source": "vr", "trigger": str (e.g. "right.a", "left.ring-pinch", "page"), "operator": str}
`outcome` is set only on "stop" (A/X = success, B/Y tap = failure, the page's buttons say which).
"discard" means: throw away the take being recorded, or the last one if none is.

The VR server binds the publisher (default EVENT_ENDPOINT); a session connects an
EpisodeEventSubscriber and polls it from its own loop. Bad messages are counted, not raised.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import List, Optional

import msgpack
import zmq

from collector.errors import DataError, DeviceError
from collector.teleop.vr.endpoints import EVENT_ENDPOINT

log = logging.getLogger(__name__)

EVENT_VERSION = 1
EVENT_TOPIC = b"collector/vr/episode"
EVENTS = ("start", "stop", "discard")
OUTCOMES = ("success", "failure")
MAX_EVENT_BYTES = 4096


@dataclass(frozen=True)
class EpisodeEvent:
    event: str
    outcome: Optional[str]
    seq: int
    t: float
    trigger: str = ""
    operator: str = ""
    source: str = "vr"

    def __post_init__(self):
        if self.event not in EVENTS:
            raise DataError(f"episode event: {self.event!r} not in {EVENTS}")
        if self.outcome is not None and (self.event != "stop" or self.outcome not in OUTCOMES):
            raise DataError(f"episode event: outcome {self.outcome!r} only allowed on stop, one of {OUTCOMES}")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise DataError(f"episode event: seq must be a non-negative integer, got {self.seq!r}")
        if isinstance(self.t, bool) or not isinstance(self.t, (int, float)):
            raise DataError(f"episode event: t must be a number, got {self.t!r}")
        for name in ("trigger", "operator", "source"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"episode event: {name} must be a string")


def encode_event(event: EpisodeEvent) -> bytes:
    return msgpack.packb({"v": EVENT_VERSION, **asdict(event)}, use_bin_type=True)


def decode_event(data: bytes) -> EpisodeEvent:
    if len(data) > MAX_EVENT_BYTES:
        raise DataError(f"episode event of {len(data)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise DataError(f"episode event: not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, dict) or obj.get("v") != EVENT_VERSION:
        raise DataError(f"episode event: expected a map with v={EVENT_VERSION}")
    fields = {k: obj.get(k) for k in ("event", "outcome", "seq", "t")}
    for k in ("trigger", "operator", "source"):
        if k in obj:
            fields[k] = obj[k]
    try:
        return EpisodeEvent(**fields)
    except TypeError as exc:
        raise DataError(f"episode event: {exc}") from None


class EpisodeEventPublisher:
    """Publishes episode events. An XPUB socket, so `wait_for_subscriber` can tell when a session listens."""

    def __init__(self, endpoint: str = EVENT_ENDPOINT, bind: bool = True, context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self._socket = (context or zmq.Context.instance()).socket(zmq.XPUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint) if bind else self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise DeviceError(f"cannot {'bind' if bind else 'connect'} episode events to {endpoint}: {exc}") from None
        self._seq = 0
        self.subscribers = 0

    def _drain_subscriptions(self, timeout_ms: int = 0) -> None:
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            frame = self._socket.recv()
            # XPUB delivers b"\x01"+topic on subscribe and b"\x00"+topic on unsubscribe.
            if EVENT_TOPIC.startswith(frame[1:]):
                self.subscribers += 1 if frame[:1] == b"\x01" else -1
            timeout_ms = 0

    def wait_for_subscriber(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        self._drain_subscriptions()
        while self.subscribers <= 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceError(f"no episode event subscriber connected to {self.endpoint} within {timeout_s:.1f} s")
            self._drain_subscriptions(int(min(remaining, 0.05) * 1000) + 1)

    def publish(self, event: str, outcome: Optional[str] = None, trigger: str = "", operator: str = "") -> EpisodeEvent:
        msg = EpisodeEvent(event, outcome, self._seq, time.monotonic(), trigger, operator)
        self._drain_subscriptions()
        self._socket.send_multipart([EVENT_TOPIC, encode_event(msg)])
        self._seq += 1
        log.info("episode event %s%s (%s)", event, f" {outcome}" if outcome else "", trigger or "?")
        return msg

    def close(self) -> None:
        self._socket.close(linger=0)


class EpisodeEventSubscriber:
    """What the session layer polls for the operator's start/stop/discard requests."""

    def __init__(self, endpoint: str = EVENT_ENDPOINT, bind: bool = False, context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, EVENT_TOPIC)
        try:
            self._socket.bind(endpoint) if bind else self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise DeviceError(f"cannot {'bind' if bind else 'connect'} episode event subscriber to {endpoint}: {exc}") from None
        self.rejected = 0
        self.last_error: Optional[str] = None

    def receive(self, timeout_s: float = 0.0) -> List[EpisodeEvent]:
        """Every event waiting now (waiting up to timeout_s for the first)."""
        out: List[EpisodeEvent] = []
        timeout_ms = int(timeout_s * 1000)
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            frames = self._socket.recv_multipart()
            timeout_ms = 0
            try:
                if len(frames) != 2 or frames[0] != EVENT_TOPIC:
                    raise DataError(f"episode event: unexpected frame layout ({len(frames)} frames)")
                out.append(decode_event(frames[1]))
            except DataError as exc:
                self.rejected += 1
                self.last_error = str(exc)
                log.warning("rejected episode event from %s: %s", self.endpoint, exc)
        return out

    def close(self) -> None:
        self._socket.close(linger=0)
