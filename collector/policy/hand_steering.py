"""Sending the hands where the policy places them relative to the target, through the teleop's IK.

Measured on the study's 100-demonstration policies (docs/learning.md, "Sixteenth run"): the action head
predicts joint targets that put the hand where the take it was trained on put it to 1-2 mm, and 6-15 mm off
on takes it was not trained on; the failures close 2 cm beyond the target, and beyond the policy's own
estimate of it. A hand's place relative to the target is nearly the same on every layout, so a policy trained
with `hand_offsets` (collector.policy.baseline) also predicts, for every step of its chunk, where each hand
goes relative to the target. This module turns that into joint targets: the hand's goal is the policy's
estimate of the target plus the offset, and the arm joints come from the teleop's differential IK (mink:
collector.teleop.ik.ArmIK), started from the policy's own joint targets, held to their wrist orientation and
pulled towards them as the posture, so only the hand's position moves.

A hand is steered only near the target: its weight is 1 within `near_m` of it (by the predicted offset),
0 beyond `far_m`, linear between, so the reach and the other hand stay the policy's. Once that hand's gripper
command has been closed (past 1/3, as the grasp gate counts a close) for `release_ticks` ticks, the fingers
have shut on the object (the demonstrations close in 0.3 s) and the hand is not steered again in the take:
the object then moves with the hand, and the lift and the carry are the policy's. Until then the hand stays
where it is sent, so a close the policy commands early does not take it back to its own joint targets while
the fingers shut. It reads the command after the grasp gate (the runner applies the gate first).

It reads only what the policy has when it acts: its action, its offsets and its estimate of the target, all
from the same network pass. Never the simulator.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

from collector.errors import ConfigError
from collector.policy.grasp_gate import LATCH_CLOSURE, GatedGripper, gripper_columns

# The IK is solved from the policy's joint targets every tick, so it must reach the goal within one call:
# several iterations of a long step, velocity bounded only loosely (the safety gate bounds the robot).
IK_ITERATIONS = 8
IK_STEP_S = 0.05
IK_VELOCITY_RAD_S = 4.0


class HandSteering:
    def __init__(self, robot_spec, action_names: Sequence[str], near_m: float = 0.06, far_m: float = 0.12,
                 release_ticks: int = 15):
        from collector.teleop.config import IKConfig
        from collector.teleop.ik import ArmIK, RobotKinematics

        if not (math.isfinite(near_m) and math.isfinite(far_m) and 0 <= near_m < far_m):
            raise ConfigError(f"hand steering: need 0 <= near < far metres, got near {near_m!r}, far {far_m!r}")
        if not (isinstance(release_ticks, int) and release_ticks >= 1):
            raise ConfigError(f"hand steering: release_ticks must be a whole number >= 1, got {release_ticks!r}")
        self.near_m, self.far_m, self.release_ticks = float(near_m), float(far_m), release_ticks
        self.kinematics = RobotKinematics(robot_spec)
        self.ik = ArmIK(self.kinematics, IKConfig(iterations=IK_ITERATIONS, max_iteration_dt=IK_STEP_S),
                        control_dt=IK_ITERATIONS * IK_STEP_S,
                        velocity_limits={j: IK_VELOCITY_RAD_S for g in IKConfig().groups
                                         for j in robot_spec.groups.get(g, [])})
        names = list(action_names)
        missing = [j for j in self.ik.ik_joints if j not in names]
        if missing:
            raise ConfigError(f"hand steering: the policy's action lacks the arm joints {missing}")
        command = self.kinematics.command_joints
        self._action_cols = [names.index(j) for j in command if j in names]
        self._command_cols = [command.index(j) for j in command if j in names]
        self.sides: List[str] = list(robot_spec.end_effectors)
        self.grippers: List[GatedGripper] = gripper_columns(robot_spec, names)
        self.reset()

    def reset(self) -> None:
        """A new take: every hand may be steered again."""
        self.closed_ticks = [0] * len(self.sides)
        self.released = [False] * len(self.sides)
        self.steered_ticks = 0
        self.ik.reset()

    def weight(self, offset: np.ndarray) -> float:
        distance = float(np.linalg.norm(offset))
        return float(np.clip((self.far_m - distance) / (self.far_m - self.near_m), 0.0, 1.0))

    def apply(self, action: np.ndarray, offsets: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The action with each steered hand's arm joints solved so the hand goes towards target + offset.
        offsets: (3 x hands,) metres; target: (3,) the estimate of the target, in the hands' frame."""
        out = np.array(action, dtype=np.float64)
        for gripper in self.grippers:
            if gripper.closure(out[gripper.column]) >= LATCH_CLOSURE:
                self.closed_ticks[gripper.hand] += 1
                self.released[gripper.hand] |= self.closed_ticks[gripper.hand] >= self.release_ticks
        q = self.kinematics.q_home.copy()
        q[self._command_cols] = out[self._action_cols]
        own = self.kinematics.ee_poses(q)
        goals, steered = {}, False
        for k, side in enumerate(self.sides):
            position, orientation = own[side]
            w = 0.0 if self.released[k] else self.weight(offsets[3 * k:3 * k + 3])
            if w > 0:
                position = position + w * (np.asarray(target) + offsets[3 * k:3 * k + 3] - position)
                steered = True
            goals[side] = (position, orientation)
        if not steered:
            return out
        self.ik.posture.set_target(self.kinematics.full_q(q))
        result = self.ik.solve(q, goals)
        if not result.ok:
            return out  # the policy's own targets: an unsolvable step is not a reason to stop the take
        self.steered_ticks += 1
        out[self._action_cols] = result.q[self._command_cols]
        return out
