"""Simulation speed: physics steps/s, offscreen render fps per camera, and the real-time factor of the full
scene (control at 100 Hz, 3 robot cameras at 30 Hz) on this machine.

    python benchmarks/bench_sim.py [--quick]

Prints a table; the last line is one JSON object with physics_steps_per_s, render_fps_640x480,
render_fps_320x240, rtf_3cams_320x240 (the worst task) and the per-task / per-quality peers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import collector  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from collector.sim import SimEnv

TASKS = ("pick_place", "pour")


def wave(env, t):
    """The robot keeps moving (both arms and the head), so contacts and rendering are not idle."""
    q = env.robot.home_vector()
    phase = math.sin(2 * math.pi * 0.5 * t)
    for group, sign in (("left_arm", 1.0), ("right_arm", -1.0)):
        arm = env.robot.group_slice(group)
        q[arm.start] += 0.2 * phase * sign
        q[arm.start + 3] += 0.2 * phase
    q[env.robot.command_joints.index("head_pan")] += 0.3 * phase
    return q


class Clock:
    """Wall time and this process's CPU time (all threads, llvmpipe's included) over a block.

    On a shared machine the wall figure is what this run got; wall/cpu says how much of it was waiting
    for a core, and the CPU-time rate estimates a machine with the cores to itself.
    """

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def running(self):
        return time.perf_counter() - self.wall0


def physics_rate(env, seconds):
    env.reset(seed=0)
    steps = 0
    with Clock() as clock:
        while clock.running() < seconds:
            env.set_command(wave(env, env.time))
            env.step()
            steps += env.substeps
    return steps / clock.wall, steps / clock.cpu


def render_rate(env, camera, width, height, seconds):
    env.reset(seed=0)
    env.render(camera, width, height)  # create the GL context outside the timing
    frames = 0
    with Clock() as clock:
        while clock.running() < seconds:
            env.render(camera, width, height)
            frames += 1
    return frames / clock.wall, frames / clock.cpu


def real_time_factor(env, sim_seconds, size):
    """Step at the control rate and render each robot camera when due (its fps) at `size`."""
    env.reset(seed=0)
    for name in env.robot.cameras:
        env.render(name, *size)
    frames = 0
    with Clock() as clock:
        while env.time < sim_seconds:
            env.set_command(wave(env, env.time))
            env.step()
            for name in env.due_cameras():
                env.render(name, *size)
                frames += 1
    return env.time / clock.wall, env.time / clock.cpu, frames / env.time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about 30 s in all)")
    args = parser.parse_args()
    physics_s = 0.7 if args.quick else 2.0
    render_s = 0.7 if args.quick else 2.0
    rtf_s = 1.0 if args.quick else 3.0

    results, rows = {}, []
    envs = {task: SimEnv(task=task, seed=0, render_quality="fast") for task in TASKS}
    high = SimEnv(task="pick_place", seed=0, render_quality="high")

    def record(key, label, wall, cpu, note=""):
        results[key], results[key + "_cpu"] = round(wall, 3), round(cpu, 3)
        rows.append((label, f"{wall:,.2f}", f"{cpu:,.2f}", note))

    try:
        for task, env in envs.items():
            wall, cpu = physics_rate(env, physics_s)
            record(f"physics_steps_per_s_{task}", f"physics steps/s ({task}, arms moving, {env.model.nv} dof)",
                   wall, cpu, f"{wall * env.physics_dt:.2f}x real time")
        for quality, env in (("fast", envs["pick_place"]), ("high", high)):
            for width, height in ((640, 480), (320, 240)):
                wall, cpu = render_rate(env, "head", width, height, render_s)
                record(f"render_fps_{width}x{height}_{quality}", f"render fps, 1 camera {width}x{height} ({quality})",
                       wall, cpu)
        for task, env in envs.items():
            for size in ((320, 240), (640, 480)):
                wall, cpu, fps = real_time_factor(env, rtf_s, size)
                record(f"rtf_3cams_{size[0]}x{size[1]}_{task}",
                       f"real-time factor, {task}, 100 Hz + 3 cams {size[0]}x{size[1]} @30 Hz (fast)",
                       wall, cpu, f"{fps:.0f} frames per sim s")
        wall, cpu, _ = real_time_factor(high, rtf_s, (320, 240))
        record("rtf_3cams_320x240_pick_place_high", "real-time factor, pick_place, 3 cams 320x240 (high)", wall, cpu)
    finally:
        for env in (*envs.values(), high):
            env.close()

    width = max(len(r[0]) for r in rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bench_sim on {platform.machine()} with {os.cpu_count()} cpus, MUJOCO_GL={os.environ.get('MUJOCO_GL')}, "
          f"load average {load:.1f} (other processes share these cpus)")
    print(f"{'measure':<{width}}  {'wall':>10}  {'per cpu-s':>10}  note")
    for label, wall, cpu, note in rows:
        print(f"{label:<{width}}  {wall:>10}  {cpu:>10}  {note}")
    summary = {
        "physics_steps_per_s": results["physics_steps_per_s_pick_place"],
        "render_fps_640x480": results["render_fps_640x480_fast"],
        "render_fps_320x240": results["render_fps_320x240_fast"],
        # The worse of the two tasks: pour's particles make it the heavier scene.
        "rtf_3cams_320x240": min(results["rtf_3cams_320x240_pick_place"], results["rtf_3cams_320x240_pour"]),
        "rtf_3cams_320x240_cpu": min(results["rtf_3cams_320x240_pick_place_cpu"],
                                     results["rtf_3cams_320x240_pour_cpu"]),
        **results,
        "quick": args.quick,
        "load_average": round(load, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
