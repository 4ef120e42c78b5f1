"""The scripted operator: plans operator-like hand motion for a simulated task and "wears the headset".

At episode start it reads the task's object poses and grasp hints from the sim, plans the phases a
person would go through (approach, grasp, lift, move, place or pour, release, retreat) as robot-frame
end-effector waypoints, and then plays them back as an operator would move: minimum-jerk reaches
(Flash & Hogan) with durations that grow with distance, a reaction pause between phases, a small
per-phase aiming error and physiological tremor. Every pose is converted into the operator's
tracking frame by inverting the retargeting map (the relation a human learns by watching the robot),
and leaves as an OperatorInput through the same encode -> ZMQ -> decode path as a VR headset's,
stamped with sim time.

The phases it went through are ground truth for a take's subtasks: `operator_phases()` gives them
on the session clock (the episode's /timestamps clock), and the take's drivers store them in the
episode as the root attribute `operator_phases` (collector/review/suggestions.py reads them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.backends.base import RobotBackend
from collector.errors import DeviceError
from collector.teleop.config import ScriptedConfig
from collector.teleop.devices.base import NEUTRAL_HEAD, NEUTRAL_WRIST, DeviceContext, InputDevice
from collector.teleop.devices.registry import register_device
from collector.teleop.hand_poses import hand_skeleton as posed_hand
from collector.teleop.messages import (HAND_JOINT_INDEX, N_HAND_JOINTS, ControllerState, HandSkeleton, OperatorInput,
                                       Pose)
from collector.teleop.transforms import axis_angle_quat, mat_to_quat, minimum_jerk, quat_mul, quat_to_mat, slerp

PoseTuple = Tuple[np.ndarray, np.ndarray]
# Approach from above with the fingers closing along world y: 180 degrees about world x, then
# pitched so the approach leans forward (as a person reaching over a table does; a strictly
# vertical approach needs more wrist flexion than a 7-DoF humanoid arm has in front of its chest).
TOP_DOWN = np.array([0.0, 1.0, 0.0, 0.0])
TOP_GRASP_LEAN_RAD = 0.45
# Hand geometry the operator allows for (the humanoid's: pads reach 3 cm past the grasp centre,
# the palm starts 3 cm before it).
FINGERTIP_BELOW_CENTRE_M = 0.03
PALM_ABOVE_CENTRE_M = 0.03
# Tremor: a few incommensurate frequencies in the 4-11 Hz band of physiological tremor.
TREMOR_HZ = (4.3, 7.1, 10.6)
# Near misses (recovery demonstrations) stray at most this far from the hand's forward axis.
NEAR_MISS_SPREAD_RAD = math.radians(25)
# Dexterous hands (robots/humanoid_dex): the grasp centre site is 2.1 cm in front of the palm's skin and
# the fingers lie along the approach axis. To pour, the hand comes in from the side, palm towards the
# pitcher, and wraps it with the power synergy, as low as the palm's lower edge (4.7 cm below the grasp
# centre) allows above the table.
DEX_PALM_SKIN_M = 0.021
DEX_PALM_LOWER_EDGE_M = 0.047
DEX_TABLE_CLEARANCE_M = 0.006
# Pick-and-place with dexterous hands: a tripod grasp with the palm facing down, fingers level. This hand's
# opposed thumb stays near the knuckle line (its tip 0.7-2.5 cm ahead of the grasp centre at every rotation
# and flexion), so an object in front of the palm that the fingers close on is pushed towards the wrist with
# nothing behind it (the ball was lost in 5 of 9 palm-side power grasps). With the object's centre 5 cm
# ahead of the grasp centre, the thumb's tip lies on its near side and the index and middle fingertips close
# onto its far side: it is caged between them before any finger pushes. Right hand's grasp frame (the left
# mirrors y): x towards the thumb, y towards the palm, z along the fingers.
DEX_PICK_SYNERGY = "tripod"
DEX_PICK_OBJECT_IN_GRIP = np.array([0.025, -0.02, 0.05])
DEX_PICK_PALM_ROLL_RAD = math.pi / 2  # palm down: the hand passes above the neighbouring objects
DEX_POUR_SYNERGY = "power"
# Pour with dexterous hands: this hand cannot close a loop around the 6.5 cm pitcher (its thumb stays near the
# knuckle line), so once lifted the pitcher hangs in the finger hook, 2-3 cm towards the wrist and turned ~15
# degrees. Where the tilt axis lies relative to the fingers decides whether it stays there as the hand tips: along
# the fingers the palm comes to face down and the pitcher drops out of the hook (heavy: 2/7 poured); the old fixed
# 45 degrees inwards left the axis 49-71 degrees from the fingers, and the light and medium pitcher turned in the
# hook and spilled (2/14). Fingers 22 degrees inwards of the tilt axis, whatever the layout: 15/21 on the benchmark
# cells and 17/21 on 21 other seeds, against 8/21 and 11/21 for the fixed 45 degrees (docs/teleop.md).
DEX_POUR_FINGERS_FROM_TILT_AXIS_DEG = 22.0


@dataclass
class Segment:
    """One phase: both hands move from their previous key pose to this one over `duration` seconds."""

    name: str
    duration: float
    poses: Dict[str, PoseTuple]  # end pose per side (robot model frame)
    closure: Dict[str, float]  # end gripper closure per side
    start: float = 0.0  # filled in by the plan


@dataclass
class Plan:
    start_poses: Dict[str, PoseTuple]
    start_closure: Dict[str, float]
    segments: List[Segment] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.segments[-1].start + self.segments[-1].duration if self.segments else 0.0

    def last(self) -> Tuple[Dict[str, PoseTuple], Dict[str, float]]:
        if not self.segments:
            return self.start_poses, self.start_closure
        return self.segments[-1].poses, self.segments[-1].closure

    def add(self, name: str, duration: float, poses: Optional[Dict[str, PoseTuple]] = None,
            closure: Optional[Dict[str, float]] = None) -> None:
        prev_poses, prev_closure = self.last()
        seg = Segment(name, float(duration), {**prev_poses, **(poses or {})}, {**prev_closure, **(closure or {})},
                      start=self.duration)
        self.segments.append(seg)

    def sample(self, t: float) -> Tuple[Dict[str, PoseTuple], Dict[str, float], str]:
        poses, closure = self.start_poses, self.start_closure
        for seg in self.segments:
            if t < seg.start + seg.duration:
                s = minimum_jerk((t - seg.start) / seg.duration) if seg.duration > 0 else 1.0
                out_p = {side: (p0 + s * (seg.poses[side][0] - p0), slerp(q0, seg.poses[side][1], s))
                         for side, (p0, q0) in poses.items()}
                out_c = {side: c0 + s * (seg.closure[side] - c0) for side, c0 in closure.items()}
                return out_p, out_c, seg.name
            poses, closure = seg.poses, seg.closure
        return poses, closure, "done"


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def wrap_quarter_turn(yaw: float) -> float:
    """A box looks the same every 90 degrees: the equivalent yaw in [-45, 45] degrees."""
    return (yaw + math.pi / 4) % (math.pi / 2) - math.pi / 4


def quat_yaw(q: np.ndarray) -> float:
    m = quat_to_mat(q)
    return math.atan2(m[1, 0], m[0, 0])


@register_device("scripted", config=ScriptedConfig)
class ScriptedOperator(InputDevice):
    name = "scripted"
    POUR_SHAKES = 2
    SHAKE_RAD = 0.2
    EXTRA_TILT_RAD = 0.0
    DEX_POUR_GRASP_RAISE_M = 0.0
    # Dexterous hands: the grasp synergy, chosen by thumbstick flicks before the take's first grasp. None: the
    # plan's own (DEX_PICK_SYNERGY to pick, DEX_POUR_SYNERGY to pour).
    GRASP_SYNERGY: Optional[str] = None

    def __init__(self, cfg: ScriptedConfig, seed: Optional[int] = None, hand_tracking: bool = False,
                 enable_delay_s: float = 0.2):
        self.cfg = cfg
        self.seed = seed
        self.hand_tracking = hand_tracking  # emit 25-joint hands (pinch = gripper) instead of controllers
        self.enable_delay_s = enable_delay_s
        self.plan: Optional[Plan] = None
        self.phase = "idle"
        self._t0 = 0.0
        self._seq = 0
        self._done = False
        self._polled_until: Optional[float] = None  # session time of the last poll of this take's plan

    # -- set-up -----------------------------------------------------------------------------------
    def start(self, context: DeviceContext) -> None:
        task = context.backend.task if isinstance(context.backend, RobotBackend) else None
        if task is None or not hasattr(task, "grasp_targets"):
            raise DeviceError("the scripted operator needs a simulated task (a SimBackend); "
                              "use --device keyboard/gamepad/zmq for other backends")
        self.ctx = context
        self.retargeter = context.retargeter
        self.kin = context.kinematics
        seed = self.seed if self.seed is not None else context.seed
        self.rng = np.random.default_rng([0 if seed is None else int(seed), 77])
        self.home = {s: (p.copy(), mat_to_quat(r)) for s, (p, r) in self.retargeter.home_ee.items()}
        self.tremor_phase = self.rng.uniform(0, 2 * math.pi, size=(2, len(TREMOR_HZ), 3))
        self.hands = getattr(self.retargeter, "hands", None)  # a HandDrive: the robot has dexterous hands
        self.grasp_synergy = self.GRASP_SYNERGY  # the dexterous plans choose theirs
        planners = {"pick_place": self._plan_pick_place, "pour": self._plan_pour}
        if self.hands is not None:
            planners = {"pick_place": self._plan_pick_place_dex, "pour": self._plan_pour_dex}
        if task.name not in planners:
            raise DeviceError(f"the scripted operator has no plan for task {task.name!r} (has {sorted(planners)})")
        self.task_name = task.name
        self.plan = planners[task.name](task.grasp_targets())
        self._t0 = context.backend.now()
        self._seq = 0
        self._done = False
        self._polled_until = None
        self._flicked = {side: False for side in self.home}

    @property
    def done(self) -> bool:
        return self._done

    def operator_phases(self) -> List[dict]:
        """The plan's segments performed so far: [{"name", "start_t", "end_t"}] in session time.

        Only what the take reached: a segment the take ended in is cut at the last poll (and marked
        `"cut": true`, so its end is not mistaken for a phase boundary); later ones are left out."""
        if self.plan is None or self._polled_until is None:
            return []
        phases = []
        for seg in self.plan.segments:
            start, end = self._t0 + seg.start, self._t0 + seg.start + seg.duration
            if start > self._polled_until:
                break
            phase = {"name": seg.name, "start_t": round(start, 6), "end_t": round(min(end, self._polled_until), 6)}
            if end > self._polled_until:
                phase["cut"] = True
            phases.append(phase)
        return phases

    # -- human-like timing -------------------------------------------------------------------------
    def _reach_time(self, p0: np.ndarray, p1: np.ndarray, q0=None, q1=None, slow: float = 1.0) -> float:
        # Minimum-jerk peaks at 1.875x the mean speed; scale so the peak is the configured hand speed,
        # with a floor like Fitts' law intercept and +-15% person-to-person variation.
        dist = float(np.linalg.norm(p1 - p0))
        turn = 0.0 if q0 is None else 2 * math.acos(min(1.0, abs(float(np.dot(q0, q1)))))
        base = max(1.875 * dist / self.cfg.speed, 1.875 * turn / 2.5, 0.35) * slow
        return base * self.rng.uniform(0.9, 1.15)

    def _pause(self) -> float:
        lo, hi = self.cfg.reaction_s
        return float(self.rng.uniform(lo, hi))

    def _aim(self, scale: float = 1.0) -> np.ndarray:
        """A person's small aiming error for one reach (mm level, never more than 3 mm)."""
        return np.clip(self.rng.normal(0.0, 0.0012 * scale, 3), -0.003, 0.003)

    def _move(self, plan: Plan, name: str, side: str, pos, quat, slow: float = 1.0, aim: float = 1.0,
              closure: Optional[Dict[str, float]] = None) -> None:
        prev = plan.last()[0][side]
        pos = np.asarray(pos, float) + self._aim(aim)
        plan.add(name, self._reach_time(prev[0], pos, prev[1], quat, slow), {side: (pos, np.asarray(quat, float))},
                 closure)

    def _world_to_model(self, pos) -> np.ndarray:
        return np.asarray(pos, float) - self.kin.base_offset

    # -- plans -------------------------------------------------------------------------------------
    def _new_plan(self) -> Plan:
        plan = Plan({s: (p.copy(), q.copy()) for s, (p, q) in self.home.items()}, {s: 0.0 for s in self.home})
        plan.add("wait", self.enable_delay_s + self._pause())
        return plan

    def _arm_for(self, y: float) -> str:
        sides = [s for s in ("left", "right") if s in self.home]
        if len(sides) == 1:
            return sides[0]
        return "left" if y > 0 else "right"

    def _plan_pick_place(self, targets: dict) -> Plan:
        name = targets["target_object"]
        obj = targets["objects"][name]
        place = targets["place"]
        grasp = self._world_to_model(obj["grasp_point"])
        side = self._arm_for(grasp[1])
        height = float(obj["height"])
        top_z = float(obj["top_z"]) - self.kin.base_offset[2]
        table_z = top_z - height
        # Fingertips just above the table, palm just above the object's top.
        grasp[2] = max(table_z + FINGERTIP_BELOW_CENTRE_M + 0.004, top_z - PALM_ABOVE_CENTRE_M + 0.004)
        yaw = wrap_quarter_turn(quat_yaw(np.asarray(obj["quat"]))) if obj["shape"] == "box" else 0.0
        lean = axis_angle_quat([0.0, 1.0, 0.0], -TOP_GRASP_LEAN_RAD)
        down = quat_mul(yaw_quat(yaw), quat_mul(lean, TOP_DOWN))
        above = grasp + [0, 0, max(0.09, top_z - grasp[2] + 0.06)]
        place_pos = self._world_to_model(place["position"])
        carry_z = max(float(place["wall_top_z"]) - self.kin.base_offset[2] + height + 0.06, above[2] + 0.03)

        plan = self._new_plan()
        self._move(plan, "approach", side, above, down)
        plan.add("align", self._pause())
        # Drawn only when asked for, so takes recorded without near misses keep their random sequence.
        if self.cfg.near_miss_share > 0 and self.rng.uniform() < self.cfg.near_miss_share:
            self._near_miss(plan, side, down, grasp, clear_z=top_z + FINGERTIP_BELOW_CENTRE_M + 0.04)
        self._move(plan, "descend", side, grasp, down, slow=1.6, aim=0.5)
        plan.add("grasp", 0.35 * self.rng.uniform(0.9, 1.2), closure={side: 1.0})
        plan.add("settle", 0.25 + self._pause())
        return self._carry_and_place(plan, side, down, grasp, carry_z, place_pos, release_s=0.3,
                                     retreat_to=place_pos + [0, 0, 0.10])

    def _near_miss(self, plan: Plan, side: str, quat, grasp: np.ndarray, clear_z: float) -> None:
        """Lower the open gripper beside the grasp point, notice, lift clear of the object, re-aim above it.

        The miss lies `near_miss_m` off the grasp point, short of it or past it, at grasp height up
        to 3 cm above it (where a policy whose reach stops short closes on nothing); the gripper stays open.
        What follows is the plan's own descent from straight above the grasp point."""
        lo, hi = self.cfg.near_miss_m
        # Short of the object or past it, across the fingers' closing direction: a miss along it would lower a
        # finger onto the object and set a ball rolling, which the plan (made at the start) cannot follow.
        yaw = quat_yaw(quat)
        heading = yaw + self.rng.choice([0.0, math.pi]) + self.rng.uniform(-NEAR_MISS_SPREAD_RAD, NEAR_MISS_SPREAD_RAD)
        miss = grasp + self.rng.uniform(lo, hi) * np.array([math.cos(heading), math.sin(heading), 0.0])
        miss[2] += self.rng.uniform(0.0, 0.03)
        self._move(plan, "descend", side, miss, quat, slow=1.6, aim=0.5)
        plan.add("notice miss", 0.2 + self._pause())
        lifted_z = max(clear_z, miss[2] + 0.02)
        self._move(plan, "lift clear", side, [miss[0], miss[1], lifted_z], quat, slow=1.3)
        self._move(plan, "re-aim", side, [grasp[0], grasp[1], lifted_z], quat, slow=1.3)

    def _plan_pour(self, targets: dict) -> Plan:
        pitcher = targets["objects"]["pitcher"]
        pour = targets["pour"]
        grasp = self._world_to_model(pitcher["grasp_point"])
        side = self._arm_for(grasp[1])
        # Side grasp: the hand comes in level, angled 45 degrees towards the body's midline (the
        # comfortable way to hold a jug you are about to pour towards the middle), fingers closing
        # horizontally. This is also the grip from which the forearm can roll the 2 rad the pour needs.
        inward = -1.0 if side == "left" else 1.0
        approach = np.array([math.cos(math.radians(45)), inward * math.sin(math.radians(45)), 0.0])
        closing = -np.cross([0.0, 0.0, 1.0], approach)
        x_axis = np.cross(closing, approach)
        grip_rot = np.column_stack([x_axis, closing, approach])
        grip_q = mat_to_quat(grip_rot)
        pre = grasp - 0.10 * approach + [0, 0, 0.02]

        # The task's pour hint: bring the grasp point to `hold_position` (pitcher beside the cup, its
        # bottom just above the rim), then tip about `tilt_axis` through the grasp point.
        hold = self._world_to_model(pour["hold_position"])
        axis = np.asarray(pour["tilt_axis"], float)
        axis /= np.linalg.norm(axis)
        tilt = float(pour.get("tilt_rad", 2.2)) + self.EXTRA_TILT_RAD
        tilt_time = float(pour.get("tilt_duration_s", 3.0))
        lift = grasp + [0, 0, max(0.10, hold[2] - grasp[2] + 0.03)]

        def hand_for_tilt(angle: float) -> PoseTuple:
            q_tilt = axis_angle_quat(axis, angle)
            return hold.copy(), quat_mul(q_tilt, grip_q)

        plan = self._new_plan()
        self._move(plan, "approach", side, pre, grip_q, slow=1.1)
        plan.add("align", self._pause())
        self._move(plan, "reach in", side, grasp, grip_q, slow=1.6, aim=0.5)
        plan.add("grasp", 0.4 * self.rng.uniform(0.9, 1.2), closure={side: 1.0})
        plan.add("settle", 0.3 + self._pause())
        self._pour_and_set_down(plan, side, grip_q, grasp, lift, hold, tilt, tilt_time, hand_for_tilt)
        return self._release_and_return(plan, side, grip_q, 0.35, retreat_to=pre)

    # -- the second half of every plan: the same for grippers and dexterous hands ----------------------
    def _carry_and_place(self, plan: Plan, side: str, quat, grasp, carry_z: float, place_pos, release_s: float,
                         retreat_to) -> Plan:
        """Lift the held object to carry_z, carry it over place_pos, lower it there, let go, go home."""
        self._move(plan, "lift", side, grasp + [0, 0, carry_z - grasp[2]], quat, slow=1.3, aim=0.3)
        self._move(plan, "carry", side, [place_pos[0], place_pos[1], carry_z], quat, slow=1.2, aim=0.5)
        self._move(plan, "lower", side, place_pos, quat, slow=1.5, aim=0.5)
        return self._release_and_return(plan, side, quat, release_s * self.rng.uniform(0.9, 1.2), retreat_to)

    def _pour_and_set_down(self, plan: Plan, side: str, quat, grasp, lift, held_at_cup, tilt: float,
                           tilt_time: float, hand_for_tilt) -> None:
        """Lift the pitcher, hold it at held_at_cup, tip it, shake it, tip it back and set it down."""
        self._move(plan, "lift", side, lift, quat, slow=1.5, aim=0.3)
        self._move(plan, "carry", side, held_at_cup + [0, 0, lift[2] - held_at_cup[2]], quat, slow=1.4, aim=0.3)
        self._move(plan, "lower to cup", side, held_at_cup, quat, slow=1.5, aim=0.3)
        plan.add("aim", self._pause())
        # Tip in stages: quickly to where the water reaches the lip, then slowly while it pours.
        for fraction, share in ((0.45, 0.2), (0.75, 0.35), (1.0, 0.45)):
            plan.add(f"pour {int(fraction * 100)}%", tilt_time * share * self.rng.uniform(0.9, 1.15),
                     {side: hand_for_tilt(fraction * tilt)})
        # People give a jug a couple of small shakes to get the last of it out.
        for k in range(self.POUR_SHAKES):
            plan.add(f"shake {k + 1}", 0.15, {side: hand_for_tilt(tilt + self.SHAKE_RAD)})
            plan.add(f"shake {k + 1}", 0.15, {side: hand_for_tilt(tilt - self.SHAKE_RAD / 2)})
        plan.add("drain", 1.0 + self._pause(), {side: hand_for_tilt(tilt)})
        self._move(plan, "tip back", side, held_at_cup, quat, slow=1.5)
        self._move(plan, "return pitcher", side, lift, quat, slow=1.3)
        self._move(plan, "set down", side, grasp + [0, 0, 0.005], quat, slow=1.6, aim=0.3)

    def _release_and_return(self, plan: Plan, side: str, quat, release_s: float, retreat_to) -> Plan:
        plan.add("release", release_s, closure={side: 0.0})
        plan.add("let go", 0.2 + self._pause())
        self._move(plan, "retreat", side, retreat_to, quat)
        home_p, home_q = self.home[side]
        self._move(plan, "return", side, home_p, home_q)
        plan.add("rest", 0.3)
        return plan

    # -- plans for dexterous hands -------------------------------------------------------------------
    def _side_grip(self, side: str, roll: float, inward_deg: float = 45.0) -> Tuple[np.ndarray, np.ndarray]:
        """Fingers level, `inward_deg` towards the midline, the palm rolled `roll` rad from vertical to face
        down onto the object: (quaternion, the unit vector from the grasp centre towards the palm)."""
        inward = -1.0 if side == "left" else 1.0
        approach = np.array([math.cos(math.radians(inward_deg)), inward * math.sin(math.radians(inward_deg)), 0.0])
        closing = -np.cross([0.0, 0.0, 1.0], approach)
        up = np.array([0.0, 0.0, 1.0])
        # The hands are mirror images but their grasp frames are not: the left palm lies on the frame's -y,
        # so the same frame puts the left palm on the mirrored side.
        palm_sign = -1.0 if side == "left" else 1.0
        towards_palm = math.cos(roll) * palm_sign * closing + math.sin(roll) * up
        y_axis = palm_sign * towards_palm
        x_axis = np.cross(y_axis, approach)  # the thumb's side: up on both hands
        return mat_to_quat(np.column_stack([x_axis, y_axis, approach])), towards_palm

    @staticmethod
    def _palm_on(centre: np.ndarray, radius: float, towards_palm: np.ndarray, lift: float) -> np.ndarray:
        """The grasp centre `lift` m above `centre` whose palm skin touches a round object of `radius`."""
        sin_roll = float(towards_palm[2])
        horizontal = towards_palm - [0.0, 0.0, sin_roll]
        horizontal /= np.linalg.norm(horizontal)
        along = (radius - DEX_PALM_SKIN_M - lift * sin_roll) / math.sqrt(max(1e-9, 1.0 - sin_roll ** 2))
        return centre + along * horizontal + [0.0, 0.0, lift]

    def _plan_pick_place_dex(self, targets: dict) -> Plan:
        name = targets["target_object"]
        obj = targets["objects"][name]
        place = targets["place"]
        centre = self._world_to_model(obj["grasp_point"])
        side = self._arm_for(centre[1])
        height = float(obj["height"])
        grip_q, towards_palm = self._side_grip(side, DEX_PICK_PALM_ROLL_RAD)
        object_in_grip = DEX_PICK_OBJECT_IN_GRIP * ([1.0, -1.0, 1.0] if side == "left" else 1.0)
        grasp = centre - quat_to_mat(grip_q) @ object_in_grip
        back = 0.05 * towards_palm  # straight above: the fingers come down beside the object, not onto it
        above = grasp + back + [0, 0, 0.08]
        offset = grasp - centre  # the grasp centre relative to the object's, kept while carried
        place_pos = self._world_to_model(place["position"]) + offset
        carry_z = max(float(place["wall_top_z"]) - self.kin.base_offset[2] + height + 0.06 + offset[2], above[2])

        self.grasp_synergy = self.GRASP_SYNERGY or DEX_PICK_SYNERGY
        plan = self._new_plan()
        self._move(plan, "approach", side, above, grip_q)
        plan.add("align", self._pause())
        self._move(plan, "descend", side, grasp + back, grip_q, slow=1.4, aim=0.5)
        self._move(plan, "reach in", side, grasp, grip_q, slow=1.6, aim=0.5)
        plan.add("grasp", 1.2 * self.rng.uniform(0.9, 1.2), closure={side: 1.0})
        plan.add("settle", 0.3 + self._pause())
        return self._carry_and_place(plan, side, grip_q, grasp, carry_z, place_pos, release_s=0.4,
                                     retreat_to=place_pos + back + [0, 0, 0.08])

    def _plan_pour_dex(self, targets: dict) -> Plan:
        pitcher = targets["objects"]["pitcher"]
        pour = targets["pour"]
        centre = self._world_to_model(pitcher["grasp_point"])
        side = self._arm_for(centre[1])
        axis = np.asarray(pour["tilt_axis"], float)
        axis /= np.linalg.norm(axis)
        forward = axis if axis[0] > 0 else -axis  # the tilt axis, pointing away from the body
        along_axis_deg = math.degrees(math.atan2(forward[1] if side == "right" else -forward[1], forward[0]))
        grip_q, towards_palm = self._side_grip(side, 0.0, along_axis_deg + DEX_POUR_FINGERS_FROM_TILT_AXIS_DEG)
        self.grasp_synergy = self.GRASP_SYNERGY or DEX_POUR_SYNERGY
        radius = 0.5 * float(pitcher.get("grasp_width", 0.077))
        # As low as the palm's lower edge allows: the thumb, above the grasp centre, then reaches the body.
        base_z = float(pitcher["rim_z"]) - float(pitcher["height"]) - self.kin.base_offset[2]
        lowest = base_z + DEX_PALM_LOWER_EDGE_M + DEX_TABLE_CLEARANCE_M
        held_at = centre.copy()
        held_at[2] = max(lowest, min(centre[2], lowest + self.DEX_POUR_GRASP_RAISE_M))
        grasp = self._palm_on(held_at, radius, towards_palm, 0.0)
        offset = grasp - centre  # from the task's grasp point, which the pour hint places
        back = 0.05 * towards_palm
        hold = self._world_to_model(pour["hold_position"])
        tilt = float(pour.get("tilt_rad", 2.2)) + self.EXTRA_TILT_RAD
        tilt_time = float(pour.get("tilt_duration_s", 3.0))
        lift = grasp + [0, 0, max(0.10, hold[2] - centre[2] + 0.03)]

        def hand_for_tilt(angle: float) -> PoseTuple:
            # The pitcher tips about the axis through its grasp point; the hand, off that point, swings with it.
            q_tilt = axis_angle_quat(axis, angle)
            return hold + quat_to_mat(q_tilt) @ offset, quat_mul(q_tilt, grip_q)

        plan = self._new_plan()
        # Over the pitcher's rim first: the hand turns into the grip clear of it, then comes down beside it.
        high = grasp + back
        high[2] = max(self.home[side][0][2], grasp[2] + 0.15)
        self._move(plan, "approach", side, high, grip_q, slow=1.1)
        plan.add("align", self._pause())
        self._move(plan, "descend", side, grasp + back, grip_q, slow=1.3, aim=0.5)
        self._move(plan, "reach in", side, grasp, grip_q, slow=1.6, aim=0.5)
        plan.add("grasp", 0.5 * self.rng.uniform(0.9, 1.2), closure={side: 1.0})
        plan.add("settle", 0.3 + self._pause())
        self._pour_and_set_down(plan, side, grip_q, grasp, lift, hold + offset, tilt, tilt_time, hand_for_tilt)
        return self._release_and_return(plan, side, grip_q, 0.4, retreat_to=grasp + back)

    # -- output ------------------------------------------------------------------------------------
    def _tremor(self, side_index: int, t: float) -> np.ndarray:
        # Amplitude falls as 1/f (faster components are smaller), so the tremor's speed stays a few cm/s.
        phases = self.tremor_phase[side_index]
        wave = sum(TREMOR_HZ[0] / hz * np.sin(2 * math.pi * hz * t + phases[k]) for k, hz in enumerate(TREMOR_HZ))
        return self.cfg.noise_m / math.sqrt(len(TREMOR_HZ)) * wave

    def _operator_pose(self, side: str, pose: PoseTuple, t: float) -> Pose:
        """Robot-frame EE pose -> the wrist pose an operator calibrated at NEUTRAL_WRIST would hold."""
        rt = self.retargeter
        home_p, home_q = self.home[side]
        pos_op = NEUTRAL_WRIST[side] + rt.robot_to_operator_delta(pose[0] - home_p)
        pos_op = pos_op + self._tremor(0 if side == "left" else 1, t)
        rot_robot = quat_to_mat(pose[1]) @ quat_to_mat(home_q).T
        rot_op = rt.rotation_to_operator(rot_robot)  # relative to the neutral (identity) wrist orientation
        return Pose(pos_op, mat_to_quat(rot_op))

    def _hand(self, side: str, wrist: Pose, closure: float) -> HandSkeleton:
        """A plausible 25-joint hand for `closure`. Dexterous hands: the operator's hand `closure` of the way from
        rest to the shape of the plan's grasp synergy (hand_poses.GRASP_POSES), so its retargeting closes the
        robot's fingers that way. A gripper: a hand whose thumb-index gap encodes the closure (pinch)."""
        if self.hands is not None:
            return posed_hand(side, "rest", wrist_position=wrist.position,
                              wrist_rotation=quat_to_mat(wrist.orientation), towards=self.grasp_synergy, amount=closure)
        rt = self.retargeter
        gap = rt.cfg.pinch_open_m - closure * (rt.cfg.pinch_open_m - rt.cfg.pinch_closed_m)
        rot = quat_to_mat(wrist.orientation)
        positions = np.repeat(wrist.position[None, :], N_HAND_JOINTS, axis=0)
        # Fingers point forward (-z in WebXR) from the wrist; each joint 2.5 cm further out.
        for i in range(1, N_HAND_JOINTS):
            positions[i] = wrist.position + rot @ np.array([0.0, 0.0, -0.025 * (1 + (i - 1) % 5)])
        tip_centre = wrist.position + rot @ np.array([0.0, 0.0, -0.11])
        positions[HAND_JOINT_INDEX["thumb-tip"]] = tip_centre + rot @ np.array([-gap / 2, 0, 0])
        positions[HAND_JOINT_INDEX["index-finger-tip"]] = tip_centre + rot @ np.array([gap / 2, 0, 0])
        orientations = np.repeat(wrist.orientation[None, :], N_HAND_JOINTS, axis=0)
        return HandSkeleton(positions, orientations, radii=np.full(N_HAND_JOINTS, 0.008))

    def poll(self, now: float) -> Optional[OperatorInput]:
        if self.plan is None:
            raise DeviceError("scripted operator polled before start()")
        t = now - self._t0
        poses, closure, self.phase = self.plan.sample(t)
        self._polled_until = now
        if t >= self.plan.duration:
            self._done = True
        wrists = {side: self._operator_pose(side, pose, t) for side, pose in poses.items()}
        kwargs = {f"{side}_wrist": wrist for side, wrist in wrists.items()}
        for side, wrist in wrists.items():
            c = float(np.clip(closure[side], 0.0, 1.0))
            if self.hand_tracking:
                kwargs[f"{side}_hand"] = self._hand(side, wrist, c)
            else:
                kwargs[f"{side}_controller"] = ControllerState(trigger=c, thumbstick=self._synergy_flick(side))
        msg = OperatorInput(stamp=now, seq=self._seq, source=self.name, head=Pose(NEUTRAL_HEAD),
                            enable=t >= self.enable_delay_s, clutch=False, **kwargs)
        self._seq += 1
        return msg

    def _synergy_flick(self, side: str) -> np.ndarray:
        """Dexterous hands: flick the thumbstick right (one message on, one off) until the hand's selected
        synergy is the plan's grasp synergy, as an operator steps through them on a controller."""
        flick = (self.hands is not None and not self._flicked[side]
                 and self.hands.synergy(side) != self.grasp_synergy)
        self._flicked[side] = flick
        return np.array([1.0 if flick else 0.0, 0.0])

    def close(self) -> None:
        pass


def operator_phases_metadata(device) -> dict:
    """Episode metadata for a take the scripted operator performed: {"operator_phases": [...]}, else {}.

    `device` may be any input device (or a wrapper that forwards attributes, as the session's does)."""
    phases = getattr(device, "operator_phases", None)
    if not callable(phases):
        return {}
    performed = phases()
    return {"operator_phases": performed} if performed else {}
