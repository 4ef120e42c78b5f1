"""The session side of the VR bridge: the headset drives takes and sees the session's state.

The VR server (collector.teleop.vr) publishes the operator's episode events (start / stop with an
optional success-or-failure verdict / discard) and shows whatever camera and status feeds reach it.
This link, started by `collector session` when the operator input is VR:
  - turns each headset event into the same action a dashboard button press is, so the dashboard
    and the headset can be used interchangeably within one session;
  - publishes the session status (recording, episode, task, instruction, the condition needed next)
    whenever it changes, and the head camera frames the dashboard shows, to the VR server's feeds.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from collector.errors import CollectorError
from collector.recorder.vocabulary import camera_of_stream, camera_stream_name
from collector.session.interactive import InteractiveSession
from collector.session.live import LiveState

log = logging.getLogger(__name__)

POLL_S = 0.05
STOP_SETTLE_TIMEOUT_S = 30.0


class VrSessionLink:
    def __init__(self, session: InteractiveSession, *, event_endpoint: Optional[str] = None,
                 status_endpoint: Optional[str] = None, camera_endpoint: Optional[str] = None,
                 camera: str = camera_stream_name("head")):
        from collector.teleop.vr.endpoints import CAMERA_ENDPOINT, EVENT_ENDPOINT, STATUS_ENDPOINT
        from collector.teleop.vr.events import EpisodeEventSubscriber
        from collector.teleop.vr.feeds import CameraFeedPublisher, StatusPublisher

        self.session = session
        self.live: LiveState = session.live
        self.camera = camera
        self.events = EpisodeEventSubscriber(event_endpoint or EVENT_ENDPOINT)
        self.status = StatusPublisher(status_endpoint or STATUS_ENDPOINT)
        self.frames = CameraFeedPublisher(camera_endpoint or CAMERA_ENDPOINT)
        self.handled = []  # (event, outcome, answer) for the log and tests
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._event_loop, name="vr-events", daemon=True),
                         threading.Thread(target=self._status_loop, name="vr-status", daemon=True),
                         threading.Thread(target=self._camera_loop, name="vr-camera", daemon=True)]

    def start(self) -> "VrSessionLink":
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self.events.close()
        self.status.close()
        self.frames.close()

    # -- headset -> session ----------------------------------------------------------------------
    def _event_loop(self) -> None:
        while not self._stop.is_set():
            for event in self.events.receive(POLL_S):
                try:
                    answer = self.apply(event.event, event.outcome)
                except CollectorError as exc:
                    answer = f"refused: {exc}"
                log.info("headset %s%s -> %s", event.event, f" ({event.outcome})" if event.outcome else "", answer)
                self.handled.append((event.event, event.outcome, answer))

    def apply(self, event: str, outcome: Optional[str]) -> str:
        session = self.session
        if event in ("start", "discard"):
            return session.handle(event)
        answer = session.handle("stop")
        if outcome is None:
            return answer
        # The verdict applies to the take that is being finalized: wait until the worker is done with it.
        deadline = time.monotonic() + STOP_SETTLE_TIMEOUT_S
        while session.is_recording() and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return session.handle(outcome)

    # -- session -> headset ----------------------------------------------------------------------
    def _status_loop(self) -> None:
        version = -1
        while not self._stop.is_set():
            snapshot = self.live.snapshot()
            if snapshot["version"] != version:
                version = snapshot["version"]
                self.status.publish(headset_status(snapshot))
            self.live.wait_for_change(version, 0.25)

    def _camera_loop(self) -> None:
        seq = 0
        while not self._stop.is_set():
            frame = self.live.wait_for_frame(self.camera, seq, timeout_s=0.25)
            if frame is not None:
                seq = frame.seq
                self.frames.publish(camera_of_stream(self.camera) or self.camera, frame.t, frame.image)


def headset_status(snapshot: dict) -> dict:
    """The keys the VR page shows (see collector.teleop.vr.feeds)."""
    cell = snapshot.get("cell") or {}
    episode = snapshot.get("episode") or snapshot.get("last_episode") or {}
    coverage = snapshot.get("coverage") or {}
    status = {
        "recording": snapshot.get("phase") == "recording",
        "phase": snapshot.get("phase"),
        "task": cell.get("task", ""),
        "instruction": snapshot.get("instruction", ""),
        "next_condition": {"lighting": cell.get("lighting", ""), "weight": cell.get("weight", "")},
        # An error, or the hand calibration's instruction or problem (a bent finger), on the headset's status line.
        "warnings": [snapshot["message"]] if snapshot.get("phase") in ("error", "calibrating")
        and snapshot.get("message") else [],
        "coverage": f"{coverage.get('done', 0)}/{coverage.get('needed', 0)}",
    }
    episode_id = episode.get("episode_id", "")
    if episode_id.startswith("episode_"):
        status["episode"] = int(episode_id.removeprefix("episode_"))
    last = snapshot.get("last_episode")
    if last:
        status["last_qa"] = last.get("qa")
    return status
