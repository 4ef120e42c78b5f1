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

On hardware there is no soft limit to allow for: the tolerance is MIN_TOLERANCE for every joint.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

MIN_TOLERANCE = 1e-3  # rad or m: float noise and the recorder's float32 aligned view
TOLERANCE_NOTE = ("allowed excess past each limit: MuJoCo soft-limit deflection (1-d)*a0/(d*k) at the actuator's "
                  "force limit (solref/solimp/margin, dof_invweight0), at least %g" % MIN_TOLERANCE)
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
    tolerance = []
    for name in joints:
        j = model.joint(name).id
        force = _actuator_force_limit(model, j)
        accel = (force or 0.0) * float(model.dof_invweight0[model.jnt_dofadr[j]])
        deflection = soft_limit_deflection(model.jnt_solref[j], model.jnt_solimp[j], float(model.jnt_margin[j]),
                                           accel, float(model.opt.timestep))
        tolerance.append(round(max(deflection, MIN_TOLERANCE), 6))
    return {"joint_names": joints, "lower": lower, "upper": upper, "tolerance": tolerance,
            "tolerance_source": TOLERANCE_NOTE}
