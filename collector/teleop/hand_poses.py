"""Synthetic hand-tracking poses: named human hand shapes as 25-joint WebXR skeletons, for both hands.

    skeleton = hand_skeleton("right", "pinch")                              # a HandSkeleton
    skeleton = hand_skeleton("left", "fist", wrist_rotation=R, size=1.1)    # any wrist pose, a bigger hand

A small anatomical model of an adult right hand (17 cm from the wrist joint to the middle tip; fingers that
curl at the MCP, PIP and DIP joints; a thumb that opposes about the palm's long axis and then flexes, a
simplification of the real thumb's saddle joint) builds the joints in the WebXR wrist frame: -Z from the
wrist towards the fingers, +Y out of the back of the hand, +X = Y x Z, so the right thumb is on -X and the
left thumb on +X (WebXR Hand Input: every joint has -Z along its bone towards the tip and +Y out of the back
of the hand or finger). The left hand is the right hand's true
mirror image (positions reflected through the wrist frame's YZ plane, joint frames conjugated by the
reflection). The wrist pose then places the hand in the tracking frame.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from collector.teleop.messages import HAND_JOINTS, HandSkeleton
from collector.teleop.transforms import mat_to_quat, quat_to_mat

POSES = ("open", "fist", "pinch", "point", "thumbs_up")
FINGERS = ("index", "middle", "ring", "pinky")

# Right hand, wrist frame (m): metacarpal base, knuckle (MCP), then proximal/intermediate/distal lengths
# (the distal one to the tip joint).
_FINGER_BASES = {
    "index": ((-0.012, 0.0, -0.012), (-0.024, 0.0, -0.082), (0.041, 0.024, 0.020)),
    "middle": ((-0.003, 0.0, -0.012), (-0.004, 0.002, -0.080), (0.045, 0.027, 0.021)),
    "ring": ((0.006, 0.0, -0.012), (0.014, 0.0, -0.075), (0.042, 0.026, 0.020)),
    "pinky": ((0.014, -0.002, -0.012), (0.031, -0.004, -0.067), (0.033, 0.019, 0.018)),
}
# The thumb: carpometacarpal joint, then metacarpal, proximal and distal (to the tip) lengths; open, it
# points 40 degrees from the fingers towards the thumb side, in the palm plane.
_THUMB_CMC = (-0.022, -0.010, -0.022)
_THUMB_LENGTHS = (0.044, 0.032, 0.028)
_THUMB_OPEN_ANGLE = math.radians(40.0)

# Joint angles (rad). Fingers: (MCP, PIP, DIP) flexion; thumb: (opposition about the palm's long axis,
# CMC flexion, MCP flexion, IP flexion). Natural hands couple DIP ~ 2/3 PIP.
_CURLED = (1.45, 1.55, 1.0)
_RELAXED = (0.3, 0.35, 0.2)
_THUMB_WRAPPED = (1.3, 0.24, 0.32, 0.24)        # opposed and flexed over the curled fingers
_POSE_ANGLES: Dict[str, Tuple[Dict[str, Tuple[float, float, float]], Tuple[float, float, float, float]]] = {
    "open": ({f: (0.0, 0.0, 0.0) for f in FINGERS}, (0.0, 0.0, 0.0, 0.0)),
    "fist": ({f: _CURLED for f in FINGERS}, _THUMB_WRAPPED),
    "point": ({"index": (0.0, 0.0, 0.0), "middle": _CURLED, "ring": _CURLED, "pinky": _CURLED}, _THUMB_WRAPPED),
    "thumbs_up": ({f: _CURLED for f in FINGERS}, (0.0, 0.0, 0.0, 0.0)),
    # Tip to tip: the thumb angles put the thumb tip ~1 cm from the index tip (the pads touch).
    "pinch": ({"index": (0.55, 0.7, 0.45), "middle": _RELAXED, "ring": _RELAXED, "pinky": _RELAXED},
              (1.6, 0.1, 0.14, 0.1)),
}
# Grasp shapes an operator makes to drive robots/humanoid_dex's synergies by hand tracking (the scripted operator's
# hand-tracking mode blends from "rest" towards the plan's synergy). Each is the human pose whose retargeting
# (collector/teleop/hand_retarget.py) lands on that robot's synergy targets of the same name, found by a bounded
# search over these angles (both hands, as mirror images): rest -> home within 0.01 rad; power -> thumb (1.31, 0.78)
# for (1.30, 0.80), fingers at their 1.57 limit; tripod -> within 0.11 rad (thumb flexion 0.36 for 0.25). The thumb
# matters: a power grasp with the thumb at (1.34, 0.71) instead poured 1 of 4 test pitchers, against 3 of 4.
GRASP_POSES = ("rest", "power", "tripod")
_POSE_ANGLES.update({
    "rest": ({f: (0.12, 0.06, 0.03) for f in FINGERS}, (0.76, 0.01, 0.05, 0.02)),
    "power": ({f: (1.6, 1.21, 1.6) for f in FINGERS}, (1.6, 0.4, 0.3, 0.6)),
    "tripod": ({"index": (0.0, 1.34, 1.6), "middle": (0.96, 0.9, 0.6), "ring": (0.35, 0.0, 0.58),
                "pinky": (0.0, 0.61, 0.6)}, (1.36, 0.41, 0.3, 0.21)),
})
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _finger(base, knuckle, lengths, angles, spread: float, size: float):
    """Joint positions and frames of one finger (right hand, wrist frame): flexion about the finger's X
    curls it towards the palm (-Y)."""
    knuckle = np.asarray(knuckle) * size
    spread_rot = _rot_y(spread)
    points, frames = [np.asarray(base) * size, knuckle], []
    frames.append(spread_rot)
    cumulative, point = 0.0, knuckle
    for length, angle in zip(lengths, angles):
        cumulative += angle
        frame = spread_rot @ _rot_x(-cumulative)       # -Z along the bone, +Y its back
        frames.append(frame)
        point = point + frame @ np.array([0.0, 0.0, -length * size])
        points.append(point)
    frames.append(frames[-1])                          # the tip keeps the distal bone's frame
    return points, frames


def _thumb(angles, size: float):
    """Thumb joints (right hand, wrist frame): open along the palm plane, opposed by rotating about the
    palm's long axis (towards the palm side), flexed towards the fingers."""
    opposition, *flexions = angles
    open_frame = _rot_y(_THUMB_OPEN_ANGLE)             # -Z of this frame points 40 deg towards -X (the thumb side)
    opposed = _rot_z(opposition)
    point = np.asarray(_THUMB_CMC) * size
    points, frames, cumulative = [point], [], 0.0
    for length, angle in zip(_THUMB_LENGTHS, flexions):
        cumulative += angle
        frame = opposed @ _rot_y(-cumulative) @ open_frame
        frames.append(frame)
        point = point + frame @ np.array([0.0, 0.0, -length * size])
        points.append(point)
    frames.append(frames[-1])
    return points, frames


def _blended_angles(pose: str, towards: Optional[str], amount: float):
    finger_angles, thumb_angles = _POSE_ANGLES[pose]
    if towards is None or amount == 0.0:
        return finger_angles, thumb_angles
    other_fingers, other_thumb = _POSE_ANGLES[towards]
    blend = lambda a, b: tuple((1.0 - amount) * x + amount * y for x, y in zip(a, b))  # noqa: E731
    return {f: blend(finger_angles[f], other_fingers[f]) for f in FINGERS}, blend(thumb_angles, other_thumb)


def _right_hand_local(pose: str, size: float, towards: Optional[str] = None, amount: float = 0.0):
    """(25, 3) positions and (25, 3, 3) joint frames of a right hand in its own wrist frame."""
    finger_angles, thumb_angles = _blended_angles(pose, towards, amount)
    points, frames = {"wrist": np.zeros(3)}, {"wrist": np.eye(3)}
    thumb_points, thumb_frames = _thumb(thumb_angles, size)
    for name, point, frame in zip(("metacarpal", "phalanx-proximal", "phalanx-distal", "tip"),
                                  thumb_points, thumb_frames):
        points[f"thumb-{name}"], frames[f"thumb-{name}"] = point, frame
    for index, finger in enumerate(FINGERS):
        base, knuckle, lengths = _FINGER_BASES[finger]
        spread = math.radians(-4.0 + 3.0 * index)      # fingers fan out a little from the middle
        finger_points, finger_frames = _finger(base, knuckle, lengths, finger_angles[finger], spread, size)
        names = ("metacarpal", "phalanx-proximal", "phalanx-intermediate", "phalanx-distal", "tip")
        for name, point, frame in zip(names, finger_points, finger_frames):
            points[f"{finger}-finger-{name}"], frames[f"{finger}-finger-{name}"] = point, frame
    return (np.array([points[n] for n in HAND_JOINTS]), np.array([frames[n] for n in HAND_JOINTS]))


def hand_local(side: str, pose: str, size: float = 1.0, towards: Optional[str] = None, amount: float = 0.0):
    """(positions (25, 3), joint frames (25, 3, 3)) of `side`'s hand in its WebXR wrist frame; with
    `towards`, every joint angle is `amount` (0..1) of the way from `pose` to that pose."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    for name in (pose, towards):
        if name is not None and name not in _POSE_ANGLES:
            raise ValueError(f"unknown hand pose {name!r} (have {list(POSES + GRASP_POSES)})")
    positions, frames = _right_hand_local(pose, float(size), towards, float(amount))
    if side == "left":
        positions = positions @ _MIRROR
        frames = _MIRROR @ frames @ _MIRROR
    return positions, frames


def hand_skeleton(side: str, pose: str, wrist_position=None, wrist_rotation: Optional[np.ndarray] = None,
                  size: float = 1.0, noise_m: float = 0.0, rng: Optional[np.random.Generator] = None,
                  towards: Optional[str] = None, amount: float = 0.0) -> HandSkeleton:
    """A named pose (or a blend `amount` of the way `towards` another) as the VR bridge would deliver it:
    joints in the tracking frame.

    wrist_position defaults to a hand held in front of the chest (WebXR local-floor), wrist_rotation (3x3)
    to the palm facing down with the fingers pointing forward; noise_m adds Gaussian noise to positions."""
    positions, frames = hand_local(side, pose, size, towards, amount)
    if wrist_position is None:
        wrist_position = (-0.2 if side == "left" else 0.2, 1.1, -0.35)
    rotation = np.eye(3) if wrist_rotation is None else np.asarray(wrist_rotation, dtype=float)
    world = np.asarray(wrist_position, dtype=float) + positions @ rotation.T
    if noise_m > 0.0:
        world = world + (rng or np.random.default_rng()).normal(0.0, noise_m, world.shape)
    quats = np.array([mat_to_quat(rotation @ frame) for frame in frames])
    return HandSkeleton(positions=world, orientations=quats, radii=np.full(len(HAND_JOINTS), 0.008))


def mirror_skeleton(skeleton: HandSkeleton) -> HandSkeleton:
    """The mirror image of a tracked hand through the tracking frame's x = 0 plane (right <-> left)."""
    positions = skeleton.positions @ _MIRROR
    quats = np.array([mat_to_quat(_MIRROR @ quat_to_mat(q) @ _MIRROR) for q in skeleton.orientations])
    return HandSkeleton(positions=positions, orientations=quats, radii=skeleton.radii)
