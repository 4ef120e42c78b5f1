"""`collector sim`: run a task scene headless and write a contact sheet PNG of every camera.

    collector sim                                   # humanoid, pick_place, kitchen, bright, 2 s
    collector sim --task pour --theme workshop --lighting all --out sheet.png
"""
from __future__ import annotations

import json
import logging
import math
import time

import numpy as np

from collector.errors import ConfigError

log = logging.getLogger(__name__)
MOTIONS = ("wave", "hold")


def _lighting_list(value: str, presets) -> list:
    if value == "all":
        return list(presets)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in presets]
    if not names or unknown:
        raise ConfigError(f"--lighting: unknown preset(s) {unknown or [value]} (have {sorted(presets)} or 'all')")
    return names


def _motion_command(env, t: float, motion: str) -> np.ndarray:
    """A gentle scripted motion around home so the sheet shows a live robot (arms reach, head scans)."""
    q = env.robot.home_vector()
    if motion == "hold":
        return q
    robot = env.robot
    phase = math.sin(2.0 * math.pi * 0.5 * t)
    for group, sign in (("left_arm", 1.0), ("right_arm", -1.0)):
        if group in robot.groups:
            arm = robot.group_slice(group)
            q[arm.start] += 0.15 * phase * sign      # first arm joint: shoulder pitch on the humanoid
    if robot.head.get("pan") in robot.command_joints:
        q[robot.command_joints.index(robot.head["pan"])] += 0.25 * phase
    return _hand_motion(robot, q, t)


# Multi-finger hands show their grasps: one synergy per hand, closed at 2 s (the default snapshot), open at 4 s.
HAND_SHOWCASE = {"left": "power", "right": "pinch"}


def _hand_motion(robot, q: np.ndarray, t: float) -> np.ndarray:
    if not robot.hands:
        return q
    from collector.teleop.hand_synergies import HandSynergies

    synergies = HandSynergies(robot)
    amount = 0.5 - 0.5 * math.cos(0.5 * math.pi * t)
    for side in synergies.sides:
        name = HAND_SHOWCASE.get(side, "power")
        q = synergies.apply(q, side, name if name in synergies.names(side) else "power", amount)
    return q


def run(args) -> int:
    from collector.sim import SimEnv, lighting_presets
    from collector.sim.contact_sheet import compose, write_png

    if not (args.duration >= 0 and math.isfinite(args.duration)):
        raise ConfigError(f"--duration must be a non-negative number of seconds, got {args.duration}")
    if args.tile_width < 32:
        raise ConfigError(f"--tile-width must be at least 32 pixels, got {args.tile_width}")
    lightings = _lighting_list(args.lighting, lighting_presets())
    env = SimEnv(robot=args.robot, task=args.task, theme=args.theme, lighting=lightings[0], weight=args.weight,
                 seed=args.seed, render_quality=args.quality, control_hz=args.control_hz)
    try:
        columns = [c.strip() for c in args.cameras.split(",")] if args.cameras else env.camera_names()
        unknown = [c for c in columns if c not in env.camera_names()]
        if unknown:
            raise ConfigError(f"--cameras: unknown camera(s) {unknown} (have {env.camera_names()})")
        rows, summaries = [], []
        for lighting in lightings:
            conditions = env.reset(seed=args.seed, lighting=lighting)
            steps = int(round(args.duration / env.control_dt))
            started = time.perf_counter()
            frames = 0
            for _ in range(steps):
                env.set_command(_motion_command(env, env.time, args.motion))
                env.step()
                if args.stream:
                    frames += len(env.render_due())  # render the robot cameras at their own rates
            wall = time.perf_counter() - started
            images = {name: env.render(name) for name in columns}
            metrics = env.task.metrics()
            lux = env.illuminance()
            summaries.append({"lighting": lighting, "illuminance_lux": round(lux, 1), "success": env.task.success(),
                              "metrics": metrics, "sim_s": round(env.time, 3), "wall_s": round(wall, 3),
                              "streamed_frames": frames})
            rows.append(([lighting, f"~{lux:.0f} lx", f"seed {conditions['seed']}"], images))
        title = (f"{env.robot.name} | {env.task.name}: {env.task.instruction} | theme {env.theme_name} | "
                 f"weight {env.weight_name} | {args.quality} | t={env.time:.1f}s")
        sheet = compose(rows, columns, (args.tile_width, args.tile_width * 3 // 4), title)
        path = write_png(args.out, sheet)
    finally:
        env.close()
    print(f"wrote {path} ({sheet.shape[1]}x{sheet.shape[0]}): {len(rows)} lighting row(s) x {len(columns)} camera(s)")
    for summary in summaries:
        rtf = summary["sim_s"] / summary["wall_s"] if summary["wall_s"] > 0 else float("inf")
        print(f"  {summary['lighting']:>10}: {summary['illuminance_lux']:7.1f} lx, success={summary['success']}, "
              f"real-time factor {rtf:.2f}, metrics {json.dumps(summary['metrics'])}")
    return 0


def register(subparsers):
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated task scene headless and write a contact sheet PNG of all cameras",
        description="Build the robot at a table with a task under a theme, lighting and weight condition, run it "
                    "for --duration seconds (the robot makes a small scripted motion), and write one PNG with "
                    "every camera: one row per lighting preset. Rendering is offscreen (MUJOCO_GL=egl).",
    )
    parser.add_argument("--robot", default="humanoid", help="robot name under robots/ or a robot YAML path")
    parser.add_argument("--task", default="pick_place", help="task scene: pick_place or pour")
    parser.add_argument("--theme", default="kitchen", help="environment theme from configs/themes.yaml")
    parser.add_argument("--lighting", default="bright",
                        help="lighting preset, a comma-separated list, or 'all' (one sheet row each)")
    parser.add_argument("--weight", default="medium", help="object weight preset from configs/weights.yaml")
    parser.add_argument("--seed", type=int, default=0, help="seed for layout and condition variation")
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds to run before the snapshot")
    parser.add_argument("--quality", default="fast", choices=("fast", "high"),
                        help="render quality: fast (no shadows/reflections) or high")
    parser.add_argument("--control-hz", type=float, default=100.0, help="control rate")
    parser.add_argument("--motion", default="wave", choices=MOTIONS, help="scripted motion during the run")
    parser.add_argument("--cameras", default="", help="comma-separated cameras (default: all robot + scene cameras)")
    parser.add_argument("--stream", action="store_true",
                        help="also render the robot cameras at their configured rates while running")
    parser.add_argument("--tile-width", type=int, default=320, help="width of each image tile in pixels")
    parser.add_argument("--out", default="sim_contact_sheet.png", help="output PNG path")
    parser.set_defaults(func=run)
