#!/usr/bin/env python3
"""Benchmark the teleop loop: IK solve time, input-to-command latency, loop jitter, control rate, task success.

    python benchmarks/bench_teleop.py [--quick]

Phases (all on the humanoid, MuJoCo in-process):
  ik        ArmIK tracking a moving two-hand target, 2000 solves (--quick 500); peers in the same run:
            2 QP iterations per tick, and no collision avoidance.
  realtime  the loop paced at 100 Hz on the wall clock, fed by a separate publisher *process* at 100 Hz
            over ZMQ on TCP loopback (a VR bridge's path), with the three 320x240 cameras rendering at
            30 fps and every stream recorded by the real EpisodeWriter, for 10 s (--quick 4 s).
            input-to-command = command leaving the safety gate - the moment the publisher made the
            message (both CLOCK_MONOTONIC); jitter = |tick interval - 10 ms|.
            Default config: control.realtime_priority 50 (ros2_control's default): the control thread
            and the ZMQ I/O threads on both ends under SCHED_FIFO where permitted (the JSON says
            whether it was), ticks phase-locked to the input. Peers in the same run: normal
            scheduling (realtime_priority 0); the phase lock off; no cameras/recording.
  lockstep  the scripted operator through inproc ZMQ with rendering + recording, as fast as the CPU
            allows: the rate the demo/CI path reaches, and its publish-to-gate latency.
  success   scripted pick-and-place and pour over a seeded set of lighting x weight conditions
            (--quick: 2 conditions, else 6); the full grid is scripts/task_success_rate.py.
The last line printed is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import collector  # noqa: E402,F401  (sets MUJOCO_GL before mujoco loads)

RATE_HZ = 100.0


def pct(values, scale=1000.0):
    if not len(values):
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    arr = np.asarray(values) * scale
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max()), "n": int(arr.size)}


# ---------------------------------------------------------------------------------------------------
# IK
# ---------------------------------------------------------------------------------------------------
def bench_ik(n: int) -> dict:
    from collector.robot import load_robot
    from collector.teleop.config import load_teleop_config
    from collector.teleop.ik import ArmIK, RobotKinematics

    spec = load_robot("humanoid")
    results = {}
    variants = {
        "mink 1 iter + collision (default)": ({}, True),
        "mink 2 iter + collision": ({"iterations": 2}, True),
        "mink 1 iter, no collision": ({}, False),
    }
    for label, (overrides, collision) in variants.items():
        robot = spec if collision else copy.copy(spec)
        if not collision:
            robot.ik_collision_pairs = []
        kin = RobotKinematics(robot)
        ik = ArmIK(kin, load_teleop_config(overrides={"ik": overrides}).ik, 1 / RATE_HZ,
                   {j: 2.0 for j in spec.command_joints})
        home = kin.ee_poses(kin.q_home)
        q = kin.q_home.copy()
        times, cpu, errors = [], [], []
        for k in range(n):
            t = k / RATE_HZ
            # Both hands trace mirrored 8 cm loops at 0.5 Hz (~0.25 m/s, a brisk operator), outwards.
            phase = 2 * math.pi * 0.5 * t
            offset = 0.08 * np.array([0.5 * math.sin(phase), 1 - math.cos(phase), 0.5 * math.sin(2 * phase)])
            targets = {s: (p + offset * np.array([1, 1 if s == "left" else -1, 1]), qq)
                       for s, (p, qq) in home.items()}
            c0 = time.thread_time()
            r = ik.solve(q, targets)
            cpu.append(time.thread_time() - c0)
            q = r.q
            times.append(r.solve_s)
            if k > 50:
                errors.append(max(r.position_error.values()))
        results[label] = {"ms": pct(times), "cpu_ms": pct(cpu),
                          "tracking_error_mm_p95": float(np.percentile(errors, 95) * 1000)}
    return results


# ---------------------------------------------------------------------------------------------------
# Realtime loop fed by a separate publisher process
# ---------------------------------------------------------------------------------------------------
def publisher_main(endpoint: str, rate_hz: float, duration_s: float, ready, priority: int = 0) -> None:
    """The VR bridge's part: a process sending operator input at rate_hz. With `priority`, it runs
    (sending thread and ZMQ I/O thread) under SCHED_FIFO like the loop, as a dedicated station would."""
    import collector  # noqa: F401
    from collector.teleop.devices.base import NEUTRAL_HEAD, NEUTRAL_WRIST
    from collector.teleop.messages import ControllerState, OperatorInput, Pose
    from collector.teleop.realtime import input_context, raise_priority
    from collector.teleop.zmq_link import InputPublisher

    raise_priority(priority)
    pub = InputPublisher(endpoint, bind=True, context=input_context(priority))
    pub.wait_for_subscriber(timeout_s=60)
    ready.set()
    period = 1.0 / rate_hz
    start = time.monotonic() + 0.05
    k = 0
    while True:
        deadline = start + k * period
        now = time.monotonic()
        if now - start > duration_s:
            break
        if deadline > now + 0.0006:
            time.sleep(deadline - now - 0.0005)
        while time.monotonic() < deadline:
            pass
        t = k * period
        offset = 0.06 * np.array([math.sin(2 * math.pi * 0.3 * t), 0.5 * math.sin(2 * math.pi * 0.2 * t), 0.0])
        msg = OperatorInput(stamp=time.monotonic(), seq=k, source="bench-vr", enable=True,
                            head=Pose(NEUTRAL_HEAD), left_wrist=Pose(NEUTRAL_WRIST["left"] + offset),
                            right_wrist=Pose(NEUTRAL_WRIST["right"] - offset),
                            left_controller=ControllerState(trigger=0.2), right_controller=ControllerState())
        pub.publish(msg)  # the stamp is taken right before the message enters the socket
        k += 1
    pub.close()


class LatencyProbe:
    """Wraps a backend: when a command leaves the gate, note how old the operator message behind it is."""

    def __init__(self, backend):
        self._backend = backend
        self.loop = None
        self.latencies = []
        self._last_seq = None

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def send_command(self, t, q):
        self._backend.send_command(t, q)
        msg = self.loop.latest_input if self.loop is not None else None
        if msg is not None and msg.seq != self._last_seq:
            self.latencies.append(time.monotonic() - msg.stamp)
            self._last_seq = msg.seq


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_realtime(duration_s: float, phase_lock: bool = True, record: bool = True, priority: int = 50,
                   render: Optional[bool] = None) -> dict:
    from collector.backends.sim import SimBackend
    from collector.teleop.config import load_teleop_config
    from collector.teleop.rig import build_rig

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = load_teleop_config(overrides={"control": {"phase_lock": phase_lock, "realtime_priority": priority}})
    render = record if render is None else render
    backend = SimBackend.create(task="pick_place", render=render, seed=0, control_hz=RATE_HZ)
    probe = LatencyProbe(backend)
    rig = build_rig(probe, device=None, config=cfg, endpoint=endpoint, bind=False)
    loop = probe.loop = rig.loop
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=publisher_main, args=(endpoint, RATE_HZ, duration_s + 1.0, ready, priority),
                       daemon=True)
    proc.start()
    tmp = tempfile.TemporaryDirectory()
    writer = None
    try:
        if not ready.wait(60):
            raise RuntimeError("publisher process did not see the loop subscribe")
        if record:
            writer = rig.recorder(tmp.name, "bench_teleop_rt", {"sim": True})
            loop.sink = writer
        loop.start()
        time.sleep(0.1)
        loop.run(duration_s, realtime=True)
        stats = loop.stats.summary()
        recorder = writer.stats if writer else {}
        if writer:
            writer.stop()
    finally:
        rig.close()
        proc.join(5)
        tmp.cleanup()
    lat = probe.latencies[20:]  # skip the first ticks while the phase lock settles
    frames_due = 3 * 30 * duration_s if render else 0
    return {
        "input_to_command_ms": pct(lat),
        "jitter_ms": pct(loop.stats.jitter_s[20:]),
        "control_hz": stats["control_hz"],
        "overruns": stats["overruns"],
        "tick_ms": stats["tick_ms"],
        "ik_ms": stats["ik_ms"],
        "frames": stats["frames"],
        "frames_due": frames_due,
        "recorder_drops": recorder.get("drops", 0) if isinstance(recorder, dict) else 0,
        "frames_dropped": backend.frames_dropped,
        "gate": stats["gate"],
        "phase_acquisitions": loop.phase_lock.acquisitions if loop.phase_lock is not None else 0,
        "realtime_scheduling": loop.realtime_scheduling,
    }


def bench_lockstep(duration_s: float) -> dict:
    from collector.teleop.rig import build_sim_rig

    rig = build_sim_rig(task="pick_place", device="scripted", render=True, seed=3, control_hz=RATE_HZ)
    tmp = tempfile.TemporaryDirectory()
    try:
        writer = rig.recorder(tmp.name, "bench_teleop_ls", {"sim": True})
        result = rig.run_episode(duration_s, sink=writer, seed=3, stop_on_success=False)
        writer.stop()
    finally:
        rig.close()
        tmp.cleanup()
    s = result.stats
    return {"control_hz": s["control_hz"], "input_to_command_ms": s["input_to_command_ms"], "ik_ms": s["ik_ms"],
            "frames": s["frames"], "sim_s": result.duration_s}


def bench_success(n_conditions: int, workers: int) -> dict:
    from collector.teleop.evaluation import EpisodeJob, run_jobs, summarise

    conditions = [("bright", "medium"), ("dim", "heavy"), ("back_lit", "light"), ("low_light", "heavy"),
                  ("side_lit", "medium"), ("warm", "light")][:n_conditions]
    jobs = [EpisodeJob(task, lighting, weight, 2000 + i)
            for i, (lighting, weight) in enumerate(conditions) for task in ("pick_place", "pour")]
    outcomes = run_jobs(jobs, workers=workers)
    summary = summarise(outcomes)
    return {"summary": summary, "conditions": [f"{l}/{w}/seed {2000 + i}" for i, (l, w) in enumerate(conditions)],
            "outcomes": [(o.task, o.lighting, o.weight, o.seed, o.success) for o in outcomes]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer conditions")
    parser.add_argument("--workers", type=int, default=1, help="processes for the success episodes")
    parser.add_argument("--skip-success", action="store_true", help="leave out the task-success episodes")
    args = parser.parse_args(argv)
    quick = args.quick

    print("== IK (humanoid, both arms, 20 command joints) ==")
    ik = bench_ik(500 if quick else 2000)
    print(f"{'variant':38s} {'wall p50':>8s} {'p99':>8s} {'max':>8s} {'cpu p50':>8s} {'p99':>8s} "
          f"{'track err p95 mm':>17s}")
    for label, r in ik.items():
        print(f"{label:38s} {r['ms']['p50']:8.3f} {r['ms']['p99']:8.3f} {r['ms']['max']:8.2f} "
              f"{r['cpu_ms']['p50']:8.3f} {r['cpu_ms']['p99']:8.3f} {r['tracking_error_mm_p95']:17.1f}")

    seconds = 4.0 if quick else 10.0
    print(f"\n== realtime loop at {RATE_HZ:.0f} Hz, ZMQ/TCP input from another process, 3 cameras rendering, "
          f"recording, {seconds:.0f} s ==")
    runs = {
        "default (FIFO 50, phase-locked)": bench_realtime(seconds),
        "normal scheduling (peer)": bench_realtime(seconds, priority=0),
        "phase lock off (peer)": bench_realtime(seconds, phase_lock=False),
        "no cameras/recording (peer)": bench_realtime(seconds, record=False),
    }
    rt = runs["default (FIFO 50, phase-locked)"]
    print(f"{'':32s} {'in->cmd p50':>11s} {'p95':>7s} {'p99':>7s} {'jitter p50':>10s} {'p99':>7s} "
          f"{'rate Hz':>8s} {'overruns':>8s} {'frames (dropped)':>17s} {'tick p99':>8s} {'locks':>5s}")
    for label, r in runs.items():
        print(f"{label:32s} {r['input_to_command_ms']['p50']:11.2f} {r['input_to_command_ms']['p95']:7.2f} "
              f"{r['input_to_command_ms']['p99']:7.2f} {r['jitter_ms']['p50']:10.3f} {r['jitter_ms']['p99']:7.3f} "
              f"{r['control_hz']:8.1f} {r['overruns']:8d} {r['frames']:6d}/{r['frames_due']:<4.0f} ({r['frames_dropped']:3d}) "
              f"{r['tick_ms']['p99']:8.2f} {r['phase_acquisitions']:5d}")

    print("\n== lockstep (scripted operator, inproc ZMQ, rendering + recording) ==")
    ls = bench_lockstep(3.0 if quick else 8.0)
    print(f"rate {ls['control_hz']:.1f} ticks/s of wall time; publish->gate p50 {ls['input_to_command_ms']['p50']:.2f} "
          f"ms p99 {ls['input_to_command_ms']['p99']:.2f} ms; IK p99 {ls['ik_ms']['p99']:.2f} ms; "
          f"{ls['frames']} frames over {ls['sim_s']:.1f} s sim")

    pick = pour = None
    conditions = []
    if not args.skip_success:
        n = 2 if quick else 6
        print(f"\n== task success, scripted operator through the loop, {n} seeded conditions ==")
        sr = bench_success(n, args.workers)
        for task, s in sr["summary"].items():
            print(f"{task:11s} {s['successes']}/{s['episodes']}  " + "  ".join(
                f"{o[1]}/{o[2]}:{'ok' if o[4] else 'FAIL'}" for o in sr["outcomes"] if o[0] == task))
        pick = sr["summary"].get("pick_place", {}).get("rate")
        pour = sr["summary"].get("pour", {}).get("rate")
        conditions = sr["conditions"]

    default_ik = ik["mink 1 iter + collision (default)"]["ms"]
    rt_normal = runs["normal scheduling (peer)"]
    print(f"\nmachine load average during the run: {os.getloadavg()} on {os.cpu_count()} CPUs")
    print(json.dumps({
        "ik_p50_ms": round(default_ik["p50"], 4),
        "ik_p99_ms": round(default_ik["p99"], 4),
        "input_to_command_p50_ms": round(rt["input_to_command_ms"]["p50"], 3),
        "input_to_command_p99_ms": round(rt["input_to_command_ms"]["p99"], 3),
        "loop_jitter_p99_ms": round(rt["jitter_ms"]["p99"], 4),
        "control_hz": round(rt["control_hz"], 2),
        "lockstep_hz": round(ls["control_hz"], 1),
        "ik_cpu_p99_ms": round(ik["mink 1 iter + collision (default)"]["cpu_ms"]["p99"], 4),
        "realtime_scheduling": rt["realtime_scheduling"],
        "input_to_command_p99_ms_normal_sched": round(rt_normal["input_to_command_ms"]["p99"], 3),
        "loop_jitter_p99_ms_normal_sched": round(rt_normal["jitter_ms"]["p99"], 4),
        "control_hz_normal_sched": round(rt_normal["control_hz"], 2),
        "frames_recorded": rt["frames"],
        "frames_due": rt["frames_due"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "pick_success": pick,
        "pour_success": pour,
        "success_conditions": conditions,
        "quick": quick,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
