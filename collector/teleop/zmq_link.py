"""Operator input over ZMQ PUB/SUB: two-frame messages [ZMQ_TOPIC, msgpack payload].

The publisher is an XPUB socket so it can see subscriptions arrive: `wait_for_subscriber`
is the handshake that defeats ZMQ's slow-joiner problem (a PUB drops everything sent before
a SUB's subscription has propagated). In lockstep the scripted operator waits on it once,
then no message is ever lost: both sides keep high-water marks far above one episode's
backlog.

The subscriber never raises on a bad message: the control loop must keep holding the robot
while a broken sender sends garbage, so bad messages are counted and the last error kept.
"""
from __future__ import annotations

import logging
import time
from typing import List, Optional, Tuple

import zmq

from collector.errors import DataError, DeviceError
from collector.teleop.messages import ZMQ_TOPIC, OperatorInput, decode, encode

log = logging.getLogger(__name__)

# Generous queues: a lockstep episode may publish a few thousand messages before the loop drains them.
HIGH_WATER_MARK = 100_000


def _context(context: Optional[zmq.Context]) -> zmq.Context:
    return context if context is not None else zmq.Context.instance()


class InputPublisher:
    """Publishes OperatorInput messages (what a VR bridge, gamepad or scripted operator runs)."""

    def __init__(self, endpoint: str, bind: bool = True, context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self._socket = _context(context).socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint) if bind else self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise DeviceError(f"cannot {'bind' if bind else 'connect'} operator-input publisher to {endpoint}: {exc}") from None
        self.subscribers = 0
        self.sent = 0

    def _drain_subscriptions(self, timeout_ms: int) -> None:
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            frame = self._socket.recv()
            # XPUB delivers b"\x01"+prefix on subscribe and b"\x00"+prefix on unsubscribe.
            if frame[:1] == b"\x01" and ZMQ_TOPIC.startswith(frame[1:]):
                self.subscribers += 1
            elif frame[:1] == b"\x00" and ZMQ_TOPIC.startswith(frame[1:]):
                self.subscribers = max(0, self.subscribers - 1)
            timeout_ms = 0

    def wait_for_subscriber(self, timeout_s: float = 5.0) -> None:
        """Block until a subscriber to the input topic is connected (slow-joiner handshake)."""
        deadline = time.monotonic() + timeout_s
        while self.subscribers == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceError(f"no operator-input subscriber connected to {self.endpoint} within {timeout_s:.1f} s")
            self._drain_subscriptions(int(min(remaining, 0.05) * 1000) + 1)

    def publish(self, msg: OperatorInput) -> None:
        self.publish_bytes(encode(msg))

    def publish_bytes(self, payload: bytes) -> None:
        """Send raw bytes as one message (tests use this to send garbage through the real path)."""
        self._socket.send_multipart([ZMQ_TOPIC, payload], copy=False)
        self.sent += 1

    def close(self) -> None:
        self._socket.close(linger=0)


class InputSubscriber:
    """Receives and decodes OperatorInput messages; bad ones are counted, never raised."""

    def __init__(self, endpoint: str, bind: bool = False, context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self._socket = _context(context).socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, ZMQ_TOPIC)
        try:
            self._socket.bind(endpoint) if bind else self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise DeviceError(f"cannot {'bind' if bind else 'connect'} operator-input subscriber to {endpoint}: {exc}") from None
        self.received = 0
        self.rejected = 0
        self.last_error: Optional[str] = None

    def _handle(self, frames: List[bytes]) -> Optional[OperatorInput]:
        # Topic filtering in ZMQ is by prefix; insist on the exact topic and exactly one payload frame.
        if len(frames) != 2 or frames[0] != ZMQ_TOPIC:
            self._reject(f"unexpected frame layout ({len(frames)} frames, topic {frames[0][:40]!r})")
            return None
        try:
            msg = decode(frames[1])
        except DataError as exc:
            self._reject(str(exc))
            return None
        self.received += 1
        return msg

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        if self.last_error != reason:
            log.warning("rejected operator input from %s: %s", self.endpoint, reason)
        self.last_error = reason

    def receive(self, timeout_s: float = 0.0) -> List[Tuple[float, OperatorInput]]:
        """Every message waiting now (waiting up to timeout_s for the first), each with its monotonic receive time."""
        out: List[Tuple[float, OperatorInput]] = []
        timeout_ms = int(timeout_s * 1000)
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            frames = self._socket.recv_multipart()
            received_at = time.monotonic()
            msg = self._handle(frames)
            if msg is not None:
                out.append((received_at, msg))
            timeout_ms = 0
        return out

    def close(self) -> None:
        self._socket.close(linger=0)
