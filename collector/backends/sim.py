"""SimBackend: the robot contract over the in-process MuJoCo simulator (collector.sim.SimEnv).

Lockstep: the loop advances the simulation by one control period per tick and sim time is the
session clock. Cameras render off the control thread; the world's state and the task objects'
poses are recorded with the frames, so replay can restore the whole scene.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, List, Optional, Tuple

import numpy as np

from collector.backends.base import Frame, JointSample, RobotBackend, WorldSample
from collector.errors import DataError
from collector.sim.hand_readings import SimHandReadings

if TYPE_CHECKING:
    from collector.robot import CameraSpec
    from collector.recorder.streams import StreamSpec


class _RenderWorker(threading.Thread):
    """Renders camera frames from MjData snapshots on its own thread (and its own GL context).

    On a CPU renderer one 320x240 frame costs several milliseconds (far more on a busy machine),
    so rendering inline would hold the control loop well below 100 Hz. The loop only copies the
    sim state (mj_copyData, microseconds) and carries on; finished frames keep their snapshot time.
    """

    def __init__(self, env, max_pending: int):
        super().__init__(name="sim-camera-render", daemon=True)
        self.env = env
        self.jobs: "queue.Queue" = queue.Queue(maxsize=max_pending)
        self.done: Dict[str, Deque[Tuple[float, np.ndarray]]] = {}
        self.lock = threading.Lock()
        self.error: Optional[BaseException] = None
        self._pool: List = []
        self.rendered = 0

    def snapshot(self):
        import mujoco

        model = self.env.model  # a theme change rebuilds the model: snapshots remember theirs
        with self.lock:
            entry = self._pool.pop() if self._pool else None
        if entry is None or entry[0] is not model:
            entry = (model, mujoco.MjData(model))
        mujoco.mj_copyData(entry[1], model, self.env.data)
        # After mj_step the body poses are those of the step's start, one physics step behind qpos:
        # recompute them so the frame shows the world at its stamp, exactly as the recorded world
        # state (sim_state) restores it. Positions only: microseconds.
        mujoco.mj_kinematics(model, entry[1])
        mujoco.mj_comPos(model, entry[1])
        mujoco.mj_camlight(model, entry[1])
        return entry

    def run(self) -> None:
        from collector.sim.render import CameraRenderer

        renderer, model = None, None
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                break
            name, t, entry = job
            try:
                if renderer is None or model is not entry[0]:
                    if renderer is not None:
                        renderer.close()
                    model = entry[0]
                    renderer = CameraRenderer(model, self.env.render_quality)
                if name is None:  # warm-up: every camera once, nothing handed out
                    for cam in self.env.robot.cameras.values():
                        renderer.render(entry[1], cam.mjcf_camera, cam.width, cam.height)
                    image = None
                else:
                    cam = self.env.robot.cameras[name]
                    image = renderer.render(entry[1], cam.mjcf_camera, cam.width, cam.height)
            except BaseException as exc:  # reported on the control thread by the next capture()
                self.error = exc
                image = None
            with self.lock:
                if image is not None:
                    self.done.setdefault(name, deque()).append((t, image))
                    self.rendered += 1
                self._pool.append(entry)
            self.jobs.task_done()
        if renderer is not None:
            renderer.close()


class SimBackend(RobotBackend):
    """RobotBackend over collector.sim.SimEnv: lockstep, sim time is the session clock.

    Cameras are rendered at their YAML rate on the sim clock: a frame is taken when the camera's
    next frame time has been reached, so a 100 Hz loop with a 30 fps camera renders 30 frames per
    simulated second, not 100. With async_render (default) the frame is rendered on a worker thread
    from a snapshot of that instant and handed out by a later capture() with the snapshot's time;
    a lockstep loop waits when `max_pending` frames are queued, so no frame is ever skipped.
    """

    lockstep = True

    def __init__(self, env, render: bool = True, async_render: bool = True, max_pending: int = 6):
        self.env = env
        self.robot = env.robot
        self.render_enabled = render
        self._n = len(self.robot.command_joints)
        self._next_frame_t: Dict[str, float] = {}
        self._next_world_t = 0.0
        self._world_scratch = None  # (model, MjData, object names) for the recorded object poses
        self._hand_readings = SimHandReadings(self.robot)
        self._worker: Optional[_RenderWorker] = None
        self.realtime = False  # set by the loop: drop a due frame rather than wait for the renderer
        self.frames_dropped = 0
        if render and async_render and self.robot.cameras:
            self._worker = _RenderWorker(env, max_pending)
            self._worker.start()
        self.reset_camera_clocks()

    @classmethod
    def create(cls, robot="humanoid", task="pick_place", render: bool = True, **env_kwargs) -> "SimBackend":
        from collector.sim import SimEnv

        return cls(SimEnv(robot=robot, task=task, **env_kwargs), render=render)

    def reset(self, **kwargs) -> dict:
        """Reset the underlying SimEnv (seed/lighting/weight/theme) and the camera schedules."""
        conditions = self.env.reset(**kwargs)
        self.reset_camera_clocks()
        return conditions

    def reset_camera_clocks(self) -> None:
        t = self.now()
        self._next_frame_t = {name: t for name in self.robot.cameras}
        self._next_world_t = t
        if self._worker is not None:
            # Warm up before the episode: the renderer's first frames (GL context, uploading the
            # model's meshes and textures) stall for tens of milliseconds, and a realtime loop
            # must not meet that in its first ticks. It also waits out the previous episode's frames,
            # which are not this one's.
            self._worker.jobs.put((None, t, self._worker.snapshot()))
            self._worker.jobs.join()
            with self._worker.lock:
                self._worker.done.clear()

    @property
    def control_dt(self) -> float:
        return float(self.env.control_dt)

    def now(self) -> float:
        return float(self.env.time)

    def read_state(self) -> JointSample:
        return JointSample(
            t=self.now(),
            position=np.asarray(self.env.joint_positions(), dtype=np.float64).copy(),
            velocity=np.asarray(self.env.joint_velocities(), dtype=np.float64).copy(),
            effort=np.asarray(self.env.joint_efforts(), dtype=np.float64).copy(),
        )

    def send_command(self, t: float, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self._n,) or not np.all(np.isfinite(q)):
            # The safety gate never lets this through; a direct caller gets a clear error.
            raise DataError(f"sim command: expected {self._n} finite joint positions, got shape {q.shape}")
        self.env.set_command(q)

    def advance(self) -> None:
        self.env.step()

    def cameras(self) -> Dict[str, "CameraSpec"]:
        return dict(self.robot.cameras) if self.render_enabled else {}

    def _due(self, name: str) -> bool:
        t = self.now()
        due = self._next_frame_t.get(name)
        if due is None:
            raise DataError(f"sim: no camera named {name!r} (have {sorted(self._next_frame_t)})")
        # Half a physics step of slack so float accumulation never skips a frame.
        if t + 0.5 * float(self.env.physics_dt) < due:
            return False
        period = 1.0 / float(self.robot.cameras[name].fps)
        # Schedule from the due time, not from now, so the average rate is exactly fps;
        # if the loop fell a whole period behind, restart the schedule instead of bursting.
        next_due = due + period
        self._next_frame_t[name] = next_due if next_due > t else t + period
        return True

    def capture(self, name: str) -> Optional[Frame]:
        if not self.render_enabled:
            return None
        worker = self._worker
        if worker is None:
            return (self.now(), self.env.render(name)) if self._due(name) else None
        if worker.error is not None:
            raise DataError(f"sim camera rendering failed: {worker.error}")
        if self._due(name):
            job = (name, self.now(), worker.snapshot())
            if not self.realtime:
                worker.jobs.put(job)  # lockstep: wait for the renderer rather than skip a frame
            else:
                try:
                    worker.jobs.put_nowait(job)  # realtime: never hold the control tick for a camera
                except queue.Full:
                    self.frames_dropped += 1
        with worker.lock:
            frames = worker.done.get(name)
            return frames.popleft() if frames else None

    # -- the world's state (recorded so replay and exports can restore every object) --------------
    @property
    def world_rate_hz(self) -> float:
        """The record rate: the fastest camera's, so a state is taken on the ticks its frames are."""
        from collector.sim.world_state import DEFAULT_RATE_HZ

        fps = [float(c.fps) for c in self.robot.cameras.values()]
        return max(fps) if fps else DEFAULT_RATE_HZ

    def world_streams(self) -> List["StreamSpec"]:
        """sim_state and one pose_objects_<name> stream per task object (see collector/sim/world_state.py)."""
        from collector.sim import world_state

        return world_state.world_stream_specs(self.env.model, list(self.env.task.object_poses()),
                                              self.world_rate_hz, self.robot)

    def world_sample(self) -> Optional[WorldSample]:
        """(t, full simulator state, {pose stream: pose}) when the record rate is due, else None."""
        from collector.sim import world_state

        t = self.now()
        if t + 0.5 * float(self.env.physics_dt) < self._next_world_t:
            return None
        period = 1.0 / self.world_rate_hz
        next_due = self._next_world_t + period  # the camera schedule's rule (see _due)
        self._next_world_t = next_due if next_due > t else t + period
        model = self.env.model
        if self._world_scratch is None or self._world_scratch[0] is not model:  # a theme change rebuilds it
            import mujoco

            self._world_scratch = (model, mujoco.MjData(model), list(self.env.task.object_poses()))
        _, scratch, names = self._world_scratch
        state = world_state.get_state(model, self.env.data)
        return t, state, world_state.object_poses(model, scratch, state, names)

    # -- the hands' touch and grip (robots with `hands:`, recorded every control tick) -------------
    def sensor_streams(self) -> List["StreamSpec"]:
        return super().sensor_streams() + self.hand_streams()

    def hand_streams(self) -> List["StreamSpec"]:
        """hand_touch (fingertip and palm touch sensors, N) and grasp_force (the finger actuators' force),
        one field per hand, at the control rate; none for a robot without hands."""
        from collector.recorder import vocabulary

        hands = self.robot.hands
        if not hands:
            return []
        rate = 1.0 / self.control_dt
        specs = []
        touch = {side: hand for side, hand in hands.items() if hand.touch}
        if touch:
            specs.append(vocabulary.hand_touch_spec({s: list(h.touch) for s, h in touch.items()},
                                                    {s: list(h.touch.values()) for s, h in touch.items()}, rate))
        specs.append(vocabulary.grasp_force_spec({s: list(h.joints) for s, h in hands.items()},
                                                 {s: self._force_units(h.joints) for s, h in hands.items()}, rate))
        return specs

    def _force_units(self, joints) -> List[str]:
        import mujoco

        slide = int(mujoco.mjtJoint.mjJNT_SLIDE)
        return ["N" if int(self.env.model.joint(j).type[0]) == slide else "N m" for j in joints]

    def hand_sample(self) -> Optional[Tuple[float, Dict[str, Dict[str, np.ndarray]]]]:
        """(t, {hand_touch: {side: readings}, grasp_force: {side: forces}}) now, in the declared orders.

        Touch sensors are evaluated by mj_step before it integrates, so a reading is one physics step
        (2 ms) older than the joint positions of the same tick: far below the control period."""
        from collector.recorder import vocabulary

        hands = self.robot.hands
        if not hands:
            return None
        touch, force = self._hand_readings.read(self.env.model, self.env.data)
        sample = {vocabulary.GRASP_FORCE: force}
        if touch:
            sample[vocabulary.HAND_TOUCH] = touch
        return self.now(), sample

    def set_realtime(self, realtime: bool) -> None:
        self.realtime = bool(realtime)

    def finish_frames(self) -> List[Tuple[str, float, np.ndarray]]:
        """Wait for frames still being rendered and return every one not handed out yet, in time order."""
        if self._worker is None:
            return []
        self._worker.jobs.join()
        with self._worker.lock:
            out = [(name, t, img) for name, frames in self._worker.done.items() for t, img in frames]
            self._worker.done.clear()
        return sorted(out, key=lambda f: f[1])

    # -- task judgement (simulation only) --------------------------------------------------------
    @property
    def task(self):
        return self.env.task

    @property
    def conditions(self) -> dict:
        return dict(self.env.conditions)

    def task_success(self) -> bool:
        return bool(self.env.task.success())

    def task_metrics(self) -> dict:
        return dict(self.env.task.metrics())

    @property
    def has_illuminance(self) -> bool:
        return True  # computed from the scene's lights at the task area (collector/sim/lighting.py)

    def illuminance(self) -> Optional[float]:
        return float(self.env.illuminance())

    def recording_metadata(self) -> dict:
        """The joint limits with MuJoCo's soft-limit deflection as QA's tolerance (collector/sim/limits.py)."""
        from collector.sim.limits import joint_limit_metadata

        return {"joint_limits": joint_limit_metadata(self.robot, self.env.model)}

    def close(self, close_env: bool = True) -> None:
        """Stop the render thread and (unless close_env=False, for a shared env) close the SimEnv."""
        if self._worker is not None:
            self._worker.jobs.put(None)
            self._worker.join(timeout=5.0)
            self._worker = None
        if close_env:
            self.env.close()
