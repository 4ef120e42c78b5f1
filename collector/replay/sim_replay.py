"""Replay an episode in the MuJoCo scene it was recorded in.

Two modes:
- kinematic (`replay --sim`): the recorded joint positions are written into the model row by row of
  the aligned view (no physics; equality-coupled joints such as the second finger follow their
  leader), and every recorded camera is rendered next to the frame that was recorded for that row.
  The per-camera mean pixel difference says how well the scene reproduces the recording.
- physics (`replay --sim --actions`): the robot starts where the recording started and the recorded
  commands are sent again at their original rate through the simulator's position actuators; the
  resulting joint trajectory is compared with the recorded one (per joint: RMS, max and final
  error) and the task's success is judged again.

The scene is rebuilt from the episode's conditions (task, theme, seed, task parameters, lighting and
weight presets); the recorded lighting values are then written into the model, so a changed preset
file does not change the replay. Any remaining difference from the recording (object layout,
masses) is listed in the report instead of being silently ignored.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from collector.episodes.conditions import condition_value
from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader
from collector.recorder.vocabulary import COMMAND, JOINTS
from collector.sim import world_state

log = logging.getLogger(__name__)

LABEL_HEIGHT = 18
# A pixel "differs" when a channel is off by more than this and so are its 8 neighbours: JPEG noise
# stays below it, and the one-pixel seams JPEG and anti-aliasing leave along edges are eroded away,
# while an object that is missing or misplaced leaves a solid region.
PIXEL_THRESHOLD = 40
# A camera is flagged when any frame has more than this share of its pixels differing (0.2 %: a 12x12
# patch of a 320x240 frame). Measured on demo and teleop episodes: a replay from the recorded world state stays
# at or below 0.05 %, a robot-only replay reaches 0.2-33 % on the cameras that see the objects.
FLAG_SHARE = 0.002
WORST_FRAMES = 5
_NEIGHBOURS = np.ones((3, 3), np.uint8)


@dataclass
class JointDrift:
    joint: str
    rms: float
    max: float
    final: float


@dataclass
class ReplayReport:
    mode: str
    episode: str
    frames: int = 0
    video: Optional[str] = None
    steps: int = 0
    image_difference: Dict[str, float] = field(default_factory=dict)  # camera -> mean |recorded - replayed|
    cameras: Dict[str, Dict] = field(default_factory=dict)  # camera -> per-frame measures (_FrameMeasures)
    world_state: str = "not used"  # kinematic: "restored", or why only the robot moved
    drift: List[JointDrift] = field(default_factory=list)
    recorded_outcome: str = "unknown"
    replayed_success: Optional[bool] = None
    condition_notes: List[str] = field(default_factory=list)

    @property
    def flagged_cameras(self) -> List[str]:
        """Cameras whose replay visibly differs from the recording in at least one frame."""
        return [c for c, m in self.cameras.items() if m.get("flagged")]

    @property
    def max_drift(self) -> float:
        return max((d.max for d in self.drift), default=0.0)

    @property
    def rms_drift(self) -> float:
        return math.sqrt(sum(d.rms ** 2 for d in self.drift) / len(self.drift)) if self.drift else 0.0

    def as_dict(self) -> Dict:
        return {"mode": self.mode, "episode": self.episode, "frames": self.frames, "video": self.video,
                "steps": self.steps, "image_difference": self.image_difference, "cameras": self.cameras,
                "world_state": self.world_state, "flagged_cameras": self.flagged_cameras,
                "drift": [d.__dict__ for d in self.drift], "max_drift": self.max_drift, "rms_drift": self.rms_drift,
                "recorded_outcome": self.recorded_outcome, "replayed_success": self.replayed_success,
                "condition_notes": self.condition_notes}


# -- the scene ---------------------------------------------------------------------------------------

def _preset(condition) -> Optional[str]:
    if isinstance(condition, dict):
        return condition.get("preset") or condition.get("name")
    return condition if isinstance(condition, str) else None


def env_for_episode(reader: EpisodeReader, robot=None, render_quality: Optional[str] = None,
                    control_hz: Optional[float] = None):
    """A SimEnv set up with the episode's conditions; returns (env, notes on differences)."""
    from collector.sim import SimEnv
    from collector.sim.lighting import apply_lighting

    meta = reader.metadata
    conditions = reader.conditions
    if not meta.get("sim", False) and robot is None:
        log.info("%s was recorded on hardware; replaying it in the simulated scene", reader.path)
    task = conditions.get("task") or meta.get("task")
    if not task:
        raise DataError(f"{reader.path}: no task in the metadata or conditions; cannot build its scene")
    kwargs = {"robot": robot or meta.get("robot") or conditions.get("robot") or "humanoid", "task": task,
              "seed": int(conditions.get("seed", 0))}
    for key in ("lighting", "weight"):
        name = _preset(condition_value(conditions, key)) or meta.get(f"{key}_preset")
        if name:
            kwargs[key] = name
    if conditions.get("theme"):
        kwargs["theme"] = conditions["theme"]
    if conditions.get("task_params"):
        kwargs["task_params"] = conditions["task_params"]
    if render_quality or conditions.get("render_quality"):
        kwargs["render_quality"] = render_quality or conditions["render_quality"]
    if control_hz:
        kwargs["control_hz"] = control_hz
    env = SimEnv(**kwargs)
    applied = env.conditions
    notes = []
    recorded_lighting = conditions.get("lighting")
    if isinstance(recorded_lighting, dict) and "lights" in recorded_lighting:
        if recorded_lighting != applied.get("lighting"):
            notes.append("lighting preset now gives different values; the recorded lighting was applied")
        apply_lighting(env.model, recorded_lighting, env.layout.task_origin)
    for key in ("weight", "object_layout"):
        recorded = condition_value(conditions, key)
        if recorded is not None and _rounded(recorded) != _rounded(condition_value(applied, key)):
            replayed = condition_value(applied, key)
            notes.append(f"{key} differs from the recording (recorded {recorded}, replay {replayed})")
    return env, notes


def _rounded(value, digits: int = 5):
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, float):
        return round(value, digits)
    return value


def _check_width(env, width: int, what: str, path) -> None:
    joints = env.robot.command_joints
    if width != len(joints):
        raise DataError(f"{path}: {what} has {width} values, robot {env.robot.name!r} has {len(joints)} command "
                        f"joints; replay with --robot naming the robot it was recorded with")


class _JointCoupling:
    """MuJoCo joint equalities (joint1 = poly(joint2)) applied by hand, since kinematics alone ignores them."""

    def __init__(self, model):
        import mujoco

        self.pairs = []
        for i in range(model.neq):
            if model.eq_type[i] != mujoco.mjtEq.mjEQ_JOINT or not model.eq_active0[i] or model.eq_obj2id[i] < 0:
                continue
            j1, j2 = int(model.eq_obj1id[i]), int(model.eq_obj2id[i])
            self.pairs.append((model.jnt_qposadr[j1], model.jnt_qposadr[j2], model.qpos0[model.jnt_qposadr[j1]],
                               model.qpos0[model.jnt_qposadr[j2]], model.eq_data[i, :5].copy()))

    def apply(self, qpos: np.ndarray) -> None:
        for a1, a2, y0, x0, coef in self.pairs:
            x = qpos[a2] - x0
            qpos[a1] = y0 + coef[0] + coef[1] * x + coef[2] * x ** 2 + coef[3] * x ** 3 + coef[4] * x ** 4


def _progress(iterable, desc: str, unit: str):
    """A progress bar on a terminal (replays of long episodes take minutes), silent otherwise."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, disable=None, leave=False, dynamic_ncols=True)


# -- frames ------------------------------------------------------------------------------------------

def _label(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_HEIGHT, image.shape[1], 3), 24, np.uint8)
    cv2.putText(bar, text, (4, LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    if image.shape[0] == height:
        return image
    width = max(2, int(round(image.shape[1] * height / image.shape[0])))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def compose(pairs: Sequence[tuple], height: int) -> np.ndarray:
    """Rows of (camera, recorded, replayed): recorded | replayed side by side, cameras stacked."""
    rows = []
    for camera, recorded, replayed in pairs:
        left = _label(_fit(recorded, height), f"{camera}: recorded")
        right = _label(_fit(replayed, height), f"{camera}: replay")
        rows.append(np.hstack([left, right]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    frame = np.vstack(rows)
    # yuv420p needs even sizes
    return np.ascontiguousarray(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])


def _recorded_cameras(reader: EpisodeReader, env, cameras: Optional[Sequence[str]]) -> List[str]:
    recorded = reader.aligned_cameras
    wanted = list(recorded if cameras is None else cameras)
    missing = [c for c in wanted if c not in recorded]
    if missing:
        raise ConfigError(f"camera(s) {missing} not recorded in {reader.path} (recorded: {recorded})")
    unknown = [c for c in wanted if c not in env.camera_names()]
    if unknown:
        raise ConfigError(f"camera(s) {unknown} are not cameras of the simulated scene ({env.camera_names()})")
    return wanted


# -- kinematic replay --------------------------------------------------------------------------------

class _FrameMeasures:
    """Per-frame differences of one camera, so one bad frame (an object missing) cannot hide in a mean."""

    def __init__(self):
        self.means: List[float] = []
        self.shares: List[float] = []

    def add(self, recorded: np.ndarray, replayed: np.ndarray) -> None:
        diff = np.abs(recorded.astype(np.int16) - replayed.astype(np.int16))
        self.means.append(float(diff.mean()))
        differing = (diff.max(axis=-1) > PIXEL_THRESHOLD).astype(np.uint8)
        self.shares.append(float(cv2.erode(differing, _NEIGHBOURS).mean()))

    def summary(self) -> Dict:
        if not self.means:
            return {"frames": 0, "mean": 0.0, "max_frame_mean": 0.0, "max_share_differing": 0.0,
                    "worst_frames": [], "flagged": False}
        means, shares = np.asarray(self.means), np.asarray(self.shares)
        worst = np.argsort(-(shares + means / 255.0), kind="stable")[:WORST_FRAMES]
        return {"frames": int(means.size), "mean": float(means.mean()), "max_frame_mean": float(means.max()),
                "max_share_differing": float(shares.max()), "frames_flagged": int(np.count_nonzero(shares > FLAG_SHARE)),
                "worst_frames": [int(i) for i in worst], "flagged": bool(shares.max() > FLAG_SHARE),
                "pixel_threshold": PIXEL_THRESHOLD, "flag_share": FLAG_SHARE}


def _world_state_rows(reader: EpisodeReader, env, cams: Sequence[str], stamps: np.ndarray, use: bool,
                      report: ReplayReport) -> Optional[Dict[str, np.ndarray]]:
    """Per camera and aligned row: which recorded world state to restore (the one taken with that frame).

    None (and report.world_state says why) when the replay can only move the robot."""
    if not use:
        report.world_state = "ignored (--robot-only): only the robot moves"
        return None
    problem = world_state.state_problem(reader, env.model)
    if problem is not None:
        report.world_state = f"not restored: {problem}; only the robot moves"
        return None
    rows = {}
    for cam in cams:
        stream = next(s.name for s in reader.streams.values() if s.is_camera and s.camera_name == cam)
        try:
            rows[cam] = world_state.states_at(reader, world_state.frame_stamps(reader, stream))
        except DataError:  # no sync record for the camera: use the row stamps
            rows[cam] = world_state.states_at(reader, stamps)
    report.world_state = "restored"
    return rows


def kinematic_replay(path, video: Optional[Path] = None, cameras: Optional[Sequence[str]] = None,
                     robot=None, height: int = 240, max_frames: Optional[int] = None,
                     render_quality: Optional[str] = None, use_world_state: bool = True) -> ReplayReport:
    """use_world_state=False moves only the robot even when the episode recorded the world's state."""
    import mujoco

    from collector.episodes.video import VideoWriter

    with EpisodeReader(path) as reader:
        if not reader.has_aligned_view:
            raise DataError(f"{path} has no aligned view (a partial episode: run `collector recover` on it)")
        env, notes = env_for_episode(reader, robot, render_quality)
        report = ReplayReport("kinematic", str(path), recorded_outcome=str(reader.metadata.get("outcome", "unknown")),
                              condition_notes=notes)
        try:
            qpos = reader.aligned("qpos")[...].astype(np.float64)
            _check_width(env, qpos.shape[1], "/observations/qpos", path)
            stamps = reader.timestamps
            cams = _recorded_cameras(reader, env, cameras)
            frames = {c: reader.aligned_images(c) for c in cams}
            rows = len(stamps) if max_frames is None else min(len(stamps), max_frames)
            fps = float(reader.h5["sync"].attrs.get("rate_hz", 0)) or 1.0 / float(np.median(np.diff(stamps)))
            index = env.robot.qpos_indices(env.model)
            coupling = _JointCoupling(env.model)
            state_rows = _world_state_rows(reader, env, cams, stamps, use_world_state, report)
            states = reader.raw(world_state.SIM_STATE, "state") if state_rows else None
            measures = {c: _FrameMeasures() for c in cams}
            writer = None
            try:
                for row in _progress(range(rows), "kinematic replay", "frame"):
                    pairs = []
                    restored = None
                    for cam in cams:
                        if state_rows is None:  # only the robot moves; objects stay where the scene put them
                            if cam == cams[0]:
                                env.data.qpos[index] = qpos[row]
                                coupling.apply(env.data.qpos)
                                mujoco.mj_forward(env.model, env.data)
                        elif state_rows[cam][row] != restored:
                            # The whole world (robot included) as it was when this camera's frame was taken:
                            # the aligned row's joints are interpolated to the row's time, not the frame's.
                            restored = state_rows[cam][row]
                            world_state.set_state(env.model, env.data, states[restored])
                        recorded = frames[cam][row]
                        replayed = env.render(cam, recorded.shape[1], recorded.shape[0])
                        measures[cam].add(recorded, replayed)
                        pairs.append((cam, recorded, replayed))
                    if video is not None and pairs:
                        frame = compose(pairs, height)
                        if writer is None:
                            writer = VideoWriter(video, fps, frame.shape[1], frame.shape[0])
                        writer.write(frame)
                    report.frames += 1
            finally:
                if writer is not None:
                    writer.close()
            report.cameras = {c: m.summary() for c, m in measures.items()}
            report.image_difference = {c: m["mean"] for c, m in report.cameras.items()}
            report.video = str(video) if video is not None and report.frames and cams else None
        finally:
            env.close()
    return report


# -- physics replay of the actions ------------------------------------------------------------------

def action_replay(path, video: Optional[Path] = None, cameras: Optional[Sequence[str]] = None, robot=None,
                  height: int = 240, command_stream: str = COMMAND, joint_stream: str = JOINTS,
                  render_quality: Optional[str] = None) -> ReplayReport:
    from collector.episodes.video import VideoWriter

    with EpisodeReader(path) as reader:
        streams = reader.streams
        for name in (command_stream, joint_stream):
            if name not in streams or reader.count(name) == 0:
                raise DataError(f"{path}: stream {name!r} is missing or empty; cannot re-execute the actions")
        rate = streams[command_stream].rate_hz
        env, notes = env_for_episode(reader, robot, render_quality, control_hz=rate)
        report = ReplayReport("actions", str(path), recorded_outcome=str(reader.metadata.get("outcome", "unknown")),
                              condition_notes=notes)
        try:
            t_cmd = reader.stamps(command_stream)
            commands = reader.raw(command_stream, "position")[: t_cmd.size].astype(np.float64)
            t_q = reader.stamps(joint_stream)
            q_rec = reader.raw(joint_stream, "position")[: t_q.size].astype(np.float64)
            _check_width(env, commands.shape[1], f"stream {command_stream!r}", path)
            _check_width(env, q_rec.shape[1], f"stream {joint_stream!r}", path)
            _start_like_recording(env, reader, joint_stream, q_rec[0], commands[0])
            dt = env.control_dt
            cams = _recorded_cameras(reader, env, cameras) if video is not None else []
            frame_times = reader.timestamps if cams else np.zeros(0)
            frames = {c: reader.aligned_images(c) for c in cams}
            next_frame = 0
            writer = None
            t_sim = [t_cmd[0]]
            q_sim = [env.joint_positions()]
            try:
                for k in _progress(range(t_cmd.size), "physics replay", "command"):
                    env.set_command(commands[k])
                    # Hold each command until the next one was sent (gaps in the recording included).
                    steps = 1 if k + 1 == t_cmd.size else max(1, int(round((t_cmd[k + 1] - t_cmd[k]) / dt)))
                    for _ in range(steps):
                        env.step()
                        report.steps += 1
                        t_sim.append(t_sim[-1] + dt)
                        q_sim.append(env.joint_positions())
                        while next_frame < frame_times.size and frame_times[next_frame] <= t_sim[-1] + 1e-9:
                            pairs = [(c, frames[c][next_frame], None) for c in cams]
                            pairs = [(c, rec, env.render(c, rec.shape[1], rec.shape[0])) for c, rec, _ in pairs]
                            frame = compose(pairs, height)
                            if writer is None:
                                fps = float(reader.h5["sync"].attrs.get("rate_hz", 0)) or 30.0
                                writer = VideoWriter(video, fps, frame.shape[1], frame.shape[0])
                            writer.write(frame)
                            report.frames += 1
                            next_frame += 1
            finally:
                if writer is not None:
                    writer.close()
            report.video = str(video) if writer is not None else None
            report.replayed_success = bool(env.task.success())
            report.drift = _drift(np.asarray(t_sim), np.asarray(q_sim), t_q, q_rec, env.robot.command_joints)
        finally:
            env.close()
    return report


def _start_like_recording(env, reader: EpisodeReader, joint_stream: str, q0: np.ndarray, command0) -> None:
    """Put the robot where the recording starts (position, velocity, actuator targets), and the world
    too when the episode recorded its state."""
    import mujoco

    if world_state.state_problem(reader, env.model) is None:
        world_state.set_state(env.model, env.data, reader.raw(world_state.SIM_STATE, "state")[0], forward=False)
    qidx = env.robot.qpos_indices(env.model)
    didx = env.robot.dof_indices(env.model)
    env.data.qpos[qidx] = q0
    _JointCoupling(env.model).apply(env.data.qpos)
    if "velocity" in reader.streams[joint_stream].fields:
        v0 = reader.raw(joint_stream, "velocity")[0]
        if np.all(np.isfinite(v0)):
            env.data.qvel[didx] = v0
    env.set_command(command0)
    mujoco.mj_forward(env.model, env.data)


def _drift(t_sim, q_sim, t_rec, q_rec, joint_names) -> List[JointDrift]:
    """Replayed minus recorded positions at the recorded stamps inside the replayed span."""
    inside = (t_rec >= t_sim[0]) & (t_rec <= t_sim[-1])
    if not inside.any():
        raise DataError("the replay covers none of the recorded joint stamps")
    t = t_rec[inside]
    out = []
    for j, name in enumerate(joint_names):
        replayed = np.interp(t, t_sim, q_sim[:, j])
        error = np.abs(replayed - q_rec[inside, j])
        out.append(JointDrift(name, float(np.sqrt(np.mean(error ** 2))), float(error.max()), float(error[-1])))
    return out
