"""What the runner adds to the network's action, each off unless asked for. Each one reads the policy's own
estimate of the target, from the same network pass as its chunk, never the simulator; each was measured in
the learning study before it became an option (docs/learning.md, fifteenth to eighteenth runs).

    grasp_gate_m      each gripper held open while its hand is higher than this above the estimate
                      (collector.policy.grasp_gate)
    steer_hands       each hand near the target sent to the estimate plus the policy's predicted offset
                      from it, through the IK (collector.policy.hand_steering)
    hold_estimate_m   the gate and the steering act on the estimate seen while both hands were farther
                      than this from it (collector.policy.held_estimate)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from collector.errors import ConfigError


@dataclass(frozen=True)
class Assists:
    grasp_gate_m: Optional[float] = None
    steer_hands: bool = False
    hold_estimate_m: Optional[float] = None

    def __post_init__(self):
        if self.hold_estimate_m is not None and self.grasp_gate_m is None and not self.steer_hands:
            raise ConfigError("holding the target estimate needs the grasp gate or hand steering, which read it")

    def as_dict(self) -> dict:
        """For results files: one key per assist, as named here."""
        return dataclasses.asdict(self)
