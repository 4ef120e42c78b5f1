"""Deadman, clutch and episode buttons: what the operator's controllers or hands *mean*.

Controllers (WebXR xr-standard layout, see protocol.py):
  enable (deadman)  squeeze (grip) held on either controller; let go and the robot holds.
  clutch            thumbstick pressed on either controller: the robot holds while the operator
                    repositions, and the retargeting re-anchors on release.
  A / X             start a take when idle; stop it (outcome success) while recording.
  B / Y             tap while recording: stop (outcome failure); hold 1 s: discard the take.
Hands only (no controller in the frame):
  enable            the head and at least one hand are tracked (losing hand tracking holds the robot).
  clutch            thumb-middle pinch on either hand.
  start / stop      left thumb-ring pinch held 0.8 s (toggles like A).
  discard           left thumb-pinky pinch held 1.5 s.

Hold times run on the headset clock, so a replayed recording triggers exactly what the live
session did. The trigger/grip values themselves travel on in the OperatorInput (gripper).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.teleop.messages import HandSkeleton
from collector.teleop.vr.protocol import PoseFrame

GRIP_ENGAGED = 0.5
DISCARD_HOLD_S = 1.0
GESTURE_PINCH_M = 0.015
GESTURE_TOGGLE_HOLD_S = 0.8
GESTURE_DISCARD_HOLD_S = 1.5


@dataclass(frozen=True)
class EpisodeRequest:
    action: str  # start | stop | discard
    outcome: Optional[str]  # success | failure for stop, else None
    trigger: str  # what caused it, e.g. "right.a", "left.ring-pinch", "page"


def _pinch(hand: HandSkeleton, finger: str) -> float:
    return float(np.linalg.norm(hand.joint("thumb-tip") - hand.joint(f"{finger}-finger-tip")))


@dataclass
class _Hold:
    """One button or gesture: when it went down and whether its hold action already fired."""

    down_since: Optional[float] = None
    fired: bool = False


@dataclass
class ControlMapper:
    recording: bool = False  # kept in step with the session's status feed by the server
    _holds: Dict[str, _Hold] = field(default_factory=dict)

    def _hold(self, key: str) -> _Hold:
        return self._holds.setdefault(key, _Hold())

    def _edge(self, key: str, down: bool, t: float) -> Tuple[bool, bool, float]:
        """(pressed now, released now, seconds held so far) for one input."""
        hold = self._hold(key)
        pressed = down and hold.down_since is None
        released = not down and hold.down_since is not None
        held = 0.0
        if pressed:
            hold.down_since, hold.fired = t, False
        if hold.down_since is not None:
            held = t - hold.down_since
        if released:
            hold.down_since = None
        return pressed, released, held

    def _start_or_stop(self, trigger: str) -> EpisodeRequest:
        if self.recording:
            self.recording = False
            return EpisodeRequest("stop", "success", trigger)
        self.recording = True
        return EpisodeRequest("start", None, trigger)

    def _controller_requests(self, frame: PoseFrame, t: float) -> List[EpisodeRequest]:
        out: List[EpisodeRequest] = []
        for side, (primary, secondary) in (("left", ("x", "y")), ("right", ("a", "b"))):
            ctl = frame.controllers.get(side)
            buttons = ctl.state.buttons if ctl is not None else {}
            pressed, _, _ = self._edge(f"{side}.{primary}", buttons.get(primary, False), t)
            if pressed:
                out.append(self._start_or_stop(f"{side}.{primary}"))
            key = f"{side}.{secondary}"
            _, released, held = self._edge(key, buttons.get(secondary, False), t)
            hold = self._hold(key)
            if not hold.fired and held >= DISCARD_HOLD_S and not released:
                hold.fired = True
                self.recording = False
                out.append(EpisodeRequest("discard", None, key))
            elif released and not hold.fired and self.recording:
                self.recording = False
                out.append(EpisodeRequest("stop", "failure", key))
        return out

    def _gesture_requests(self, frame: PoseFrame, t: float) -> List[EpisodeRequest]:
        out: List[EpisodeRequest] = []
        left = frame.hands.get("left")
        for finger, hold_s in (("ring", GESTURE_TOGGLE_HOLD_S), ("pinky", GESTURE_DISCARD_HOLD_S)):
            key = f"left.{finger}-pinch"
            down = left is not None and _pinch(left, finger) < GESTURE_PINCH_M
            _, _, held = self._edge(key, down, t)
            hold = self._hold(key)
            if down and not hold.fired and held >= hold_s:
                hold.fired = True
                if finger == "ring":
                    out.append(self._start_or_stop(key))
                else:
                    self.recording = False
                    out.append(EpisodeRequest("discard", None, key))
        return out

    def update(self, frame: PoseFrame) -> Tuple[bool, bool, List[EpisodeRequest]]:
        """(enable, clutch, episode requests) for one validated frame."""
        t = frame.device_t
        if frame.controllers:
            states = [c.state for c in frame.controllers.values()]
            enable = any(s.grip >= GRIP_ENGAGED for s in states)
            clutch = any(s.pressed("thumbstick") for s in states)
            requests = self._controller_requests(frame, t)
        else:
            self._controller_requests(frame, t)  # releases any held button state
            enable = frame.head is not None and bool(frame.hands)
            clutch = any(_pinch(h, "middle") < GESTURE_PINCH_M for h in frame.hands.values())
            requests = []
        requests += self._gesture_requests(frame, t)
        return enable, clutch, requests

    def page_request(self, action: str, outcome: Optional[str]) -> EpisodeRequest:
        """A button on the page itself (2D view) asked for an episode action."""
        if action == "start":
            self.recording = True
        elif action in ("stop", "discard"):
            self.recording = False
        return EpisodeRequest(action, outcome if action == "stop" else None, "page")
