"""The control loop's test doubles: a sink that keeps what is pushed, and a VR bridge's operator message."""
from collector.recorder.streams import Sink
from collector.teleop.devices.base import NEUTRAL_HEAD, NEUTRAL_WRIST
from collector.teleop.messages import ControllerState, OperatorInput, Pose
from collector.teleop.transforms import axis_angle_quat


class ListSink(Sink):
    """Keeps every pushed sample in memory (a Sink, like the recorder)."""

    def __init__(self):
        self.samples = {}

    def push(self, stream, t, **fields):
        self.samples.setdefault(stream, []).append((t, fields))
        return True


def vr_message(seq, t, forward=0.0, up=0.0, trigger=0.0, head_yaw=0.0, enable=True):
    return OperatorInput(
        stamp=t, seq=seq, source="fake-vr-bridge", enable=enable,
        head=Pose(NEUTRAL_HEAD, axis_angle_quat([0, 1, 0], head_yaw)),
        left_wrist=Pose(NEUTRAL_WRIST["left"]),
        right_wrist=Pose(NEUTRAL_WRIST["right"] + [0.0, up, -forward]),
        right_controller=ControllerState(trigger=trigger),
    )
