"""Task success of the scripted operator through the full teleop loop, over lighting x weight conditions.

Used by scripts/task_success_rate.py (the full rate) and benchmarks/bench_teleop.py (a seeded subset).
Each episode: SimEnv.reset(seed, lighting, weight) -> run_episode(SimBackend, ScriptedOperator) with
rendering off (lighting changes what cameras see, not the physics the operator acts on).
"""
from __future__ import annotations

import itertools
import multiprocessing
import time
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional, Sequence


@dataclass
class EpisodeJob:
    task: str
    lighting: str
    weight: str
    seed: int


@dataclass
class EpisodeOutcome:
    task: str
    lighting: str
    weight: str
    seed: int
    success: bool
    duration_s: float
    wall_s: float
    metrics: dict
    error: str = ""


def condition_grid(tasks: Sequence[str], lightings: Sequence[str], weights: Sequence[str], repeats: int = 1,
                   base_seed: int = 1000) -> List[EpisodeJob]:
    """Every task x lighting x weight x repeat, each with its own reproducible seed."""
    jobs = []
    for index, (lighting, weight, rep) in enumerate(itertools.product(lightings, weights, range(repeats))):
        for task in tasks:
            jobs.append(EpisodeJob(task, lighting, weight, base_seed + index))
    return jobs


_ENVS: Dict[str, object] = {}


def run_job(job: EpisodeJob, max_duration_s: float = 60.0) -> EpisodeOutcome:
    from collector.errors import CollectorError
    from collector.sim import SimEnv
    from collector.backends.sim import SimBackend
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.scripted import ScriptedOperator
    from collector.teleop.loop import run_episode

    config = load_teleop_config()
    env = _ENVS.get(job.task)
    if env is None:  # one scene per task per process; reset() applies each condition
        env = _ENVS[job.task] = SimEnv(task=job.task, control_hz=config.control.rate_hz, seed=job.seed)
    wall = time.perf_counter()
    try:
        backend = SimBackend(env, render=False)
        backend.reset(seed=job.seed, lighting=job.lighting, weight=job.weight)
        operator = ScriptedOperator(config.devices.scripted)
        result = run_episode(backend, operator, max_duration_s=max_duration_s, seed=job.seed, config=config)
        return EpisodeOutcome(job.task, job.lighting, job.weight, job.seed, bool(result.success),
                              float(result.duration_s), time.perf_counter() - wall, result.metrics)
    except CollectorError as exc:
        return EpisodeOutcome(job.task, job.lighting, job.weight, job.seed, False, 0.0,
                              time.perf_counter() - wall, {}, f"{type(exc).__name__}: {exc}")


def run_jobs(jobs: Iterable[EpisodeJob], workers: int = 1, progress=None) -> List[EpisodeOutcome]:
    jobs = list(jobs)
    if workers <= 1:
        out = []
        for job in jobs:
            out.append(run_job(job))
            if progress:
                progress(out[-1])
        return out
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited GL or ZMQ state
    with ctx.Pool(workers) as pool:
        out = []
        for outcome in pool.imap_unordered(run_job, jobs):
            out.append(outcome)
            if progress:
                progress(outcome)
    return sorted(out, key=lambda o: (o.task, o.lighting, o.weight, o.seed))


def summarise(outcomes: Sequence[EpisodeOutcome]) -> dict:
    """Success rate per task, and per task x condition."""
    summary: Dict[str, dict] = {}
    for o in outcomes:
        task = summary.setdefault(o.task, {"episodes": 0, "successes": 0, "by_lighting": {}, "by_weight": {}})
        task["episodes"] += 1
        task["successes"] += int(o.success)
        for key, value in (("by_lighting", o.lighting), ("by_weight", o.weight)):
            cell = task[key].setdefault(value, [0, 0])
            cell[0] += int(o.success)
            cell[1] += 1
    for task in summary.values():
        task["rate"] = task["successes"] / task["episodes"] if task["episodes"] else 0.0
    return summary


def outcome_dict(o: EpisodeOutcome) -> dict:
    return asdict(o)


def default_presets(lightings: Optional[Sequence[str]] = None, weights: Optional[Sequence[str]] = None):
    from collector.sim import lighting_presets, weight_presets

    return list(lightings or lighting_presets()), list(weights or weight_presets())
