"""The recorded streams' names and the specs every producer declares for them.

Every producer (the teleop loop, the ROS 2 recorder node, the simulator's world state, the
synthetic datasets) and every reader names a stream through this module, so a stream is spelled
in one place and two producers of the same stream declare the same fields, kinds and alignment.

  joints               measured joint position/velocity/effort, aligned linearly
  command              the joint position command sent to the robot
  input                the operator's input, flattened for recording
  ik_target            the end-effector poses IK was asked to reach
  safety               the safety gate's state, enable and clamp flags
  control              who commanded the robot on each tick (the command arbiter)
  illuminance          the scene's light level, lux
  sim_state            the simulator's full state (collector/sim/world_state.py)
  camera_<name>        one camera's frames (the aligned view files them under images/<name>)
  camera_<name>_receive  host receive times of a ROS camera's frames
  pose_<name>          a pose x y z qw qx qy qz; pose_objects_<object> for a task object
  hand_touch           robots with hands: fingertip and palm touch readings, N, one field per side
  grasp_force          robots with hands: the finger actuators' force, one field per side
  hand_tracking        robots with hands: which hand's skeleton the operator input carried, and losses
  retarget_residual    robots with hands, with the fingertip retargeter installed: per-fingertip error, m

ROS-recorded streams add a `receive_t` field (host receive time, float64 seconds since the epoch)
next to the message's own stamp, so transport latency stays measurable.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

from collector.recorder.streams import FieldSpec, StreamSpec, camera_stream

JOINTS = "joints"
COMMAND = "command"
INPUT = "input"
IK_TARGET = "ik_target"
SAFETY = "safety"
CONTROL = "control"
ILLUMINANCE = "illuminance"
SIM_STATE = "sim_state"

CAMERA_PREFIX = "camera_"
RECEIVE_SUFFIX = "_receive"
POSE_PREFIX = "pose_"
OBJECT_POSE_PREFIX = POSE_PREFIX + "objects_"  # what the ROS recorder names /objects/<name>/pose

JOINT_FIELDS = ("position", "velocity", "effort")
RECEIVE_FIELD = "receive_t"
POSE_LAYOUT = "x y z qw qx qy qz"
ILLUMINANCE_RATE_HZ = 10.0


# -- names -------------------------------------------------------------------------------------------

def camera_stream_name(camera: str) -> str:
    """head -> camera_head."""
    return CAMERA_PREFIX + camera


def camera_of_stream(stream: str) -> Optional[str]:
    """camera_head -> head; None for a name that is not a camera stream's."""
    if stream.startswith(CAMERA_PREFIX) and len(stream) > len(CAMERA_PREFIX):
        return stream[len(CAMERA_PREFIX):]
    return None


def camera_receive_stream_name(camera: str) -> str:
    """head -> camera_head_receive (a camera stream holds only its image, so receive times live apart)."""
    return camera_stream_name(camera) + RECEIVE_SUFFIX


def pose_stream_name(obj: str) -> str:
    """cube -> pose_objects_cube: a task object's pose, named as the ROS recorder names /objects/cube/pose."""
    return OBJECT_POSE_PREFIX + obj


def object_of_pose_stream(stream: str) -> Optional[str]:
    """pose_objects_cube -> cube; None for a name that is not an object's pose stream."""
    if stream.startswith(OBJECT_POSE_PREFIX) and len(stream) > len(OBJECT_POSE_PREFIX):
        return stream[len(OBJECT_POSE_PREFIX):]
    return None


def named_pose_stream_name(name: str) -> str:
    """A pose topic the robot YAML names (ros.pose_topics: name -> topic) records as pose_<name>."""
    return POSE_PREFIX + name


def topic_pose_stream_name(topic: str) -> str:
    """/objects/cube/pose -> pose_objects_cube (a valid stream name, readable in the file)."""
    stem = re.sub(r"/pose$", "", topic.strip("/"))
    return POSE_PREFIX + (re.sub(r"[^A-Za-z0-9_]+", "_", stem) or "root")


# -- specs -------------------------------------------------------------------------------------------

def _with_receive(fields: Dict[str, FieldSpec], receive_t: bool) -> Dict[str, FieldSpec]:
    if receive_t:
        fields[RECEIVE_FIELD] = FieldSpec(())
    return fields


def joints_spec(joint_names: Sequence[str], rate_hz: float, *, fields: Sequence[str] = JOINT_FIELDS,
                receive_t: bool = False, attrs: Optional[dict] = None) -> StreamSpec:
    """Measured joints; `fields` lets the ROS recorder declare only the ones /joint_states carries."""
    n = len(joint_names)
    return StreamSpec(JOINTS, _with_receive({f: FieldSpec((n,)) for f in fields}, receive_t), rate_hz,
                      kind="joints", default_align="linear",
                      attrs={"joint_names": list(joint_names), **(attrs or {})})


def command_spec(joint_names: Sequence[str], rate_hz: float, *, receive_t: bool = False,
                 attrs: Optional[dict] = None) -> StreamSpec:
    n = len(joint_names)
    return StreamSpec(COMMAND, _with_receive({"position": FieldSpec((n,))}, receive_t), rate_hz, kind="command",
                      attrs={"joint_names": list(joint_names), **(attrs or {})})


def input_spec(field_shapes: Mapping[str, Tuple[tuple, str]], rate_hz: float,
               operator_frame: Optional[str] = None) -> StreamSpec:
    """The operator's input: field name -> (shape, dtype), as the teleop messages flatten it."""
    attrs = {} if operator_frame is None else {"operator_frame": operator_frame}
    return StreamSpec(INPUT, {name: FieldSpec(shape, dtype) for name, (shape, dtype) in field_shapes.items()},
                      rate_hz, kind="input", attrs=attrs)


def ik_target_spec(sides: Sequence[str], rate_hz: float) -> StreamSpec:
    return StreamSpec(IK_TARGET, {**{side: FieldSpec((7,)) for side in sides},
                                  "active": FieldSpec((len(sides),), "uint8")},
                      rate_hz, kind="pose",
                      attrs={"layout": f"{POSE_LAYOUT} (world frame); inactive arms hold their commanded pose",
                             "sides": list(sides)})


def safety_spec(state_codes: Mapping[str, int], rate_hz: float) -> StreamSpec:
    """state_codes: the gate's state name -> the uint8 code recorded in `state`."""
    return StreamSpec(SAFETY, {"state": FieldSpec((), "uint8"), "enable": FieldSpec((), "uint8"),
                               "clamped": FieldSpec((), "uint8")}, rate_hz, kind="generic",
                      attrs={"states": dict(state_codes)})


def control_spec(source_codes: Mapping[str, int], rate_hz: float) -> StreamSpec:
    """source_codes: each command source's id -> the uint8 code recorded in `source` (the arbiter's choice)."""
    return StreamSpec(CONTROL, {"source": FieldSpec((), "uint8")}, rate_hz, kind="generic",
                      attrs={"sources": dict(source_codes)})


def illuminance_spec(rate_hz: float = ILLUMINANCE_RATE_HZ, *, receive_t: bool = False,
                     attrs: Optional[dict] = None) -> StreamSpec:
    return StreamSpec(ILLUMINANCE, _with_receive({"value": FieldSpec(())}, receive_t), rate_hz, kind="sensor",
                      attrs={"unit": "lux", **(attrs or {})})


def camera_spec(camera: str, width: int, height: int, fps: float, codec: str = "jpeg", **kw) -> StreamSpec:
    """camera_<camera>: (height, width, 3) uint8 frames; kw as camera_stream (jpeg_quality, attrs...)."""
    return camera_stream(camera_stream_name(camera), width, height, fps, codec=codec, **kw)


def camera_receive_spec(camera: str, fps: float, topic: str) -> StreamSpec:
    return StreamSpec(camera_receive_stream_name(camera), {RECEIVE_FIELD: FieldSpec(())}, rate_hz=fps, kind="sensor",
                      attrs={"topic": topic})


def pose_spec(stream: str, rate_hz: float, *, receive_t: bool = False, attrs: Optional[dict] = None) -> StreamSpec:
    """A pose stream: field `pose` (7,) x y z qw qx qy qz."""
    return StreamSpec(stream, _with_receive({"pose": FieldSpec((7,))}, receive_t), rate_hz, kind="pose",
                      attrs={"layout": POSE_LAYOUT, **(attrs or {})})


def object_pose_spec(obj: str, rate_hz: float) -> StreamSpec:
    """A simulated task object's world-frame pose (collector/sim/world_state.py)."""
    return pose_spec(pose_stream_name(obj), rate_hz, attrs={"object": obj, "frame": "world"})


def sim_state_spec(state_size: int, rate_hz: float, attrs: dict) -> StreamSpec:
    """The simulator's state vector; attrs say how to put it back (collector/sim/world_state.py)."""
    return StreamSpec(SIM_STATE, {"state": FieldSpec((state_size,))}, rate_hz, kind="sim_state", attrs=attrs)


# -- dexterous hands (issue 16) ----------------------------------------------------------------------
# One field per hand side in every hand stream, so a one-handed robot records one field and a reader never
# has to split a concatenated vector; the names of each field's entries are in the stream's attrs.

HAND_TOUCH = "hand_touch"
GRASP_FORCE = "grasp_force"
HAND_TRACKING = "hand_tracking"
RETARGET_RESIDUAL = "retarget_residual"
HAND_STREAMS = (HAND_TOUCH, GRASP_FORCE, HAND_TRACKING, RETARGET_RESIDUAL)


def _per_side(values: Mapping[str, Sequence[str]]) -> Dict[str, FieldSpec]:
    return {side: FieldSpec((len(names),)) for side, names in values.items()}


def hand_touch_spec(places: Mapping[str, Sequence[str]], sensors: Mapping[str, Sequence[str]],
                    rate_hz: float) -> StreamSpec:
    """Touch readings (N, normal force summed over the sensor's zone), per hand: side -> fingertips and palm."""
    return StreamSpec(HAND_TOUCH, _per_side(places), rate_hz, kind="sensor", default_align="nearest",
                      attrs={"unit": "N", "names": {s: list(p) for s, p in places.items()},
                             "sensors": {s: list(n) for s, n in sensors.items()}})


def grasp_force_spec(joints: Mapping[str, Sequence[str]], units: Mapping[str, Sequence[str]],
                     rate_hz: float) -> StreamSpec:
    """The finger actuators' force, per hand: side -> actuated joints (N m for hinges, N for slides)."""
    return StreamSpec(GRASP_FORCE, _per_side(joints), rate_hz, kind="sensor", default_align="nearest",
                      attrs={"names": {s: list(j) for s, j in joints.items()},
                             "units": {s: list(u) for s, u in units.items()},
                             "source": "actuator force of each finger joint's position actuator"})


def hand_tracking_spec(sides: Sequence[str], rate_hz: float) -> StreamSpec:
    """Per tick, per side: `tracked` 1 when the newest operator input carried that hand's skeleton, else 0
    (controllers and keyboards never carry one); `lost` 1 on the tick a tracked hand stops being tracked."""
    return StreamSpec(HAND_TRACKING, {"tracked": FieldSpec((len(sides),), "uint8"),
                                      "lost": FieldSpec((len(sides),), "uint8")}, rate_hz, kind="generic",
                      default_align="nearest",
                      attrs={"sides": list(sides),
                             "lost": "1 on the tick a hand tracked on the previous tick stops being tracked"})


def retarget_residual_spec(fingers: Mapping[str, Sequence[str]], rate_hz: float) -> StreamSpec:
    """The hand retargeter's per-fingertip error after scaling (m), per hand: side -> fingers, every tick; `solved`
    (n_sides,) uint8 says which hands it retargeted a skeleton for on that tick (the others repeat their last
    residual, zeros before the first solve)."""
    sides = list(fingers)
    return StreamSpec(RETARGET_RESIDUAL, {**_per_side(fingers), "solved": FieldSpec((len(sides),), "uint8")},
                      rate_hz, kind="generic", default_align="nearest",
                      attrs={"unit": "m", "names": {s: list(f) for s, f in fingers.items()}, "sides": sides})


def aligned_hand_streams(specs) -> Tuple[str, ...]:
    """The hand streams among `specs` (StreamSpecs): what a recorder puts in the aligned view besides joints,
    command and cameras, as /observations/<stream>/<side>, so training loaders and exports see them."""
    declared = {spec.name for spec in specs}
    return tuple(name for name in HAND_STREAMS if name in declared)
