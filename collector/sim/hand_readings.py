"""A dexterous robot's touch sensor readings and finger actuator forces, per hand, from MjData.

Read by the simulator backend (the `hand_touch` / `grasp_force` streams) and by `ros sim-hw` (their
ROS 2 topics), so both record the same values in the same order: each hand's touch sensors in the
robot YAML's `hands.<side>.touch` order and its actuated joints in `hands.<side>.joints` order.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


class SimHandReadings:
    def __init__(self, robot):
        self.robot = robot
        self._index = None  # (model, side -> (touch sensor addresses, actuator ids))

    def read(self, model, data) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """(touch per side, for hands that have touch sensors; actuator force per side)."""
        if self._index is None or self._index[0] is not model:  # a theme change builds a new model
            self._index = (model, {
                side: (np.array([model.sensor_adr[model.sensor(name).id] for name in hand.touch.values()], dtype=int),
                       np.array([model.actuator(self.robot.actuators[j]).id for j in hand.joints], dtype=int))
                for side, hand in self.robot.hands.items()})
        touch, force = {}, {}
        for side, (sensors, actuators) in self._index[1].items():
            if sensors.size:
                touch[side] = data.sensordata[sensors].astype(np.float64)
            force[side] = data.actuator_force[actuators].astype(np.float64)
        return touch, force
