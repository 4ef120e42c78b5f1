"""Hand-tracking retargeting: a 25-joint WebXR hand skeleton -> a multi-finger hand's actuated joint targets.

    retargeter = HandRetargeter(robot)                        # a robot whose YAML has `hands:`
    q_hand = retargeter.solve("right", skeleton)              # the hand's actuated joints, in its YAML order
    retargeter.residual["right"]                              # per-fingertip error (m) after scaling
    calibration = retargeter.calibrate("right", open_flat)    # per-operator hand size -> HandCalibration

Method (vector retargeting with DexPilot's pinch projection, solved by damped Gauss-Newton):
- Frames. The human keypoints are expressed in the tracked wrist frame (WebXR: -Z towards the fingers, +Y
  out of the back of the hand; the right thumb on -X, the left on +X). The robot fingertips are expressed
  in the palm frame (the frame of the hand's `palm` site). One rotation per side maps the first onto the
  second (`frame_mapping`); it is read off the robot model once (fingers' direction, index-to-little
  knuckle line, the side's chirality) and tested against the humanoid_dex hands' known axes.
- Targets. Each robot fingertip is asked to sit where the operator's finger points, measured from its own
  knuckle: target_f = robot_base_f + s_f * R (human_tip_f - human_base_f), the base being the MCP knuckle
  (the thumb's CMC joint) and s_f the operator's calibrated finger scale. Finger vectors from the knuckle,
  not from the wrist, keep the palm length (which differs most between a human and a robot hand) out of
  the finger angles. When the operator's thumb tip nears a finger tip (DexPilot's projection), a
  thumb-to-finger vector term, weighted up as the gap closes, pulls the robot tips together.
- Solve. The fingers' kinematics (bodies, hinge axes and couplings, from the MjModel, once) run batched
  in numpy with analytic Jacobians; damped Gauss-Newton iterations (one per tick by default), warm-started
  from the previous tick, regularised towards it, clipped into the joint limits; a fingertip left far off
  (a warm start curled past its target) triggers a cold start from the open hand, kept if it is better. Then a low-pass filter and a per-tick step
  cap smooth the targets. docs/teleop.md, "Hand retargeting", has the measurements behind these choices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.robot.hands import FINGERS, HandSpec
from collector.teleop.messages import HAND_JOINT_INDEX, HandSkeleton
from collector.teleop.transforms import quat_to_mat

# Robot finger -> (WebXR base joint, WebXR tip joint).
HUMAN_KEYPOINTS = {
    "thumb": ("thumb-metacarpal", "thumb-tip"),
    "index": ("index-finger-phalanx-proximal", "index-finger-tip"),
    "middle": ("middle-finger-phalanx-proximal", "middle-finger-tip"),
    "ring": ("ring-finger-phalanx-proximal", "ring-finger-tip"),
    "little": ("pinky-finger-phalanx-proximal", "pinky-finger-tip"),
}
# Human hand axes in the WebXR wrist frame, as columns (thumb side, back of the hand, towards the fingers).
HUMAN_AXES = {
    "right": np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T,
    "left": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]]).T,
}
# An open, straight finger's base-to-tip distance is at least this share of its bones' summed length.
OPEN_FLAT_STRAIGHTNESS = 0.93
HUMAN_FINGER_LENGTH_M = (0.03, 0.2)
_NEXT, _PREV = np.array([1, 2, 0]), np.array([2, 0, 1])


@dataclass(frozen=True)
class RetargetSettings:
    """Solver and smoothing parameters (the defaults are what the tests and benchmark measure)."""

    iterations: int = 1               # Gauss-Newton iterations per tick (warm-started: one suffices at 90 Hz)
    regularization: float = 2e-5      # m^2/rad^2: cost of moving away from the previous tick's solution
    damping: float = 1e-7             # Levenberg damping on the normal equations
    pinch_weight: float = 10.0        # thumb-to-finger vector term at full projection (fingertip terms: 1)
    pinch_project_m: float = 0.025    # operator tip gap below which the robot tips are pulled together
    pinch_escape_m: float = 0.05      # gap above which the pinch term is off (linear ramp in between)
    pinch_gap_m: float = 0.004        # robot tip gap asked for at full projection
    smoothing: float = 0.5            # low-pass factor per tick (1 = none)
    max_step_rad: float = 0.15        # largest change of a target per tick
    restart_error_m: float = 0.05     # a fingertip this far off after the warm solve: also try a cold start
    restart_iterations: int = 4       # ... of this many iterations

    def __post_init__(self):
        if self.iterations < 1 or self.restart_iterations < 1:
            raise ConfigError(f"hand retargeting: iterations must be >= 1, got {self.iterations}, "
                              f"{self.restart_iterations}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ConfigError(f"hand retargeting: smoothing must be in (0, 1], got {self.smoothing}")
        if not self.pinch_project_m < self.pinch_escape_m:
            raise ConfigError("hand retargeting: pinch_project_m must be below pinch_escape_m")
        if self.max_step_rad <= 0.0:
            raise ConfigError(f"hand retargeting: max_step_rad must be positive, got {self.max_step_rad}")


@dataclass
class HandCalibration:
    """One operator's hand size for one side: robot finger length / operator finger length, per finger.
    Plain data, so it can live in the operator's config (`to_dict` / `from_dict`)."""

    side: str
    finger_scales: Dict[str, float]

    @property
    def scale(self) -> float:
        """The mean scale (a single human -> robot size factor)."""
        return float(np.mean(list(self.finger_scales.values())))

    def to_dict(self) -> dict:
        return {"side": self.side, "finger_scales": {k: float(v) for k, v in self.finger_scales.items()}}

    @classmethod
    def from_dict(cls, raw, where: str = "hand calibration") -> "HandCalibration":
        if not isinstance(raw, dict) or set(raw) != {"side", "finger_scales"}:
            raise ConfigError(f"{where}: expected a mapping with keys side and finger_scales")
        scales = raw["finger_scales"]
        if not isinstance(scales, dict) or not scales:
            raise ConfigError(f"{where}.finger_scales: expected a mapping of finger -> scale")
        checked = {}
        for finger, value in scales.items():
            if finger not in FINGERS:
                raise ConfigError(f"{where}.finger_scales: unknown finger {finger!r} (allowed: {list(FINGERS)})")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}.finger_scales.{finger}: not a number: {value!r}") from None
            if not (math.isfinite(number) and 0.2 <= number <= 5.0):
                raise ConfigError(f"{where}.finger_scales.{finger}: {value!r} is not a plausible scale (0.2..5)")
            checked[str(finger)] = number
        return cls(side=str(raw["side"]), finger_scales=checked)


class FingerChains:
    """Every finger of one hand as a chain of hinge joints from the palm frame to its tip site, extracted
    from the MjModel once; `forward` gives the tips and their Jacobian w.r.t. the actuated joints."""

    def __init__(self, model, hand: HandSpec):
        import mujoco

        self.fingers = [f for f in FINGERS if f in hand.fingertips]
        actuated = {joint: i for i, joint in enumerate(hand.joints)}
        coupled = {c.joint: (actuated[c.follows], c.ratio) for c in hand.coupling}
        palm_site = model.site(hand.palm).id
        self._palm_body = int(model.site_bodyid[palm_site])
        palm_from_body = _inverse(_transform(model.site_quat[palm_site], model.site_pos[palm_site]))
        chains = [self._chain(model, mujoco, hand, finger, palm_from_body, actuated, coupled)
                  for finger in self.fingers]
        depth = max(1, max(len(levels) for levels, _ in chains))
        n_fingers, n_actuated = len(chains), len(hand.joints)
        self._local = np.tile(np.eye(4), (n_fingers, depth, 1, 1))
        self._fixed = np.tile(np.eye(3), (n_fingers, depth, 1, 1))
        self._fixed_k = np.zeros((n_fingers, depth, 3, 3))
        self._fixed_k2 = np.zeros((n_fingers, depth, 3, 3))
        self._axes = np.tile(np.array([1.0, 0.0, 0.0]), (n_fingers, depth, 1))
        self.coupling = np.zeros((n_fingers, depth, n_actuated))   # joint angle = coupling @ q_actuated
        self._tip_offset = np.zeros((n_fingers, 4))
        self._tip_offset[:, 3] = 1.0
        for f, (levels, tip) in enumerate(chains):
            for level, (fixed, axis, column, ratio) in enumerate(levels):
                cross = _cross_matrix(axis)
                self._fixed[f, level] = fixed[:3, :3]
                self._fixed_k[f, level] = fixed[:3, :3] @ cross
                self._fixed_k2[f, level] = fixed[:3, :3] @ cross @ cross
                self._local[f, level, :3, 3] = fixed[:3, 3]
                self._axes[f, level] = axis
                if column is not None:
                    self.coupling[f, level, column] = ratio
            self._tip_offset[f, :3] = tip
        self._coupling_flat = self.coupling.reshape(n_fingers * depth, n_actuated)
        self._depth = depth

    def _chain(self, model, mujoco, hand, finger, palm_from_body, actuated, coupled):
        """[(fixed 4x4 before the hinge, hinge axis, actuated column or None, ratio)], tip in the last frame."""
        site = model.site(hand.fingertips[finger]).id
        path, body = [], int(model.site_bodyid[site])
        while body != self._palm_body:
            if body == 0:
                raise ConfigError(f"robot hand {hand.side!r}: fingertip site {hand.fingertips[finger]!r} is not "
                                  f"below the palm site {hand.palm!r}'s body, so it has no finger chain")
            path.append(body)
            body = int(model.body_parentid[body])
        levels, pending = [], palm_from_body
        for body in reversed(path):
            pending = pending @ _transform(model.body_quat[body], model.body_pos[body])
            for joint in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
                name = model.joint(joint).name
                if model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_HINGE:
                    raise ConfigError(f"robot hand {hand.side!r}: joint {name!r} on the {finger} chain is not a "
                                      f"hinge (the retargeter models hinge fingers)")
                anchor = np.eye(4)
                anchor[:3, 3] = model.jnt_pos[joint]
                column, ratio = (actuated[name], 1.0) if name in actuated else coupled.get(name, (None, 0.0))
                levels.append((pending @ anchor, np.array(model.jnt_axis[joint], dtype=float), column, ratio))
                pending = _inverse(anchor)
        tip = pending @ np.append(model.site_pos[site], 1.0)
        return levels, tip[:3]

    def forward(self, q: np.ndarray, jacobian: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
        """Fingertips (F, 3) in the palm frame, d tips / d q (F, 3, A), and the chains' hinge origins."""
        angles = (self._coupling_flat @ q).reshape(self._local.shape[:2])
        sin, one_minus_cos = np.sin(angles)[..., None, None], (1.0 - np.cos(angles))[..., None, None]
        self._local[..., :3, :3] = self._fixed + sin * self._fixed_k + one_minus_cos * self._fixed_k2
        frames = np.empty_like(self._local)
        frames[:, 0] = self._local[:, 0]
        for level in range(1, self._depth):
            frames[:, level] = frames[:, level - 1] @ self._local[:, level]
        # matmul rather than einsum throughout: for these tiny arrays the call overhead is the cost
        tips = (frames[:, -1] @ self._tip_offset[:, :, None])[:, :3, 0]
        origins = frames[:, :, :3, 3]
        if not jacobian:
            return tips, None, origins
        axes = (frames[:, :, :3, :3] @ self._axes[..., None])[..., 0]
        lever = tips[:, None, :] - origins
        # axis x lever, written out: np.cross costs more in argument handling than in arithmetic here
        columns = axes[..., _NEXT] * lever[..., _PREV] - axes[..., _PREV] * lever[..., _NEXT]
        return tips, columns.transpose(0, 2, 1) @ self.coupling, origins


class HandRetargeter:
    """Per hand and per tick: skeleton -> actuated joint targets (see the module docstring)."""

    def __init__(self, robot, settings: Optional[RetargetSettings] = None,
                 calibrations: Optional[Dict[str, HandCalibration]] = None):
        if not robot.hands:
            raise ConfigError(f"robot {robot.name!r} ({robot.yaml_path}) has no hands: section to retarget to")
        self.robot = robot
        self.settings = settings or RetargetSettings()
        model = robot.load_model()
        self._hands: Dict[str, _HandModel] = {}
        for side, hand in robot.hands.items():
            if side not in HUMAN_AXES:
                raise ConfigError(f"{robot.yaml_path}: hands.{side}: the retargeter maps tracked 'left' and "
                                  f"'right' hands, not {side!r}")
            self._hands[side] = _HandModel(hand, FingerChains(model, hand), robot.joint_ranges)
        self.residual: Dict[str, np.ndarray] = {
            side: np.zeros(len(h.chains.fingers)) for side, h in self._hands.items()}
        self.calibrations: Dict[str, HandCalibration] = {
            side: self._nominal_calibration(side) for side in self._hands}
        for calibration in (calibrations or {}).values():
            self.set_calibration(calibration)

    # --- public API -------------------------------------------------------------------------------
    @property
    def sides(self) -> Tuple[str, ...]:
        return tuple(self._hands)

    def joints(self, side: str) -> Tuple[str, ...]:
        return self._hand(side).spec.joints

    def fingers(self, side: str) -> List[str]:
        return list(self._hand(side).chains.fingers)

    def frame_mapping(self, side: str) -> np.ndarray:
        """The rotation taking a vector in the human wrist frame (WebXR) into the robot palm frame."""
        return self._hand(side).mapping.copy()

    def reset(self, side: Optional[str] = None) -> None:
        """Forget the warm start and the filter (e.g. after tracking was lost): the next solve starts open."""
        for name in ([side] if side else list(self._hands)):
            self._hand(name).reset()

    def solve(self, side: str, skeleton: HandSkeleton) -> np.ndarray:
        """The hand's actuated joint targets (YAML order) for this tick's skeleton; updates `residual[side]`."""
        hand = self._hand(side)
        targets, pinch_vectors, pinch_weights = self._targets(side, skeleton)
        solution, cost, errors = self._gauss_newton(hand, hand.warm, targets, pinch_vectors, pinch_weights)
        if float(np.max(errors)) > self.settings.restart_error_m:
            # A warm start can sit in a local minimum (a finger curled past the point its target is
            # straight in line with); a cold start from the open hand decides.
            fresh, fresh_cost, fresh_errors = self._gauss_newton(hand, hand.open, targets, pinch_vectors,
                                                                 pinch_weights, self.settings.restart_iterations)
            if fresh_cost < cost:
                solution, errors = fresh, fresh_errors
        hand.warm = solution
        self.residual[side] = errors
        return hand.smooth(solution, self.settings)

    def fingertip_targets(self, side: str, skeleton: HandSkeleton) -> np.ndarray:
        """Where each robot fingertip is asked to be (palm frame, m), in `fingers(side)` order."""
        return self._targets(side, skeleton)[0]

    def fingertips(self, side: str, q_hand) -> np.ndarray:
        """The robot fingertips (palm frame, m) for actuated joint values, by the retargeter's own model."""
        return self._hand(side).chains.forward(np.asarray(q_hand, dtype=float), jacobian=False)[0]

    def calibrate(self, side: str, skeleton_open_flat: HandSkeleton) -> HandCalibration:
        """Measure the operator's fingers on an open, flat hand and use the scales from now on."""
        hand = self._hand(side)
        points = self._wrist_frame_points(skeleton_open_flat)
        scales = {}
        for finger, robot_length in zip(hand.chains.fingers, hand.robot_lengths):
            base, tip = (HAND_JOINT_INDEX[name] for name in HUMAN_KEYPOINTS[finger])
            length = float(np.linalg.norm(points[tip] - points[base]))
            bones = float(np.sum(np.linalg.norm(np.diff(points[base:tip + 1], axis=0), axis=1)))
            if not HUMAN_FINGER_LENGTH_M[0] <= length <= HUMAN_FINGER_LENGTH_M[1]:
                raise DataError(f"calibrate {side} hand: the {finger} measures {length * 100:.1f} cm, not a "
                                f"human finger ({HUMAN_FINGER_LENGTH_M[0] * 100:.0f}-"
                                f"{HUMAN_FINGER_LENGTH_M[1] * 100:.0f} cm)")
            if finger != "thumb" and length < OPEN_FLAT_STRAIGHTNESS * bones:
                raise DataError(f"calibrate {side} hand: the {finger} is bent ({length / bones:.0%} straight); "
                                f"hold the hand open and flat")
            scales[finger] = robot_length / length
        calibration = HandCalibration(side=side, finger_scales=scales)
        self.set_calibration(calibration)
        return calibration

    def set_calibration(self, calibration: HandCalibration) -> None:
        hand = self._hand(calibration.side)
        missing = [f for f in hand.chains.fingers if f not in calibration.finger_scales]
        if missing:
            raise ConfigError(f"hand calibration for {calibration.side!r} lacks finger scale(s) {missing}")
        self.calibrations[calibration.side] = calibration
        hand.scales = np.array([calibration.finger_scales[f] for f in hand.chains.fingers])

    # --- internals --------------------------------------------------------------------------------
    def _hand(self, side: str) -> "_HandModel":
        if side not in self._hands:
            raise ConfigError(f"robot {self.robot.name!r} has no hand {side!r} (has {sorted(self._hands)})")
        return self._hands[side]

    def _nominal_calibration(self, side: str) -> HandCalibration:
        """Scales for the nominal adult hand of hand_poses.py, until an operator calibrates."""
        from collector.teleop.hand_poses import hand_skeleton

        hand = self._hand(side)
        points = self._wrist_frame_points(hand_skeleton(side, "open"))
        scales = {}
        for finger, robot_length in zip(hand.chains.fingers, hand.robot_lengths):
            base, tip = (HAND_JOINT_INDEX[name] for name in HUMAN_KEYPOINTS[finger])
            scales[finger] = robot_length / float(np.linalg.norm(points[tip] - points[base]))
        calibration = HandCalibration(side=side, finger_scales=scales)
        hand.scales = np.array([scales[f] for f in hand.chains.fingers])
        return calibration

    @staticmethod
    def _wrist_frame_points(skeleton: HandSkeleton) -> np.ndarray:
        """Every joint in the tracked wrist frame: the frame the human side of the mapping is defined in."""
        wrist = HAND_JOINT_INDEX["wrist"]
        rotation = quat_to_mat(skeleton.orientations[wrist])
        return (skeleton.positions - skeleton.positions[wrist]) @ rotation

    def _targets(self, side: str, skeleton: HandSkeleton):
        hand = self._hand(side)
        if not isinstance(skeleton, HandSkeleton):
            raise DataError(f"hand retargeting: expected a HandSkeleton for the {side} hand, "
                            f"got {type(skeleton).__name__}")
        # Only differences of keypoints are used, so the wrist position drops out: rotate into the wrist
        # frame (rotation^T) and then into the robot palm axes (mapping), in one matrix.
        to_palm = _rotation(skeleton.orientations[HAND_JOINT_INDEX["wrist"]]) @ hand.mapping.T
        human_bases = skeleton.positions[hand.human_bases] @ to_palm
        human_tips = skeleton.positions[hand.human_tips] @ to_palm
        targets = hand.robot_bases + hand.scales[:, None] * (human_tips - human_bases)
        # DexPilot's projection: thumb-to-finger gaps the operator closes are closed on the robot too.
        gaps = human_tips[1:] - human_tips[0]
        distances = np.linalg.norm(gaps, axis=1)
        s = self.settings
        ramp = np.clip((distances - s.pinch_project_m) / (s.pinch_escape_m - s.pinch_project_m), 0.0, 1.0)
        lengths = s.pinch_gap_m + ramp * (hand.scales[1:] * distances - s.pinch_gap_m)
        vectors = gaps / np.maximum(distances, 1e-9)[:, None] * lengths[:, None]
        weights = s.pinch_weight * (1.0 - ramp) if hand.has_thumb else np.zeros_like(ramp)
        return targets, vectors, weights

    def _gauss_newton(self, hand: "_HandModel", start: np.ndarray, targets, pinch_vectors, pinch_weights,
                      iterations: Optional[int] = None):
        """(solution, cost, per-fingertip error) after `iterations` (default: the settings') from `start`.

        Rows: every fingertip against its target, then (weighted) every thumb-to-finger vector against its
        pinch vector, both linear in the tips: rows = select @ tips - wanted. The error of the returned
        solution comes from the last iteration's linear model (exact at convergence, one FK cheaper)."""
        s = self.settings
        n_fingers = len(targets)
        weights = np.concatenate([np.ones(n_fingers), np.sqrt(pinch_weights)])
        select = hand.row_select * np.repeat(weights, 3)[:, None]
        wanted = np.concatenate([targets.reshape(-1), pinch_vectors.reshape(-1)]) * np.repeat(weights, 3)
        q, previous = start.copy(), hand.warm
        regularization = (s.regularization + s.damping) * np.eye(len(q))
        for _ in range(iterations or s.iterations):
            tips, jac, _ = hand.chains.forward(q)
            jacobian = select @ jac.reshape(3 * n_fingers, -1)
            rows = select @ tips.reshape(-1) - wanted
            gradient = jacobian.T @ rows + s.regularization * (q - previous)
            step = -np.linalg.solve(jacobian.T @ jacobian + regularization, gradient)
            moved = np.clip(q + step, hand.lower, hand.upper)
            step, q = moved - q, moved
        rows = rows + jacobian @ step
        errors = np.linalg.norm(rows[:3 * n_fingers].reshape(n_fingers, 3), axis=1)
        cost = float(rows @ rows + s.regularization * np.sum((q - previous) ** 2))
        return q, cost, errors


class _HandModel:
    """One side's kinematics, frame mapping, calibration scales and per-tick state."""

    def __init__(self, spec: HandSpec, chains: FingerChains, joint_ranges):
        self.spec, self.chains = spec, chains
        self.lower = np.array([joint_ranges[j][0] for j in spec.joints], dtype=float)
        self.upper = np.array([joint_ranges[j][1] for j in spec.joints], dtype=float)
        self.open = np.clip(np.zeros(len(spec.joints)), self.lower, self.upper)
        tips, _, origins = chains.forward(self.open, jacobian=False)
        self.robot_bases = _chain_bases(chains, origins)
        self.robot_lengths = np.linalg.norm(tips - self.robot_bases, axis=1)
        self.has_thumb = chains.fingers[0] == "thumb"
        self.human_bases = np.array([HAND_JOINT_INDEX[HUMAN_KEYPOINTS[f][0]] for f in chains.fingers])
        self.human_tips = np.array([HAND_JOINT_INDEX[HUMAN_KEYPOINTS[f][1]] for f in chains.fingers])
        self.mapping = _frame_mapping(spec.side, chains.fingers, tips, self.robot_bases)
        self.scales = np.ones(len(chains.fingers))
        self.row_select = _row_select(len(chains.fingers))
        self.reset()

    def reset(self) -> None:
        self.warm = self.open.copy()
        self.output: Optional[np.ndarray] = None

    def smooth(self, solution: np.ndarray, settings: RetargetSettings) -> np.ndarray:
        """Low-pass towards the solution, at most max_step_rad per tick; the first tick passes through."""
        if self.output is None:
            self.output = solution.copy()
        else:
            step = np.clip(settings.smoothing * (solution - self.output), -settings.max_step_rad, settings.max_step_rad)
            self.output = np.clip(self.output + step, self.lower, self.upper)
        return self.output.copy()


def _row_select(n_fingers: int) -> np.ndarray:
    """Maps the stacked tips (thumb first) to [every tip; every finger tip - thumb tip], per coordinate."""
    tips = np.eye(n_fingers)
    gaps = np.hstack([-np.ones((n_fingers - 1, 1)), np.eye(n_fingers - 1)])
    return np.kron(np.vstack([tips, gaps]), np.eye(3))


def _chain_bases(chains: FingerChains, origins: np.ndarray) -> np.ndarray:
    """Each finger's base: the origin of its first hinge that moves it (the MCP / thumb CMC joint)."""
    bases = np.empty((len(chains.fingers), 3))
    for f in range(len(chains.fingers)):
        moving = np.flatnonzero(np.any(chains.coupling[f] != 0.0, axis=1))
        bases[f] = origins[f, moving[0] if len(moving) else 0]
    return bases


def _frame_mapping(side: str, fingers: List[str], tips: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """Rotation human wrist frame -> robot palm frame, from the robot's open hand: its fingers' direction,
    the line from the little-most to the index-most knuckle (the thumb side), and the side's chirality."""
    others = [i for i, f in enumerate(fingers) if f != "thumb"]
    if not others:
        raise ConfigError(f"robot hand {side!r}: needs a finger besides the thumb to define the palm frame")
    pointing = np.mean([(tips[i] - bases[i]) / np.linalg.norm(tips[i] - bases[i]) for i in others], axis=0)
    pointing /= np.linalg.norm(pointing)
    if len(others) > 1:
        thumb_side = bases[others[0]] - bases[others[-1]]
    else:
        thumb_side = bases[fingers.index("thumb")] - bases[others[0]]
    thumb_side = thumb_side - (thumb_side @ pointing) * pointing
    thumb_side /= np.linalg.norm(thumb_side)
    # Right hand: back = fingers x thumb side; a left hand is the mirror image (back = thumb side x fingers).
    back = np.cross(pointing, thumb_side) if side == "right" else np.cross(thumb_side, pointing)
    robot_axes = np.column_stack([thumb_side, back, pointing])
    return robot_axes @ HUMAN_AXES[side].T


def _rotation(quat_wxyz: np.ndarray) -> np.ndarray:
    """quat_to_mat on Python floats: numpy scalar arithmetic would cost more than the solve's matrix work."""
    w, x, y, z = quat_wxyz.tolist()
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _transform(quat_wxyz, position) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = quat_to_mat(np.asarray(quat_wxyz, dtype=float))
    out[:3, 3] = position
    return out


def _inverse(transform: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = transform[:3, :3].T
    out[:3, 3] = -transform[:3, :3].T @ transform[:3, 3]
    return out


def _cross_matrix(axis) -> np.ndarray:
    x, y, z = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
