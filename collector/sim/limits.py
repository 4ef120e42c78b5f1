"""Joint limits an episode records, with how far a simulated joint may legitimately pass them.

MuJoCo's joint limits are soft constraints: a joint pressed against its limit settles a little past
it. How far follows from the limit's solref/solimp/margin and the force pressing on it. MuJoCo's
constraint model (docs: Computation > Soft constraints) gives, for a violation r, impedance d(r)
and unconstrained acceleration a0:

    a1 + d (b v + k r) = (1 - d) a0,    k = d / (dmax^2 timeconst^2 dampratio^2)   (solref > 0)
                                        k = -solref[0] / dmax^2                    (solref <= 0)

At rest against the limit (a1 = v = 0) that is  r = (1 - d) a0 / (d k).  The force in play is at most
what the joint's actuator can apply (its force range, else kp times the joint's range for a position
actuator), so a0 = that force / the joint's inertia (MuJoCo's dof_invweight0). The limit engages
`margin` before the range ends, which takes that much off. The result, per joint, is the tolerance
QA allows past each limit (never below `MIN_TOLERANCE`, the old fixed QA margin).

A finger of a multi-finger hand (the robot YAML's `hands:`) sees more than its own actuator: a held object
carries the squeeze of the hand's other digits onto it, and that load can press a closed finger past its
limit (measured: a heavy cylinder settling into a power grasp pushes the little finger 0.035 rad past, with
1.8 N m on the limit while its own servo pulls the other way). A digit presses with at most its force limit
over its lever (joint axis to fingertip pad: the fingertip force a hand's datasheet quotes), and the same
force on this finger's pad loads its joint by that force times this finger's own lever. So each actuated
hand joint is allowed the deflection of its own actuator's force plus the strongest other digit's fingertip
force at its lever, all read from the model at its reference pose (fingers straight: the longest levers).

On hardware there is no soft limit to allow for: the tolerance is MIN_TOLERANCE for every joint.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

MIN_TOLERANCE = 1e-3  # rad or m: float noise and the recorder's float32 aligned view
TOLERANCE_NOTE = ("allowed excess past each limit: MuJoCo soft-limit deflection (1-d)*a0/(d*k) at the actuator's "
                  "force limit (solref/solimp/margin, dof_invweight0; hand joints: plus the strongest other digit's "
                  "fingertip force at the joint's lever), at least %g" % MIN_TOLERANCE)
HARDWARE_NOTE = "hardware limits: fixed tolerance %g" % MIN_TOLERANCE


def _impedance(solimp: np.ndarray, r: float) -> float:
    """MuJoCo's solimp sigmoid: dmin at r = 0 rising to dmax at r = width."""
    dmin, dmax, width, mid, power = (float(v) for v in solimp[:5])
    if width <= 0 or r >= width:
        return dmax
    x = max(r, 0.0) / width
    if power <= 1:
        y = x
    elif x <= mid:
        y = x ** power / mid ** (power - 1)
    else:
        y = 1 - (1 - x) ** power / (1 - mid) ** (power - 1)
    return dmin + y * (dmax - dmin)


def soft_limit_deflection(solref, solimp, margin: float, accel: float, timestep: float) -> float:
    """How far past its limit a joint rests when pressed with acceleration `accel` (rad or m)."""
    dmax = float(solimp[1])
    timeconst, dampratio = float(solref[0]), float(solref[1])

    def stiffness(d: float) -> float:
        if timeconst > 0:
            tc = max(timeconst, 2 * timestep)  # MuJoCo's refsafe: never faster than two steps
            return d / (dmax ** 2 * tc ** 2 * dampratio ** 2)
        return -timeconst / dmax ** 2

    def excess(r: float) -> float:  # > 0 once r is deeper than the rest point
        d = _impedance(solimp, r)
        return r - (1 - d) * accel / (d * stiffness(d))

    # excess() grows with r (d rises, so the constraint stiffens): bisect for its zero.
    lo, hi = 0.0, 1e-6
    while excess(hi) < 0 and hi < 10.0:
        hi *= 2
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return max(hi - float(margin), 0.0)


def _actuator_force_limit(model, joint_id: int) -> Optional[float]:
    """Largest generalized force an actuator on this joint can apply, or None if none drives it."""
    import mujoco

    best = None
    span = float(model.jnt_range[joint_id, 1] - model.jnt_range[joint_id, 0])
    for a in range(model.nu):
        if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT or model.actuator_trnid[a, 0] != joint_id:
            continue
        gear = abs(float(model.actuator_gear[a, 0]))
        if model.actuator_forcelimited[a]:
            force = max(abs(float(v)) for v in model.actuator_forcerange[a])
        else:  # a position actuator: kp times the largest error it can see
            force = abs(float(model.actuator_gainprm[a, 0])) * span
        force *= gear
        best = force if best is None else max(best, force)
    return best


def _lever(model, data, joint_id: int, site_id: int) -> float:
    """Distance from a hinge's axis to a site (m), in the kinematics already computed in `data`."""
    offset = data.site_xpos[site_id] - data.xanchor[joint_id]
    axis = data.xaxis[joint_id]
    return float(np.linalg.norm(offset - (offset @ axis) * axis))


def _tips_moved_by(model, joint_id: int, tip_sites) -> list:
    """The fingertip sites on the joint's body or below it (the tips this joint moves)."""
    body = int(model.jnt_bodyid[joint_id])
    moved = []
    for site in tip_sites:
        walk = int(model.site_bodyid[site])
        while walk not in (0, body):
            walk = int(model.body_parentid[walk])
        if walk == body:
            moved.append(site)
    return moved


def _grasp_loads(robot, model) -> Dict[str, float]:
    """Per actuated hand joint: the largest torque a held object can put on it from the hand's other digits
    (their strongest fingertip force times this joint's lever to its fingertip), N m. Empty without hands."""
    import mujoco

    hands = getattr(robot, "hands", None) or {}
    if not hands:
        return {}
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)  # the reference pose: fingers straight, the levers at their longest
    loads: Dict[str, float] = {}
    for hand in hands.values():
        tip_sites = [model.site(site).id for site in hand.fingertips.values()]
        digits = []  # (joint, the tips it moves, its lever, its fingertip force)
        for name in hand.joints:
            j = model.joint(name).id
            tips = _tips_moved_by(model, j, tip_sites)
            lever = max((_lever(model, data, j, site) for site in tips), default=0.0)
            force = _actuator_force_limit(model, j) or 0.0
            digits.append((name, set(tips), lever, force / lever if lever > 0 else 0.0))
        for name, tips, lever, _ in digits:
            others = [push for _, other_tips, _, push in digits if not other_tips & tips]
            loads[name] = max(others, default=0.0) * lever
    return loads


def joint_limit_metadata(robot, model=None) -> Dict[str, object]:
    """The episode's `joint_limits` entry: lower, upper and per-joint tolerance in command-joint order.

    model: the compiled MuJoCo model the episode runs in (simulation); None records hardware limits.
    """
    joints = list(robot.command_joints)
    lower = robot.lower_limits().tolist()
    upper = robot.upper_limits().tolist()
    if model is None:
        return {"joint_names": joints, "lower": lower, "upper": upper,
                "tolerance": [MIN_TOLERANCE] * len(joints), "tolerance_source": HARDWARE_NOTE}
    grasp_loads = _grasp_loads(robot, model)
    tolerance = []
    for name in joints:
        j = model.joint(name).id
        force = (_actuator_force_limit(model, j) or 0.0) + grasp_loads.get(name, 0.0)
        accel = force * float(model.dof_invweight0[model.jnt_dofadr[j]])
        deflection = soft_limit_deflection(model.jnt_solref[j], model.jnt_solimp[j], float(model.jnt_margin[j]),
                                           accel, float(model.opt.timestep))
        tolerance.append(round(max(deflection, MIN_TOLERANCE), 6))
    return {"joint_names": joints, "lower": lower, "upper": upper, "tolerance": tolerance,
            "tolerance_source": TOLERANCE_NOTE}
