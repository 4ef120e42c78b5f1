"""The operator as a command source: retargeting of the newest input, then mink IK for both arms.

Retargeting runs on every new operator message (in control or not, so a takeover starts from a
current calibration); IK runs on the ticks the operator is in control and engaged. Grippers and the
head are set directly from the retargeted closure and head yaw/pitch.

Taking over from another source (a policy) mid-take is bumpless: the hands re-anchor to where the
robot is held, not to an old clutch anchor or the home pose; each gripper keeps its held opening
until the operator's trigger reaches it (pick-up, as a mixing desk's fader does), so an object the
policy holds is not dropped by a released trigger; a dexterous hand's finger joints do the same joint
by joint (takeover.py FingerPickup); the head keeps its offset from the operator's.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional

import numpy as np

from collector.teleop.arbiter import CommandSource, Proposal, TickContext
from collector.teleop.hand_drive import HandDrive
from collector.teleop.ik import ArmIK
from collector.teleop.retarget import RetargetOutput, Retargeter
from collector.teleop.robot_limits import gripper_indices, head_mapping
from collector.teleop.safety import GateState, HandTrackingHold
from collector.teleop.takeover import FingerPickup

log = logging.getLogger("collector.teleop.loop")

PICKUP_TOLERANCE = 0.05  # share of a gripper's travel within which the operator's trigger picks it up


class OperatorSource(CommandSource):
    id = "operator"

    def __init__(self, robot, kin, cfg, control_dt: float, limits, workspace, home_ee, stats):
        """stats: the loop's LoopStats (IK solve times and failures are counted there)."""
        self.robot = robot
        self.kin = kin
        self.workspace = workspace
        self.stats = stats
        self.ik = ArmIK(kin, cfg.ik, control_dt, {j: float(v) for j, v in zip(kin.command_joints, limits.velocity)})
        hands = HandDrive(robot, cfg.retarget) if robot.hands else None  # dexterous hands: fingers, not grippers
        self.retargeter = Retargeter(cfg.retarget, cfg.input, home_ee, head_mapping(robot, kin, limits), hands)
        self.hand_hold = HandTrackingHold(hands.indices) if hands is not None else None
        self.finger_pickup = FingerPickup(hands.indices, limits.lower, limits.upper) if hands is not None else None
        self.gripper_idx = gripper_indices(robot, kin)
        head = robot.head or {}
        self.head_idx = (kin.index(head["pan"]), kin.index(head["tilt"])) \
            if self.retargeter.head_mapping is not None else None
        self.targets: Dict[str, Optional[tuple]] = {s: None for s in robot.end_effectors}
        self._retarget: Optional[RetargetOutput] = None
        self._ticks = 0  # ticks seen this episode: control at the first one is the start, not a takeover
        self._pickup: Dict[str, tuple] = {}  # side -> (held gripper command, sign of the last difference seen)
        self._head_offset: Optional[np.ndarray] = None  # held (pan, tilt) minus the operator's, after a takeover
        self._head_held: Optional[np.ndarray] = None

    def start(self) -> None:
        self.retargeter.reset()
        self.ik.reset()
        self.targets = {s: None for s in self.robot.end_effectors}
        self._ticks = 0
        self._pickup = {}
        self._head_offset = self._head_held = None
        if self.hand_hold is not None:
            self.hand_hold.reset()
        if self.finger_pickup is not None:
            self.finger_pickup.clear()

    def observe(self, tick: TickContext) -> None:
        self._ticks += 1
        if tick.new_input:
            self._retarget = self.retargeter.update(tick.operator_input, lambda: self.kin.ee_poses(tick.command))

    def take_control(self, tick: TickContext) -> None:
        if self._ticks <= 1:
            return  # the episode's start: the first engagement calibrates to the home pose as always
        self.ik.reset()
        self.targets = {s: None for s in self.robot.end_effectors}
        # Keep nothing of an earlier engagement: the next (or this) engagement anchors the operator's
        # hands to the end effectors where the robot is held now.
        self.retargeter.release()
        self.retargeter.calibrated = True
        if tick.operator_input is not None:
            self._retarget = self.retargeter.update(tick.operator_input, lambda: self.kin.ee_poses(tick.command))
        self._pickup = {side: (float(tick.command[i]), None) for side, i in self.gripper_idx.items()}
        if self.finger_pickup is not None:
            self.finger_pickup.hold(tick.command)
        self._head_offset = None
        self._head_held = None if self.head_idx is None else tick.command[list(self.head_idx)].copy()

    def propose(self, tick: TickContext) -> Proposal:
        rt = self._retarget
        enable = bool(rt is not None and rt.enable)
        q_desired = None
        if rt is not None and rt.engaged:
            for side, pose in rt.targets.items():
                if pose is not None:
                    self.targets[side] = self.workspace.clip(pose)
            result = self.ik.solve(tick.command, self.targets)
            self.stats.ik_s.append(result.solve_s)
            if result.ok:
                q_desired = result.q
                for side, closure in rt.gripper.items():
                    if closure is not None and side in self.gripper_idx:
                        q_desired[self.gripper_idx[side]] = self._picked_up(side, self.robot.gripper_command(side, closure))
                if rt.head is not None and self.head_idx is not None:
                    q_desired[self.head_idx[0]], q_desired[self.head_idx[1]] = self._head(rt.head)
                for side, fingers in rt.fingers.items():
                    if fingers is not None:
                        q_desired[self.retargeter.hands.indices[side]] = self.finger_pickup.apply(side, fingers)
            else:
                self.stats.ik_failures += 1
                log.warning("IK failed: %s", result.error)
        elif rt is not None and not rt.engaged:
            self.ik.reset()  # after re-engagement each arm restarts from where it is held
            self.targets = {s: None for s in self.robot.end_effectors}
        if self.hand_hold is not None and rt is not None:
            q_desired = self._hold_lost_hands(tick, q_desired, rt.hand_tracked)
        return Proposal(q_desired, enable, tick.operator_input_t, self.targets)

    def _hold_lost_hands(self, tick: TickContext, q_desired, tracked):
        known = len(self.hand_hold.losses)
        q_desired = self.hand_hold.apply(tick.now, q_desired, tick.command, tracked)
        self.stats.hand_tracking_lost.extend(self.hand_hold.losses[known:])
        return q_desired

    def _picked_up(self, side: str, wanted: float) -> float:
        """After a takeover a gripper holds its opening until the operator's command meets or crosses it."""
        if side not in self._pickup:
            return wanted
        held, last_sign = self._pickup[side]
        span = abs(self.robot.gripper_command(side, 1.0) - self.robot.gripper_command(side, 0.0))
        sign = np.sign(wanted - held)
        if abs(wanted - held) <= PICKUP_TOLERANCE * span or (last_sign is not None and sign != last_sign):
            del self._pickup[side]
            return wanted
        self._pickup[side] = (held, sign)
        return held

    def _head(self, head) -> tuple:
        if self._head_held is not None and self._head_offset is None:
            self._head_offset = self._head_held - np.asarray(head)
        if self._head_offset is None:
            return head
        return tuple(np.asarray(head) + self._head_offset)

    def gate_result(self, outcome) -> None:
        if outcome.state is GateState.STOPPED and self.retargeter.calibrated:
            self.retargeter.release()  # lost input: the operator re-calibrates on re-enable
