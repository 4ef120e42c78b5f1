"""Joint commands arriving over ROS 2, folded into one setpoint vector for the simulated robot.

Two conventions of ros2_control are accepted, both at once:
- trajectory_msgs/JointTrajectory (joint_trajectory_controller): joints are named, any subset in
  any order; the last point's positions become the setpoint of those joints. A streaming teleop
  sends one-point trajectories at its control rate, which is what this serves; the simulated
  actuators are position servos, so no interpolation between points is done here.
- std_msgs/Float64MultiArray per joint group (forward_command_controller): the group's joints
  in the robot YAML's order.

A bad message (unknown joint, wrong length, NaN) is rejected whole and counted; it never
reaches the simulation and never stops the node.
"""
from __future__ import annotations

import threading
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.errors import DataError
from collector.ros.conversions import multiarray_values, trajectory_target


class CommandIntake:
    def __init__(self, hardware_joint_names: Sequence[str], initial: np.ndarray,
                 groups: Optional[Dict[str, List[int]]] = None):
        """hardware_joint_names: command-vector order; groups: group name -> indices into that vector."""
        self.names = list(hardware_joint_names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.groups = dict(groups or {})
        self._lock = threading.Lock()
        self._target = np.asarray(initial, dtype=np.float64).copy()
        self._new = False
        self.accepted = 0
        self.rejected = 0
        self.last_error: Optional[str] = None

    def reset(self, initial: np.ndarray) -> None:
        with self._lock:
            self._target = np.asarray(initial, dtype=np.float64).copy()
            self._new = False

    def _reject(self, error: DataError) -> None:
        with self._lock:
            self.rejected += 1
            self.last_error = str(error)

    def on_trajectory(self, msg) -> bool:
        try:
            names, positions = trajectory_target(msg)
            unknown = [n for n in names if n not in self._index]
            if unknown:
                raise DataError(f"JointTrajectory: unknown joint(s) {unknown[:5]}")
            indices = [self._index[n] for n in names]
        except DataError as exc:
            self._reject(exc)
            return False
        with self._lock:
            self._target[indices] = positions
            self._new = True
            self.accepted += 1
        return True

    def on_group(self, group: str, msg) -> bool:
        indices = self.groups[group]
        try:
            values = multiarray_values(msg, len(indices), f"{group} command")
        except DataError as exc:
            self._reject(exc)
            return False
        with self._lock:
            self._target[indices] = values
            self._new = True
            self.accepted += 1
        return True

    def take(self) -> Optional[np.ndarray]:
        """The setpoint if a command arrived since the last take, else None."""
        with self._lock:
            if not self._new:
                return None
            self._new = False
            return self._target.copy()
