"""Corrected takes without a person: a policy drives, the scripted corrector takes over where it fails.

    with Corrections("policy.pt", "pick_place") as corrections:
        take = corrections.run("dim", "heavy", seed=1_000_500_123, out_dir="corrections/episodes")
    take.success, take.operator_share, take.path

One take is one episode, recorded through the normal loop and recorder: the policy (control source
`policy`) drives from the start under the corrector's deadman; the corrector watches the task and,
when the policy stalls or drifts, presses the takeover button and finishes the task from where the
robot is (collector/teleop/devices/corrector.py). The episode's `control` stream says who commanded
every tick, its `handovers` metadata when control changed hands, `corrector` why. The share of
operator-controlled rows is what HG-DAgger-style training weights (collector.dataset).

Takes run in lockstep with each frame rendered in the tick that takes it, so a checkpoint, condition
and seed give the same take under any CPU load.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from collector.recorder.vocabulary import CONTROL
from collector.teleop.takeover import OPERATOR

DEFAULT_MAX_SECONDS = 40.0  # the policy's share before a takeover plus the corrector's whole plan


@dataclass
class CorrectedTake:
    path: Path
    success: bool  # the simulator's own task check at the end
    operator_share: float  # share of the recorded control rows the operator (the corrector) commanded
    handovers: List[dict]  # [{"t", "from", "to"}], as in the episode's metadata
    reason: Optional[str]  # why the corrector took over; None if the policy did it alone (or failed in time)
    duration_s: float
    metrics: dict = field(default_factory=dict)  # the task's measures at the end


class Corrections:
    """One task's simulated robot, with the policy and the scripted corrector, reused for every take."""

    def __init__(self, checkpoint, task: str, *, robot="humanoid", theme: Optional[str] = None, config=None,
                 corrector=None, device: str = "cpu"):
        """corrector: a CorrectorConfig (when to take over), default the teleop config's devices.corrector."""
        from collector.teleop.config import load_teleop_config
        from collector.teleop.devices.corrector import ScriptedCorrector
        from collector.teleop.rig import build_sim_rig

        config = config or load_teleop_config()
        self.corrector = ScriptedCorrector(corrector or config.devices.corrector)
        env_kwargs = {"theme": theme} if theme else {}
        self.task = task
        self.rig = build_sim_rig(robot=robot, task=task, device=self.corrector, config=config, render=True,
                                 endpoint=f"inproc://collector-corrections-{os.getpid()}-{id(self)}", bind=True,
                                 policy=checkpoint, async_render=False, **env_kwargs)

    def run(self, lighting: str, weight: str, seed: int, out_dir, *, max_seconds: float = DEFAULT_MAX_SECONDS,
            name: Optional[str] = None) -> CorrectedTake:
        backend = self.rig.backend
        conditions = dict(backend.reset(seed=int(seed), lighting=lighting, weight=weight) or {})
        self.rig.takeover.tell()  # an object the policy never learned: one ConfigError, nothing recorded
        env = backend.env
        checkpoint = self.rig.takeover.policy.runner.checkpoint
        writer = self.rig.recorder(Path(out_dir), name or f"corrected_{self.task}_{lighting}_{weight}_{int(seed):07d}", {
            "task": self.task, "instruction": env.task.instruction, "robot": env.robot.name,
            "robot_model_hash": env.robot.model_hash, "operator": self.corrector.name,
            "station": "collector-corrections", "sim": True, "conditions": conditions,
            "lighting_preset": lighting, "weight_preset": weight,
            "policy": {"checkpoint": str(checkpoint.path.resolve()) if checkpoint.path else "",
                       "policy": checkpoint.policy, "step": int(checkpoint.step)},
        })
        result = None
        try:
            result = self.rig.run_episode(max_seconds, sink=writer, seed=int(seed), stop_on_success=True,
                                          realtime=False)
        finally:  # an interrupted take is kept too, as "unknown"
            outcome = "unknown" if result is None else ("success" if result.success else "failure")
            updates = {"handovers": self.rig.handovers()}
            if self.corrector.reason:
                updates["corrector"] = {"reason": self.corrector.reason,
                                        "took_over_at": round(float(self.corrector.took_over_at), 6)}
            path = writer.stop(outcome=outcome, metadata_updates=updates)
        return CorrectedTake(path, bool(result.success), operator_share(path), updates["handovers"],
                             self.corrector.reason, float(result.duration_s), dict(result.metrics))

    def close(self) -> None:
        self.rig.close()

    def __enter__(self) -> "Corrections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def corrected_take(checkpoint, out_dir, *, task: str = "pick_place", lighting: str = "bright",
                   weight: str = "medium", seed: int = 0, max_seconds: float = DEFAULT_MAX_SECONDS,
                   **kwargs) -> CorrectedTake:
    """One corrected take into `out_dir` (builds and closes its own scene; for many, use Corrections)."""
    with Corrections(checkpoint, task, **kwargs) as corrections:
        return corrections.run(lighting, weight, seed, out_dir, max_seconds=max_seconds)


def operator_share(path) -> float:
    """Share of an episode's recorded control ticks that the operator commanded (0 without a control stream)."""
    from collector.recorder import EpisodeReader

    with EpisodeReader(path) as reader:
        if CONTROL not in reader.streams:
            return 0.0
        codes = np.asarray(reader.raw(CONTROL, "source")[:reader.count(CONTROL)])
        code = reader.streams[CONTROL].attrs.get("sources", {}).get(OPERATOR)
    return float(np.mean(codes == code)) if codes.size and code is not None else 0.0
