"""The safety gate: the last thing between IK and the robot, always on.

Every tick it gets the IK's desired joint positions (or nothing), the resolved deadman state
and the time of the last fresh operator input, and returns the command actually sent:

- deadman released, bad desired command (NaN/inf, wrong shape), or input older than
  `hold_after_s` -> HOLD: the previous safe command is repeated, effective this very tick;
- input older than `stop_after_s` -> STOPPED: the link is considered lost; the command stays
  held (a position-controlled robot is already at zero commanded velocity after the hold,
  which is the slowest possible stop and needs no extra motion), and the gate latches: only
  a deadman release followed by a fresh press re-arms it;
- otherwise ACTIVE: the desired command is clipped to the joint limits, then the change from
  the previous command is clipped to velocity_limit * elapsed time, then (if a workspace
  check is given) rejected -> HOLD if it moves an end effector further outside the box.

Invariants (property-tested): every returned command is inside the joint limits, moves no
joint faster than its velocity limit, and equals the previous command whenever it must hold.
Finger joints of dexterous hands are joints of the command vector like any other, so all of this
covers them; HandTrackingHold (below) adds the hold of a hand whose tracking is lost.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from collector.errors import ConfigError


class GateState(enum.Enum):
    DISARMED = "disarmed"  # never enabled yet (start of an episode): holds
    ACTIVE = "active"
    HOLD = "hold"
    STOPPED = "stopped"  # latched after lost input; needs deadman release + press


@dataclass(frozen=True)
class JointLimits:
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray  # per-joint maximum |dq/dt|, rad/s (m/s for slide joints)

    def __post_init__(self):
        lower, upper, vel = (np.asarray(a, dtype=np.float64).copy() for a in (self.lower, self.upper, self.velocity))
        if not (lower.shape == upper.shape == vel.shape and lower.ndim == 1):
            raise ConfigError(f"joint limits: lower/upper/velocity shapes differ: {lower.shape} {upper.shape} {vel.shape}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower <= upper)):
            raise ConfigError("joint limits: every joint needs finite lower <= upper")
        if not (np.all(np.isfinite(vel)) and np.all(vel > 0)):
            raise ConfigError("joint limits: velocity limits must be finite and positive")
        for arr in (lower, upper, vel):
            arr.setflags(write=False)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "velocity", vel)

    @property
    def n(self) -> int:
        return self.lower.shape[0]


@dataclass
class GateOutput:
    q: np.ndarray
    state: GateState
    reason: str  # why it held/stopped, "" when following
    clamped: bool = False  # True if limits changed the desired command


class SafetyGate:
    def __init__(
        self,
        limits: JointLimits,
        control_dt: float,
        hold_after_s: float = 0.1,
        stop_after_s: float = 0.5,
        workspace_violation: Optional[Callable[[np.ndarray], float]] = None,
    ):
        if not (control_dt > 0 and math.isfinite(control_dt)):
            raise ConfigError(f"safety gate: control_dt must be positive, got {control_dt!r}")
        if not (0 < hold_after_s <= stop_after_s):
            raise ConfigError(f"safety gate: need 0 < hold_after_s ({hold_after_s}) <= stop_after_s ({stop_after_s})")
        self.limits = limits
        self.control_dt = float(control_dt)
        self.hold_after_s = float(hold_after_s)
        self.stop_after_s = float(stop_after_s)
        self.workspace_violation = workspace_violation
        self.state = GateState.DISARMED
        self._q: Optional[np.ndarray] = None
        self._t: Optional[float] = None
        self._released_since_stop = False
        self.counts = {s: 0 for s in GateState}

    @property
    def command(self) -> Optional[np.ndarray]:
        return None if self._q is None else self._q.copy()

    def reset(self, q_start: np.ndarray, t: Optional[float] = None) -> np.ndarray:
        """Start holding at q_start (the measured state), clipped into the joint limits."""
        q = np.asarray(q_start, dtype=np.float64)
        if q.shape != (self.limits.n,) or not np.all(np.isfinite(q)):
            raise ConfigError(f"safety gate: start position must be {self.limits.n} finite values")
        self._q = np.clip(q, self.limits.lower, self.limits.upper)
        self._t = t
        self.state = GateState.DISARMED
        self._released_since_stop = False
        return self._q.copy()

    def _hold(self, state: GateState, reason: str) -> GateOutput:
        self.state = state
        self.counts[state] += 1
        return GateOutput(self._q.copy(), state, reason)

    def step(self, t: float, q_desired: Optional[np.ndarray], enable: bool, last_input_t: Optional[float]) -> GateOutput:
        if self._q is None:
            raise RuntimeError("SafetyGate.step before reset()")
        # The first tick after reset has no elapsed time to move in; a clock that stalls or
        # runs backwards allows no motion either.
        elapsed = 0.0 if self._t is None else t - self._t
        elapsed = min(max(elapsed, 0.0), self.control_dt) if math.isfinite(elapsed) else 0.0
        self._t = t
        age = math.inf if last_input_t is None else t - last_input_t
        if not math.isfinite(age) and last_input_t is not None:
            age = math.inf

        if age > self.stop_after_s and self.state not in (GateState.STOPPED, GateState.DISARMED):
            self._released_since_stop = False
            return self._hold(GateState.STOPPED, f"no operator input for {age:.3f} s: stopped, re-enable needed")
        if self.state is GateState.STOPPED:
            if not enable:
                self._released_since_stop = True
            if not (self._released_since_stop and enable and age <= self.hold_after_s):
                return self._hold(GateState.STOPPED, "stopped after lost input: release and press enable")
            # Re-armed by a release + press with fresh input: fall through and follow again.
        if not enable:
            return self._hold(GateState.HOLD if self.state is not GateState.DISARMED else GateState.DISARMED,
                              "deadman released")
        if age > self.hold_after_s:
            state = GateState.DISARMED if self.state is GateState.DISARMED else GateState.HOLD
            return self._hold(state, f"stale input ({age * 1000:.0f} ms old)")
        if q_desired is None:
            return self._hold(GateState.HOLD, "no command from IK")
        q_des = np.asarray(q_desired, dtype=np.float64)
        if q_des.shape != self._q.shape:
            return self._hold(GateState.HOLD, f"command has shape {q_des.shape}, expected {self._q.shape}")
        if not np.all(np.isfinite(q_des)):
            return self._hold(GateState.HOLD, "command contains NaN/inf")

        q_clipped = np.clip(q_des, self.limits.lower, self.limits.upper)
        max_step = self.limits.velocity * elapsed
        q_new = self._q + np.clip(q_clipped - self._q, -max_step, max_step)
        # The previous command is inside the limits, so this only guards float rounding.
        q_new = np.clip(q_new, self.limits.lower, self.limits.upper)
        clamped = not np.array_equal(q_new, q_des)
        if self.workspace_violation is not None:
            outside_new = self.workspace_violation(q_new)
            if outside_new > 1e-6 and outside_new > self.workspace_violation(self._q) + 1e-6:
                return self._hold(GateState.HOLD, f"end effector {outside_new * 1000:.0f} mm outside the workspace box")
        self._q = q_new
        self.state = GateState.ACTIVE
        self.counts[GateState.ACTIVE] += 1
        return GateOutput(q_new.copy(), GateState.ACTIVE, "", clamped)


class HandTrackingHold:
    """Hold on lost hand tracking: a dexterous hand whose tracking is lost freezes its fingers.

    Every tick it gets the desired command, the last safe command (the gate's) and which hands the
    operator's newest message tracked. A hand not tracked keeps its fingers at the last safe command
    whatever the desired command says (an IK or a policy cannot move them), and each loss (tracked ->
    not tracked) is counted with its session time; the hand follows again once it is tracked.
    """

    def __init__(self, hand_indices: Dict[str, np.ndarray]):
        self.hand_indices = {side: np.asarray(index, dtype=int) for side, index in hand_indices.items()}
        self.reset()

    def reset(self) -> None:
        self.tracked = {side: True for side in self.hand_indices}
        self.losses: List[Tuple[float, str]] = []  # (session time, side), in order

    def loss_counts(self) -> Dict[str, int]:
        return {side: sum(1 for _, s in self.losses if s == side) for side in self.hand_indices}

    def apply(self, t: float, q_desired: Optional[np.ndarray], q_last: Optional[np.ndarray],
              tracked: Dict[str, bool]) -> Optional[np.ndarray]:
        """q_desired with every untracked hand's fingers replaced by their values in q_last."""
        for side in self.hand_indices:
            now_tracked = bool(tracked.get(side, self.tracked[side]))
            if self.tracked[side] and not now_tracked:
                self.losses.append((float(t), side))
            self.tracked[side] = now_tracked
        if q_desired is None or q_last is None:
            return q_desired
        out = np.array(q_desired, dtype=np.float64, copy=True)
        for side, index in self.hand_indices.items():
            if not self.tracked[side]:
                out[index] = np.asarray(q_last, dtype=np.float64)[index]
        return out
