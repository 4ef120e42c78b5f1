"""What the operator's input means for a dexterous hand's fingers (a robot whose YAML has `hands:`).

Per hand and per message, in the order the retargeter's `gripper_source` allows (auto: controller first):

- a controller (VR controller, gamepad, keyboard, the scripted operator): its analogue trigger is the
  amount of the hand's selected grasp synergy (collector/teleop/hand_synergies.py: open, power, pinch,
  tripod); a flick of that controller's thumbstick to the right selects the next synergy, to the left
  the previous one. The flick travels in the recorded `input` stream (the thumbstick axes), so which
  synergy a take used can be read back from it; the selection also starts at DEFAULT_SYNERGY each take.
- a tracked hand (VR hand tracking, no controller): the 25-joint skeleton goes through the fingertip
  retargeter (collector/teleop/hand_retarget.py, HandRetargeter) when that module is installed;
  otherwise the thumb-index pinch distance drives the power synergy, as it drives a gripper's closure.
- neither: the hand is not tracked this message; its fingers get no new target (the loop's
  HandTrackingHold freezes them at their last command and counts the loss).
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Tuple

import numpy as np

from collector.teleop.hand_synergies import HandSynergies
from collector.teleop.messages import OperatorInput

log = logging.getLogger("collector.teleop.hand_drive")

DEFAULT_SYNERGY = "power"
FLICK = 0.7  # thumbstick x beyond +-FLICK is a flick; it must come back inside before the next one counts
PINCH_SYNERGY = "power"  # what a pinch drives when no fingertip retargeter is available


def _fingertip_retargeter(robot):
    """HandRetargeter(robot) when collector/teleop/hand_retarget.py exists, else None (pinch -> power)."""
    try:
        from collector.teleop.hand_retarget import HandRetargeter
    except ImportError:
        return None
    return HandRetargeter(robot)


class HandDrive:
    def __init__(self, robot, retarget_cfg):
        self.synergies = HandSynergies(robot)
        self.cfg = retarget_cfg
        self.sides = self.synergies.sides
        self.indices = self.synergies.command_indices()
        self._robot = robot
        self._skeleton_retargeter = None
        self._skeleton_retargeter_tried = False
        self.reset()

    # -- synergy selection -------------------------------------------------------------------------
    def reset(self) -> None:
        """A new take: every hand back to the default synergy, no flick in progress."""
        self._selected = {side: self._default_index(side) for side in self.sides}
        self._flick = {side: 0 for side in self.sides}  # the flick direction being held (-1, 0, 1)
        if self._skeleton_retargeter is not None:
            self._skeleton_retargeter.reset()  # its smoothing starts afresh

    def _default_index(self, side: str) -> int:
        names = self.synergies.names(side)
        return names.index(DEFAULT_SYNERGY) if DEFAULT_SYNERGY in names else 0

    @property
    def fingertip_retargeter(self):
        """The HandRetargeter skeletons go through (its `residual` is recorded); None until the first skeleton."""
        return self._skeleton_retargeter

    def synergy(self, side: str) -> str:
        """The synergy the hand's trigger drives now (what an operator's HUD would show)."""
        return self.synergies.names(side)[self._selected[side]]

    def _select(self, side: str, thumbstick_x: float) -> None:
        direction = 1 if thumbstick_x > FLICK else (-1 if thumbstick_x < -FLICK else 0)
        if direction != 0 and self._flick[side] == 0:
            names = self.synergies.names(side)
            self._selected[side] = (self._selected[side] + direction) % len(names)
            log.info("%s hand: synergy %s", side, names[self._selected[side]])
        self._flick[side] = direction

    # -- targets -----------------------------------------------------------------------------------
    def update(self, msg: OperatorInput) -> Tuple[Dict[str, Optional[np.ndarray]], Dict[str, bool]]:
        """side -> the hand's actuated joint targets (None: keep), and side -> whether it is tracked."""
        targets: Dict[str, Optional[np.ndarray]] = {}
        tracked: Dict[str, bool] = {}
        source = self.cfg.gripper_source
        for side in self.sides:
            controller, hand = msg.controller(side), msg.hand(side)
            if controller is not None and source in ("auto", "trigger"):
                self._select(side, float(controller.thumbstick[0]))
                targets[side] = self.synergies.targets(side, self.synergy(side), controller.trigger)
            elif hand is not None and source in ("auto", "pinch"):
                targets[side] = self._from_skeleton(side, hand)
            else:
                targets[side] = None
            tracked[side] = targets[side] is not None
        return targets, tracked

    def set_calibrations(self, calibrations: Dict[str, object]) -> None:
        """The operator's hand-size calibration (side -> HandCalibration, collector/session/hand_calibration.py),
        used by the fingertip retargeter from the next skeleton on."""
        retargeter = self._retargeter()
        if retargeter is not None:
            for calibration in calibrations.values():
                retargeter.set_calibration(calibration)

    def _retargeter(self):
        if not self._skeleton_retargeter_tried:
            self._skeleton_retargeter_tried = True
            self._skeleton_retargeter = _fingertip_retargeter(self._robot)
        return self._skeleton_retargeter

    def _from_skeleton(self, side: str, hand) -> np.ndarray:
        retargeter = self._retargeter()
        if retargeter is not None:
            return np.asarray(retargeter.solve(side, hand), dtype=float)
        span = self.cfg.pinch_open_m - self.cfg.pinch_closed_m
        amount = float(np.clip((self.cfg.pinch_open_m - hand.pinch_distance()) / span, 0.0, 1.0))
        return self.synergies.targets(side, PINCH_SYNERGY, amount)
