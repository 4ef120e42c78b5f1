"""A synthetic operator: head sway and both hands reaching, in the page's own frame format.

It stands in for a recorded headset session where none exists (tests, the benchmark, a demo
without a headset). Poses are in WebXR local-floor coordinates (x right, y up, -z forward):
the operator stands at the origin, head at 1.6 m, hands in front of the chest.
Hands carry all 25 joints (a simple anatomical skeleton); controllers carry the grip held
(deadman engaged) and the trigger following the same closing motion as the pinch.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.teleop.messages import HAND_JOINTS
from collector.teleop.vr.protocol import hand_to_wire, pose_to_wire

HEAD_HEIGHT_M = 1.6
HAND_REST = {"left": np.array([-0.2, 1.1, -0.35]), "right": np.array([0.2, 1.1, -0.35])}

# Finger bases relative to the wrist (metres, hand frame: x toward the thumb side for the left hand,
# -z along the fingers) and phalanx lengths, metacarpal first. With the palm down and the WebXR joint frame
# (+Y out of the back of the hand), a right thumb is on -x: the right hand mirrors these x values.
_FINGERS = {
    "thumb": ((0.025, 0.0, -0.02), (0.04, 0.035, 0.03, 0.0)),
    "index": ((0.02, 0.0, -0.02), (0.065, 0.04, 0.025, 0.02)),
    "middle": ((0.0, 0.0, -0.02), (0.065, 0.045, 0.028, 0.02)),
    "ring": ((-0.018, 0.0, -0.02), (0.06, 0.04, 0.026, 0.02)),
    "pinky": ((-0.034, 0.0, -0.02), (0.055, 0.032, 0.02, 0.018)),
}
_IDENTITY_WXYZ = np.array([1.0, 0.0, 0.0, 0.0])


def _yaw_quaternion(angle: float) -> np.ndarray:
    """Rotation about +y (WebXR up), as wxyz."""
    return np.array([math.cos(angle / 2), 0.0, math.sin(angle / 2), 0.0])


def hand_skeleton(side: str, wrist: np.ndarray, closure: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(25x3 positions, 25x4 wxyz orientations, 25 radii) of an upright hand; closure 0 open .. 1 pinched."""
    mirror = 1.0 if side == "left" else -1.0
    positions = {"wrist": wrist.copy()}
    for finger, (base, lengths) in _FINGERS.items():
        point = wrist + np.array([mirror * base[0], base[1], base[2]])
        joints = (["metacarpal", "phalanx-proximal", "phalanx-distal", "tip"] if finger == "thumb"
                  else ["metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip"])
        segment_lengths = list(lengths) if finger != "thumb" else list(lengths[:3])
        prefix = "thumb" if finger == "thumb" else f"{finger}-finger"
        positions[f"{prefix}-{joints[0]}"] = point.copy()
        for joint, length in zip(joints[1:], segment_lengths):
            if finger == "thumb":
                # The thumb sweeps across toward the index tip as the hand pinches.
                direction = np.array([mirror * (0.6 - 0.9 * closure), -0.2, -0.7 - 0.3 * closure])
            else:
                bend = closure * (0.9 if finger == "index" else 0.4)
                direction = np.array([0.0, -math.sin(bend), -math.cos(bend)])
            point = point + length * direction / np.linalg.norm(direction)
            positions[f"{prefix}-{joint}"] = point.copy()
    if closure > 0.95:  # a full pinch touches thumb and index tips
        positions["thumb-tip"] = positions["index-finger-tip"] + np.array([mirror * 0.004, 0.0, 0.0])
    pos = np.array([positions[name] for name in HAND_JOINTS])
    quat = np.tile(_IDENTITY_WXYZ, (len(HAND_JOINTS), 1))
    radii = np.full(len(HAND_JOINTS), 0.008)
    return pos, quat, radii


def operator_pose(t: float) -> Dict[str, object]:
    """Head and wrist poses (WebXR frame) of the synthetic operator at time t (s)."""
    head = np.array([0.02 * math.sin(0.7 * t), HEAD_HEIGHT_M + 0.01 * math.sin(1.3 * t), 0.0])
    head_q = _yaw_quaternion(0.15 * math.sin(0.5 * t))
    wrists = {}
    for side, phase in (("left", 0.0), ("right", math.pi / 2)):
        rest = HAND_REST[side]
        # A slow figure-eight reach: ~10 cm across, 5 cm up/down, 8 cm forward/back.
        offset = np.array([0.05 * math.sin(0.8 * t + phase), 0.025 * math.sin(1.6 * t + phase),
                           -0.04 * (1 - math.cos(0.8 * t + phase))])
        wrists[side] = rest + offset
    closure = 0.5 * (1 - math.cos(0.6 * t))  # grasp and release every ~10 s
    return {"head": (head, head_q), "wrists": wrists, "closure": closure}


def page_frame(seq: int, t: float, hands: bool = True, controllers: bool = False,
               buttons: Optional[Dict[str, List[int]]] = None) -> dict:
    """The page's `frame` message for the synthetic operator at time t (device time = t)."""
    pose = operator_pose(t)
    head, head_q = pose["head"]
    frame = {"type": "frame", "seq": seq, "t": t * 1000.0, "head": pose_to_wire(head, head_q),
             "controllers": {}, "hands": {}}
    for side, wrist in pose["wrists"].items():
        if hands:
            positions, quats, radii = hand_skeleton(side, wrist, pose["closure"])
            frame["hands"][side] = hand_to_wire(positions, quats, radii)
        if controllers:
            pressed = set((buttons or {}).get(side, []))
            trigger = pose["closure"]
            gamepad = [[1 if i in pressed else 0, 1.0 if i in pressed else 0.0] for i in range(6)]
            gamepad[0] = [int(trigger > 0.5), trigger]
            gamepad[1] = [1, 1.0]  # grip held: deadman engaged
            frame["controllers"][side] = {"pose": pose_to_wire(wrist, _IDENTITY_WXYZ), "buttons": gamepad,
                                          "axes": [0.0, 0.0, 0.0, 0.0]}
    return frame


def synthetic_session(duration_s: float, rate_hz: float = 90.0, hands: bool = True,
                      controllers: bool = False) -> List[Tuple[float, dict]]:
    """(t, frame) pairs at rate_hz for duration_s: a session file's worth of operator motion."""
    n = int(round(duration_s * rate_hz))
    return [(i / rate_hz, page_frame(i, i / rate_hz, hands=hands, controllers=controllers)) for i in range(n)]
