"""Named grasp synergies: one continuous amount (a trigger, 0..1) -> every finger joint target of a hand.

    synergies = HandSynergies(robot)                     # a robot whose YAML has `hands:`
    q = synergies.apply(q, "right", "power", trigger)   # writes the right hand's joints of a command vector
    synergies.targets("left", "pinch", 0.5)             # the left hand's actuated joints, in its YAML order

Amount 0 is the hand's home pose, amount 1 the synergy's targets (robots/<name>/robot.yaml,
hands.<side>.synergies), and the targets move along the straight line between them, so a half-pulled
trigger gives a half-closed grasp. A hand that mirrors the other (`mirror_of`) already carries the mirrored
targets (collector/robot/hands.py), so both sides are driven the same way.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.robot import RobotSpec


class HandSynergies:
    def __init__(self, robot: RobotSpec):
        if not robot.hands:
            raise ConfigError(f"robot {robot.name!r} ({robot.yaml_path}) has no hands: section, so no grasp synergies")
        self.robot = robot
        self._index = {side: np.array([robot.command_joints.index(j) for j in hand.joints], dtype=int)
                       for side, hand in robot.hands.items()}
        self._home = {side: np.array([robot.home.get(j, 0.0) for j in hand.joints], dtype=float)
                      for side, hand in robot.hands.items()}

    @property
    def sides(self) -> Tuple[str, ...]:
        return tuple(self.robot.hands)

    def names(self, side: str) -> Tuple[str, ...]:
        return tuple(self._hand(side).synergies)

    def joints(self, side: str) -> Tuple[str, ...]:
        return self._hand(side).joints

    def targets(self, side: str, synergy: str, amount: float) -> np.ndarray:
        """The hand's actuated joint targets for `synergy` pulled to `amount` (clipped to 0..1)."""
        hand = self._hand(side)
        if synergy not in hand.synergies:
            raise ConfigError(f"hand {side!r} of robot {self.robot.name!r} has no synergy {synergy!r} "
                              f"(has {sorted(hand.synergies)})")
        amount = float(amount)
        if not math.isfinite(amount):
            raise DataError(f"synergy amount must be a finite number, got {amount!r}")
        amount = min(1.0, max(0.0, amount))
        home = self._home[side]
        return home + amount * (np.asarray(hand.synergies[synergy], dtype=float) - home)

    def amount(self, side: str, synergy: str, hand_q) -> float:
        """How far along `synergy` the hand's joints (its actuated joints, in its order) are: the inverse of
        targets() for points on the line, the nearest point's amount otherwise (a gripper's "closure")."""
        home = self._home[side]
        direction = self.targets(side, synergy, 1.0) - home
        span = float(direction @ direction)
        if span == 0.0:
            return 0.0
        return float(np.clip((np.asarray(hand_q, dtype=float) - home) @ direction / span, 0.0, 1.0))

    def apply(self, command: np.ndarray, side: str, synergy: str, amount: float) -> np.ndarray:
        """A copy of a command vector (robot.command_joints order) with one hand set to the synergy."""
        out = np.array(command, dtype=float, copy=True)
        out[self._index[side]] = self.targets(side, synergy, amount)
        return out

    def command_indices(self) -> Dict[str, np.ndarray]:
        """side -> where the hand's actuated joints sit in a command vector (in the hand's joint order)."""
        return {side: index.copy() for side, index in self._index.items()}

    def _hand(self, side: str):
        if side not in self.robot.hands:
            raise ConfigError(f"robot {self.robot.name!r} has no hand {side!r} (has {sorted(self.robot.hands)})")
        return self.robot.hands[side]
