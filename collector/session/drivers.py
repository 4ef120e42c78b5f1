"""Take drivers: the robot side of a session (backend + operator input + the teleop loop).

SimDriver     in-process MuJoCo (collector.backends.sim.SimBackend over collector.sim.SimEnv). The session's
              lighting and weight presets are applied by resetting the sim with them; success comes
              from the task's own check. One SimEnv and one TeleopLoop per task, reused across takes.
HardwareDriver a ROS 2 robot (collector.ros.RosBackend). Conditions cannot be applied by software: the
              session shows the operator what to set up, and records the conditions as requested plus
              the measured illuminance stream when the robot has a sensor.

Operator input is any teleop device: `scripted` (sim only), `keyboard`, `gamepad`, or `vr`/`zmq`
(the loop subscribes to the VR bridge's ZMQ endpoint).

With a policy (`policy=CHECKPOINT`) the policy drives each take from its start and the operator takes
over and hands back with the takeover button (collector/teleop/takeover.py); the scripted operator is
then the scripted corrector, which takes over when the policy fails. The take's handovers are written
into the episode (`handovers` metadata) beside the per-tick `control` stream.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Dict, Optional

from collector.errors import ConfigError, DeviceError
from collector.recorder.vocabulary import JOINTS, camera_stream_name
from collector.session.cells import Cell
from collector.session.live import LiveState
from collector.session.plan import Plan
from collector.session.runner import TakeDriver, TakeResult

if TYPE_CHECKING:
    from collector.teleop.rig import Rig

log = logging.getLogger(__name__)

# Plan operator name -> teleop device name (VR arrives over ZMQ from the VR bridge).
DEVICE_FOR_OPERATOR = {"scripted": "scripted", "keyboard": "keyboard", "gamepad": "gamepad", "vr": "zmq",
                       "zmq": "zmq"}


class StoppableDevice:
    """Wraps an input device so a dashboard Stop ends the take: the loop ends when `done` turns true."""

    def __init__(self, device):
        self.device = device
        self.stop = threading.Event()

    @property
    def done(self) -> bool:
        return self.stop.is_set() or bool(self.device.done)

    def __getattr__(self, name):
        return getattr(self.device, name)


class SimDriver(TakeDriver):
    kind = "sim"

    def __init__(self, plan: Plan, operator: Optional[str] = None, render: bool = True, teleop_config=None,
                 policy=None):
        from collector.teleop.config import load_teleop_config

        self.plan = plan
        self.operator = operator or plan.operator
        if self.operator not in DEVICE_FOR_OPERATOR:
            raise ConfigError(f"unknown operator input {self.operator!r} (one of {sorted(DEVICE_FOR_OPERATOR)})")
        self.render = render
        self.policy = _checked_policy(policy, render)
        self.config = teleop_config or load_teleop_config()
        # Loaded (and so checked against its MJCF) now, before the session creates the dataset folder,
        # the catalogue or a session: a wrong robot YAML must fail with nothing created.
        from collector.robot import load_robot

        self.robot = load_robot(plan.robot)
        self._rigs: Dict[str, "Rig"] = {}  # one per task: its backend, loop and (stoppable) device, reused
        self._current: Optional["Rig"] = None

    def _rig(self, task: str) -> "Rig":
        rig = self._rigs.get(task)
        if rig is None:
            from collector.teleop.rig import build_sim_rig

            env_kwargs = {"theme": self.plan.scene} if self.plan.scene else {}
            device = DEVICE_FOR_OPERATOR[self.operator]
            if self.policy is not None and device == "scripted":
                device = "corrector"
            rig = self._rigs[task] = build_sim_rig(
                robot=self.robot, task=task, device=device, config=self.config, render=self.render,
                wrap_device=StoppableDevice, policy=self.policy,
                # a policy in lockstep sees each frame in the tick that took it, whatever the CPU load
                async_render=self.policy is None, **env_kwargs)
        return rig

    # The stream layout is the same for every task of one robot; take it from the current rig.
    def streams(self) -> list:
        return self._current.loop.stream_specs()

    def recording_metadata(self) -> Dict:
        return self._current.loop.recording_metadata()

    @property
    def camera_streams(self) -> tuple:
        if self._current is None:
            return ()
        return tuple(camera_stream_name(name) for name in self._current.backend.cameras())

    joint_stream = JOINTS

    @property
    def joint_names(self):
        return list(self._current.loop.kin.command_joints) if self._current else None

    def prepare(self, cell: Cell, seed: int) -> Dict:
        rig = self._current = self._rig(cell.task)
        conditions = dict(rig.backend.reset(lighting=cell.lighting, weight=cell.weight, seed=seed) or {})
        self._seed = seed
        if rig.takeover is not None:
            rig.takeover.tell()  # an object the policy never learned: say so before recording
        return conditions

    def preview(self, live: LiveState) -> None:
        rig = self._current
        if rig is None or not self.render:
            return
        frames = []
        for name in rig.backend.cameras():
            frame = rig.backend.capture(name)  # right after a reset every camera is due
            if frame is not None:
                frames.append((name, *frame))
        # The backend may render on a worker thread: collect what it has finished.
        frames.extend(rig.backend.finish_frames())
        for name, t, image in frames:
            live.set_frame(camera_stream_name(name), t, image)
        rig.backend.reset_camera_clocks()  # the take starts its camera schedule afresh
        state = rig.backend.read_state()
        live.set_robot(state.t, state.position, self.joint_names)

    def run(self, sink, time_limit_s: float, stop: threading.Event) -> TakeResult:
        rig = self._current
        if rig.device is None:
            return _run_until_stopped(rig.loop, sink, time_limit_s, stop, success_fn=rig.backend.task_success)
        from collector.teleop.devices.scripted import operator_phases_metadata

        rig.device.stop = stop
        result = rig.run_episode(time_limit_s, sink=sink, seed=self._seed, stop_on_success=True)
        if stop.is_set():
            stopped_by = "operator"
        elif result.success:
            stopped_by = "success"
        elif rig.device.device.done:
            stopped_by = "operator_done"
        else:
            stopped_by = "time_limit"
        return TakeResult(bool(result.success), float(result.duration_s), stopped_by,
                          {"task": result.metrics, "loop": result.stats},
                          {**_policy_metadata(rig), **operator_phases_metadata(rig.device)})

    def close(self) -> None:
        for rig in self._rigs.values():
            rig.close()
        self._rigs.clear()


class HardwareDriver(TakeDriver):
    """A ROS 2 robot. Its conditions are set up by the operator; success is the operator's call."""

    kind = "ros2"
    joint_stream = JOINTS

    def __init__(self, plan: Plan, operator: Optional[str] = None, teleop_config=None, backend=None, policy=None):
        from collector.teleop.config import load_teleop_config

        self.plan = plan
        self.operator = operator or plan.operator
        if self.operator == "scripted":
            raise ConfigError("the scripted operator needs the simulator (backend: sim)")
        policy = _checked_policy(policy, render=True)
        self.config = teleop_config or load_teleop_config()
        if backend is None:
            try:
                from collector.ros import RosBackend
            except ImportError as exc:
                raise DeviceError(f"backend ros2 needs the ROS 2 packages ({exc}); "
                                  "install with `pip install -e .[ros]`") from None
            backend = RosBackend(plan.robot)
        from collector.teleop.rig import build_rig

        self.rig = build_rig(backend, DEVICE_FOR_OPERATOR[self.operator], self.config, wrap_device=StoppableDevice,
                             policy=policy)
        self.backend, self.device, self.loop = self.rig.backend, self.rig.device, self.rig.loop
        self.camera_streams = tuple(camera_stream_name(name) for name in backend.cameras())
        self.joint_names = list(self.loop.kin.command_joints)
        self._conditions: Dict = {}

    def streams(self) -> list:
        return self.loop.stream_specs()

    def recording_metadata(self) -> Dict:
        return self.loop.recording_metadata()

    def prepare(self, cell: Cell, seed: int) -> Dict:
        # Recorded as requested; what was measured (illuminance) is in the episode's sensor stream.
        self._conditions = {"lighting": {"preset": cell.lighting, "applied_by": "operator"},
                            "weights": {"preset": cell.weight, "applied_by": "operator"}, "seed": seed}
        if self.rig.takeover is not None:  # the robot cannot say what the task is: the plan does
            told = {"task": cell.task, "instruction": self.plan.task(cell.task).instruction_for(self._conditions)}
            self.rig.takeover.tell(lambda: told)
        return dict(self._conditions)

    def run(self, sink, time_limit_s: float, stop: threading.Event) -> TakeResult:
        result = _run_until_stopped(self.loop, sink, time_limit_s, stop, success_fn=None, device=self.device)
        result.episode_metadata = _policy_metadata(self.rig)
        return result

    def close(self) -> None:
        self.rig.close()


def _run_until_stopped(loop, sink, time_limit_s: float, stop: threading.Event, success_fn=None,
                       device: Optional[StoppableDevice] = None) -> TakeResult:
    """Run the loop until Stop or the time limit; success (if judged here) is read at the end."""
    if device is not None:
        device.stop = stop
    loop.sink = sink
    try:
        loop.start()
        t0 = loop.backend.now()
        wall0 = time.monotonic()
        loop.run(time_limit_s, until=stop.is_set)
        duration = loop.backend.now() - t0
    finally:
        loop.sink = None
    success = bool(success_fn()) if callable(success_fn) else None
    stopped_by = "operator" if stop.is_set() else "time_limit"
    log.debug("take ran %.1f s (wall %.1f s), stopped by %s", duration, time.monotonic() - wall0, stopped_by)
    return TakeResult(success, float(duration), stopped_by, {"loop": loop.stats.summary()})


def _checked_policy(policy, render: bool):
    """The checkpoint, loaded before anything is opened or created (a bad file: one ConfigError)."""
    if policy is None:
        return None
    if not render:
        raise ConfigError("--policy needs the cameras the policy sees: drop --no-render")
    from collector.policy.checkpoint import Checkpoint

    return policy if isinstance(policy, Checkpoint) else Checkpoint.load(policy)


def _policy_metadata(rig) -> Dict:
    """What the episode records about a policy-driven take: the handovers and why the corrector stepped in."""
    if rig.takeover is None:
        return {}
    device = getattr(rig.device, "device", rig.device)
    checkpoint = rig.takeover.policy.runner.checkpoint
    metadata = {"handovers": rig.handovers(),
                "policy": {"checkpoint": str(checkpoint.path.resolve()) if checkpoint.path else "",
                           "policy": checkpoint.policy, "step": int(checkpoint.step)}}
    reason = getattr(device, "reason", None)
    if reason:
        metadata["corrector"] = {"reason": reason, "took_over_at": round(float(device.took_over_at), 6)}
    return metadata


def make_driver(plan: Plan, operator: Optional[str] = None, render: bool = True, policy=None,
                teleop_config=None) -> TakeDriver:
    if plan.backend == "sim":
        return SimDriver(plan, operator=operator, render=render, policy=policy, teleop_config=teleop_config)
    return HardwareDriver(plan, operator=operator, policy=policy, teleop_config=teleop_config)
