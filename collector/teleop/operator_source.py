"""The operator as a command source: retargeting of the newest input, then mink IK for both arms.

Retargeting runs on every new operator message (in control or not, so a takeover starts from a
current calibration); IK runs on the ticks the operator is in control and engaged. Grippers and the
head are set directly from the retargeted closure and head yaw/pitch.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional

from collector.teleop.arbiter import CommandSource, Proposal, TickContext
from collector.teleop.ik import ArmIK
from collector.teleop.retarget import RetargetOutput, Retargeter
from collector.teleop.robot_limits import gripper_indices, head_mapping
from collector.teleop.safety import GateState

log = logging.getLogger("collector.teleop.loop")


class OperatorSource(CommandSource):
    id = "operator"

    def __init__(self, robot, kin, cfg, control_dt: float, limits, workspace, home_ee, stats):
        """stats: the loop's LoopStats (IK solve times and failures are counted there)."""
        self.robot = robot
        self.kin = kin
        self.workspace = workspace
        self.stats = stats
        self.ik = ArmIK(kin, cfg.ik, control_dt, {j: float(v) for j, v in zip(kin.command_joints, limits.velocity)})
        self.retargeter = Retargeter(cfg.retarget, cfg.input, home_ee, head_mapping(robot, kin, limits))
        self.gripper_idx = gripper_indices(robot, kin)
        head = robot.head or {}
        self.head_idx = (kin.index(head["pan"]), kin.index(head["tilt"])) \
            if self.retargeter.head_mapping is not None else None
        self.targets: Dict[str, Optional[tuple]] = {s: None for s in robot.end_effectors}
        self._retarget: Optional[RetargetOutput] = None

    def start(self) -> None:
        self.retargeter.reset()
        self.ik.reset()
        self.targets = {s: None for s in self.robot.end_effectors}

    def observe(self, tick: TickContext) -> None:
        if tick.new_input:
            self._retarget = self.retargeter.update(tick.operator_input, lambda: self.kin.ee_poses(tick.command))

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
                        q_desired[self.gripper_idx[side]] = self.robot.gripper_command(side, closure)
                if rt.head is not None and self.head_idx is not None:
                    q_desired[self.head_idx[0]], q_desired[self.head_idx[1]] = rt.head
            else:
                self.stats.ik_failures += 1
                log.warning("IK failed: %s", result.error)
        elif rt is not None and not rt.engaged:
            self.ik.reset()  # after re-engagement each arm restarts from where it is held
            self.targets = {s: None for s in self.robot.end_effectors}
        return Proposal(q_desired, enable, tick.operator_input_t, self.targets)

    def gate_result(self, outcome) -> None:
        if outcome.state is GateState.STOPPED and self.retargeter.calibrated:
            self.retargeter.release()  # lost input: the operator re-calibrates on re-enable
