"""The robot description every part of collector works from: `RobotSpec` (built by `load_robot`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from collector.errors import ConfigError
from collector.robot.hands import HandSpec


@dataclass(frozen=True)
class CameraSpec:
    """A camera that is streamed and recorded: `name` is collector's name, `mjcf_camera` the MJCF camera."""

    name: str
    mjcf_camera: str
    width: int
    height: int
    fps: float

    @property
    def period_s(self) -> float:
        return 1.0 / self.fps


@dataclass
class RobotSpec:
    """A robot as the YAML describes it, checked against its MJCF (see collector.robot.loader)."""

    name: str
    yaml_path: Path
    mjcf_path: Path
    fixed_base: bool
    groups: Dict[str, List[str]]
    command_joints: List[str]
    actuators: Dict[str, str]
    end_effectors: Dict[str, str]
    grippers: Dict[str, dict]
    head: Dict[str, str]
    cameras: Dict[str, CameraSpec]
    home: Dict[str, float]
    ik_collision_pairs: List[Tuple[List[str], List[str]]]
    model_hash: str
    joint_ranges: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    velocity_limits: Dict[str, float] = field(default_factory=dict)  # joint -> max speed; absent: teleop default
    ee_approach_axis: str = "z"
    base_body: str = ""
    scene: dict = field(default_factory=dict)
    physics: dict = field(default_factory=dict)
    extra_sites: dict = field(default_factory=dict)
    extra_cameras: dict = field(default_factory=dict)
    hands: Dict[str, HandSpec] = field(default_factory=dict)  # multi-finger hands (collector/robot/hands.py)

    # --- models -----------------------------------------------------------------------------------
    def load_model(self):
        """The robot alone as a compiled MjModel (what the IK works on)."""
        try:
            return self.load_mjspec().compile()
        except ValueError as exc:
            raise ConfigError(f"{self.mjcf_path}: MuJoCo cannot load the model: {exc}") from exc

    def load_mjspec(self):
        """The robot as an editable mujoco.MjSpec, with the YAML's extra sites and cameras added."""
        import mujoco

        from collector.robot.additions import apply_additions

        try:
            mjspec = mujoco.MjSpec.from_file(str(self.mjcf_path))
        except ValueError as exc:
            raise ConfigError(f"{self.mjcf_path}: MuJoCo cannot parse the model: {exc}") from exc
        apply_additions(mjspec, self.extra_sites, self.extra_cameras, str(self.yaml_path))
        return mjspec

    # --- vectors in command_joints order ----------------------------------------------------------
    def home_vector(self) -> np.ndarray:
        return np.array([self.home.get(joint, 0.0) for joint in self.command_joints], dtype=float)

    def lower_limits(self) -> np.ndarray:
        return np.array([self.joint_ranges[j][0] for j in self.command_joints], dtype=float)

    def upper_limits(self) -> np.ndarray:
        return np.array([self.joint_ranges[j][1] for j in self.command_joints], dtype=float)

    def group_slice(self, group: str) -> slice:
        """Where a group's joints sit inside a command/state vector."""
        if group not in self.groups:
            raise ConfigError(f"robot {self.name!r} has no joint group {group!r} (has {sorted(self.groups)})")
        start = 0
        for name, joints in self.groups.items():
            if name == group:
                return slice(start, start + len(joints))
            start += len(joints)
        raise AssertionError("unreachable")

    def gripper_command(self, side: str, closure: float) -> float:
        """Actuator target for a gripper closure in 0 (open) .. 1 (closed)."""
        gripper = self.grippers[side]
        closure = float(np.clip(closure, 0.0, 1.0))
        return gripper["open"] + closure * (gripper["closed"] - gripper["open"])

    def gripper_closure(self, side: str, value: float) -> float:
        """Inverse of gripper_command: the closure 0..1 a joint/actuator value stands for."""
        gripper = self.grippers[side]
        span = gripper["closed"] - gripper["open"]
        return float(np.clip((value - gripper["open"]) / span, 0.0, 1.0)) if span else 0.0

    def grasping_joints(self) -> List[str]:
        """Every joint of a gripper or hand, passive ones included (their links are what holds an object)."""
        joints = [joint for gripper in self.grippers.values() for joint in gripper["joints"]]
        for hand in self.hands.values():
            joints += list(hand.joints) + hand.passive_joints()
        return joints

    # --- indices into any model that contains this robot (the robot alone or a whole scene) -------
    def qpos_indices(self, model, joints=None) -> np.ndarray:
        """qpos addresses of `joints` (default the command joints, in order)."""
        joints = self.command_joints if joints is None else joints
        return np.array([model.jnt_qposadr[_joint_id(model, j)] for j in joints], dtype=int)

    def dof_indices(self, model) -> np.ndarray:
        return np.array([model.jnt_dofadr[_joint_id(model, j)] for j in self.command_joints], dtype=int)

    def actuator_indices(self, model) -> np.ndarray:
        import mujoco

        ids = []
        for joint in self.command_joints:
            actuator_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, self.actuators[joint])
            if actuator_id < 0:
                raise ConfigError(f"actuator {self.actuators[joint]!r} of joint {joint!r} is not in the model")
            ids.append(actuator_id)
        return np.array(ids, dtype=int)

    def describe(self) -> dict:
        """Plain-types summary recorded with episodes (joint order, cameras, hash)."""
        return {
            "name": self.name,
            "yaml": str(self.yaml_path),
            "mjcf": str(self.mjcf_path),
            "fixed_base": self.fixed_base,
            "command_joints": list(self.command_joints),
            "groups": {k: list(v) for k, v in self.groups.items()},
            "end_effectors": dict(self.end_effectors),
            "cameras": {
                name: {"mjcf_camera": c.mjcf_camera, "width": c.width, "height": c.height, "fps": c.fps}
                for name, c in self.cameras.items()
            },
            "model_hash": self.model_hash,
        }


def _joint_id(model, joint: str) -> int:
    import mujoco

    joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    if joint_id < 0:
        raise ConfigError(f"joint {joint!r} is not in the model")
    return joint_id
