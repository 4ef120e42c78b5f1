#!/usr/bin/env python3
"""Benchmark the dexterous hands (robots/humanoid_dex, issue 16).

    python benchmarks/bench_hands.py [--quick] [--repeats N] [--workers N]

Phases:
  success   the scripted operator with the dexterous hands (grasp synergies through the same input path
            a controller uses: trigger amount + thumbstick synergy choice) over lighting x weight, through
            the full teleop loop (SimBackend, rendering off: lighting changes what the cameras see, not the
            physics): pick-and-place and pour success rates (--quick: 2 conditions per task); then the
            same takes with the operator's hands as tracked skeletons through the retargeter (the VR
            bridge's path) instead of controller triggers (pick_success_hand_tracking, ...).
  retarget  hand tracking -> finger joints (collector/teleop/hand_retarget.py), both hands: a 60 s stream
            (--quick: 15 s) at 90 Hz touring the named poses (open, fist, pinch, point, thumbs-up) with 2 mm
            tracking noise and a turning wrist: time per tick for both hands (p50/p99), fingertip error after
            scaling (mean/p95 mm: on the settled test poses, and over the stream), finger joint jerk with and
            without the smoothing; --mink adds the alternative (mink FrameTasks on the full MuJoCo model).
The last line printed is one JSON object; keys: retarget_p99_ms, fingertip_error_mean_mm, pick_success,
pour_success (+ their episode counts, per-condition cells and the other figures above).
--retarget-only skips the success phase (pick_success/pour_success are then null).
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import collector  # noqa: E402,F401  (sets MUJOCO_GL before anything imports mujoco)

ROBOT = "humanoid_dex"
SUCCESS_GOALS = {"pick_place": 0.90, "pour": 0.70}
_ENVS: Dict[str, object] = {}


def run_dex_episode(job: tuple, max_duration_s: float = 40.0) -> dict:
    """One scripted take with the dexterous hands: job = (task, lighting, weight, seed[, hand_tracking]).
    hand_tracking: the operator's hands as 25-joint skeletons through the fingertip retargeter (what the VR
    bridge delivers) instead of controller triggers driving the synergies."""
    from collector.backends.sim import SimBackend
    from collector.sim import SimEnv
    from collector.teleop.config import load_teleop_config
    from collector.teleop.devices.scripted import ScriptedOperator
    from collector.teleop.loop import run_episode

    task, lighting, weight, seed, *rest = job
    hand_tracking = bool(rest and rest[0])
    config = load_teleop_config()
    env = _ENVS.get(task)
    if env is None:  # one scene per task per process; reset() applies each condition
        env = _ENVS[task] = SimEnv(robot=ROBOT, task=task, control_hz=config.control.rate_hz, seed=seed)
    backend = SimBackend(env, render=False)
    backend.reset(seed=seed, lighting=lighting, weight=weight)
    wall = time.perf_counter()
    result = run_episode(backend, ScriptedOperator(config.devices.scripted, hand_tracking=hand_tracking),
                         max_duration_s=max_duration_s,
                         seed=seed, config=config)
    return {"task": task, "lighting": lighting, "weight": weight, "seed": seed, "success": bool(result.success),
            "sim_s": round(result.duration_s, 2), "wall_s": round(time.perf_counter() - wall, 2)}


def scripted_dex_success(tasks: Sequence[str] = ("pick_place", "pour"), lightings: Sequence[str] = (),
                         weights: Sequence[str] = (), repeats: int = 1, base_seed: int = 3000,
                         workers: int = 1, progress=None, hand_tracking: bool = False) -> dict:
    """Success of the scripted dexterous operator over lighting x weight x repeats, per task:
    {"pick_success": rate, "pour_success": rate, "episodes": {...}, "cells": {task: {"lighting/weight": [ok, n]}},
     "per_weight": {task: {weight: [ok, n]}}}."""
    from collector.sim import lighting_presets, weight_presets

    lightings = list(lightings or lighting_presets())
    weights = list(weights or weight_presets())
    jobs = [(task, lighting, weight, base_seed + index, hand_tracking)
            for index, (lighting, weight, _) in enumerate(itertools.product(lightings, weights, range(repeats)))
            for task in tasks]
    outcomes: List[dict] = []
    if workers <= 1:
        for job in jobs:
            outcomes.append(run_dex_episode(job))
            if progress:
                progress(outcomes[-1])
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for outcome in pool.imap_unordered(run_dex_episode, jobs):
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
    summary: dict = {"episodes": {}, "cells": {}, "per_weight": {}}
    for task in tasks:
        mine = [o for o in outcomes if o["task"] == task]
        key = "pick_success" if task == "pick_place" else f"{task}_success"
        summary[key] = round(sum(o["success"] for o in mine) / len(mine), 4) if mine else None
        summary["episodes"][task] = len(mine)
        cells: Dict[str, list] = {}
        for o in mine:
            cell = cells.setdefault(f"{o['lighting']}/{o['weight']}", [0, 0])
            cell[0] += int(o["success"])
            cell[1] += 1
        summary["cells"][task] = cells
        per_weight: Dict[str, list] = {}
        for o in mine:  # lighting does not enter the physics (rendering off): the weight is the condition that matters
            tally = per_weight.setdefault(o["weight"], [0, 0])
            tally[0] += int(o["success"])
            tally[1] += 1
        summary["per_weight"][task] = per_weight
    return summary


# --- retargeting (hand tracking -> finger joints; collector/teleop/hand_retarget.py) -------------------

RETARGET_HZ = 90.0   # WebXR hand-tracking rate
_TOUR = ("open", "fist", "open", "pinch", "open", "point", "thumbs_up", "open")


def retarget_stream(seconds: float, noise_m: float = 0.002, seed: int = 0):
    """Both hands touring the named poses (1 s minimum-jerk transitions, 0.5 s holds) with tracking noise
    and a slowly turning wrist: [(right, left, held)] at RETARGET_HZ; `held` marks settled hold frames."""
    import numpy as np

    from collector.teleop.hand_poses import hand_skeleton
    from collector.teleop.transforms import axis_angle_quat, minimum_jerk, quat_to_mat

    rng = np.random.default_rng(seed)
    frames, n = [], int(seconds * RETARGET_HZ)
    for i in range(n):
        t = i / RETARGET_HZ
        leg, phase = divmod(t, 1.5)
        pose, towards = _TOUR[int(leg) % len(_TOUR)], _TOUR[(int(leg) + 1) % len(_TOUR)]
        amount = minimum_jerk(min(1.0, phase / 1.0))
        held = phase > 1.25
        wrist = quat_to_mat(axis_angle_quat(np.array([0.3, 1.0, 0.2]), 0.6 * np.sin(0.4 * t)))
        pair = []
        for side, x in (("right", 0.2), ("left", -0.2)):
            rotation = wrist if side == "right" else np.diag([-1, 1, 1]) @ wrist @ np.diag([-1, 1, 1])
            pair.append(hand_skeleton(side, pose, towards=towards, amount=amount, wrist_position=(x, 1.1, -0.35),
                                      wrist_rotation=rotation, noise_m=noise_m, rng=rng))
        frames.append((pair[0], pair[1], held))
    return frames


def _run_stream(retargeter, frames):
    import numpy as np

    times, cpu_times, errors, held_errors, outputs = [], [], [], [], []
    for right, left, held in frames:
        start, cpu_start = time.perf_counter(), time.thread_time()
        q_right = retargeter.solve("right", right)
        q_left = retargeter.solve("left", left)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
        residual = np.concatenate([retargeter.residual["right"], retargeter.residual["left"]])
        errors.append(residual)
        if held:
            held_errors.append(residual)
        outputs.append(np.concatenate([q_right, q_left]))
    return np.array(times), np.array(cpu_times), np.array(errors), np.array(held_errors), np.array(outputs)


def _jerk_rms(outputs) -> float:
    """RMS of the finger joint targets' third derivative (rad/s^3), by finite differences at RETARGET_HZ."""
    import numpy as np

    jerk = np.diff(outputs, n=3, axis=0) * RETARGET_HZ ** 3
    return float(np.sqrt(np.mean(jerk ** 2)))


def pose_error_mm() -> dict:
    """Fingertip error after scaling on the named test poses (no noise, settled), both hands, in mm."""
    import numpy as np

    from collector.robot import load_robot
    from collector.teleop.hand_poses import POSES, hand_skeleton
    from collector.teleop.hand_retarget import HandRetargeter

    retargeter = HandRetargeter(load_robot(ROBOT))
    per_pose = {}
    for pose in POSES:
        residuals = []
        for side in ("right", "left"):
            retargeter.reset()
            for _ in range(30):
                retargeter.solve(side, hand_skeleton(side, pose))
            residuals.append(retargeter.residual[side])
        per_pose[pose] = 1000 * np.array(residuals)
    everything = np.concatenate(list(per_pose.values()))
    return {"mean": float(np.mean(everything)), "p95": float(np.percentile(everything, 95)),
            "per_pose_mean": {pose: round(float(np.mean(v)), 2) for pose, v in per_pose.items()}}


def retargeting_benchmark(seconds: float = 60.0, noise_m: float = 0.002) -> dict:
    """Time per tick for both hands, fingertip error (test poses; the noisy moving stream) and finger jerk,
    with the default smoothing and without it (the jerk it removes)."""
    import numpy as np

    from collector.robot import load_robot
    from collector.teleop.hand_retarget import HandRetargeter, RetargetSettings

    robot = load_robot(ROBOT)
    frames = retarget_stream(seconds, noise_m=noise_m)
    times, cpu_times, errors, held, outputs = _run_stream(HandRetargeter(robot), frames)
    raw = HandRetargeter(robot, RetargetSettings(smoothing=1.0, max_step_rad=10.0))
    _, _, _, _, raw_outputs = _run_stream(raw, frames)
    poses = pose_error_mm()
    ms = times * 1000
    return {
        "retarget_ticks": len(frames),
        "retarget_p50_ms": round(float(np.percentile(ms, 50)), 4),
        "retarget_p99_ms": round(float(np.percentile(ms, 99)), 4),
        "retarget_max_ms": round(float(np.max(ms)), 3),
        # CPU time of the solving thread: the same ticks without the waits of a shared, loaded machine
        "retarget_cpu_p50_ms": round(float(np.percentile(cpu_times * 1000, 50)), 4),
        "retarget_cpu_p99_ms": round(float(np.percentile(cpu_times * 1000, 99)), 4),
        "fingertip_error_mean_mm": round(poses["mean"], 2),
        "fingertip_error_p95_mm": round(poses["p95"], 2),
        "fingertip_error_per_pose_mm": poses["per_pose_mean"],
        "stream_fingertip_error_mean_mm": round(1000 * float(np.mean(errors)), 2),
        "stream_fingertip_error_p95_mm": round(1000 * float(np.percentile(errors, 95)), 2),
        "stream_held_fingertip_error_mean_mm": round(1000 * float(np.mean(held)), 2),
        "finger_jerk_rms_rad_s3": round(_jerk_rms(outputs), 1),
        "finger_jerk_unsmoothed_rms_rad_s3": round(_jerk_rms(raw_outputs), 1),
        "tracking_noise_mm": noise_m * 1000,
    }


def mink_fingertip_ms(ticks: int = 300, iterations: int = 2) -> dict:
    """The alternative: the same fingertip targets as mink FrameTasks on the full MuJoCo model (couplings as
    an EqualityConstraintTask, the arm frozen), `iterations` solve_ik + integrate steps per tick; time per
    tick for one hand and the fingertip error it reaches, for the docs' comparison."""
    import mink
    import numpy as np

    from collector.robot import load_robot
    from collector.teleop.hand_poses import POSES, hand_skeleton
    from collector.teleop.hand_retarget import HandRetargeter

    robot = load_robot(ROBOT)
    model = robot.load_model()
    hand = robot.hands["right"]
    retargeter = HandRetargeter(robot)
    configuration = mink.Configuration(model)
    tips = {finger: mink.FrameTask(site, "site", position_cost=1.0, orientation_cost=0.0)
            for finger, site in hand.fingertips.items()}
    hand_dofs = {model.jnt_dofadr[model.joint(j).id] for j in list(hand.joints) + hand.passive_joints()}
    frozen = [d for d in range(model.nv) if d not in hand_dofs]
    equalities = [i for i in range(model.neq) if model.equality(i).name.startswith("right_")]
    tasks = list(tips.values()) + [mink.EqualityConstraintTask(model, cost=100.0, equalities=equalities)]
    constraints = [mink.DofFreezingTask(model, dof_indices=frozen)]
    limits = [mink.ConfigurationLimit(model)]
    times, cpu_times, errors = [], [], []
    for tick in range(ticks):
        skeleton = hand_skeleton("right", POSES[(tick // 30) % len(POSES)])
        start, cpu_start = time.perf_counter(), time.thread_time()
        palm = configuration.data.site(hand.palm)
        rotation, origin = palm.xmat.reshape(3, 3).copy(), palm.xpos.copy()
        wanted = retargeter.fingertip_targets("right", skeleton) @ rotation.T + origin
        for finger, target in zip(retargeter.fingers("right"), wanted):
            tips[finger].set_target(mink.SE3.from_translation(target))
        for _ in range(iterations):
            velocity = mink.solve_ik(configuration, tasks, 1.0, "daqp", damping=1e-4, limits=limits,
                                     constraints=constraints)
            configuration.integrate_inplace(velocity, 1.0)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
        if tick % 30 == 29:
            reached = np.array([configuration.data.site(hand.fingertips[f]).xpos for f in retargeter.fingers("right")])
            errors.append(np.linalg.norm(reached - wanted, axis=1))
    ms = np.array(times) * 1000
    return {"mink_one_hand_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "mink_one_hand_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mink_one_hand_cpu_p50_ms": round(float(np.percentile(np.array(cpu_times) * 1000, 50)), 3),
            "mink_settled_fingertip_error_mean_mm": round(1000 * float(np.mean(errors)), 2)}


def load_average() -> float:
    import os

    return round(os.getloadavg()[0], 2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 conditions per task")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per condition (default 1)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--retarget-only", action="store_true", help="only the retargeting phase")
    parser.add_argument("--mink", action="store_true", help="also time the mink alternative for retargeting")
    args = parser.parse_args(argv)
    retarget = retargeting_benchmark(seconds=15.0 if args.quick else 60.0)
    if args.mink:
        retarget.update(mink_fingertip_ms())
    retarget["load_average_1min"] = load_average()
    print(f"retargeting: both hands p50 {retarget['retarget_p50_ms']} ms, p99 {retarget['retarget_p99_ms']} ms "
          f"(CPU p99 {retarget['retarget_cpu_p99_ms']} ms, load {retarget['load_average_1min']}); "
          f"fingertip error {retarget['fingertip_error_mean_mm']} mm mean on the test poses, "
          f"{retarget['stream_fingertip_error_mean_mm']} mm over the stream; jerk {retarget['finger_jerk_rms_rad_s3']} "
          f"rad/s^3 ({retarget['finger_jerk_unsmoothed_rms_rad_s3']} unsmoothed)", flush=True)
    if args.retarget_only:
        print(json.dumps({**retarget, "pick_success": None, "pour_success": None}))
        return 0
    from collector.sim import lighting_presets, weight_presets

    lightings, weights = lighting_presets(), weight_presets()
    if args.quick:
        lightings, weights = lightings[:1], [weights[0], weights[-1]]

    def progress(o):
        print(f"  {'ok  ' if o['success'] else 'FAIL'} {o['task']:10s} {o['lighting']:9s} {o['weight']:6s} "
              f"seed {o['seed']}  {o['sim_s']:5.1f} s sim, {o['wall_s']:5.1f} s wall", flush=True)

    start = time.time()
    result = scripted_dex_success(lightings=lightings, weights=weights, repeats=args.repeats,
                                  workers=args.workers, progress=progress)
    result["success_wall_s"] = round(time.time() - start, 1)
    # The same takes with the operator's hands tracked (synthetic skeletons through the retargeter, as from the VR
    # bridge) instead of controller triggers.
    tracked = scripted_dex_success(lightings=lightings, weights=weights, repeats=args.repeats, workers=args.workers,
                                   progress=progress, hand_tracking=True)
    result.update({"pick_success_hand_tracking": tracked["pick_success"],
                   "pour_success_hand_tracking": tracked["pour_success"],
                   "per_weight_hand_tracking": tracked["per_weight"]})
    print(f"hand tracking: pick {tracked['pick_success']}, pour {tracked['pour_success']}", flush=True)
    print(json.dumps({**retarget, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
