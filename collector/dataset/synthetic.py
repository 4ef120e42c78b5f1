"""Synthetic but realistic episodes, written with the real EpisodeWriter (for tests, benchmarks, demos).

An episode looks like one the teleop loop records: `joints` (position/velocity/effort of the robot's
command joints) and `command` at the control rate with the command leading the measurement, camera
streams `camera_<name>` as JPEG, `illuminance` at 10 Hz, and root metadata with conditions.

The camera frames carry their own stamp so tests can check which frame a reader returned: the
top-left 16x16 block of every frame has grey level `frame_code(t)` (flat blocks survive JPEG to
within a few levels).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from collector.recorder.vocabulary import (COMMAND, ILLUMINANCE, JOINTS, camera_spec, camera_stream_name, command_spec,
                                           illuminance_spec, joints_spec)
from collector.recorder.writer import EpisodeWriter

DEFAULT_JOINTS = 20
MARKER = 16  # size of the stamped block, pixels


def frame_code(t: float) -> int:
    """Grey level a synthetic frame taken at time t carries in its marker block (wraps every 10 s)."""
    return int(round((t % 10.0) * 20.0)) + 20


def read_frame_code(image: np.ndarray) -> float:
    return float(image[2:MARKER - 2, 2:MARKER - 2].mean())


def joint_trajectory(t: np.ndarray, n: int, phase: float) -> np.ndarray:
    """Smooth bounded joint positions (rad): a few sines per joint, different per episode phase."""
    k = np.arange(n)[None, :]
    t = np.asarray(t)[:, None]
    return 0.3 * np.sin(0.7 * t * (1 + 0.1 * k) + phase + k) + 0.1 * np.sin(2.3 * t + 0.5 * k)


def _frame(t: float, height: int, width: int, tint: int) -> np.ndarray:
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = ((x + 40 * t) % 256).astype(np.uint8)
    image[..., 1] = y.astype(np.uint8)
    image[..., 2] = tint
    cx = int((0.5 + 0.3 * math.sin(t)) * (width - 20))
    image[height // 2: height // 2 + 20, cx: cx + 20] = (250, 250, 250)
    image[:MARKER, :MARKER] = frame_code(t)
    return image


def write_synthetic_episode(directory, episode_id: str, *, duration_s: float = 3.0, control_hz: float = 100.0,
                            cameras: Sequence[str] = ("head", "left_wrist"), camera_size=(96, 128),
                            camera_fps: float = 30.0, n_joints: int = DEFAULT_JOINTS,
                            joint_names: Optional[List[str]] = None, task: str = "pick_place",
                            instruction: str = "pick up the cube and put it in the tray",
                            lighting: str = "bright", weight: str = "light",
                            outcome: str = "success", seed: int = 0, t0: float = 100.0, robot: str = "humanoid",
                            extra_metadata: Optional[Dict] = None, command_lead_s: float = 0.02,
                            joint_gap: Optional[tuple] = None) -> Path:
    """Record one episode with EpisodeWriter and return its final path.

    joint_gap=(a, b): no `joints` samples between a and b seconds after the start (a dropout)."""
    names = list(joint_names or [f"joint_{i}" for i in range(n_joints)])
    n = len(names)
    height, width = camera_size
    specs = [joints_spec(names, control_hz), command_spec(names, control_hz), illuminance_spec(10.0)]
    specs += [camera_spec(cam, width, height, camera_fps) for cam in cameras]
    phase = (seed * 0.37) % (2 * math.pi)
    metadata = {
        "task": task, "instruction": instruction, "operator": "synthetic", "station": "test-station",
        "session_id": "synthetic-session", "robot": robot, "sim": True,
        # DESIGN.md's condition keys: lighting, weights, scene, seed (the simulator also writes "weight").
        "conditions": {"lighting": {"preset": lighting}, "weights": {"preset": weight, "masses_kg": {"cube": 0.1}},
                       "seed": seed, "scene": "tabletop"},
        **(extra_metadata or {}),
    }
    writer = EpisodeWriter(directory, episode_id, specs, metadata=metadata, queue_seconds=max(60.0, duration_s * 2),
                           min_free_bytes=0)
    writer.start()
    try:
        dt = 1.0 / control_hz
        ticks = int(round(duration_s * control_hz))
        t_ctrl = t0 + np.arange(ticks) * dt
        q = joint_trajectory(t_ctrl - t0, n, phase)
        q_cmd = joint_trajectory(t_ctrl - t0 + command_lead_s, n, phase)
        dq = np.gradient(q, dt, axis=0)
        rng = np.random.default_rng(seed)
        next_frame = t0
        next_lux = t0
        for i, t in enumerate(t_ctrl):
            if joint_gap is None or not joint_gap[0] <= t - t0 < joint_gap[1]:
                writer.push(JOINTS, float(t), position=q[i], velocity=dq[i], effort=0.5 * (q_cmd[i] - q[i]))
            writer.push(COMMAND, float(t), position=q_cmd[i])
            if t >= next_lux - 1e-9:
                writer.push(ILLUMINANCE, float(t), value=np.float64(500.0 + rng.normal(0, 5)))
                next_lux += 0.1
            if t >= next_frame - 1e-9:
                for k, cam in enumerate(cameras):
                    writer.push(camera_stream_name(cam), float(t), image=_frame(float(t), height, width, 60 * k))
                next_frame += 1.0 / camera_fps
        return writer.stop(outcome=outcome)
    except BaseException:
        if writer.recording:
            writer.discard()
        raise


def write_synthetic_dataset(root, episodes: int, *, tasks=("pick_place", "pour"), lightings=("bright", "dim"),
                            weights=("light", "heavy"), outcomes=("success", "success", "failure"),
                            **episode_kwargs) -> Path:
    """A dataset folder with a catalogue: episodes cycle through tasks x lighting x weight x outcome.

    Each episode is allocated in the catalogue, recorded into episodes/ and marked kept, exactly as a
    session does, so catalogue filters work on it.
    """
    from collector.session.catalog import Catalog
    from collector.session.layout import DatasetLayout

    layout = DatasetLayout(root).ensure()
    catalog = Catalog(layout.catalog_path)
    for i in range(episodes):
        task = tasks[i % len(tasks)]
        lighting = lightings[(i // len(tasks)) % len(lightings)]
        weight = weights[(i // (len(tasks) * len(lightings))) % len(weights)]
        outcome = outcomes[i % len(outcomes)]
        row = catalog.allocate_episode(session_id="synthetic-session", plan="synthetic", task=task,
                                       lighting=lighting, weight=weight, operator="synthetic",
                                       station="test-station", robot="humanoid", backend="sim",
                                       conditions={"lighting": lighting, "weight": weight})
        path = write_synthetic_episode(layout.episodes_dir, row.episode_id, task=task, lighting=lighting,
                                       weight=weight, outcome=outcome, seed=row.episode_index,
                                       instruction=f"{task.replace('_', ' ')}", **episode_kwargs)
        catalog.update_episode(row.episode_index, status="kept", outcome=outcome, path=layout.relative(path),
                               duration_s=float(episode_kwargs.get("duration_s", 3.0)), qa="pass")
    return layout.root


def write_sim_episode(directory, episode_id: str, *, duration_s: float = 1.5, cameras: Sequence[str] = ("head",),
                      camera_fps: float = 15.0, task: str = "pick_place", lighting: str = "bright",
                      weight: str = "light", seed: int = 3, amplitude: float = 0.25, outcome: str = "failure") -> Path:
    """Record a short real simulated episode: MuJoCo physics driven by smooth joint commands around
    the robot's home pose (no IK, so it is quick), with the simulator's conditions and camera renders.

    Streams and metadata are the teleop loop's: joints (measured, before each step), command, cameras.
    """
    from collector.sim import SimEnv

    env = SimEnv(robot="humanoid", task=task, lighting=lighting, weight=weight, seed=seed)
    try:
        conditions = env.reset(seed=seed)
        robot = env.robot
        names = list(robot.command_joints)
        n = len(names)
        rate = env.control_hz
        specs = [joints_spec(names, rate), command_spec(names, rate)]
        for cam in cameras:
            spec = robot.cameras[cam]
            specs.append(camera_spec(cam, spec.width, spec.height, camera_fps))
        metadata = {"task": conditions["task"], "instruction": conditions["instruction"], "operator": "synthetic",
                    "station": "sim-test", "session_id": "sim-session", "robot": robot.name, "sim": True,
                    "robot_model_hash": robot.model_hash,
                    "conditions": conditions}
        writer = EpisodeWriter(directory, episode_id, specs, metadata=metadata, queue_seconds=60.0,
                               min_free_bytes=0)
        writer.start()
        try:
            home = robot.home_vector()
            arm = np.zeros(n)
            for group in ("left_arm", "right_arm"):
                if group in robot.groups:
                    arm[robot.group_slice(group)] = 1.0
            frame_period = 1.0 / camera_fps
            next_frame = 0.0
            for k in range(int(round(duration_s * rate))):
                t = env.time
                writer.push(JOINTS, t, position=env.joint_positions(), velocity=env.joint_velocities(),
                            effort=env.joint_efforts())
                if t + 1e-9 >= next_frame:
                    for cam in cameras:
                        writer.push(camera_stream_name(cam), t, image=env.render(cam))
                    next_frame += frame_period
                phase = 2 * math.pi * 0.5 * t
                command = env.set_command(home + amplitude * arm * math.sin(phase) * np.linspace(0.5, 1.0, n))
                writer.push(COMMAND, t, position=command)
                env.step()
            return writer.stop(outcome=outcome)
        except BaseException:
            if writer.recording:
                writer.discard()
            raise
    finally:
        env.close()
