"""The one operator-input message every device produces, and its versioned wire form.

A VR bridge, a gamepad, a keyboard and the scripted operator all describe the operator the
same way: where the head and wrists are (in the operator's tracking frame), optionally the
25-joint hand skeletons, controller buttons/triggers/thumbsticks, and the deadman/clutch
state. Fields that the device does not track, or lost tracking of, are None: None *is* the
"not valid" flag, both in Python and on the wire (msgpack nil).

Wire form (WIRE_VERSION 1, documented in docs/teleop.md): a msgpack map with string keys,
sent over ZMQ PUB/SUB as a two-frame message [ZMQ_TOPIC, payload]. `decode` checks every
value (types, lengths, finiteness and ranges: seq fits int64, |stamp| <= 1e10 s, positions within
20 m, unit quaternions) and raises DataError naming the offending field; it never returns a message holding
NaN/inf, wrong lengths or a non-unit quaternion.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import msgpack
import numpy as np

from collector.errors import DataError

WIRE_VERSION = 1
ZMQ_TOPIC = b"collector/teleop/input"
# Two hand skeletons with radii are ~4 KiB; anything far larger is not an operator input.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SOURCE_LEN = 64
MAX_BUTTONS = 32
MAX_BUTTON_NAME_LEN = 32
# The recorder stores seq as int64: anything larger cannot be recorded, so it is not an input.
MAX_SEQ = 2**63 - 1
# Device clocks (monotonic, sim or Unix time) are far below this; larger stamps are garbage.
MAX_STAMP_S = 1e10
# Tracking spaces are rooms: a wire pose or hand joint farther than this is not a tracked body part
# (the VR page protocol uses the same bound).
MAX_POSITION_M = 20.0
MAX_HAND_RADIUS_M = 0.5
# Tracking runtimes deliver unit quaternions up to float32 rounding; a bigger error means garbage.
QUATERNION_NORM_TOLERANCE = 0.05

# WebXR hand joint order (XRHand iteration order); OpenXR's XR_EXT_hand_tracking is the same
# list with an extra "palm" first, which a bridge drops before publishing.
HAND_JOINTS = (
    "wrist",
    "thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip",
    "index-finger-metacarpal", "index-finger-phalanx-proximal", "index-finger-phalanx-intermediate",
    "index-finger-phalanx-distal", "index-finger-tip",
    "middle-finger-metacarpal", "middle-finger-phalanx-proximal", "middle-finger-phalanx-intermediate",
    "middle-finger-phalanx-distal", "middle-finger-tip",
    "ring-finger-metacarpal", "ring-finger-phalanx-proximal", "ring-finger-phalanx-intermediate",
    "ring-finger-phalanx-distal", "ring-finger-tip",
    "pinky-finger-metacarpal", "pinky-finger-phalanx-proximal", "pinky-finger-phalanx-intermediate",
    "pinky-finger-phalanx-distal", "pinky-finger-tip",
)
N_HAND_JOINTS = len(HAND_JOINTS)
HAND_JOINT_INDEX = {name: i for i, name in enumerate(HAND_JOINTS)}
CONTROLLER_BUTTONS = ("a", "b", "x", "y", "thumbstick", "menu", "trigger", "grip")

SIDES = ("left", "right")


def _finite_array(value, shape, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: not a numeric array ({exc})") from None
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{what}: expected {int(np.prod(shape))} numbers {shape}, got {arr.size}")
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what}: contains NaN or inf")
    return arr


def _unit_quaternions(arr: np.ndarray, what: str) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    if np.any(np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE):
        raise DataError(f"{what}: not a unit quaternion (norm {float(np.max(np.abs(norms - 1.0)) + 1.0):.3g})")
    return arr / norms


@dataclass
class Pose:
    """A rigid pose: position (3,) in metres and orientation as a unit quaternion (w, x, y, z)."""

    position: np.ndarray
    orientation: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))

    def __post_init__(self):
        self.position = _finite_array(self.position, (3,), "pose position")
        self.orientation = _unit_quaternions(_finite_array(self.orientation, (4,), "pose orientation"),
                                             "pose orientation")

    def as_vector(self) -> np.ndarray:
        """(7,) position then wxyz, the layout used on the wire and in recorded streams."""
        return np.concatenate([self.position, self.orientation])

    @classmethod
    def from_vector(cls, vec, what: str = "pose") -> "Pose":
        arr = _finite_array(vec, (7,), what)
        return cls(arr[:3], _unit_quaternions(arr[3:], f"{what} orientation"))


@dataclass
class HandSkeleton:
    """A tracked hand: 25 joints in HAND_JOINTS order, positions (25, 3) m, orientations (25, 4) wxyz."""

    positions: np.ndarray
    orientations: np.ndarray
    radii: Optional[np.ndarray] = None

    def __post_init__(self):
        self.positions = _finite_array(self.positions, (N_HAND_JOINTS, 3), "hand positions")
        self.orientations = _unit_quaternions(
            _finite_array(self.orientations, (N_HAND_JOINTS, 4), "hand orientations"), "hand orientations")
        if self.radii is not None:
            self.radii = _finite_array(self.radii, (N_HAND_JOINTS,), "hand radii")
            if np.any(self.radii < 0):
                raise DataError("hand radii: negative radius")

    def joint(self, name: str) -> np.ndarray:
        return self.positions[HAND_JOINT_INDEX[name]]

    def pinch_distance(self) -> float:
        """Thumb tip to index tip in metres: the usual hands-only gripper signal."""
        return float(np.linalg.norm(self.joint("thumb-tip") - self.joint("index-finger-tip")))

    def wrist_pose(self) -> Pose:
        i = HAND_JOINT_INDEX["wrist"]
        return Pose(self.positions[i], self.orientations[i])


@dataclass
class ControllerState:
    """One hand controller: analogue trigger and grip in [0, 1], named buttons, thumbstick (x, y) in [-1, 1]."""

    trigger: float = 0.0
    grip: float = 0.0
    buttons: Dict[str, bool] = field(default_factory=dict)
    thumbstick: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def __post_init__(self):
        for name in ("trigger", "grip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise DataError(f"controller {name}: expected a number, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value) or not (0.0 <= value <= 1.0):
                raise DataError(f"controller {name}: {value!r} outside [0, 1]")
            setattr(self, name, value)
        if not isinstance(self.buttons, dict) or len(self.buttons) > MAX_BUTTONS:
            raise DataError(f"controller buttons: expected a map of at most {MAX_BUTTONS} names to booleans")
        for key, pressed in self.buttons.items():
            if not isinstance(key, str) or not isinstance(pressed, (bool, np.bool_)):
                raise DataError(f"controller buttons: entry {key!r} must map a name to true/false")
            if len(key) > MAX_BUTTON_NAME_LEN:
                raise DataError(f"controller buttons: name longer than {MAX_BUTTON_NAME_LEN} characters")
        self.buttons = {k: bool(v) for k, v in self.buttons.items()}
        self.thumbstick = _finite_array(self.thumbstick, (2,), "controller thumbstick")
        if np.any(np.abs(self.thumbstick) > 1.0 + 1e-6):
            raise DataError("controller thumbstick: axis outside [-1, 1]")

    def pressed(self, button: str) -> bool:
        return self.buttons.get(button, False)


@dataclass
class OperatorInput:
    """Everything the operator does at one instant, as one device saw it.

    stamp: seconds on the device's clock (the scripted operator uses sim time);
    seq: increases by one per message from a source (lets the loop drop reordered messages);
    poses are in the operator's tracking frame (WebXR convention unless the teleop config says otherwise);
    enable: the deadman; while False the robot holds. clutch: while True the robot holds and the
    operator may reposition; on release the retargeting re-anchors (DROID-style).
    """

    stamp: float
    seq: int
    source: str = "unknown"
    head: Optional[Pose] = None
    left_wrist: Optional[Pose] = None
    right_wrist: Optional[Pose] = None
    left_hand: Optional[HandSkeleton] = None
    right_hand: Optional[HandSkeleton] = None
    left_controller: Optional[ControllerState] = None
    right_controller: Optional[ControllerState] = None
    enable: bool = False
    clutch: bool = False

    def __post_init__(self):
        if isinstance(self.stamp, bool) or not isinstance(self.stamp, (int, float, np.floating, np.integer)):
            raise DataError(f"stamp: expected a number, got {type(self.stamp).__name__}")
        self.stamp = float(self.stamp)
        if not math.isfinite(self.stamp):
            raise DataError("stamp: NaN or inf")
        if abs(self.stamp) > MAX_STAMP_S:
            raise DataError(f"stamp: {self.stamp:.6g} s is outside +-{MAX_STAMP_S:.0e} s")
        if isinstance(self.seq, bool) or not isinstance(self.seq, (int, np.integer)) or not 0 <= self.seq <= MAX_SEQ:
            raise DataError(f"seq: expected an integer in [0, 2**63-1], got {self.seq!r}")
        self.seq = int(self.seq)
        if not isinstance(self.source, str) or len(self.source) > MAX_SOURCE_LEN:
            raise DataError(f"source: expected a string of at most {MAX_SOURCE_LEN} characters")
        for name in ("enable", "clutch"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise DataError(f"{name}: expected true/false, got {getattr(self, name)!r}")
            setattr(self, name, bool(getattr(self, name)))

    def wrist(self, side: str) -> Optional[Pose]:
        return getattr(self, f"{side}_wrist")

    def hand(self, side: str) -> Optional[HandSkeleton]:
        return getattr(self, f"{side}_hand")

    def controller(self, side: str) -> Optional[ControllerState]:
        return getattr(self, f"{side}_controller")

    def valid(self) -> Dict[str, bool]:
        """Which optional fields this message carries (tracked/present)."""
        return {name: getattr(self, name) is not None for name in _OPTIONAL_FIELDS}


_POSE_FIELDS = ("head", "left_wrist", "right_wrist")
_HAND_FIELDS = ("left_hand", "right_hand")
_CONTROLLER_FIELDS = ("left_controller", "right_controller")
_OPTIONAL_FIELDS = _POSE_FIELDS + _HAND_FIELDS + _CONTROLLER_FIELDS


# ---------------------------------------------------------------------------------------------
# Wire form
# ---------------------------------------------------------------------------------------------

def to_wire_dict(msg: OperatorInput) -> dict:
    """The msgpack-ready map (plain lists and scalars) for one message."""
    out = {
        "v": WIRE_VERSION,
        "stamp": msg.stamp,
        "seq": msg.seq,
        "source": msg.source,
        "enable": msg.enable,
        "clutch": msg.clutch,
    }
    for name in _POSE_FIELDS:
        pose = getattr(msg, name)
        out[name] = None if pose is None else pose.as_vector().tolist()
    for name in _HAND_FIELDS:
        hand = getattr(msg, name)
        out[name] = None if hand is None else {
            "positions": hand.positions.ravel().tolist(),
            "orientations": hand.orientations.ravel().tolist(),
            "radii": None if hand.radii is None else hand.radii.tolist(),
        }
    for name in _CONTROLLER_FIELDS:
        ctl = getattr(msg, name)
        out[name] = None if ctl is None else {
            "trigger": ctl.trigger,
            "grip": ctl.grip,
            "buttons": dict(ctl.buttons),
            "thumbstick": ctl.thumbstick.tolist(),
        }
    return out


def encode(msg: OperatorInput) -> bytes:
    if not isinstance(msg, OperatorInput):
        raise DataError(f"encode: expected an OperatorInput, got {type(msg).__name__}")
    return msgpack.packb(to_wire_dict(msg), use_bin_type=True)


def _required(obj: dict, key: str, where: str):
    if key not in obj:
        raise DataError(f"{where}: missing field {key!r}")
    return obj[key]


def _decode_list(value, n: int, what: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{what}: expected a list of {n} numbers, got {type(value).__name__}")
    if len(value) != n:
        raise DataError(f"{what}: expected {n} numbers, got {len(value)}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise DataError(f"{what}: element {item!r} is not a number")
    return _finite_array(value, (n,), what)


def _within_tracking_space(positions: np.ndarray, what: str) -> np.ndarray:
    largest = float(np.max(np.abs(positions)))
    if largest > MAX_POSITION_M:
        raise DataError(f"{what}: position beyond {MAX_POSITION_M} m ({largest:.3g})")
    return positions


def _decode_mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{what}: expected a map, got {type(value).__name__}")
    return value


def from_wire_dict(obj) -> OperatorInput:
    """Validate a decoded wire map and build the message; DataError names the first bad field."""
    obj = _decode_mapping(obj, "operator input")
    version = _required(obj, "v", "operator input")
    if version != WIRE_VERSION:
        raise DataError(f"operator input: unknown wire version {version!r} (this build reads {WIRE_VERSION})")
    kwargs = {}
    for key in ("stamp", "seq", "source", "enable", "clutch"):
        kwargs[key] = _required(obj, key, "operator input")
    for name in _POSE_FIELDS:
        value = obj.get(name)
        if value is not None:
            arr = _decode_list(value, 7, name)
            kwargs[name] = Pose(_within_tracking_space(arr[:3], name),
                                _unit_quaternions(arr[3:], f"{name} orientation"))
    for name in _HAND_FIELDS:
        value = obj.get(name)
        if value is not None:
            value = _decode_mapping(value, name)
            radii = value.get("radii")
            if radii is not None:
                radii = _decode_list(radii, N_HAND_JOINTS, f"{name} radii")
                if np.any(radii > MAX_HAND_RADIUS_M):
                    raise DataError(f"{name} radii: joint radius above {MAX_HAND_RADIUS_M} m")
            kwargs[name] = HandSkeleton(
                positions=_within_tracking_space(
                    _decode_list(_required(value, "positions", name), N_HAND_JOINTS * 3, f"{name} positions"),
                    f"{name} positions"),
                orientations=_unit_quaternions(
                    _decode_list(_required(value, "orientations", name), N_HAND_JOINTS * 4,
                                 f"{name} orientations").reshape(N_HAND_JOINTS, 4), f"{name} orientations"),
                radii=radii,
            )
    for name in _CONTROLLER_FIELDS:
        value = obj.get(name)
        if value is not None:
            value = _decode_mapping(value, name)
            try:
                kwargs[name] = ControllerState(
                    trigger=value.get("trigger", 0.0),
                    grip=value.get("grip", 0.0),
                    buttons=_decode_mapping(value.get("buttons", {}), f"{name} buttons"),
                    thumbstick=_decode_list(value.get("thumbstick", [0.0, 0.0]), 2, f"{name} thumbstick"),
                )
            except DataError as exc:
                raise DataError(f"{name}: {exc}") from None
    return OperatorInput(**kwargs)


def decode(data: bytes) -> OperatorInput:
    """Bytes from the wire -> a validated OperatorInput, or DataError naming the problem."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"operator input: expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise DataError(f"operator input: message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        obj = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise DataError(f"operator input: not valid msgpack ({type(exc).__name__}: {exc})") from None
    try:
        return from_wire_dict(obj)
    except DataError:
        raise
    except (TypeError, ValueError) as exc:
        raise DataError(f"operator input: malformed ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Flat numeric form for the recorder's `input` stream
# ---------------------------------------------------------------------------------------------

def flatten_for_recording(msg: OperatorInput) -> Dict[str, np.ndarray]:
    """Fixed-shape numeric fields for the `input` stream. Missing parts are zeros and the `valid`
    flags (VALID_FLAG_ORDER) say which parts were present: recorded data is always finite."""
    fields: Dict[str, np.ndarray] = {
        "stamp": np.float64(msg.stamp),
        "seq": np.int64(msg.seq),
        "enable": np.uint8(msg.enable),
        "clutch": np.uint8(msg.clutch),
        "valid": np.array([getattr(msg, n) is not None for n in _OPTIONAL_FIELDS], dtype=np.uint8),
    }
    for name in _POSE_FIELDS:
        pose = getattr(msg, name)
        fields[name] = pose.as_vector() if pose is not None else np.zeros(7)
    for name in _HAND_FIELDS:
        hand = getattr(msg, name)
        fields[f"{name}_positions"] = hand.positions.copy() if hand is not None else np.zeros((N_HAND_JOINTS, 3))
    for name in _CONTROLLER_FIELDS:
        ctl = getattr(msg, name)
        if ctl is None:
            fields[name] = np.zeros(4 + len(CONTROLLER_BUTTONS))
        else:
            fields[name] = np.concatenate([[ctl.trigger, ctl.grip], ctl.thumbstick,
                                           [float(ctl.pressed(b)) for b in CONTROLLER_BUTTONS]])
    return fields


def recording_field_shapes() -> Dict[str, tuple]:
    """Shapes/dtypes matching flatten_for_recording, for the `input` StreamSpec."""
    shapes = {"stamp": ((), "float64"), "seq": ((), "int64"), "enable": ((), "uint8"),
              "clutch": ((), "uint8"), "valid": ((len(_OPTIONAL_FIELDS),), "uint8")}
    for name in _POSE_FIELDS:
        shapes[name] = ((7,), "float64")
    for name in _HAND_FIELDS:
        shapes[f"{name}_positions"] = ((N_HAND_JOINTS, 3), "float64")
    for name in _CONTROLLER_FIELDS:
        shapes[name] = ((4 + len(CONTROLLER_BUTTONS),), "float64")
    return shapes


VALID_FLAG_ORDER = _OPTIONAL_FIELDS
