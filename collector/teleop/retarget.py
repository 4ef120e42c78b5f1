"""Operator frame -> robot frame: end-effector targets, gripper closure or finger targets, neck pan/tilt, deadman.

Mapping (per arm, all in robot world coordinates after `R`, the operator->robot axis change):
    target_pos = robot_anchor_pos + scale * R (wrist_pos - operator_anchor_pos)
    target_rot = (R dRot R^T) robot_anchor_rot,   dRot = wrist_rot operator_anchor_rot^-1
The first engagement is the calibration: the operator's pose then (their neutral pose) is
anchored to the robot's home end-effector pose. Every later engagement (deadman pressed again,
clutch released, tracking regained) re-anchors to where the robot's command is now, so the
robot never jumps; this is DROID's grip-button clutch.

A robot with dexterous hands (`hands:` in its YAML) gets finger targets instead of a gripper closure:
collector/teleop/hand_drive.py (trigger -> grasp synergy amount, thumbstick flick -> synergy choice,
hand tracking -> fingertip retargeting).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from collector.teleop.config import InputConfig, RetargetConfig
from collector.teleop.messages import HAND_JOINT_INDEX, SIDES, HandSkeleton, OperatorInput
from collector.teleop.transforms import OPERATOR_FRAMES, mat_to_quat, quat_to_mat, yaw_pitch

PoseTuple = Tuple[np.ndarray, np.ndarray]  # (position (3,), quaternion wxyz (4,))
FINGERTIPS = ("index-finger-tip", "middle-finger-tip", "ring-finger-tip", "pinky-finger-tip")


@dataclass
class RetargetOutput:
    targets: Dict[str, Optional[PoseTuple]]  # None: no new target for that arm (keep the last one)
    gripper: Dict[str, Optional[float]]  # closure 0 (open) .. 1 (closed); None: keep
    head: Optional[Tuple[float, float]]  # absolute (pan, tilt) joint angles, None: keep
    enable: bool  # resolved deadman (button or gesture)
    clutch: bool
    engaged: bool  # enable and not clutch: the operator is driving the robot
    # Dexterous hands only (empty for a gripper robot): side -> actuated finger targets (None: keep),
    # and side -> whether this message tracked that hand (a controller or a skeleton was present).
    fingers: Dict[str, Optional[np.ndarray]] = field(default_factory=dict)
    hand_tracked: Dict[str, bool] = field(default_factory=dict)


def is_fist(hand: HandSkeleton, radius_m: float) -> bool:
    wrist = hand.positions[HAND_JOINT_INDEX["wrist"]]
    middle_base = hand.positions[HAND_JOINT_INDEX["middle-finger-metacarpal"]]
    palm = 0.5 * (wrist + middle_base)
    return all(np.linalg.norm(hand.joint(tip) - palm) < radius_m for tip in FINGERTIPS)


@dataclass
class _Anchor:
    operator_pos: np.ndarray
    operator_rot: np.ndarray  # 3x3, operator frame
    robot_pos: np.ndarray
    robot_rot: np.ndarray  # 3x3, robot frame


@dataclass
class HeadMapping:
    """Neck joints and how their angles relate to head yaw/pitch (signs from the joint axes)."""

    home_pan: float
    home_tilt: float
    pan_sign: float = 1.0
    tilt_sign: float = 1.0
    pan_range: Tuple[float, float] = (-np.inf, np.inf)
    tilt_range: Tuple[float, float] = (-np.inf, np.inf)


class Retargeter:
    def __init__(
        self,
        cfg: RetargetConfig,
        input_cfg: InputConfig,
        home_ee: Dict[str, PoseTuple],
        head: Optional[HeadMapping] = None,
        hands=None,
    ):
        """hands: a HandDrive (collector/teleop/hand_drive.py) for a robot with dexterous hands, else None."""
        self.cfg = cfg
        self.input_cfg = input_cfg
        self.R = OPERATOR_FRAMES[cfg.operator_frame]
        self.scale = np.asarray(cfg.scale, dtype=np.float64)
        self.home_ee = {s: (np.asarray(p, float), quat_to_mat(np.asarray(q, float))) for s, (p, q) in home_ee.items()}
        self.sides = tuple(s for s in SIDES if s in self.home_ee)
        self.head_mapping = head
        self.hands = hands
        self.calibrated = False
        self._anchors: Dict[str, Optional[_Anchor]] = {s: None for s in self.sides}
        self._head_anchor: Optional[np.ndarray] = None
        self._was_engaged = False

    # -- mapping helpers shared with the scripted operator (which inverts them) ---------------
    def operator_to_robot_delta(self, delta_op: np.ndarray) -> np.ndarray:
        return self.scale * (self.R @ delta_op)

    def robot_to_operator_delta(self, delta_robot: np.ndarray) -> np.ndarray:
        return self.R.T @ (delta_robot / self.scale)

    def rotation_to_robot(self, rot_op: np.ndarray) -> np.ndarray:
        return self.R @ rot_op @ self.R.T

    def rotation_to_operator(self, rot_robot: np.ndarray) -> np.ndarray:
        return self.R.T @ rot_robot @ self.R

    # -- deadman -------------------------------------------------------------------------------
    def resolve_enable(self, msg: OperatorInput) -> bool:
        if self.input_cfg.deadman == "button":
            return msg.enable
        gesture = self.input_cfg.gesture
        if gesture == "hands_tracked":
            return all(msg.hand(s) is not None for s in self.sides)
        side = "left" if gesture == "left_fist" else "right"
        hand = msg.hand(side)
        return hand is not None and is_fist(hand, self.cfg.fist_radius_m)

    # -- gripper -------------------------------------------------------------------------------
    def gripper_closure(self, msg: OperatorInput, side: str) -> Optional[float]:
        source = self.cfg.gripper_source
        controller = msg.controller(side)
        hand = msg.hand(side)
        if controller is not None and source in ("auto", "trigger"):
            return controller.trigger
        if hand is not None and source in ("auto", "pinch"):
            d = hand.pinch_distance()
            span = self.cfg.pinch_open_m - self.cfg.pinch_closed_m
            return float(np.clip((self.cfg.pinch_open_m - d) / span, 0.0, 1.0))
        return None

    # -- main ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget calibration: the next engagement maps the operator's pose to the robot's home."""
        self.calibrated = False
        self._anchors = {s: None for s in self.sides}
        self._head_anchor = None
        self._was_engaged = False
        if self.hands is not None:
            self.hands.reset()

    def release(self) -> None:
        """Drop the arm anchors (not the calibration) so the next engagement re-anchors."""
        self._anchors = {s: None for s in self.sides}
        self._was_engaged = False

    def update(self, msg: OperatorInput, current_ee: Callable[[], Dict[str, PoseTuple]]) -> RetargetOutput:
        enable = self.resolve_enable(msg)
        engaged = enable and not msg.clutch
        targets: Dict[str, Optional[PoseTuple]] = {s: None for s in self.sides}
        if not engaged:
            # Deadman released or clutch held: the gate holds; re-anchor on the next engagement.
            self._anchors = {s: None for s in self.sides}
        else:
            robot_now = None
            for side in self.sides:
                wrist = msg.wrist(side)
                if wrist is None:
                    wrist = msg.hand(side).wrist_pose() if msg.hand(side) is not None else None
                if wrist is None:
                    self._anchors[side] = None  # tracking lost: that arm keeps its target
                    continue
                op_rot = quat_to_mat(wrist.orientation)
                anchor = self._anchors[side]
                if anchor is None:
                    if not self.calibrated:
                        robot_pos, robot_rot = self.home_ee[side]
                    else:
                        if robot_now is None:
                            robot_now = current_ee()
                        robot_pos, robot_q = robot_now[side]
                        robot_rot = quat_to_mat(robot_q)
                    anchor = self._anchors[side] = _Anchor(wrist.position.copy(), op_rot, robot_pos.copy(), robot_rot)
                pos = anchor.robot_pos + self.operator_to_robot_delta(wrist.position - anchor.operator_pos)
                if self.cfg.orientation:
                    rot = self.rotation_to_robot(op_rot @ anchor.operator_rot.T) @ anchor.robot_rot
                else:
                    rot = anchor.robot_rot
                targets[side] = (pos, mat_to_quat(rot))
            if any(a is not None for a in self._anchors.values()):
                self.calibrated = True
        head = self._head(msg) if engaged else None
        self._was_engaged = engaged
        fingers, hand_tracked = self.hands.update(msg) if self.hands is not None else ({}, {})
        if not engaged:
            fingers = {side: None for side in fingers}
        return RetargetOutput(
            targets=targets,
            gripper={s: self.gripper_closure(msg, s) if engaged else None for s in self.sides},
            head=head,
            enable=enable,
            clutch=msg.clutch,
            engaged=engaged,
            fingers=fingers,
            hand_tracked=hand_tracked,
        )

    def _head(self, msg: OperatorInput) -> Optional[Tuple[float, float]]:
        hm = self.head_mapping
        if hm is None or msg.head is None:
            return None
        rot = quat_to_mat(msg.head.orientation)
        if self._head_anchor is None:
            self._head_anchor = rot  # the head's neutral is taken at calibration, like the wrists
        yaw, pitch = yaw_pitch(self.rotation_to_robot(rot @ self._head_anchor.T))
        gain = self.cfg.head_gain
        pan = float(np.clip(hm.home_pan + hm.pan_sign * gain * yaw, *hm.pan_range))
        tilt = float(np.clip(hm.home_tilt + hm.tilt_sign * gain * pitch, *hm.tilt_range))
        return pan, tilt
