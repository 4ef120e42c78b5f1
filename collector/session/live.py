"""What the operator's dashboard shows, kept up to date by the session while it runs.

`LiveState` is written by the session thread and read by the dashboard's HTTP threads; every change
bumps `version` and wakes waiters, so the event stream sends a snapshot only when something changed.
`LiveTap` sits in front of the recorder in the sample path: it forwards every push unchanged and keeps
only a reference to the newest camera frame and joint state, so the control loop pays no copy and no
encode for the dashboard (the dashboard JPEG-encodes a frame only when a browser asks for it).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from collector.recorder.streams import Sink


@dataclass
class Frame:
    seq: int
    t: float
    image: np.ndarray


class LiveState:
    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self._fields: Dict[str, Any] = {
            "phase": "starting",  # starting, ready, recording, finalizing, awaiting_outcome, done, error
            "message": "",
            "plan": None, "session_id": None, "station": None, "operator": None, "backend": None,
            "cell": None,  # {"task", "lighting", "weight"}
            "instruction": "",
            "condition": {},  # what the take needs: lighting/weight preset details, hardware set-up text
            "setup_note": "",
            "episode": None,  # the take being recorded: {"episode_id", "started_at", "time_limit_s"}
            "last_episode": None,  # {"episode_id", "status", "outcome", "qa", "qa_problems", "duration_s", "path"}
            "coverage": None,
            "totals": {},
            "robot": None,  # {"t", "position": [...], "names": [...]}
            "joint_groups": [],  # how the page plots the joint state: [{"name", "unit", "joints", "indices", "min_span"}]
            "controls": [],  # which buttons make sense now
        }
        self._frames: Dict[str, Frame] = {}
        self._frame_seq = 0
        self._frame_ready = threading.Condition(threading.Lock())
        self._timer_origin: Optional[float] = None

    # -- written by the session ---------------------------------------------------------------
    def update(self, **fields: Any) -> None:
        with self._changed:
            self._fields.update(fields)
            self.version += 1
            self._changed.notify_all()

    def start_timer(self) -> None:
        self._timer_origin = time.monotonic()

    def stop_timer(self) -> None:
        self._timer_origin = None

    def set_frame(self, camera: str, t: float, image: np.ndarray) -> None:
        with self._frame_ready:
            self._frame_seq += 1
            self._frames[camera] = Frame(self._frame_seq, t, image)
            self._frame_ready.notify_all()

    def set_robot(self, t: float, position: np.ndarray, names: Optional[List[str]] = None) -> None:
        # Stored without bumping the version: joint state changes every tick, and the event stream
        # samples it at its own rate instead of waking on every control step.
        self._fields["robot"] = {"t": float(t), "position": position, "names": names}

    # -- read by the dashboard -------------------------------------------------------------------
    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            data = dict(self._fields)
            version = self.version
        robot = data.get("robot")
        if robot is not None:
            position = np.asarray(robot["position"], dtype=float)
            data["robot"] = {"t": robot["t"], "names": robot["names"],
                             "position": [round(float(v), 4) for v in position.ravel()]}
        data["elapsed_s"] = (time.monotonic() - self._timer_origin) if self._timer_origin else None
        data["cameras"] = sorted(self._frames)
        data["version"] = version
        return data

    def wait_for_change(self, version: int, timeout_s: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.version != version, timeout=timeout_s)
            return self.version

    def cameras(self) -> List[str]:
        return sorted(self._frames)

    def frame(self, camera: str) -> Optional[Frame]:
        return self._frames.get(camera)

    def wait_for_frame(self, camera: str, after_seq: int, timeout_s: float) -> Optional[Frame]:
        with self._frame_ready:
            self._frame_ready.wait_for(
                lambda: camera in self._frames and self._frames[camera].seq > after_seq, timeout=timeout_s)
            frame = self._frames.get(camera)
        return frame if frame is not None and frame.seq > after_seq else None


def dashboard_joint_groups(robot) -> List[Dict[str, Any]]:
    """The robot's joint groups with their units (rad/m), as the dashboard plots them; [] if the robot
    cannot be read (the page then plots every joint in one group without a unit)."""
    from collector.errors import ConfigError
    from collector.robot.joint_groups import robot_joint_groups

    try:
        return [group.as_dict() for group in robot_joint_groups(robot)]
    except ConfigError:
        return []


class LiveTap(Sink):
    """A Sink that forwards to the recorder (if any) and shows camera frames and joints on the dashboard."""

    def __init__(self, live: LiveState, sink=None, camera_streams: Tuple[str, ...] = (),
                 joint_stream: Optional[str] = None, joint_names: Optional[List[str]] = None):
        self.live = live
        self.sink = sink
        self.camera_streams = set(camera_streams)
        self.joint_stream = joint_stream
        self.joint_names = joint_names

    def set_lockstep(self, lockstep: bool) -> None:
        if self.sink is not None:
            self.sink.set_lockstep(lockstep)

    def push(self, stream: str, t: float, **fields) -> bool:
        if stream in self.camera_streams and "image" in fields:
            self.live.set_frame(stream, t, fields["image"])
        elif stream == self.joint_stream and "position" in fields:
            self.live.set_robot(t, fields["position"], self.joint_names)
        return self.sink.push(stream, t, **fields) if self.sink is not None else True

    def __getattr__(self, name):
        # Anything else the loop asks of its sink (stats, drop counters) is the recorder's.
        if self.sink is None:
            raise AttributeError(name)
        return getattr(self.sink, name)
