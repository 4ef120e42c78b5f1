"""Holding a gripper open until its hand is down at the target.

Measured on the study's 100-demonstration policies (docs/learning.md, "Sixteenth run"): they close the
gripper on schedule, about 2.2 s into a take as the demonstrations do, wherever the hand then is; on
failures it is 4-5 cm above the target. The gate holds a gripper's command at open while that hand's
grasp centre is more than `height_m` above the policy's own estimate of the target, and stands aside
for the rest of the take once a close has gone through (the lift, the carry and the release are the
policy's).

It reads only what the policy has when it acts: the joint state (the hands' positions by forward
kinematics: collector.policy.end_effectors) and the cameras (the object head's estimate of the named
target). Never the simulator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

import numpy as np

from collector.errors import ConfigError

# A command this far from open towards closed is a close: the gate stands aside from then on.
LATCH_CLOSURE = 1.0 / 3.0


@dataclass(frozen=True)
class GatedGripper:
    """One gripper: its column in the action, its open and closed values, its hand's index in the
    end effectors' positions."""

    column: int
    open: float
    closed: float
    hand: int

    def closure(self, value: float) -> float:
        span = self.closed - self.open
        return float(np.clip((value - self.open) / span, 0.0, 1.0)) if span else 0.0


class GraspGate:
    def __init__(self, grippers: List[GatedGripper], height_m: float):
        if not (isinstance(height_m, (int, float)) and math.isfinite(height_m) and height_m > 0):
            raise ConfigError(f"grasp gate height must be a positive number of metres, got {height_m!r}")
        if not grippers:
            raise ConfigError("grasp gate: the robot has no gripper in the policy's action")
        self.grippers, self.height_m = list(grippers), float(height_m)
        self.reset()

    def reset(self) -> None:
        """A new take: every gripper gated again."""
        self.released = [False] * len(self.grippers)
        self.held_ticks = 0

    def apply(self, action: np.ndarray, hands: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The action with each still-gated gripper held open while its hand is too high.
        hands: (3 * n,) grasp centres in metres; target: (3,) the estimate of the target, same frame."""
        out = np.array(action, dtype=np.float64)
        for k, gripper in enumerate(self.grippers):
            if self.released[k]:
                continue
            closure = gripper.closure(out[gripper.column])
            if closure <= 0.0:
                continue
            height = float(hands[3 * gripper.hand + 2] - target[2])
            if height > self.height_m:
                out[gripper.column] = gripper.open
                self.held_ticks += 1
            elif closure >= LATCH_CLOSURE:
                self.released[k] = True
        return out


def gripper_columns(robot_spec, action_names: List[str]) -> List[GatedGripper]:
    """A robot's grippers in an action, each found by its first joint and matched to the end effector of the
    same side."""
    sides = list(robot_spec.end_effectors)
    grippers = []
    for side, gripper in robot_spec.grippers.items():
        joint = gripper["joints"][0]
        if joint in action_names and side in sides:
            grippers.append(GatedGripper(action_names.index(joint), float(gripper["open"]),
                                         float(gripper["closed"]), sides.index(side)))
    return grippers


def grasp_gate_for(robot_spec, action_names: List[str], height_m: float) -> GraspGate:
    """The gate of a robot's grippers in the action."""
    return GraspGate(gripper_columns(robot_spec, list(action_names)), height_m)
