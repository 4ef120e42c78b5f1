"""The scripted corrector: watches a policy do a simulated task and takes over when it fails.

While the policy drives, the corrector holds the deadman (so the supervised policy may move) and
watches the task state every tick: the target object's pose, whether the gripper touches it, and
the gripper's distance to it. It takes over, by pressing the takeover button as a person would
(collector/teleop/takeover.py), when the policy
  - has not grasped the object by `grasp_deadline_s`,
  - drifts: the gripper backs off `drift_m` from its closest approach to the object (not holding it),
  - drops the object it held, or
  - stalls: the task makes no progress of `progress_m` for `stall_s` (progress: the gripper nearing
    the object, then the object nearing where it goes; for a pour also water reaching the cup).
It then re-plans from where the robot is, as the scripted operator would plan from home: from the
end-effector poses the robot is held at, with the objects where they are now; phases already done
(the grasp, when the policy holds the object) are skipped. Its hand poses are expressed relative to
the pose it took over at, which is where the operator's retargeting re-anchors. With dexterous hands
it plans as the scripted operator does for them (a tripod to pick, the power synergy to pour), and a
hand counts as closed by how far its fingers are along that synergy.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from collector.errors import DeviceError
from collector.teleop.config import CorrectorConfig
from collector.teleop.devices.base import NEUTRAL_HEAD, NEUTRAL_WRIST, DeviceContext
from collector.teleop.devices.registry import register_device
from collector.teleop.devices.scripted import Plan, PoseTuple, ScriptedOperator
from collector.teleop.messages import ControllerState, OperatorInput, Pose
from collector.teleop.robot_limits import gripper_indices
from collector.teleop.takeover import DEFAULT_TAKEOVER_BUTTON
from collector.teleop.transforms import mat_to_quat, quat_to_mat

# Phases of the scripted plans up to and including the grasp: skipped when the object is already held.
GRASP_PHASES = ("wait", "approach", "align", "descend", "reach in", "grasp", "settle")
HELD_CLOSURE = 0.5  # a gripper closed further than this, touching the object, holds it
DROP_S = 0.3  # an object held before and out of hand this long was dropped


class ProgressWatch:
    """Decides, tick by tick, whether the policy has failed: returns the reason, or None."""

    def __init__(self, cfg: CorrectorConfig):
        self.cfg = cfg
        self.closest = math.inf  # the gripper's closest approach to the object while not holding it
        self.best = -math.inf  # the best progress score so far
        self.best_t = 0.0
        self.held_before = False
        self.unheld_since: Optional[float] = None  # contacts flicker while a grasp settles: a drop must last

    def update(self, t: float, held: bool, grip_distance: float, score: float) -> Optional[str]:
        cfg = self.cfg
        if score > self.best + cfg.progress_m:
            self.best, self.best_t = score, t
        if held:
            self.held_before, self.unheld_since = True, None
        else:
            self.closest = min(self.closest, grip_distance)
            if self.held_before:
                self.unheld_since = t if self.unheld_since is None else self.unheld_since
                if t - self.unheld_since >= DROP_S:
                    return "dropped the object"
                return None
            if t >= cfg.grasp_deadline_s:
                return f"object not grasped by {cfg.grasp_deadline_s:g} s"
            if grip_distance > self.closest + cfg.drift_m:
                return f"gripper drifted {grip_distance - self.closest:.2f} m away from the object"
        if t - self.best_t >= cfg.stall_s:
            return f"no progress for {cfg.stall_s:g} s"
        return None


@register_device("corrector", config=CorrectorConfig)
class ScriptedCorrector(ScriptedOperator):
    name = "corrector"

    def __init__(self, cfg: CorrectorConfig, seed: Optional[int] = None, hand_tracking: bool = False,
                 enable_delay_s: float = 0.2):
        super().__init__(cfg, seed=seed, hand_tracking=hand_tracking, enable_delay_s=enable_delay_s)
        self.took_over_at: Optional[float] = None  # session time of the takeover, None while watching
        self.reason: Optional[str] = None
        self._replanning = False

    def start(self, context: DeviceContext) -> None:
        super().start(context)  # checks the task, seeds the operator's variability
        from collector.backends.sim import SimBackend

        if not isinstance(context.backend, SimBackend):  # it watches the simulator's own state
            raise DeviceError("the scripted corrector watches the simulator's state and needs the in-process "
                              "sim; over ROS 2 take over with --device keyboard/gamepad/zmq")
        self.task = context.backend.task
        self.robot = context.backend.robot
        self.gripper_idx = gripper_indices(self.robot, self.kin)
        self.watch = ProgressWatch(self.cfg)
        self.anchor: Dict[str, PoseTuple] = dict(self.home)
        self.start_closure = {side: 0.0 for side in self.home}
        self.took_over_at = self.reason = None
        self._press = False
        self._watch_t0 = context.backend.now()

    @property
    def done(self) -> bool:
        return self.took_over_at is not None and self._done

    # -- watching ------------------------------------------------------------------------------------
    def _closures(self, command: np.ndarray) -> Dict[str, float]:
        """side -> how far its hand is closed, 0..1: a gripper's closure, or how far a dexterous hand's
        fingers are along the plan's grasp synergy (a policy trained on such takes closes them that way)."""
        if self.hands is None:
            return {side: self.robot.gripper_closure(side, command[i]) for side, i in self.gripper_idx.items()}
        synergies, indices = self.hands.synergies, self.hands.indices
        return {side: synergies.amount(side, self.grasp_synergy, command[indices[side]]) for side in self.hands.sides}

    def _held(self, command: np.ndarray, obj: str) -> bool:
        closed = any(closure > HELD_CLOSURE for closure in self._closures(command).values())
        return closed and self.task.touching_gripper(obj)

    def _check(self, t: float) -> Optional[str]:
        backend = self.ctx.backend
        if backend.task_success():
            return None
        targets = self.task.grasp_targets()
        obj = targets.get("target_object") or next(iter(targets["objects"]))
        command = backend.env.command()
        held = self._held(command, obj)
        obj_pos = np.asarray(targets["objects"][obj]["grasp_point"], float)
        hands = self.kin.ee_positions(command)
        grip_distance = min(float(np.linalg.norm(p - self._world_to_model(obj_pos))) for p in hands.values())
        if held:  # bring the object where it goes (and, for a pour, water into the cup)
            goal = targets["place"]["position"] if "place" in targets else targets["pour"]["hold_position"]
            score = -float(np.linalg.norm(obj_pos - np.asarray(goal, float)))
            score += float(backend.task_metrics().get("particles_in_cup", 0.0))
        else:  # reach the object
            score = -grip_distance - 1.0
        return self.watch.update(t, held, grip_distance, score)

    # -- taking over ---------------------------------------------------------------------------------
    def _take_over(self, now: float, reason: str) -> None:
        command = self.ctx.backend.env.command()  # what the gate holds the robot at: the operator's anchor
        self.anchor = self.kin.ee_poses(command)
        self.start_closure = self._closures(command)
        targets = self.task.grasp_targets()
        held = self._held(command, targets.get("target_object") or next(iter(targets["objects"])))
        planners = {"pick_place": self._plan_pick_place, "pour": self._plan_pour}
        if self.hands is not None:
            planners = {"pick_place": self._plan_pick_place_dex, "pour": self._plan_pour_dex}
        self._replanning = True
        try:
            plan = planners[self.task_name](targets)
        finally:
            self._replanning = False
        self.plan = _without_grasp(plan, self) if held else plan
        self._t0 = now
        self._done = False
        self.took_over_at, self.reason = now, reason
        self._press = True

    def _new_plan(self) -> Plan:
        """For a takeover: from where the robot is held; open the hand and rise clear of the objects."""
        if not self._replanning:
            return super()._new_plan()
        plan = Plan({s: (p.copy(), q.copy()) for s, (p, q) in self.anchor.items()}, dict(self.start_closure))
        plan.add("wait", self._pause())
        clear_z = self._clear_height()
        clear = {side: (np.array([p[0], p[1], max(p[2], clear_z)]), q) for side, (p, q) in self.anchor.items()}
        plan.add("clear", 0.6, clear, {side: 0.0 for side in self.anchor})
        return plan

    def _clear_height(self) -> float:
        targets = self.task.grasp_targets()
        obj = targets["objects"][targets.get("target_object") or next(iter(targets["objects"]))]
        top = obj.get("top_z", obj.get("rim_z"))
        return float(top) - self.kin.base_offset[2] + 0.06

    # -- output --------------------------------------------------------------------------------------
    def _operator_pose(self, side: str, pose: PoseTuple, t: float) -> Pose:
        """As the scripted operator's, relative to the pose it took over at instead of home."""
        if self.took_over_at is None:
            return super()._operator_pose(side, pose, t)
        rt = self.retargeter
        anchor_p, anchor_q = self.anchor[side]
        pos_op = NEUTRAL_WRIST[side] + rt.robot_to_operator_delta(pose[0] - anchor_p)
        pos_op = pos_op + self._tremor(0 if side == "left" else 1, t)
        rot_robot = quat_to_mat(pose[1]) @ quat_to_mat(anchor_q).T
        return Pose(pos_op, mat_to_quat(rt.rotation_to_operator(rot_robot)))

    def poll(self, now: float) -> Optional[OperatorInput]:
        if self.took_over_at is None:
            reason = self._check(now - self._watch_t0)
            if reason is not None:
                self._take_over(now, reason)
        press, self._press = self._press, False
        if self.took_over_at is None:
            return self._message(now, {s: (Pose(NEUTRAL_WRIST[s]), 0.0) for s in self.home},
                                 enable=now - self._watch_t0 >= self.enable_delay_s)
        t = now - self._t0
        poses, closure, self.phase = self.plan.sample(t)
        if t >= self.plan.duration:
            self._done = True
        hands = {side: (self._operator_pose(side, pose, t), float(np.clip(closure[side], 0.0, 1.0)))
                 for side, pose in poses.items()}
        return self._message(now, hands, enable=True, press=press)

    def _message(self, now: float, hands: dict, enable: bool, press: bool = False) -> OperatorInput:
        """hands: side -> (wrist pose, closure). While watching: hands at rest, deadman held (after the
        reaction delay) so the supervised policy may move; `press`: the takeover button is down."""
        kwargs = {}
        press_side, button = DEFAULT_TAKEOVER_BUTTON
        for side, (wrist, closure) in hands.items():
            kwargs[f"{side}_wrist"] = wrist
            buttons = {button: True} if press and side == press_side else {}
            if self.hand_tracking:
                kwargs[f"{side}_hand"] = self._hand(side, wrist, closure)
                if buttons:
                    kwargs[f"{side}_controller"] = ControllerState(buttons=buttons)
            else:
                # A dexterous hand: once in control, flick to the plan's grasp synergy as the operator does.
                flick = self._synergy_flick(side) if self.took_over_at is not None else np.zeros(2)
                kwargs[f"{side}_controller"] = ControllerState(trigger=closure, buttons=buttons, thumbstick=flick)
        msg = OperatorInput(stamp=now, seq=self._seq, source=self.name, head=Pose(NEUTRAL_HEAD),
                            enable=enable, clutch=False, **kwargs)
        self._seq += 1
        return msg


def _without_grasp(plan: Plan, corrector: ScriptedCorrector) -> Plan:
    """The plan from the lift on (the object is already in hand), re-timed from where the hand is."""
    kept = [seg for seg in plan.segments if seg.name not in GRASP_PHASES + ("clear",)]
    out = Plan(plan.start_poses, plan.start_closure)
    out.add("wait", corrector._pause())
    previous = out.last()[0]
    for i, seg in enumerate(kept):
        duration = seg.duration
        if i == 0:  # the first move starts from the held pose, not from the skipped grasp pose
            duration = max(corrector._reach_time(previous[side][0], seg.poses[side][0], previous[side][1],
                                                 seg.poses[side][1], slow=1.3) for side in seg.poses)
        out.add(seg.name, duration, seg.poses, seg.closure)
    return out
