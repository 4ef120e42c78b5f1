"""What the control loop measures while it runs (rates, latencies, drops, the gate's states)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np


def _percentiles(values: List[float], scale: float = 1000.0) -> Dict[str, float]:
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    arr = np.asarray(values) * scale
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max()), "n": int(arr.size)}


@dataclass
class LoopStats:
    ticks: int = 0
    wall_s: float = 0.0
    ik_s: List[float] = field(default_factory=list)
    input_to_command_s: List[float] = field(default_factory=list)
    tick_s: List[float] = field(default_factory=list)
    jitter_s: List[float] = field(default_factory=list)  # realtime only: |tick interval - period|
    overruns: int = 0
    inputs: int = 0
    inputs_rejected: int = 0
    inputs_out_of_order: int = 0
    frames: int = 0
    sink_rejected: int = 0
    ik_failures: int = 0
    gate: Dict[str, int] = field(default_factory=dict)
    hand_tracking_lost: List[Tuple[float, str]] = field(default_factory=list)  # (session time, side) per loss

    def reset(self) -> None:
        """Start counting afresh (each episode); the loop's stages keep this same object."""
        self.__init__()

    def summary(self) -> dict:
        return {
            "ticks": self.ticks,
            "wall_s": self.wall_s,
            "control_hz": self.ticks / self.wall_s if self.wall_s > 0 else math.nan,
            "ik_ms": _percentiles(self.ik_s),
            "input_to_command_ms": _percentiles(self.input_to_command_s),
            "tick_ms": _percentiles(self.tick_s),
            "jitter_ms": _percentiles(self.jitter_s),
            "overruns": self.overruns,
            "inputs": self.inputs,
            "inputs_rejected": self.inputs_rejected,
            "inputs_out_of_order": self.inputs_out_of_order,
            "frames": self.frames,
            "sink_rejected": self.sink_rejected,
            "ik_failures": self.ik_failures,
            "gate": dict(self.gate),
            "hand_tracking_lost": [{"t": t, "side": side} for t, side in self.hand_tracking_lost],
        }
