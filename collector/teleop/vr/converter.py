"""Page frames -> OperatorInput messages (the teleop wire form) for one operator connection.

Stamps: the connection maps each frame's headset time onto the host's time.monotonic() clock
with its HeadsetClock, so the recorder stores when the pose was *tracked*, not when it arrived.
Sequence numbers come from the server, not the page, so they keep increasing across page
reloads and reconnects and the loop never mistakes a new connection for reordered input.
"""
from __future__ import annotations

import itertools
from typing import Iterator, List, Optional, Tuple

from collector.errors import DataError
from collector.teleop.messages import OperatorInput, Pose
from collector.teleop.vr.controls import ControlMapper, EpisodeRequest
from collector.teleop.vr.protocol import PoseFrame

SOURCE = "vr"


class FrameConverter:
    def __init__(self, seq_counter: Iterator[int], controls: ControlMapper, source: str = SOURCE):
        self.seq_counter = seq_counter
        self.controls = controls
        self.source = source
        self._last_page_seq: Optional[int] = None

    def _wrist(self, frame: PoseFrame, side: str) -> Optional[Pose]:
        # A held controller's grip pose is the wrist target; with bare hands, the wrist joint is.
        ctl = frame.controllers.get(side)
        if ctl is not None and ctl.pose is not None:
            return ctl.pose
        hand = frame.hands.get(side)
        return hand.wrist_pose() if hand is not None else None

    def accept_seq(self, seq: int) -> None:
        """Frames must come in order; a duplicate or reordered one is rejected before any other work."""
        if self._last_page_seq is not None and seq <= self._last_page_seq:
            raise DataError(f"frame seq {seq} not after {self._last_page_seq} (duplicate or reordered)")
        self._last_page_seq = seq

    def convert(self, frame: PoseFrame, stamp: float) -> Tuple[OperatorInput, List[EpisodeRequest]]:
        """The OperatorInput to publish for a validated frame taken at host time `stamp`, and any episode
        requests it makes. (The connection maps the headset time with its HeadsetClock first.)"""
        enable, clutch, requests = self.controls.update(frame)
        left, right = frame.controllers.get("left"), frame.controllers.get("right")
        msg = OperatorInput(
            stamp=stamp,
            seq=next(self.seq_counter),
            source=self.source,
            head=frame.head,
            left_wrist=self._wrist(frame, "left"),
            right_wrist=self._wrist(frame, "right"),
            left_hand=frame.hands.get("left"),
            right_hand=frame.hands.get("right"),
            left_controller=left.state if left is not None else None,
            right_controller=right.state if right is not None else None,
            enable=enable,
            clutch=clutch,
        )
        return msg, requests

    def release(self, received_host_t: float) -> OperatorInput:
        """An explicit 'deadman released' message, sent when the operator disconnects."""
        return OperatorInput(stamp=received_host_t, seq=next(self.seq_counter), source=self.source, enable=False)


def new_seq_counter() -> Iterator[int]:
    return itertools.count()
