#!/usr/bin/env python3
"""The learning study: does what collector records teach a robot? (issue 15)

    python benchmarks/bench_learning.py [--quick] [--work DIR] [--train-minutes 25] [--seeds-per-cell 2]

Stages, each cached in the work folder (run again with the same --work and finished stages are
reused: recording resumes its plan, a trained policy or an evaluation already written is read back):
  record   the scripted operator records three demonstration sets with `collector collect`:
           pick_full   pick-and-place over every lighting x weight preset (7 x 3 cells, 5 takes: 105)
           pick_bright pick-and-place under bright light only (3 weight cells x 34 takes: 102)
           pour_full   pour over every lighting x weight preset (21 cells x 5 takes: 105)
           Training uses the first MAX_DEMOS (100) good takes of each set.
           The plans' seeds put every recorded take at seed >= 100 M; evaluation uses 1 M + ...
  views    scene views for the pick-and-place sets (collector.policy.scene_views): STUDY_VIEWS layouts
           at new seeds (5 M + ...) under the set's lighting and weight presets, arm poses from its
           takes, labelled by the simulator; the baselines trained on those sets also fit their
           object head to them (a run without this stage trains on demonstrations alone)
  train    one policy of the study's kind (--policy, default STUDY_POLICY) per set (good takes
           only: outcome success, QA pass), each time-boxed to --train-minutes of wall time, two
           at a time (one torch thread each); plus the other kind on pick_full as its peer
  eval     every policy rolled out in MuJoCo (collector.policy.evaluate: lockstep, the policy as the
           loop's command source through the safety gate, success from the sim's own task check)
           over every lighting x weight preset with held-out seeds (checked against each
           checkpoint's provenance); the pick-and-place baselines with hand steering and the held
           estimate (STUDY_PICK_ASSISTS), as in the corrections
  correct  --correction-rounds rounds (default 1) with the scripted corrector (collector.teleop.devices.
           corrector), when it exists: the full-grid policy acts in --correction-takes-per-cell takes a
           cell (default 2: 42), the corrector takes over where it stalls, drifts or drops the object;
           retrain from scratch on demos + every round's operator rows, evaluate again; the next round
           corrects that policy. Reported as not run otherwise.
  localize the object head's error on the named target, on training takes and held-out rollouts
--quick: 2-4 demos, tiny models trained for seconds, 1 rollout per cell on 2 cells: it checks the
plumbing in a few minutes; its success figures mean nothing (the table says so).
The last line printed is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import collector  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)
from collector.errors import ConfigError  # noqa: E402
from collector.policy.augmentation import STUDY_AUGMENTATION  # noqa: E402
from collector.policy.assists import Assists  # noqa: E402

LIGHTING = ["bright", "dim", "warm", "cool", "side_lit", "back_lit", "low_light"]
WEIGHTS = ["light", "medium", "heavy"]
POUR_INSTRUCTION = "Pour the water from the white pitcher into the orange cup."
EVAL_SEED_BASE = 1_000_000  # far below every plan seed used here (plan seed x 1,000,003 + take)

# What the study trains. Smaller than the ACT defaults: on one CPU core it trains ~3x more samples in
# the same wall time and infers a chunk in ~3 ms (see docs/learning.md, "The study").
STUDY_ACT = {"d_model": 96, "encoder_layers": 2, "feedforward": 256, "dropout": 0.1}
# The baseline with the instruction modulating its CNN (FiLM) and the auxiliary object-position loss
# (docs/learning.md, "Telling the features which object"): in the third run it equalled the plain
# flattened baseline overall (12/42 each) and was the one corrected and trained bright-only. The hand loss
# (the action error measured where it puts the hands) since the tenth run: 50 against 35 of 84 held out
# beside same-session peers without it, which had more steps (docs/learning.md, "Tenth run").
STUDY_BASELINE = {"film": True, "object_loss": 1.0, "hand_loss": 1.0}
STUDY_HYPERPARAMETERS = {"act": STUDY_ACT, "baseline": STUDY_BASELINE}
# Pick-and-place baselines since the eighteenth run also read their hands' positions (ee_to_head) and predict
# where each hand goes relative to the target (hand_offsets), and are rolled out (evaluation and corrections)
# with hand steering and the estimate held while a hand is within 12 cm of it: 145/168 held out against
# 123/168 steered alone, paired p = 0.0005 (docs/learning.md, "Seventeenth run", "Eighteenth run").
STUDY_PICK_BASELINE = {"ee_to_head": True, "hand_offsets": 1.0}
STUDY_PICK_ASSISTS = {"steer_hands": True, "hold_estimate_m": 0.12}
# What a run ships: the moving average of its weights over about the last 1000 steps, since the twelfth run.
# Not a clear gain (200 against the same runs' last-step weights' 196 of 252 paired held-out rollouts), kept
# because it is no worse and the line's latest figures were measured with it (docs/learning.md, "Twelfth run").
STUDY_EMA_DECAY = 0.999
# The kind trained on every set and corrected: the CNN + MLP baseline, which beat the compact ACT in
# both full runs on this CPU budget (19 % and 16.7 % held out against 2.4 % and 4.8 %: docs/learning.md).
STUDY_POLICY = "baseline"
STUDY_IMAGE = (48, 64)
STUDY_AUGMENT = STUDY_AUGMENTATION
# Scene views (collector.policy.scene_views): simulator-labelled frames of new layouts that also train
# the object head of the pick-and-place baselines, `batch` of them a step (docs/learning.md, "Fifth run").
# Seeds from SCENE_VIEW_SEED_BASE: apart from evaluation (1 M + ...), corrections (3 M) and recordings (>= 100 M).
STUDY_VIEWS = {"layouts": 6000, "views": 3, "batch": 16}
QUICK_VIEWS = {"layouts": 6, "views": 2, "batch": 4}
SCENE_VIEW_SEED_BASE = 5_000_000
VIEW_PARTS = 2  # files rendered side by side, one process each
QUICK_ACT = {"d_model": 32, "feedforward": 64, "encoder_layers": 1, "vae_encoder_layers": 1,
             "cnn_channels": [8, 16], "dropout": 0.0}


# -- the demonstration sets -----------------------------------------------------------------------
def demo_sets(quick: bool) -> dict:
    if quick:
        return {
            "pick_full": plan("pick_full", "pick_place", ["bright", "dim"], ["light"], 1, 101),
            "pick_bright": plan("pick_bright", "pick_place", ["bright"], ["light"], 2, 202),
            "pour_full": plan("pour_full", "pour", ["bright"], ["light"], 1, 303),
        }
    return {
        "pick_full": plan("pick_full", "pick_place", LIGHTING, WEIGHTS, 5, 101),
        "pick_bright": plan("pick_bright", "pick_place", ["bright"], WEIGHTS, 34, 202),
        "pour_full": plan("pour_full", "pour", LIGHTING, WEIGHTS, 5, 303),
    }


# The budget: at most 100 demonstrations a policy. The plans ask for a few more takes than
# that (a take can fail); training uses the first MAX_DEMOS good ones.
MAX_DEMOS = 100


def demo_files(folder: Path, limit: int = MAX_DEMOS) -> list:
    """The first `limit` good takes (outcome success, QA pass) of a recorded set, by episode number."""
    from collector.session.catalog import Catalog

    if not (folder / "catalog.sqlite").is_file():  # not recorded (opening a catalogue would create one)
        return []
    rows = [r for r in Catalog(folder / "catalog.sqlite").episodes() if _good(r)]
    return [str(folder / r.path) for r in sorted(rows, key=lambda r: r.path)[:limit]]


def _good(row) -> bool:
    return row.outcome == "success" and row.qa == "pass" and row.status in ("kept", "recovered")


def plan(name, task, lighting, weights, takes, seed) -> dict:
    task_entry = {"name": "pour", "instruction": POUR_INSTRUCTION} if task == "pour" else task
    return {"name": f"study_{name}", "robot": "humanoid", "backend": "sim", "operator": "scripted",
            "scene": "kitchen", "tasks": [task_entry], "lighting": list(lighting), "weights": list(weights),
            "takes_per_cell": takes, "max_attempts_per_cell": takes + max(2, takes // 4),
            "episode_time_limit_s": 20, "order": "balanced", "seed": seed, "reset": "auto", "outcome": "auto"}


def record(work: Path, name: str, spec: dict) -> dict:
    """Record (or resume) one set with `collector collect`; the good takes it holds."""
    import yaml

    plans = work / "plans"
    plans.mkdir(parents=True, exist_ok=True)
    plan_file = plans / f"{name}.yaml"
    plan_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = work / "data" / name
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(plan_file), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_learning: recording {name} failed: {done.stderr.strip()[-400:]}")
    return {"set": name, "good": good_takes(out), "record_s": round(time.perf_counter() - started, 1)}


def good_takes(folder: Path) -> int:
    from collector.session.catalog import Catalog

    return sum(1 for r in Catalog(folder / "catalog.sqlite").episodes() if _good(r))


# -- training ---------------------------------------------------------------------------------------
def peer_of(kind: str) -> str:
    return "baseline" if kind == "act" else "act"


# -- scene views ------------------------------------------------------------------------------------
def view_sets(quick: bool) -> list:
    """The demonstration sets whose policies also learn from scene views: the pick-and-place ones (their
    object heads name the target; the views share each set's lighting and weight presets)."""
    return [name for name, spec in demo_sets(quick).items() if spec["tasks"] == ["pick_place"]]


def view_files(work: Path, name: str) -> list:
    return [work / "views" / f"{name}_{k}.h5" for k in range(VIEW_PARTS)]


def render_views(work: Path, quick: bool, name: str, parallel: int) -> dict:
    """The set's scene views (its plan's lighting x weight presets, arm poses from its training takes),
    rendered in VIEW_PARTS files side by side; cached (files already there are kept)."""
    settings = QUICK_VIEWS if quick else STUDY_VIEWS
    spec = demo_sets(quick)[name]
    files = view_files(work, name)
    base = SCENE_VIEW_SEED_BASE + 1_000_000 * view_sets(quick).index(name)
    per_part = -(-settings["layouts"] // VIEW_PARTS)
    parts = [{"out": str(f), "seeds": [base + k * per_part, base + min((k + 1) * per_part, settings["layouts"])],
              "lighting": spec["lighting"], "weights": spec["weights"], "views": settings["views"],
              "image": (24, 32) if quick else STUDY_IMAGE, "poses_from": demo_files(work / "data" / name) or
              [str(work / "data" / name)], "targets": named_objects(work / "data" / name)} for k, f in enumerate(files)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(_render_views_part, [p for p in parts if not Path(p["out"]).exists()]))
    import h5py

    views = 0
    for f in files:  # layouts naming an object the takes do not are skipped: count what is there
        with h5py.File(f, "r") as h5:
            views += len(h5["seed"])
    return {"set": name, "seeds": settings["layouts"], "views": views, "render_s": round(time.perf_counter() - started, 1)}


def named_objects(folder: Path) -> list:
    """The objects the set's training takes name: views may name no other (the policy is told only of these)."""
    from collector.dataset.episode import AlignedEpisode
    from collector.policy.conditioning import episode_conditioning

    names = set()
    for path in demo_files(folder):
        with AlignedEpisode(path) as take:
            names.add(episode_conditioning(take.metadata)[1])
    return sorted(names)


def _render_views_part(part: dict) -> None:
    from collector.policy.scene_views import recorded_poses, render_scene_views

    render_scene_views(part["out"], task="pick_place", seeds=range(*part["seeds"]), lighting=part["lighting"],
                       weights=part["weights"], image_size=part["image"], views_per_layout=part["views"],
                       poses=recorded_poses(part["poses_from"]), targets=part["targets"])


def train_jobs(work: Path, quick: bool, minutes: float, policy: str = STUDY_POLICY) -> list:
    limit = 20.0 if quick else minutes * 60.0
    image = (24, 32) if quick else STUDY_IMAGE
    common = {"time_limit_s": limit, "image_size": image, "augment": STUDY_AUGMENT, "chunk": 10 if quick else 30,
              "steps": 40 if quick else 1_000_000, "filters": {"outcome": ["success"], "qa": ["pass"]},
              "ema_decay": STUDY_EMA_DECAY}

    def job(kind: str, data: str) -> dict:
        hyperparameters = QUICK_ACT if quick and kind == "act" else STUDY_HYPERPARAMETERS[kind]
        if kind == "baseline" and data.startswith("pick"):
            hyperparameters = {**hyperparameters, **STUDY_PICK_BASELINE}
        return {"name": f"{kind}_{data}", "set": data, "policy": kind, "hyperparameters": hyperparameters, **common}

    jobs = [job(policy, "pick_full"), job(policy, "pick_bright"), job(policy, "pour_full")]
    if not quick:
        jobs.append(job(peer_of(policy), "pick_full"))
    for job in jobs:
        folder = work / "data" / job.pop("set")
        if quick:
            job["sources"] = [str(folder)]
        else:  # the files are the catalogue's good takes already: no filter on top
            job["sources"], job["filters"] = demo_files(folder), {}
        job["out"] = str(work / "policies" / f"{job['name']}.pt")
        # rendered by the views stage (a run without it trains on the demonstrations alone)
        if job["policy"] == "baseline" and all(f.exists() for f in view_files(work, folder.name)):
            job["scene_views"] = [str(f) for f in view_files(work, folder.name)]
            job["scene_batch"] = (QUICK_VIEWS if quick else STUDY_VIEWS)["batch"]
    return jobs


def train_one(job: dict) -> dict:
    """One training run in its own process (one torch thread); cached as <out>.json."""
    import torch

    from collector.policy.checkpoint import Checkpoint
    from collector.policy.train import TrainConfig, train

    torch.set_num_threads(1)
    summary_file = Path(job["out"]).with_suffix(".json")
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    Path(job["out"]).parent.mkdir(parents=True, exist_ok=True)
    name = job["name"]
    config = TrainConfig(**{k: v for k, v in job.items() if k != "name"}, progress=False, checkpoint_every=500)
    cpu_started = time.process_time()
    result = train(config)
    # the box is wall time; on a shared machine the CPU time says how much training it really got
    summary = {"name": name, **result.summary(), "cpu_s": round(time.process_time() - cpu_started, 1),
               "episodes": len(result_episodes(result.checkpoint)),
               "time_limit_s": job["time_limit_s"], "ema_decay": job.get("ema_decay", 0.0),
               "hyperparameters": job["hyperparameters"],
               "image_size": list(job["image_size"]), "augment": job["augment"],
               "scene_views": (Checkpoint.load(result.checkpoint).provenance.get("scene_views") or {}).get("views", 0)}
    summary_file.write_text(json.dumps(summary, indent=1))
    return summary


def result_episodes(checkpoint) -> list:
    from collector.policy.checkpoint import Checkpoint

    return list((Checkpoint.load(checkpoint).provenance or {}).get("episodes") or [])


# -- evaluation -------------------------------------------------------------------------------------
def eval_jobs(work: Path, quick: bool, seeds_per_cell: int, names) -> list:
    jobs = []
    for name in names:
        task = "pour" if "pour" in name else "pick_place"
        lighting, weights = (["bright", "dim"], ["light"]) if quick else (LIGHTING, WEIGHTS)
        jobs.append({"name": name, "checkpoint": str(work / "policies" / f"{name}.pt"), "task": task,
                     "lighting": lighting, "weights": weights, "seeds_per_cell": 1 if quick else seeds_per_cell,
                     "max_seconds": (6.0 if quick else 14.0) if task == "pick_place" else (8.0 if quick else 16.0),
                     "out": str(work / "eval" / f"{name}.json"),
                     **(STUDY_PICK_ASSISTS if name.startswith("baseline_pick") else {}),
                     # every rollout kept as an ordinary episode: inspect/replay it, and `localization` reads it
                     "episodes": str(work / "eval" / name)})
    return jobs


def evaluate_one(job: dict) -> dict:
    """Every lighting x weight cell with its own held-out seeds; cached as the job's JSON."""
    import torch

    from collector.policy.evaluate import Cell, PolicyRollouts, check_held_out, load_checkpoint

    torch.set_num_threads(1)
    out = Path(job["out"])
    if out.exists():
        return json.loads(out.read_text())
    checkpoint = load_checkpoint(job["checkpoint"])
    cells = [Cell(job["task"], lighting, weight) for lighting in job["lighting"] for weight in job["weights"]]
    # a cell's seeds differ from every other cell's, so each rollout is a new layout
    seeded = [(cell, job.get("seed_base", EVAL_SEED_BASE) + 1000 * i + j) for i, cell in enumerate(cells)
              for j in range(job["seeds_per_cell"])]
    check_held_out(checkpoint, [seed for _, seed in seeded])
    rows, tick_ms, inference_ms = [], [], []
    started = time.perf_counter()
    schedule = {k: job[k] for k in ("schedule", "m", "replan") if k in job}  # else the runner's defaults
    assists = Assists(**{k: job[k] for k in ("grasp_gate_m", "steer_hands", "hold_estimate_m") if k in job})
    with PolicyRollouts(checkpoint, job["task"], assists=assists, **schedule) as rollouts:
        for cell, seed in seeded:
            result = rollouts.run(cell, seed, max_seconds=job["max_seconds"], out_dir=job.get("episodes"))
            rows.append({"lighting": cell.lighting, "weight": cell.weight, "seed": seed,
                         "success": bool(result.success),
                         "duration_s": round(result.duration_s, 2), "untold": result.untold,
                         "target": (result.conditions.get("object_layout") or {}).get("target")})
            tick_ms += result.tick_ms
            inference_ms += result.inference_ms
        network = rollouts.source.runner.network
    summary = {"name": job["name"], "checkpoint": job["checkpoint"], "step": int(checkpoint.step), "task": job["task"],
               "rollouts": rows, "success": rate([r["success"] for r in rows]),
               "by_lighting": by_key(rows, "lighting"), "by_weight": by_key(rows, "weight"),
               "by_target": by_key(rows, "target"),
               "inference_ms": percentiles(inference_ms), "tick_ms": percentiles(tick_ms),
               "network": "frozen trace" if network.frozen else f"eager ({network.reason})",
               **assists.as_dict(),
               "eval_s": round(time.perf_counter() - started, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    return summary


def rate(values) -> float:
    return round(float(np.mean(values)), 4) if len(values) else math.nan


def by_key(rows, key) -> dict:
    groups = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row["success"])
    return {k: rate(v) for k, v in groups.items()}


def percentiles(values) -> dict:
    if not values:
        return {"p50": math.nan, "p99": math.nan, "n": 0}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "n": len(values)}


# -- corrections ------------------------------------------------------------------------------------
CORRECTION_SEED_BASE = 3_000_000  # apart from the evaluation seeds (1 M + ...) and the recordings (>= 100 M)


def corrections_available() -> bool:
    try:
        import collector.teleop.corrected_take  # noqa: F401
    except ImportError:
        return False
    return True


CORRECTION_ROUND_SEEDS = 100  # round k takes seeds CORRECTION_SEED_BASE + 100 (k - 1) + i


def correction_folder(work: Path, round_: int) -> Path:
    return work / ("corrections" if round_ == 1 else f"corrections{round_}")  # round 1: the earlier runs' name


def corrected_name(policy: str, round_: int) -> str:
    return f"{policy}_pick_corrected" + ("" if round_ == 1 else str(round_))


def collect_corrections(work: Path, quick: bool, checkpoint: str, round_: int = 1, takes_per_cell: int = 2) -> dict:
    """The policy acts in every lighting x weight cell (takes_per_cell takes each, seeds no other round,
    recording or evaluation uses) and the scripted corrector takes over where it stalls, drifts or drops
    the object; cached as the round's summary.json."""
    import torch

    from collector.teleop.config import load_teleop_config
    from collector.teleop.corrected_take import Corrections

    torch.set_num_threads(1)
    folder = correction_folder(work, round_)
    summary_file = folder / "summary.json"
    if summary_file.exists():
        return json.loads(summary_file.read_text())
    lighting, weights = (["bright"], ["light"]) if quick else (LIGHTING, WEIGHTS)
    cells = [(light, weight) for light in lighting for weight in weights for _ in range(1 if quick else takes_per_cell)]
    if len(cells) > CORRECTION_ROUND_SEEDS:
        raise SystemExit(f"bench_learning: {len(cells)} correction takes a round, more than the "
                         f"{CORRECTION_ROUND_SEEDS} seeds a round has")
    first = CORRECTION_SEED_BASE + CORRECTION_ROUND_SEEDS * (round_ - 1)
    seeds = iter(range(first, first + CORRECTION_ROUND_SEEDS))
    takes, skipped = [], []
    started = time.perf_counter()
    config = load_teleop_config(overrides={"policy": {  # the assists the study evaluates its pick policies with
        "steer_hands": STUDY_PICK_ASSISTS["steer_hands"], "hold_estimate_mm": STUDY_PICK_ASSISTS["hold_estimate_m"] * 1e3}}
    ) if Path(checkpoint).stem.startswith("baseline_pick") else None
    with Corrections(checkpoint, "pick_place", config=config) as corrections:
        for light, weight in cells:
            for seed in seeds:
                try:
                    take = corrections.run(light, weight, seed=seed, out_dir=folder / "episodes",
                                           max_seconds=20.0 if quick else 40.0)
                    break
                except ConfigError:  # --quick's two demonstrations name only some of the objects
                    if not quick:
                        raise
                    skipped.append(seed)
            else:
                raise SystemExit(f"bench_learning: correction round {round_} ran out of seeds "
                                 f"({first}-{first + CORRECTION_ROUND_SEEDS - 1})")
            takes.append(take_row(light, weight, seed, take))
    summary = {"round": round_, "policy": Path(checkpoint).stem, "skipped_seeds": skipped,
               **corrections_summary(takes, started)}
    folder.mkdir(parents=True, exist_ok=True)
    summary_file.write_text(json.dumps(summary, indent=1))
    return summary


def take_row(lighting: str, weight: str, seed: int, take) -> dict:
    return {"lighting": lighting, "weight": weight, "seed": seed, "success": take.success,
            "operator_share": round(take.operator_share, 4), "reason": take.reason,
            "duration_s": round(take.duration_s, 2)}


def corrections_summary(takes: list, started: float) -> dict:
    """A round's figures: successes, the takes the policy finished alone (no takeover), the operator's share of rows."""
    return {"takes": takes, "succeeded": sum(t["success"] for t in takes),
            "policy_alone": sum(t["success"] and t["reason"] is None for t in takes),
            "operator_row_share": rate([t["operator_share"] for t in takes]),
            "taken_over": sum(t["reason"] is not None for t in takes),
            "wall_s": round(time.perf_counter() - started, 1)}


def corrected_job(work: Path, quick: bool, minutes: float, policy: str = STUDY_POLICY, round_: int = 1) -> dict:
    """Retrain from scratch on the demonstrations plus the operator rows of every correction round so
    far (HG-DAgger: the rows the policy commanded before a takeover are its own mistakes, not teaching)."""
    job = dict(next(j for j in train_jobs(work, quick, minutes, policy) if j["name"] == f"{policy}_pick_full"))
    name = corrected_name(policy, round_)
    job.update(name=name, out=str(work / "policies" / f"{name}.pt"),
               sources=job["sources"] + [str(correction_folder(work, k) / "episodes") for k in range(1, round_ + 1)],
               filters={"outcome": ["success"]}, control=["operator"])  # the corrections folder has no QA catalogue
    return job


# -- what the policy sees: its object head on training takes against held-out rollouts -----------------
def localization(checkpoint: str, training_files, heldout_files) -> dict:
    """For a baseline with an object head: how far, in mm, its estimate of the named target is from where
    the simulator put it, at the first frame (objects at rest, arm at home) of its training takes and
    of held-out rollouts. A gap between the two says the features learned the layouts they saw rather
    than where an object is; small errors on both put the limit after perception."""
    import torch

    from collector.dataset.episode import AlignedEpisode
    from collector.policy.object_targets import episode_object_targets, object_names, target_statistics
    from collector.policy.runner import PolicyRunner

    torch.set_num_threads(1)
    runner = PolicyRunner(checkpoint)
    cameras = runner.checkpoint.spec.cameras

    def error_mm(episode, truth) -> Optional[float]:
        if not truth["mask"][0, :3].all():
            return None
        runner.reset(episode.metadata["instruction"])
        estimate = runner.estimate_objects({"qpos": episode.read("observations/qpos")[0],
                                            "images": {c: episode.images(c, [0])[0] for c in cameras}})
        target = estimate[:3] * stats["std"][:3] + stats["mean"][:3]
        return round(float(np.linalg.norm(target - truth["value"][0, :3])) * 1e3, 1)

    def kept(errors: dict) -> dict:
        return {name: e for name, e in errors.items() if e is not None}

    with contextlib.ExitStack() as stack:  # the training takes opened once: statistics, then their errors
        training = [stack.enter_context(AlignedEpisode(f)) for f in training_files]
        names = object_names(training)
        truths = [episode_object_targets(e, names) for e in training]
        stats = target_statistics(truths)
        trained = kept({Path(f).stem: error_mm(e, t) for f, e, t in zip(training_files, training, truths)})
    heldout = {}
    for f in heldout_files:
        with AlignedEpisode(f) as episode:
            heldout[Path(f).stem] = error_mm(episode, episode_object_targets(episode, names))
    heldout = kept(heldout)

    def describe(by_file: dict) -> dict:
        v = np.asarray(list(by_file.values()))
        return {"n": len(v), "mean_mm": round(float(v.mean()), 1), "p50_mm": round(float(np.median(v)), 1),
                "p90_mm": round(float(np.percentile(v, 90)), 1)} if len(v) else {"n": 0}

    return {"training": describe(trained), "heldout": describe(heldout), "heldout_mm": heldout}


# -- the report -------------------------------------------------------------------------------------
def print_table(recorded, trained, evaluated, quick):
    print("\n== demonstrations (good takes: success + QA pass)")
    for r in recorded:
        print(f"  {r['set']:<12} {r['good']:>4}   recorded in {r['record_s']} s")
    print("\n== training (one torch thread each)")
    print(f"  {'policy':<26} {'episodes':>8} {'views':>6} {'steps':>7} {'wall s':>8} {'samples/s':>9} {'final L1':>9}")
    for t in trained:
        print(f"  {t['name']:<26} {t['episodes']:>8} {t.get('scene_views', 0):>6} {t['steps']:>7} {t['wall_s']:>8.0f} "
              f"{t['samples_per_s']:>9.1f} {t.get('final_l1', math.nan):>9.4f}")
    print("\n== held-out success (seeds never recorded), per lighting preset")
    names = list(evaluated)
    w = max([20] + [len(n) + 2 for n in names])  # a column as wide as the longest policy name
    print(f"  {'lighting':<10}" + "".join(f"{n:>{w}}" for n in names))
    for lighting in LIGHTING:
        cells = [evaluated[n]["by_lighting"].get(lighting) for n in names]
        if all(c is None for c in cells):
            continue
        print(f"  {lighting:<10}" + "".join(f"{'-' if c is None else f'{c:.0%}':>{w}}" for c in cells))
    print(f"  {'per weight':<10}")
    for weight in WEIGHTS:
        cells = [evaluated[n]["by_weight"].get(weight) for n in names]
        if all(c is None for c in cells):
            continue
        print(f"  {weight:<10}" + "".join(f"{'-' if c is None else f'{c:.0%}':>{w}}" for c in cells))
    print(f"  {'overall':<10}" + "".join(f"{evaluated[n]['success']:>{w}.0%}" for n in names))
    print(f"  {'rollouts':<10}" + "".join(f"{len(evaluated[n]['rollouts']):>{w}}" for n in names))
    print(f"  {'infer p99':<10}" + "".join(f"{evaluated[n]['inference_ms']['p99']:>{w - 3}.2f} ms" for n in names))
    if quick:
        print("\n--quick: tiny demo sets and seconds of training: the success figures above mean nothing; "
              "this run only checks the plumbing.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="plumbing check in a few minutes")
    parser.add_argument("--work", help="work folder (reused: finished stages are read back); default a temp folder")
    parser.add_argument("--train-minutes", type=float, default=25.0, help="wall-time box per training run")
    parser.add_argument("--seeds-per-cell", type=int, default=2, help="held-out rollouts per lighting x weight cell")
    parser.add_argument("--parallel", type=int, default=2, help="training/evaluation processes at once")
    parser.add_argument("--stages", default="record,views,train,eval,correct,localize")
    parser.add_argument("--correction-rounds", type=int, default=1,
                        help="rounds of corrected takes, each on the previous round's retrained policy")
    parser.add_argument("--correction-takes-per-cell", type=int, default=2,
                        help="corrected takes per lighting x weight cell a round (--quick: 1)")
    parser.add_argument("--policy", choices=sorted(STUDY_HYPERPARAMETERS), default=STUDY_POLICY,
                        help=f"the kind trained on every set (default {STUDY_POLICY}); the other is trained on "
                             "pick_full as its peer")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    if args.correction_rounds < 1 or args.correction_takes_per_cell < 1:
        parser.error("--correction-rounds and --correction-takes-per-cell must be at least 1")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_learning_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("COLLECTOR_CACHE", str(work / "cache"))
    started = time.perf_counter()

    recorded = [record(work, name, spec) for name, spec in demo_sets(args.quick).items()] if "record" in stages \
        else [{"set": n, "good": good_takes(work / "data" / n), "record_s": 0.0} for n in demo_sets(args.quick)]
    kind = args.policy
    rendered = [render_views(work, args.quick, name, args.parallel) for name in view_sets(args.quick)] \
        if "views" in stages and kind == "baseline" else []
    jobs = train_jobs(work, args.quick, args.train_minutes, kind)
    trained = []
    if "train" in stages:
        with ProcessPoolExecutor(max_workers=args.parallel) as pool:
            trained = list(pool.map(train_one, jobs))
    evaluated = {}
    if "eval" in stages:
        ejobs = eval_jobs(work, args.quick, args.seeds_per_cell, [j["name"] for j in jobs])
        with ProcessPoolExecutor(max_workers=args.parallel) as pool:
            evaluated = {e["name"]: e for e in pool.map(evaluate_one, ejobs)}
    correction = {"run": False, "why": "stage not selected" if "correct" not in stages
                  else "collector.teleop.corrected_take is not there" if not corrections_available()
                  else f"no evaluation of {kind}_pick_full to correct"}
    rounds = []
    if "correct" in stages and corrections_available() and f"{kind}_pick_full" in evaluated:
        acting = str(work / "policies" / f"{kind}_pick_full.pt")
        for round_ in range(1, args.correction_rounds + 1):  # each round corrects the previous round's policy
            summary = collect_corrections(work, args.quick, acting, round_, args.correction_takes_per_cell)
            job = corrected_job(work, args.quick, args.train_minutes, kind, round_)
            trained.append(train_one(job))
            evaluated[job["name"]] = evaluate_one(eval_jobs(work, args.quick, args.seeds_per_cell, [job["name"]])[0])
            rounds.append({**{k: v for k, v in summary.items() if k != "takes"},
                           "success_after": evaluated[job["name"]]["success"]})
            acting = job["out"]
        correction = {"run": True, **rounds[0]}

    from collector.policy.checkpoint import Checkpoint

    localized = {}
    if "localize" in stages:  # what each policy with an object head sees, on its training takes and held out
        for name, e in evaluated.items():
            checkpoint = work / "policies" / f"{name}.pt"
            if e["task"] != "pick_place" or not float(Checkpoint.load(checkpoint).hyperparameters.get("object_loss", 0)):
                continue
            heldout = sorted(Path(e.get("episodes") or work / "eval" / name).glob("*.hdf5"))
            localized[name] = localization(str(checkpoint), [r["path"] for r in result_episodes(checkpoint)], heldout)
            print(f"localization {name}: " + json.dumps({k: v for k, v in localized[name].items() if k != "heldout_mm"}))

    print_table(recorded, trained, evaluated, args.quick)
    pick, bright, pour = (evaluated.get(f"{kind}_{n}", {}) for n in ("pick_full", "pick_bright", "pour_full"))
    corrected = evaluated.get(corrected_name(kind, len(rounds)), {}) if rounds else {}  # the last round's policy
    peer = peer_of(kind)
    main_train = next((t for t in trained if t["name"] == f"{kind}_pick_full"), {})
    summary = {
        "quick": args.quick, "work": str(work),
        "demos": {r["set"]: r["good"] for r in recorded},
        "scene_views": {r["set"]: r["views"] for r in rendered},
        "pick_success_heldout": pick.get("success"), "pour_success_heldout": pour.get("success"),
        "pick_bright_only_success_heldout": bright.get("success"),
        "policy": kind, f"{peer}_pick_success_heldout": evaluated.get(f"{peer}_pick_full", {}).get("success"),
        "train_s": {t["name"]: t["wall_s"] for t in trained},
        "train_steps": {t["name"]: t["steps"] for t in trained},
        "samples_per_s": {t["name"]: t["samples_per_s"] for t in trained},
        "inference_p50_ms": pick.get("inference_ms", {}).get("p50"),
        "inference_p99_ms": pick.get("inference_ms", {}).get("p99"),
        "tick_p99_ms_lockstep": pick.get("tick_ms", {}).get("p99"),
        "success_by_lighting_full": pick.get("by_lighting"),
        "success_by_lighting_bright_only": bright.get("by_lighting"),
        "success_by_weight_full": pick.get("by_weight"), "success_by_weight_bright_only": bright.get("by_weight"),
        "pour_success_by_lighting": pour.get("by_lighting"),
        "success_after_corrections": corrected.get("success"),
        "success_by_lighting_after_corrections": corrected.get("by_lighting"),
        "operator_row_share_in_corrections": correction.get("operator_row_share"),
        "corrections": correction,
        "success_by_correction_round": [r["success_after"] for r in rounds],
        "corrections_by_round": rounds,
        "rollouts": {n: len(e["rollouts"]) for n, e in evaluated.items()},
        "target_estimate_error_mm": {n: {"training": v["training"], "heldout": v["heldout"]} for n, v in localized.items()},
        "main_policy_steps": main_train.get("steps"),
        "wall_s": round(time.perf_counter() - started, 1),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],  # timings move with the machine's load
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
