"""The WebSocket protocol between the shipped page (static/app.js) and the VR server.

Page -> server: JSON text messages, each an object with a "type":
  hello    {"type":"hello","v":1,"role":"operator"|"watch","client":str,"xr":str,"t":ms}
  frame    {"type":"frame","seq":int,"t":ms,"head":P|null,
            "controllers":{"left":C|null,"right":C|null},"hands":{"left":H|null,"right":H|null}}
           P = [px,py,pz,qx,qy,qz,qw]: metres and a unit quaternion in WebXR order (x,y,z,w),
               in the session's local-floor reference space.
           C = {"pose":P|null,"buttons":[[pressed 0/1, value 0..1], ...],"axes":[...]} in the
               WebXR 'xr-standard' gamepad layout (0 trigger, 1 squeeze, 3 thumbstick, 4 A/X, 5 B/Y;
               axes 2,3 thumbstick).
           H = {"joints":[25 x P flattened],"radii":[25]} in WebXR XRHand joint order.
           t is the headset clock: the XRFrame time (performance.now() timeline) in milliseconds.
  control  {"type":"control","action":"start"|"stop"|"discard","outcome":"success"|"failure"|null}
  pong     {"type":"pong","id":int,"t":ms}   (answer to the server's ping; used for the clock offset)

Server -> page: JSON text (welcome, refused, status, error, ping) and binary camera frames:
  [uint32 little-endian header length][header JSON utf-8][JPEG bytes]
  header = {"name":camera,"eye":"left"|"right"|"mono","t":host seconds,"seq":int,"w":int,"h":int}

Everything the page sends is checked here; a bad message raises DataError naming the problem.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from collector.errors import DataError
from collector.json_values import json_default
from collector.teleop.messages import (
    N_HAND_JOINTS,
    QUATERNION_NORM_TOLERANCE,
    SIDES,
    ControllerState,
    HandSkeleton,
    Pose,
)

PROTOCOL_VERSION = 1
# A frame with two hands (2 x 25 x 7 numbers as JSON text) is ~10 KiB; anything bigger is refused.
MAX_TEXT_MESSAGE_BYTES = 64 * 1024
# Tracking volumes are a few metres; a position beyond this is garbage, not a pose.
MAX_POSITION_M = 20.0
MAX_GAMEPAD_BUTTONS = 16
MAX_GAMEPAD_AXES = 8
MAX_SEQ = 2**53  # JavaScript's largest exact integer
ROLES = ("operator", "watch")
CONTROL_ACTIONS = ("start", "stop", "discard")
OUTCOMES = ("success", "failure")
EYES = ("left", "right", "mono")

# xr-standard gamepad layout: index -> name in messages.CONTROLLER_BUTTONS, per handedness.
_BUTTON_NAMES = {
    "left": {0: "trigger", 1: "grip", 3: "thumbstick", 4: "x", 5: "y"},
    "right": {0: "trigger", 1: "grip", 3: "thumbstick", 4: "a", 5: "b"},
}


def _reject_constant(name: str):
    # Python's json accepts NaN/Infinity literals; a pose must never carry them.
    raise DataError(f"non-finite number {name} in message")


@dataclass(frozen=True)
class Hello:
    role: str
    client: str
    xr: str
    device_t: Optional[float]


@dataclass
class ControllerInput:
    pose: Optional[Pose]
    state: ControllerState


@dataclass
class PoseFrame:
    seq: int
    device_t: float  # seconds on the headset clock
    head: Optional[Pose]
    controllers: Dict[str, ControllerInput] = field(default_factory=dict)
    hands: Dict[str, HandSkeleton] = field(default_factory=dict)


@dataclass(frozen=True)
class Control:
    action: str
    outcome: Optional[str]


@dataclass(frozen=True)
class Pong:
    ping_id: int
    device_t: float


ClientMessage = Union[Hello, PoseFrame, Control, Pong]


# ---------------------------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------------------------

def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{what}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise DataError(f"{what}: not finite")
    return value


def _integer(value, what: str, lo: int = 0, hi: int = MAX_SEQ) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise DataError(f"{what}: expected an integer in [{lo}, {hi}], got {value!r}")
    return value


_NUMBER_TYPES = (int, float)


def _check_number_list(value, n: Optional[int], what: str) -> list:
    """A JSON list of n plain numbers (not bools, not null); pure Python, it runs ~400 times per frame."""
    if not isinstance(value, list) or (n is not None and len(value) != n):
        got = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
        raise DataError(f"{what}: expected a list of {n} numbers, got {got}")
    for item in value:
        if type(item) not in _NUMBER_TYPES:  # type(), not isinstance: True/False are ints in Python
            # JSON.stringify turns NaN into null, so a null here usually means a NaN on the page.
            raise DataError(f"{what}: element {item!r} is not a number (NaN on the page arrives as null)")
    return value


def _numbers(value, n: Optional[int], what: str) -> np.ndarray:
    arr = np.array(_check_number_list(value, n, what), dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: contains NaN or inf")
    return arr


def _xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return q[..., [3, 0, 1, 2]]


def _check_positions(positions: np.ndarray, what: str) -> None:
    largest = float(np.abs(positions).max())
    if largest > MAX_POSITION_M:
        raise DataError(f"{what}: position beyond {MAX_POSITION_M} m ({largest:.3g})")


def _check_unit(quats: np.ndarray, what: str) -> None:
    error = np.abs(np.sqrt(np.einsum("...i,...i->...", quats, quats)) - 1.0)
    worst = float(error.max())
    if worst > QUATERNION_NORM_TOLERANCE:
        raise DataError(f"{what}: orientation is not a unit quaternion (norm off by {worst:.3g})")


def parse_pose(value, what: str) -> Optional[Pose]:
    if value is None:
        return None
    # Seven numbers: plain Python is several times faster than numpy at this size (3 poses per frame).
    x, y, z, qx, qy, qz, qw = (float(v) for v in _check_number_list(value, 7, what))
    if not all(math.isfinite(v) for v in (x, y, z, qx, qy, qz, qw)):
        raise DataError(f"{what}: contains NaN or inf")
    largest = max(abs(x), abs(y), abs(z))
    if largest > MAX_POSITION_M:
        raise DataError(f"{what}: position beyond {MAX_POSITION_M} m ({largest:.3g})")
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise DataError(f"{what}: orientation is not a unit quaternion (norm off by {abs(norm - 1.0):.3g})")
    return Pose(np.array((x, y, z)), np.array((qw, qx, qy, qz)))


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _per_side(value, what: str) -> dict:
    if value is None:
        return {}
    value = _object(value, what)
    unknown = set(value) - set(SIDES)
    if unknown:
        raise DataError(f"{what}: unknown side(s) {sorted(unknown)} (expected left/right)")
    return value


def parse_controller(side: str, value) -> Optional[ControllerInput]:
    if value is None:
        return None
    what = f"controllers.{side}"
    value = _object(value, what)
    pose = parse_pose(value.get("pose"), f"{what}.pose")
    raw_buttons = value.get("buttons", [])
    if not isinstance(raw_buttons, list) or len(raw_buttons) > MAX_GAMEPAD_BUTTONS:
        raise DataError(f"{what}.buttons: expected a list of at most {MAX_GAMEPAD_BUTTONS} [pressed, value] pairs")
    pressed: Dict[int, bool] = {}
    values: Dict[int, float] = {}
    for i, item in enumerate(raw_buttons):
        pair = _check_number_list(item, 2, f"{what}.buttons[{i}]")
        if pair[0] not in (0, 1) or not (0.0 <= pair[1] <= 1.0):  # also rejects NaN (comparisons are False)
            raise DataError(f"{what}.buttons[{i}]: expected [0|1, value in 0..1], got {item!r}")
        pressed[i], values[i] = bool(pair[0]), float(pair[1])
    raw_axes = value.get("axes", [])
    if not isinstance(raw_axes, list) or len(raw_axes) > MAX_GAMEPAD_AXES:
        raise DataError(f"{what}.axes: expected a list of at most {MAX_GAMEPAD_AXES} numbers")
    axes = [float(a) for a in _check_number_list(raw_axes, None, f"{what}.axes")]
    if not all(-1.001 <= a <= 1.001 for a in axes):
        raise DataError(f"{what}.axes: axis outside [-1, 1] (or not finite)")
    axes = [min(1.0, max(-1.0, a)) for a in axes]
    # xr-standard puts the thumbstick on axes 2,3 (0,1 are a touchpad, zero on Quest/PICO).
    thumbstick = axes[2:4] if len(axes) >= 4 else (axes[0:2] if len(axes) >= 2 else np.zeros(2))
    names = _BUTTON_NAMES[side]
    state = ControllerState(
        trigger=values.get(0, 0.0),
        grip=values.get(1, 0.0),
        buttons={name: pressed.get(index, False) for index, name in names.items()},
        thumbstick=thumbstick,
    )
    return ControllerInput(pose=pose, state=state)


def parse_hand(side: str, value) -> Optional[HandSkeleton]:
    if value is None:
        return None
    what = f"hands.{side}"
    value = _object(value, what)
    joints = _numbers(value.get("joints"), N_HAND_JOINTS * 7, f"{what}.joints").reshape(N_HAND_JOINTS, 7)
    _check_positions(joints[:, :3], f"{what}.joints")
    _check_unit(joints[:, 3:], f"{what}.joints")
    radii = value.get("radii")
    radii = None if radii is None else _numbers(radii, N_HAND_JOINTS, f"{what}.radii")
    if radii is not None and np.any((radii < 0) | (radii > 0.1)):
        raise DataError(f"{what}.radii: joint radius outside [0, 0.1] m")
    return HandSkeleton(joints[:, :3], _xyzw_to_wxyz(joints[:, 3:]), radii)


def _device_time_s(value, what: str) -> float:
    t_ms = _number(value, what)
    if t_ms < 0:
        raise DataError(f"{what}: negative headset time {t_ms!r}")
    return t_ms / 1000.0


def parse_frame(obj: dict) -> PoseFrame:
    seq, device_t = frame_header(obj)
    head = parse_pose(obj.get("head"), "head")
    controllers = {}
    for side, value in _per_side(obj.get("controllers"), "controllers").items():
        ctl = parse_controller(side, value)
        if ctl is not None:
            controllers[side] = ctl
    hands = {}
    for side, value in _per_side(obj.get("hands"), "hands").items():
        hand = parse_hand(side, value)
        if hand is not None:
            hands[side] = hand
    return PoseFrame(seq=seq, device_t=device_t, head=head, controllers=controllers, hands=hands)


def _short_string(value, what: str, limit: int = 64) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise DataError(f"{what}: expected a string of at most {limit} characters")
    return value


def parse_hello(obj: dict) -> Hello:
    version = obj.get("v")
    if version != PROTOCOL_VERSION:
        raise DataError(f"hello: protocol version {version!r} not supported (server speaks {PROTOCOL_VERSION})")
    role = obj.get("role", "operator")
    if role not in ROLES:
        raise DataError(f"hello.role: {role!r} not in {ROLES}")
    device_t = obj.get("t")
    return Hello(
        role=role,
        client=_short_string(obj.get("client"), "hello.client"),
        xr=_short_string(obj.get("xr"), "hello.xr"),
        device_t=None if device_t is None else _device_time_s(device_t, "hello.t"),
    )


def parse_control(obj: dict) -> Control:
    action = obj.get("action")
    if action not in CONTROL_ACTIONS:
        raise DataError(f"control.action: {action!r} not in {CONTROL_ACTIONS}")
    outcome = obj.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise DataError(f"control.outcome: {outcome!r} not in {OUTCOMES} or null")
    return Control(action=action, outcome=outcome)


def parse_pong(obj: dict) -> Pong:
    return Pong(ping_id=_integer(obj.get("id"), "pong.id"), device_t=_device_time_s(obj.get("t"), "pong.t"))


_PARSERS = {"hello": parse_hello, "frame": parse_frame, "control": parse_control, "pong": parse_pong}


def decode_message(text: Union[str, bytes]) -> dict:
    """Size check and JSON decoding of one page message (the cheap first half of parsing)."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_TEXT_MESSAGE_BYTES:
        raise DataError(f"message of {size} bytes exceeds the {MAX_TEXT_MESSAGE_BYTES}-byte limit")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except DataError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})") from None
    return _object(obj, "message")


def frame_header(obj: dict) -> Tuple[int, float]:
    """(seq, headset time in s) of a decoded frame, checked, without touching its poses."""
    return _integer(obj.get("seq"), "frame.seq"), _device_time_s(obj.get("t"), "frame.t")


def parse_message(obj: dict) -> ClientMessage:
    """A decoded page message -> a typed message, or DataError naming what is wrong."""
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise DataError(f"unknown message type {kind!r} (expected one of {sorted(_PARSERS)})")
    try:
        return parser(obj)
    except DataError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"{kind}: malformed ({exc})") from None


def parse_client_message(text: Union[str, bytes]) -> ClientMessage:
    """One text message from the page -> a typed message, or DataError naming what is wrong."""
    return parse_message(decode_message(text))


# ---------------------------------------------------------------------------------------------
# Server -> page
# ---------------------------------------------------------------------------------------------

def server_message(kind: str, **fields) -> str:
    return json.dumps({"type": kind, **fields}, allow_nan=False, default=json_default)


_HEADER_LEN = struct.Struct("<I")


def pack_camera_frame(name: str, eye: str, t: float, seq: int, width: int, height: int, jpeg: bytes) -> bytes:
    header = json.dumps({"name": name, "eye": eye, "t": t, "seq": seq, "w": width, "h": height}).encode()
    return _HEADER_LEN.pack(len(header)) + header + jpeg


def unpack_camera_frame(data: bytes) -> Tuple[dict, bytes]:
    """Inverse of pack_camera_frame (used by the Python client and tests)."""
    if len(data) < _HEADER_LEN.size:
        raise DataError("camera frame shorter than its header length field")
    (n,) = _HEADER_LEN.unpack_from(data)
    if n > len(data) - _HEADER_LEN.size:
        raise DataError(f"camera frame header length {n} exceeds the frame")
    try:
        header = json.loads(data[_HEADER_LEN.size:_HEADER_LEN.size + n])
    except ValueError as exc:
        raise DataError(f"camera frame header is not JSON ({exc})") from None
    return header, bytes(data[_HEADER_LEN.size + n:])


# ---------------------------------------------------------------------------------------------
# Python side of the page protocol (replay client, tests, benchmark)
# ---------------------------------------------------------------------------------------------

def pose_to_wire(position, orientation_wxyz) -> List[float]:
    """Pose -> the page's P list (x, y, z, qx, qy, qz, qw)."""
    p = [float(v) for v in position]
    w, x, y, z = (float(v) for v in orientation_wxyz)
    return p + [x, y, z, w]


def hand_to_wire(positions, orientations_wxyz, radii=None) -> dict:
    joints: List[float] = []
    for p, q in zip(np.asarray(positions), np.asarray(orientations_wxyz)):
        joints.extend(pose_to_wire(p, q))
    out = {"joints": joints}
    if radii is not None:
        out["radii"] = [float(r) for r in radii]
    return out
