"""Rolling a trained policy out in simulation: one rollout, or a grid of conditions with held-out seeds.

    result = rollout("policy.pt", Cell("pick_place", "dim", "heavy"), seed=1_000_000, out_dir="eval/episodes")
    results = evaluate("policy.pt", grid(["pick_place"], ["bright", "dim"], ["light", "heavy"]),
                       seeds=range(1_000_000, 1_000_005), out_dir="eval")

The policy drives the ordinary control loop as the command source `policy` (collector.policy.source),
every command through the safety gate; success is the simulator's own task check, as for a scripted
take (`run_episode`: stop once the task has held success for half a second, or at `max_seconds`).
With `out_dir` the rollout is recorded through the normal recorder, so it is an ordinary episode
(operator and control source `policy`, conditions and seed in its metadata) that validate, inspect,
replay and plot read.

Rollouts run in lockstep and are deterministic: the same checkpoint, cell and seed give the same
episode on any machine and under any load. Two things make it so: the policy steps inside the tick
(PolicySource's lockstep path), and cameras are rendered inside the tick that takes them
(`SimBackend(async_render=False)`). With the default off-thread renderer a frame is handed out some
ticks after it was taken, how many depending on how busy the CPU is, so the policy would see older
frames on a loaded machine and act differently.
"""
from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Union

from collector.errors import ConfigError
from collector.policy.assists import Assists
from collector.policy.conditioning import NO_TARGET
from collector.policy.provenance import file_sha256, recording_seeds

if TYPE_CHECKING:  # torch is imported when a rollout is built, so `collector --help` does not pay for it
    from collector.policy.checkpoint import Checkpoint

SOURCE_ID = "policy"  # collector.policy.source.SOURCE_ID: the control stream's name for the policy

CONDITION_KEYS = ("task", "lighting", "weight", "theme")
RESULTS_FILE = "results.json"
HEATMAP_FILE = "heatmap.png"
DEFAULT_MAX_SECONDS = 20.0
# A plan records with seeds plan_seed * 1_000_003 + take number (take_seed, collector/session/runner.py), so
# held-out seeds start where no plan seed below 1000 reaches within 497,000 takes.
DEFAULT_SEED_BASE = 1_000_500_000


@dataclass(frozen=True)
class Cell:
    """One condition of the grid. theme None: the scene's default theme."""

    task: str
    lighting: str
    weight: str
    theme: Optional[str] = None


@dataclass
class RolloutResult:
    cell: Cell
    seed: int
    success: bool
    duration_s: float  # session (sim) seconds
    ticks: int
    metrics: dict  # the task's own measures at the end (collector.sim.tasks)
    conditions: dict  # everything the simulator applied (theme resolved, seed, object layout)
    episode: Optional[Path] = None  # the recorded file, when out_dir was given
    untold: Optional[str] = None  # why the policy could not be told this rollout's task (then it did not run)
    tick_ms: List[float] = field(default_factory=list)  # per control tick in control: what the loop waited
    inference_ms: List[float] = field(default_factory=list)  # per network call

    def timing(self) -> dict:
        from collector.policy.source import percentiles_ms

        return {"tick_ms": percentiles_ms(self.tick_ms), "inference_ms": percentiles_ms(self.inference_ms)}


def load_checkpoint(checkpoint: Union[str, Path, "Checkpoint"]) -> "Checkpoint":
    from collector.policy.checkpoint import Checkpoint

    return checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.load(checkpoint)


class PolicyRollouts:
    """One task's simulated robot with the policy in control, reused for every cell and seed of it
    (building the scene and the loop costs about a second; a cell only resets the sim)."""

    def __init__(self, checkpoint: Union[str, Path, "Checkpoint"], task: str, *, robot="humanoid",
                 theme: Optional[str] = None, config=None, device: str = "cpu", schedule: str = "ensemble",
                 m: float = 0.01, replan: Optional[int] = None, frozen: bool = True,
                 assists: Assists = Assists()):
        from collector.backends.sim import SimBackend
        from collector.policy.runner import PolicyRunner
        from collector.policy.source import PolicySource
        from collector.sim import SimEnv
        from collector.teleop.config import load_teleop_config
        from collector.teleop.rig import build_rig

        self.checkpoint = load_checkpoint(checkpoint)
        self.task = task
        config = config or load_teleop_config()
        env_kwargs = {"theme": theme} if theme else {}
        env = SimEnv(robot=robot, task=task, control_hz=config.control.rate_hz, **env_kwargs)
        backend = SimBackend(env, render=True, async_render=False)  # frames in their own tick: see the module doc
        # What the policy is told comes from the conditions of the rollout being run; until the first
        # one, from the checkpoint's own vocabulary (the scene's initial seed may name an object the
        # policy never learned, which only that rollout's result should report).
        try:
            self._conditions = _known_conditions(self.checkpoint, task)
            runner = PolicyRunner(self.checkpoint, joint_names=list(env.robot.command_joints),
                                  cameras=list(backend.cameras()), schedule=schedule, m=m, replan=replan,
                                  device=device, frozen=frozen, assists=assists)
            self.source = PolicySource(runner, conditions=lambda: self._conditions)
        except BaseException:
            backend.close()
            raise
        # No input device: the operator source never hears from anyone, the policy commands throughout.
        self.rig = build_rig(backend, None, config, endpoint=f"inproc://collector-eval-{os.getpid()}-{id(self)}",
                             bind=True, sources=[self.source], choose=lambda tick: SOURCE_ID)

    @property
    def backend(self):
        return self.rig.backend

    def run(self, cell: Cell, seed: int, *, out_dir=None, max_seconds: float = DEFAULT_MAX_SECONDS,
            name: Optional[str] = None, metadata: Optional[dict] = None) -> RolloutResult:
        if cell.task != self.task:
            raise ConfigError(f"rollout of task {cell.task!r} on the {self.task!r} scene")
        conditions = dict(self.backend.reset(seed=int(seed), lighting=cell.lighting, weight=cell.weight,
                                             theme=cell.theme) or {})
        self._conditions = conditions
        cell = Cell(cell.task, cell.lighting, cell.weight, str(conditions.get("theme") or cell.theme or ""))
        try:
            self.source.reset_instruction()  # an object the policy never learned: say so before recording
        except ConfigError as exc:
            return RolloutResult(cell, int(seed), False, 0.0, 0, {}, conditions, untold=str(exc))
        ticks0, calls0 = len(self.source.tick_ms), len(self.source.runner.inference_ms)
        writer = None
        if out_dir is not None:
            writer = self.rig.recorder(Path(out_dir), name or rollout_name(cell, seed),
                                       self._episode_metadata(cell, conditions, metadata))
        result = None
        path = None
        try:
            result = self.rig.run_episode(max_seconds, sink=writer, seed=int(seed), stop_on_success=True,
                                          realtime=False)
        finally:
            if writer is not None:  # an interrupted rollout is kept too, as "unknown"
                outcome = "unknown" if result is None else ("success" if result.success else "failure")
                path = writer.stop(outcome=outcome)
        return RolloutResult(cell, int(seed), bool(result.success), float(result.duration_s), int(result.ticks),
                             dict(result.metrics), conditions, episode=path,
                             tick_ms=list(self.source.tick_ms[ticks0:]),
                             inference_ms=list(self.source.runner.inference_ms[calls0:]))

    def _episode_metadata(self, cell: Cell, conditions: dict, extra: Optional[dict]) -> dict:
        env = self.backend.env
        checkpoint = self.checkpoint
        return {
            "task": cell.task, "instruction": env.task.instruction, "robot": env.robot.name,
            "robot_model_hash": env.robot.model_hash, "operator": SOURCE_ID, "station": "collector-eval",
            "sim": True, "conditions": conditions, "lighting_preset": cell.lighting, "weight_preset": cell.weight,
            "policy": {"checkpoint": str(checkpoint.path.resolve()) if checkpoint.path else "",
                       "policy": checkpoint.policy, "step": int(checkpoint.step),
                       "conditioned_on": [self.source.task, self.source.target]},
            **(extra or {}),
        }

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.rig.close()

    def __enter__(self) -> "PolicyRollouts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _known_conditions(checkpoint: "Checkpoint", task: str) -> dict:
    """Conditions naming the task and an object the policy knows (a task it does not know: ConfigError)."""
    targets = [t for t in checkpoint.vocabulary.targets if t != NO_TARGET]
    checkpoint.vocabulary.encode(task, targets[0] if targets else NO_TARGET)
    return {"task": task, "object_layout": {"target": targets[0]} if targets else {}}


def rollout_name(cell: Cell, seed: int) -> str:
    parts = [cell.task, cell.lighting, cell.weight] + ([cell.theme] if cell.theme else [])
    return "eval_" + "_".join(parts) + f"_{int(seed):07d}"


def rollout(checkpoint: Union[str, Path, "Checkpoint"], cell: Cell, seed: int, *, out_dir=None,
            max_seconds: float = DEFAULT_MAX_SECONDS, robot="humanoid", config=None, device: str = "cpu",
            schedule: str = "ensemble", name: Optional[str] = None, frozen: bool = True,
            assists: Assists = Assists()) -> RolloutResult:
    """One rollout of a policy in one cell with one seed (builds and closes its own scene; for many,
    use PolicyRollouts or evaluate). A seed whose target object the policy never learned does not
    run: the result says why in `untold` and counts as a failure. A task it never learned, or a
    robot whose joints or cameras do not fit it, is a ConfigError."""
    with PolicyRollouts(checkpoint, cell.task, robot=robot, theme=cell.theme, config=config, device=device,
                        schedule=schedule, frozen=frozen, assists=assists) as rollouts:
        return rollouts.run(cell, seed, out_dir=out_dir, max_seconds=max_seconds, name=name)


# -- a grid of conditions ------------------------------------------------------------------------------
def grid(tasks: Sequence[str], lightings: Sequence[str], weights: Sequence[str],
         themes: Sequence[Optional[str]] = (None,)) -> List[Cell]:
    return [Cell(*values) for values in itertools.product(tasks, lightings, weights, themes)]


def check_held_out(checkpoint: "Checkpoint", seeds: Iterable[int]) -> None:
    """A ConfigError naming any seed that recorded one of the checkpoint's training episodes."""
    used = sorted(recording_seeds(checkpoint.provenance) & {int(s) for s in seeds})
    if used:
        shown = ", ".join(map(str, used[:5])) + (f" and {len(used) - 5} more" if len(used) > 5 else "")
        raise ConfigError(f"seed(s) {shown} recorded the checkpoint's training data; evaluation needs held-out "
                          f"seeds (choose another --seed-base)")


def evaluate(checkpoint: Union[str, Path, "Checkpoint"], cells: Sequence[Cell], seeds: Sequence[int], out_dir=None, *,
             max_seconds: float = DEFAULT_MAX_SECONDS, robot="humanoid", config=None, device: str = "cpu",
             schedule: str = "ensemble", progress=None, frozen: bool = True,
             assists: Assists = Assists()) -> dict:
    """Every cell x every seed; returns the results dict (see `summarize`). With out_dir: the episodes in
    <out_dir>/episodes, and results.json and heatmap.png beside them. progress(result): after each rollout."""
    checkpoint = load_checkpoint(checkpoint)
    seeds = [int(s) for s in seeds]
    if not cells or not seeds:
        raise ConfigError("evaluation needs at least one cell and one seed")
    check_held_out(checkpoint, seeds)
    episodes_dir = Path(out_dir) / "episodes" if out_dir is not None else None
    results: List[RolloutResult] = []
    # One scene per (task, theme): a theme change rebuilds the model, so cells are grouped by both.
    for (task, theme), group in itertools.groupby(sorted(cells, key=_scene_key), key=_scene_key):
        with PolicyRollouts(checkpoint, task, robot=robot, theme=theme, config=config, device=device,
                            schedule=schedule, frozen=frozen, assists=assists) as rollouts:
            network = rollouts.source.runner.network
            for cell in group:
                for seed in seeds:
                    result = rollouts.run(cell, seed, out_dir=episodes_dir, max_seconds=max_seconds)
                    results.append(result)
                    if progress is not None:
                        progress(result)
    summary = summarize(checkpoint, seeds, results)
    summary["network"] = "frozen trace" if network.frozen else f"eager ({network.reason})"
    summary.update(assists.as_dict())
    if out_dir is not None:
        write_results(summary, Path(out_dir))
    return summary


def write_results(results: dict, out_dir: Path) -> Dict[str, Path]:
    """results.json (renamed into place: never half written) and heatmap.png in out_dir."""
    from collector.policy.heatmap import plot_success_heatmap

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    tmp = path.with_name(f".{RESULTS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    return {"results": path, "heatmap": plot_success_heatmap(results, out_dir / HEATMAP_FILE)}


def _scene_key(cell: Cell):
    return cell.task, cell.theme or ""


def _rate(successes: int, rollouts: int) -> dict:
    return {"rollouts": rollouts, "successes": successes,
            "success_rate": round(successes / rollouts, 4) if rollouts else None}


def summarize(checkpoint: "Checkpoint", seeds: Sequence[int], results: Sequence[RolloutResult]) -> dict:
    """The results.json dict: success per cell and per condition value, timing, provenance."""
    from collector.policy.source import percentiles_ms

    cells: Dict[Cell, List[RolloutResult]] = {}
    for r in results:
        cells.setdefault(r.cell, []).append(r)
    by_condition: Dict[str, Dict[str, List[bool]]] = {key: {} for key in CONDITION_KEYS}
    for r in results:
        for key in CONDITION_KEYS:
            by_condition[key].setdefault(getattr(r.cell, key), []).append(r.success)
    successes = sum(r.success for r in results)
    provenance = checkpoint.provenance or {}
    roots = provenance.get("dataset_roots") or provenance.get("sources") or []
    return {
        "checkpoint": str(checkpoint.path.resolve()) if checkpoint.path else "",
        "checkpoint_sha256": file_sha256(checkpoint.path) if checkpoint.path else "",
        "policy": checkpoint.policy,
        "step": int(checkpoint.step),
        "trained_on": {"dataset": roots[0] if len(roots) == 1 else (roots or ""),
                       "episodes": len(provenance.get("episodes") or [])},
        "seeds": list(seeds),
        "cells": [{**{key: getattr(cell, key) for key in CONDITION_KEYS},
                   **_rate(sum(r.success for r in rs), len(rs)),
                   "untold": sum(r.untold is not None for r in rs),
                   "episodes": [r.episode.name for r in rs if r.episode is not None],
                   "seeds": [r.seed for r in rs], "outcomes": [bool(r.success) for r in rs]}
                  for cell, rs in cells.items()],
        "by_condition": {key: {value: _rate(sum(v), len(v)) for value, v in values.items()}
                         for key, values in by_condition.items()},
        "success_rate": round(successes / len(results), 4) if results else None,
        "rollouts": len(results),
        "untold": sum(r.untold is not None for r in results),
        "inference_ms": percentiles_ms([ms for r in results for ms in r.inference_ms]),
        "tick_ms": percentiles_ms([ms for r in results for ms in r.tick_ms]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
