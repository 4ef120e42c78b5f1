"""Joints grouped by limb, each group with one unit: how plots and the dashboard lay out joint state.

The groups are the robot YAML's `groups` (waist, left arm, right arm, hands, head for the humanoid) and
the unit comes from the MJCF joint type (hinge: rad, slide: m), never from a joint's name. A group
that mixes hinge and slide joints is shown as two groups, one per unit, so every plot has one y unit.
Joints of a state vector that the robot does not describe go to a last group with no unit.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from collector.errors import ConfigError

UNIT_OF_JOINT_TYPE = {"hinge": "rad", "slide": "m"}
# The smallest vertical span a plot of each unit gets, so sensor noise stays a flat line.
MIN_SPAN = {"rad": 0.05, "m": 0.005, "": 0.05}
OTHER_GROUP = "other"


@dataclass(frozen=True)
class JointGroup:
    name: str
    unit: str  # "rad", "m", or "" when the robot does not say
    joints: Tuple[str, ...]
    indices: Tuple[int, ...]  # where each joint sits in the state vector the group was made for

    @property
    def label(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    @property
    def min_span(self) -> float:
        return MIN_SPAN[self.unit]

    def as_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "joints": list(self.joints), "indices": list(self.indices),
                "min_span": self.min_span}


def joint_units(robot) -> Dict[str, str]:
    """Every command joint of a RobotSpec -> "rad" or "m", from its MJCF joint type."""
    import mujoco

    model = robot.load_model()
    types = {int(mujoco.mjtJoint.mjJNT_HINGE): "hinge", int(mujoco.mjtJoint.mjJNT_SLIDE): "slide"}
    units = {}
    for joint in robot.command_joints:
        kind = types.get(int(model.jnt_type[model.joint(joint).id]))
        if kind is None:
            raise ConfigError(f"{robot.yaml_path}: joint {joint!r} is neither hinge nor slide")
        units[joint] = UNIT_OF_JOINT_TYPE[kind]
    return units


def joint_groups(names: Sequence[str], groups: Dict[str, Sequence[str]], units: Dict[str, str]) -> List[JointGroup]:
    """Lay the joints `names` (a state vector's order) out in `groups`, split by unit."""
    position = {name: i for i, name in enumerate(names)}
    laid_out: List[JointGroup] = []
    placed = set()
    for group, members in groups.items():
        present = [j for j in members if j in position]
        by_unit: Dict[str, List[str]] = {}
        for joint in present:
            by_unit.setdefault(units.get(joint, ""), []).append(joint)
        for unit, joints in by_unit.items():
            name = group if len(by_unit) == 1 else f"{group} {unit or 'other'}"
            laid_out.append(JointGroup(name, unit, tuple(joints), tuple(position[j] for j in joints)))
            placed.update(joints)
    rest = [j for j in names if j not in placed]
    if rest:
        laid_out.append(JointGroup(OTHER_GROUP, "", tuple(rest), tuple(position[j] for j in rest)))
    return laid_out


def robot_joint_groups(robot, names: Optional[Sequence[str]] = None) -> List[JointGroup]:
    """The groups of a RobotSpec (or robot name/path) for the state vector `names` (default: its command joints)."""
    if hasattr(robot, "groups"):
        groups, units, joints = robot.groups, joint_units(robot), robot.command_joints
    else:
        groups, units, joints = _named_robot(str(robot))
    return joint_groups(list(names or joints), groups, units)


@lru_cache(maxsize=8)
def _named_robot(robot: str):
    # Loading checks the YAML against its MJCF (a third of a second): once per robot per process.
    from collector.robot.loader import load_robot

    spec = load_robot(robot)
    return dict(spec.groups), joint_units(spec), list(spec.command_joints)
