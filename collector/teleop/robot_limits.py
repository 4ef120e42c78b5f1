"""What the robot's description and the safety config say about commanding it.

Derived once per loop from the robot spec (joint groups, grippers, head, velocity limits) and its
kinematics: the joint limits the safety gate enforces, which command joint each gripper drives,
how the neck joints map to the operator's head yaw/pitch, and the workspace box the end effectors
are kept in.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from collector.errors import ConfigError
from collector.teleop.retarget import HeadMapping
from collector.teleop.safety import JointLimits


def actuator_joint(robot, actuator: str) -> str:
    """The command joint an actuator drives."""
    for joint, act in robot.actuators.items():
        if act == actuator:
            return joint
    raise ConfigError(f"robot {robot.name!r}: gripper actuator {actuator!r} drives no command joint")


def joint_limits(robot, kin, safety) -> JointLimits:
    """Position limits from the model; velocity limits from the YAML, else a gripper's full travel
    in `gripper_travel_s`, else the default; all scaled by `velocity_scale`."""
    lower, upper = kin.position_limits()
    from_yaml = robot.velocity_limits or {}
    gripper_joints = {actuator_joint(robot, g["actuator"]) for g in robot.grippers.values()}
    velocity = []
    for j, lo, hi in zip(kin.command_joints, lower, upper):
        if j in from_yaml:
            v = float(from_yaml[j])
        elif j in gripper_joints:
            v = (hi - lo) / safety.gripper_travel_s
        else:
            v = safety.default_velocity_limit
        velocity.append(v * safety.velocity_scale)
    return JointLimits(lower, upper, np.array(velocity))


def gripper_indices(robot, kin) -> Dict[str, int]:
    """side -> index of its gripper joint in the command vector."""
    return {side: kin.index(actuator_joint(robot, g["actuator"])) for side, g in robot.grippers.items()}


def head_mapping(robot, kin, limits: JointLimits) -> Optional[HeadMapping]:
    """The neck's pan/tilt joints as the retargeter drives them, or None for a robot without both."""
    head = robot.head or {}
    if "pan" not in head or "tilt" not in head:
        return None
    pan_i, tilt_i = kin.index(head["pan"]), kin.index(head["tilt"])
    # The axes decide the signs: + yaw turns left about world z, + pitch looks down about world y.
    pan_sign = float(np.sign(kin.joint_world_axis(head["pan"]) @ np.array([0, 0, 1.0])) or 1.0)
    tilt_sign = float(np.sign(kin.joint_world_axis(head["tilt"]) @ np.array([0, 1.0, 0])) or 1.0)
    return HeadMapping(
        home_pan=float(kin.q_home[pan_i]), home_tilt=float(kin.q_home[tilt_i]),
        pan_sign=pan_sign, tilt_sign=tilt_sign,
        pan_range=(float(limits.lower[pan_i]), float(limits.upper[pan_i])),
        tilt_range=(float(limits.lower[tilt_i]), float(limits.upper[tilt_i])),
    )


class Workspace:
    """The box the end effectors are kept in: from the config, else the home poses plus a margin."""

    def __init__(self, kin, safety, home_ee):
        self.kin = kin
        ws = safety.workspace
        if isinstance(ws, dict):
            self.min, self.max = np.array(ws["min"], float), np.array(ws["max"], float)
        else:
            homes = np.array([p for p, _ in home_ee.values()])
            margin = np.array(safety.workspace_margin, float)
            self.min, self.max = homes.min(axis=0) - margin, homes.max(axis=0) + margin

    def clip(self, pose):
        """An IK target pulled inside the box (orientation untouched)."""
        pos, quat = pose
        return np.clip(pos, self.min, self.max), quat

    def violation(self, q: np.ndarray) -> float:
        """How far (m) the worst end effector is outside the box at joint positions q (the gate's check)."""
        worst = 0.0
        for pos in self.kin.ee_positions(q).values():
            outside = np.maximum(self.min - pos, 0) + np.maximum(pos - self.max, 0)
            worst = max(worst, float(np.linalg.norm(outside)))
        return worst
