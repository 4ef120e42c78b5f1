"""The device interface and the virtual hands shared by the velocity-style devices (gamepad, keyboard)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from collector.teleop.messages import ControllerState, OperatorInput, Pose
from collector.teleop.transforms import WEBXR_TO_ROBOT, axis_angle_quat, quat_mul

# A seated operator's neutral pose in WebXR coordinates (metres, y up, -z forward):
# hands 35 cm in front, 20 cm either side of the body centre, at 1.1 m; head at 1.6 m.
NEUTRAL_WRIST = {"left": np.array([-0.20, 1.10, -0.35]), "right": np.array([0.20, 1.10, -0.35])}
NEUTRAL_HEAD = np.array([0.0, 1.60, 0.0])


@dataclass
class DeviceContext:
    """What the loop tells a device when an episode starts."""

    backend: Any  # the RobotBackend (the scripted operator reads the sim's object poses through it)
    retargeter: Any  # collector.teleop.retarget.Retargeter (its mapping is what a human learns by watching)
    kinematics: Any  # collector.teleop.ik.RobotKinematics
    control_dt: float
    seed: Optional[int] = None


class InputDevice(ABC):
    """An operator input device: started at each episode, then polled once per control tick."""

    name: str = "device"

    @abstractmethod
    def start(self, context: DeviceContext) -> None:
        """Get ready for a new episode."""

    @abstractmethod
    def poll(self, now: float) -> Optional[OperatorInput]:
        """The message to publish at session time `now`, or None if the device has nothing new."""

    @property
    def done(self) -> bool:
        """True when the device has nothing more to do (a scripted operator's plan finished)."""
        return False

    def close(self) -> None:
        """Release what the device holds (a terminal's mode, a file descriptor)."""


@dataclass
class VirtualHands:
    """Wrist poses a velocity device moves around, expressed as a tracked VR operator would be.

    Motions are given in robot-intuitive axes (forward, left, up) and stored in WebXR coordinates,
    so the message looks exactly like one from a headset and goes through the same retargeting.
    """

    positions: Dict[str, np.ndarray] = field(default_factory=lambda: {s: p.copy() for s, p in NEUTRAL_WRIST.items()})
    orientations: Dict[str, np.ndarray] = field(default_factory=lambda: {s: np.array([1.0, 0, 0, 0]) for s in NEUTRAL_WRIST})
    closure: Dict[str, float] = field(default_factory=lambda: {"left": 0.0, "right": 0.0})
    enable: bool = False
    clutch: bool = False
    seq: int = 0

    def move(self, side: str, delta_forward_left_up, rotvec_forward_left_up=None) -> None:
        self.positions[side] = self.positions[side] + WEBXR_TO_ROBOT.T @ np.asarray(delta_forward_left_up, float)
        if rotvec_forward_left_up is not None:
            rotvec = WEBXR_TO_ROBOT.T @ np.asarray(rotvec_forward_left_up, float)
            angle = float(np.linalg.norm(rotvec))
            if angle > 1e-9:
                q = quat_mul(axis_angle_quat(rotvec, angle), self.orientations[side])
                self.orientations[side] = q / np.linalg.norm(q)

    def recentre(self) -> None:
        self.positions = {s: p.copy() for s, p in NEUTRAL_WRIST.items()}
        self.orientations = {s: np.array([1.0, 0, 0, 0]) for s in NEUTRAL_WRIST}

    def message(self, now: float, source: str, buttons: Optional[Dict[str, Dict[str, bool]]] = None) -> OperatorInput:
        buttons = buttons or {}
        msg = OperatorInput(
            stamp=now,
            seq=self.seq,
            source=source,
            head=Pose(NEUTRAL_HEAD),
            left_wrist=Pose(self.positions["left"], self.orientations["left"]),
            right_wrist=Pose(self.positions["right"], self.orientations["right"]),
            left_controller=ControllerState(trigger=self.closure["left"], buttons=buttons.get("left", {})),
            right_controller=ControllerState(trigger=self.closure["right"], buttons=buttons.get("right", {})),
            enable=self.enable,
            clutch=self.clutch,
        )
        self.seq += 1
        return msg
