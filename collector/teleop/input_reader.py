"""The loop's first stage: operator input off ZMQ, late and duplicated messages dropped.

Local devices (scripted operator, keyboard, gamepad) publish their messages on a private inproc
ZMQ PUB/SUB pair that the reader reads back, so they reach the robot through the same
encode -> ZMQ -> decode path as a VR bridge; without a device the reader subscribes to an external
endpoint (a VR bridge, a remote machine). Every decoded message is recorded, accepted or not.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import zmq

from collector.teleop.messages import OperatorInput
from collector.teleop.realtime import input_context
from collector.teleop.zmq_link import InputPublisher, InputSubscriber

_inproc_ids = itertools.count()
# A seq this far below the last one is a restarted sender, not a late message.
RESTART_SEQ_GAP = 1000


@dataclass
class TickInput:
    """What this tick's read brought: monotonic times of the newest accepted message (None: nothing new)."""

    received_at: Optional[float] = None
    published_at: Optional[float] = None  # a local device's message: when the loop published it

    @property
    def new(self) -> bool:
        return self.received_at is not None

    @property
    def sent_at(self) -> Optional[float]:
        """Where the input-to-command latency starts: publication for a local device, else receipt."""
        return self.published_at if self.published_at is not None else self.received_at


class InputReader:
    def __init__(self, control, device, endpoint: Optional[str], bind: Optional[bool], stats,
                 record: Callable[[float, OperatorInput], None]):
        """control: the teleop config's `control` section; stats: the loop's LoopStats (input counts);
        record(t, msg) gets every decoded message, accepted or not."""
        self.device = device
        self.stats = stats
        self.record = record
        # The reader's own ZMQ context: its I/O thread delivers operator input, and gets the control
        # thread's realtime priority when one is configured (see realtime.py). An external inproc
        # endpoint only works within the sender's context: the process-wide one (inproc bypasses
        # the I/O thread anyway).
        endpoint = endpoint or control.input_endpoint
        shared = device is None and endpoint.startswith("inproc://")
        self._zmq = zmq.Context.instance() if shared else input_context(control.realtime_priority)
        self._own_zmq = not shared
        try:
            if device is not None:
                # Local device: a private inproc pair; the XPUB handshake guarantees no message is lost.
                endpoint = f"inproc://collector-teleop-{id(self)}-{next(_inproc_ids)}"
                self.publisher: Optional[InputPublisher] = InputPublisher(endpoint, bind=True, context=self._zmq)
                self.subscriber = InputSubscriber(endpoint, bind=False, context=self._zmq)
                self.publisher.wait_for_subscriber(timeout_s=2.0)
            else:
                self.publisher = None
                self.subscriber = InputSubscriber(endpoint, bind=control.input_bind if bind is None else bind,
                                                  context=self._zmq)
        except BaseException:
            if self._own_zmq:
                self._zmq.destroy(linger=0)
            raise
        self.realtime = False
        self.latest: Optional[OperatorInput] = None  # the newest accepted message
        self.latest_arrival: Optional[float] = None  # its monotonic receive time (the phase lock follows it)
        self.last_input_t: Optional[float] = None  # its session time of arrival (the gate's freshness)
        self._last_seq: Dict[str, int] = {}
        self._last_stamp = -math.inf
        self._pending: list = []  # (monotonic arrival, message) read while waiting for the next tick

    def start(self) -> None:
        """A new episode: nothing received yet."""
        self.latest = None
        self.last_input_t = None
        self._last_stamp = -math.inf
        self._last_seq.clear()

    def read(self, now: float) -> TickInput:
        """Publish the local device's message for session time `now`, then read everything pending."""
        published_at = None
        if self.device is not None:
            msg = self.device.poll(now)
            if msg is not None:
                published_at = time.monotonic()
                self.publisher.publish(msg)
        return TickInput(self._receive(now, expect=published_at is not None), published_at)

    def _accept(self, msg: OperatorInput) -> bool:
        last = self._last_seq.get(msg.source)
        # Late or duplicated messages are dropped; a seq far below the last one is a restarted sender.
        if last is not None and msg.seq <= last and last - msg.seq < RESTART_SEQ_GAP:
            self.stats.inputs_out_of_order += 1
            return False
        self._last_seq[msg.source] = msg.seq
        return True

    def _receive(self, now: float, expect: bool) -> Optional[float]:
        """Read all pending input; returns the monotonic receive time of the newest accepted message."""
        rejected_before = self.subscriber.rejected
        messages = self._pending + self.subscriber.receive(0.0)
        self._pending = []
        if expect and not messages:
            messages = self.subscriber.receive(0.05)  # non-inproc transports deliver asynchronously
        self.stats.inputs_rejected += self.subscriber.rejected - rejected_before
        newest = None
        tick_mono = time.monotonic()
        for received_at, msg in messages:
            t_arrival = now
            if self.realtime:
                # Session time of arrival (the session clock runs at wall speed here): messages read
                # while waiting for this tick arrived earlier. Never before the previous input.
                t_arrival = max(now - max(0.0, tick_mono - received_at), self._last_stamp)
            self._last_stamp = t_arrival
            self.record(t_arrival, msg)
            if self._accept(msg):
                self.latest = msg
                self.latest_arrival = received_at
                self.last_input_t = t_arrival
                newest = received_at
                self.stats.inputs += 1
        return newest

    def wait_until(self, deadline: float) -> None:
        """Sleep until the next tick, reading operator input as it arrives (true arrival times)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.0006:
                break
            # Wakes on the first message or ~0.5 ms before the deadline, whichever comes first.
            self._pending.extend(self.subscriber.receive(remaining - 0.0005))
        while time.monotonic() < deadline:  # the OS wakes us ~0.1 ms late at best: spin the rest
            pass

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
        if self.publisher is not None:
            self.publisher.close()
        self.subscriber.close()
        if self._own_zmq:
            self._zmq.term()
