"""A dexterous robot's touch and grasp force over ROS 2 (robots whose YAML has `hands:`).

  /hand_touch    sensor_msgs/JointState  name: the touch sensors (robot YAML hands.<side>.touch, both hands)
                                         effort: each sensor's normal force, N
  /grasp_force   sensor_msgs/JointState  name: the hands' actuated finger joints (hardware names)
                                         effort: the joint's actuator force, N m (hinge) or N (slide)

Both leave position and velocity empty. Why JointState and not a Float64MultiArray with names in its
layout: the recorder must stamp each reading with the robot's own time, and a MultiArray has no header
(a recorder can only guess its stamp from the joint states' clock); JointState is the stamped list of
named values ros2_control's broadcasters publish, and its `effort` is exactly what grasp force is on
the finger joints. Both hands travel in one message, so a recorded sample holds both hands at one
instant, as the simulator backend records them.

The recorder records them as `hand_touch` and `grasp_force` (collector/recorder/vocabulary.py), the
streams, fields (one per side) and names the simulator backend records, plus `receive_t`.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from collector.recorder.vocabulary import RECEIVE_FIELD, grasp_force_spec, hand_touch_spec
from collector.recorder.streams import FieldSpec
from collector.ros.conversions import JointStateReader, joint_state_msg


def finger_force_units(model, joints) -> List[str]:
    """N for a slide joint, N m for a hinge (a finger joint's actuator force)."""
    import mujoco

    slide = int(mujoco.mjtJoint.mjJNT_SLIDE)
    return ["N" if int(model.joint(j).type[0]) == slide else "N m" for j in joints]


class HandTopics:
    """The names and order of both topics for one robot, and their conversion to and from per-side arrays."""

    def __init__(self, robot, config):
        hands = robot.hands or {}
        self.sides = list(hands)
        self.touch_places = {side: list(hand.touch) for side, hand in hands.items() if hand.touch}
        self.touch_sensors = {side: list(hand.touch.values()) for side, hand in hands.items() if hand.touch}
        self.finger_joints = {side: list(hand.joints) for side, hand in hands.items()}
        self.finger_hardware = {side: config.hardware_joint_names(joints) for side, joints in self.finger_joints.items()}
        self.touch_topic = config.hand_touch_topic
        self.force_topic = config.grasp_force_topic
        self._touch_reader = JointStateReader(self._flat(self.touch_sensors))
        self._force_reader = JointStateReader(self._flat(self.finger_hardware))

    def __bool__(self) -> bool:
        return bool(self.sides)

    @staticmethod
    def _flat(per_side: Dict[str, List[str]]) -> List[str]:
        return [name for names in per_side.values() for name in names]

    # -- publishing (the sim-hardware node, or a real hand's driver) ---------------------------------
    def touch_msg(self, touch: Dict[str, np.ndarray], stamp):
        return self._msg(self.touch_sensors, touch, stamp)

    def force_msg(self, force: Dict[str, np.ndarray], stamp):
        return self._msg(self.finger_hardware, force, stamp)

    @staticmethod
    def _msg(names: Dict[str, List[str]], values: Dict[str, np.ndarray], stamp):
        return joint_state_msg([n for side in names for n in names[side]], [],
                               effort=np.concatenate([values[side] for side in names]), stamp=stamp)

    # -- reading (the recorder) ----------------------------------------------------------------------
    def read_touch(self, msg) -> Dict[str, np.ndarray]:
        return self._split(self._touch_reader.read_effort(msg), self.touch_sensors)

    def read_force(self, msg) -> Dict[str, np.ndarray]:
        return self._split(self._force_reader.read_effort(msg), self.finger_hardware)

    @staticmethod
    def _split(values: np.ndarray, names: Dict[str, List[str]]) -> Dict[str, np.ndarray]:
        out, start = {}, 0
        for side, side_names in names.items():
            out[side] = values[start:start + len(side_names)]
            start += len(side_names)
        return out

    # -- recorded streams ------------------------------------------------------------------------------
    def touch_spec(self, rate_hz: float):
        spec = hand_touch_spec(self.touch_places, self.touch_sensors, rate_hz)
        return self._received(spec, self.touch_topic)

    def force_spec(self, rate_hz: float, model):
        units = {side: finger_force_units(model, joints) for side, joints in self.finger_joints.items()}
        spec = grasp_force_spec(self.finger_joints, units, rate_hz)
        return self._received(spec, self.force_topic)

    @staticmethod
    def _received(spec, topic: str):
        spec.fields[RECEIVE_FIELD] = FieldSpec(())
        spec.attrs["topic"] = topic
        return spec
