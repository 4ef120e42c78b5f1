"""The control loop: operator input -> retargeting -> mink IK -> safety gate -> robot, at a fixed rate.

Two modes, chosen by the backend:
- lockstep (in-process sim): each tick reads the state, computes and sends the command, then
  advances the sim by one control period; sim time is the session clock; runs as fast as the
  CPU allows (demo, tests, CI).
- realtime (live operators, ROS 2 hardware): ticks are paced on the wall clock at the control
  rate; jitter is how far each tick-to-tick interval differs from the nominal period. The tick
  phase locks onto the operator stream so an input waits ~1 ms for the loop, not up to a period.

Local devices (scripted operator, keyboard, gamepad) publish their messages on an inproc ZMQ
PUB/SUB pair that the loop reads back, so they reach the robot through the same encode -> ZMQ ->
decode path as a VR bridge; `--device zmq` subscribes to an external endpoint instead.

Each tick publishes to the recorder's sink: `joints` (measured), `command` (safe command sent),
`input` (every operator message received), `ik_target`, `safety`, the cameras that are due,
and in simulation `illuminance`, `sim_state` (the full simulator state) and `pose_objects_<name>`.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import zmq

from collector.errors import ConfigError
from collector.recorder.streams import FieldSpec, StreamSpec, camera_stream
from collector.teleop.config import TeleopConfig, load_teleop_config
from collector.teleop.devices.base import DeviceContext
from collector.teleop.ik import ArmIK, RobotKinematics
from collector.teleop.messages import OperatorInput, flatten_for_recording, recording_field_shapes
from collector.teleop.phase_lock import PhaseLock
from collector.teleop.realtime import input_context, raise_priority
from collector.teleop.retarget import HeadMapping, RetargetOutput, Retargeter
from collector.teleop.safety import GateState, JointLimits, SafetyGate
from collector.teleop.zmq_link import InputPublisher, InputSubscriber

log = logging.getLogger(__name__)

GATE_STATE_CODES = {GateState.DISARMED: 0, GateState.ACTIVE: 1, GateState.HOLD: 2, GateState.STOPPED: 3}
ILLUMINANCE_RATE_HZ = 10.0
_inproc_ids = itertools.count()


def _percentiles(values: List[float], scale: float = 1000.0) -> Dict[str, float]:
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan, "n": 0}
    arr = np.asarray(values) * scale
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(arr.max()), "n": int(arr.size)}


@dataclass
class LoopStats:
    ticks: int = 0
    wall_s: float = 0.0
    ik_s: List[float] = field(default_factory=list)
    input_to_command_s: List[float] = field(default_factory=list)
    tick_s: List[float] = field(default_factory=list)
    jitter_s: List[float] = field(default_factory=list)  # realtime only: |tick interval - period|
    overruns: int = 0
    inputs: int = 0
    inputs_rejected: int = 0
    inputs_out_of_order: int = 0
    frames: int = 0
    sink_rejected: int = 0
    ik_failures: int = 0
    gate: Dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "ticks": self.ticks,
            "wall_s": self.wall_s,
            "control_hz": self.ticks / self.wall_s if self.wall_s > 0 else math.nan,
            "ik_ms": _percentiles(self.ik_s),
            "input_to_command_ms": _percentiles(self.input_to_command_s),
            "tick_ms": _percentiles(self.tick_s),
            "jitter_ms": _percentiles(self.jitter_s),
            "overruns": self.overruns,
            "inputs": self.inputs,
            "inputs_rejected": self.inputs_rejected,
            "inputs_out_of_order": self.inputs_out_of_order,
            "frames": self.frames,
            "sink_rejected": self.sink_rejected,
            "ik_failures": self.ik_failures,
            "gate": dict(self.gate),
        }


@dataclass
class EpisodeResult:
    success: bool
    metrics: dict
    duration_s: float  # session-clock seconds
    ticks: int
    stats: dict
    conditions: dict = field(default_factory=dict)


class TeleopLoop:
    def __init__(self, backend, config: Optional[TeleopConfig] = None, device=None, sink=None,
                 endpoint: Optional[str] = None, bind: Optional[bool] = None):
        self.backend = backend
        self.robot = backend.robot
        self.cfg = config if config is not None else load_teleop_config()
        self.device = device
        self.sink = sink
        self.control_dt = self.cfg.control_dt
        backend_dt = getattr(backend, "control_dt", None)
        if backend.lockstep and backend_dt is not None and abs(backend_dt - self.control_dt) > 1e-9:
            raise ConfigError(f"teleop control rate {self.cfg.control.rate_hz} Hz does not match the sim's control "
                              f"period {backend_dt} s; create the SimEnv with control_hz={self.cfg.control.rate_hz}")

        self.kin = RobotKinematics(self.robot)
        lower, upper = self.kin.position_limits()
        self.limits = JointLimits(lower, upper, self._velocity_limits(lower, upper))
        self.ik = ArmIK(self.kin, self.cfg.ik, self.control_dt,
                        {j: float(v) for j, v in zip(self.kin.command_joints, self.limits.velocity)})
        self.home_ee = self.kin.ee_poses(self.kin.q_home)
        self.workspace_min, self.workspace_max = self._workspace_box()
        self.gate = SafetyGate(self.limits, self.control_dt, self.cfg.input.hold_after_s,
                               self.cfg.input.stop_after_s, workspace_violation=self._workspace_violation)
        self.retargeter = Retargeter(self.cfg.retarget, self.cfg.input, self.home_ee, self._head_mapping())
        self.gripper_idx = self._gripper_indices()

        # The loop's own ZMQ context: its I/O thread delivers operator input, and gets the control
        # thread's realtime priority when one is configured (see realtime.py). An external inproc
        # endpoint only works within the sender's context: the process-wide one (inproc bypasses
        # the I/O thread anyway).
        endpoint = endpoint or self.cfg.control.input_endpoint
        shared = device is None and endpoint.startswith("inproc://")
        self._zmq = zmq.Context.instance() if shared else input_context(self.cfg.control.realtime_priority)
        self._own_zmq = not shared
        try:
            if device is not None:
                # Local device: a private inproc pair; the XPUB handshake guarantees no message is lost.
                endpoint = f"inproc://collector-teleop-{id(self)}-{next(_inproc_ids)}"
                self.publisher: Optional[InputPublisher] = InputPublisher(endpoint, bind=True, context=self._zmq)
                self.subscriber = InputSubscriber(endpoint, bind=False, context=self._zmq)
                self.publisher.wait_for_subscriber(timeout_s=2.0)
            else:
                self.publisher = None
                self.subscriber = InputSubscriber(endpoint, bind=self.cfg.control.input_bind if bind is None else bind,
                                                  context=self._zmq)
        except BaseException:
            if self._own_zmq:
                self._zmq.destroy(linger=0)
            raise
        self.stats = LoopStats()
        self._last_seq: Dict[str, int] = {}
        self._latest: Optional[OperatorInput] = None
        self._latest_arrival: Optional[float] = None
        self._pending: list = []  # (monotonic arrival, message) read while waiting for the next tick
        self._realtime = False
        self._last_input_stamp = -math.inf
        self._last_input_t: Optional[float] = None
        self._retarget: Optional[RetargetOutput] = None
        self._targets: Dict[str, Optional[tuple]] = {s: None for s in self.robot.end_effectors}
        self._next_illuminance_t = -math.inf
        self._started = False
        self._camera_names = list(self.backend.cameras())
        self.phase_lock: Optional[PhaseLock] = None  # realtime runs: set by run()
        self.realtime_scheduling = False  # whether the last run() got SCHED_FIFO

    # -- setup -------------------------------------------------------------------------------------
    def _velocity_limits(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        from_yaml = getattr(self.robot, "velocity_limits", None) or {}
        gripper_joints = {self._actuator_joint(g["actuator"]) for g in self.robot.grippers.values()}
        out = []
        for j, lo, hi in zip(self.kin.command_joints, lower, upper):
            if j in from_yaml:
                v = float(from_yaml[j])
            elif j in gripper_joints:
                v = (hi - lo) / self.cfg.safety.gripper_travel_s
            else:
                v = self.cfg.safety.default_velocity_limit
            out.append(v * self.cfg.safety.velocity_scale)
        return np.array(out)

    def _actuator_joint(self, actuator: str) -> str:
        for joint, act in self.robot.actuators.items():
            if act == actuator:
                return joint
        raise ConfigError(f"robot {self.robot.name!r}: gripper actuator {actuator!r} drives no command joint")

    def _gripper_indices(self) -> Dict[str, int]:
        return {side: self.kin.index(self._actuator_joint(g["actuator"])) for side, g in self.robot.grippers.items()}

    def _head_mapping(self) -> Optional[HeadMapping]:
        head = self.robot.head or {}
        if "pan" not in head or "tilt" not in head:
            return None
        pan_i, tilt_i = self.kin.index(head["pan"]), self.kin.index(head["tilt"])
        # The axes decide the signs: + yaw turns left about world z, + pitch looks down about world y.
        pan_sign = float(np.sign(self.kin.joint_world_axis(head["pan"]) @ np.array([0, 0, 1.0])) or 1.0)
        tilt_sign = float(np.sign(self.kin.joint_world_axis(head["tilt"]) @ np.array([0, 1.0, 0])) or 1.0)
        return HeadMapping(
            home_pan=float(self.kin.q_home[pan_i]), home_tilt=float(self.kin.q_home[tilt_i]),
            pan_sign=pan_sign, tilt_sign=tilt_sign,
            pan_range=(float(self.limits.lower[pan_i]), float(self.limits.upper[pan_i])),
            tilt_range=(float(self.limits.lower[tilt_i]), float(self.limits.upper[tilt_i])),
        )

    def _workspace_box(self):
        ws = self.cfg.safety.workspace
        if isinstance(ws, dict):
            return np.array(ws["min"], float), np.array(ws["max"], float)
        homes = np.array([p for p, _ in self.home_ee.values()])
        margin = np.array(self.cfg.safety.workspace_margin, float)
        return homes.min(axis=0) - margin, homes.max(axis=0) + margin

    def _workspace_violation(self, q: np.ndarray) -> float:
        worst = 0.0
        for pos in self.kin.ee_positions(q).values():
            outside = np.maximum(self.workspace_min - pos, 0) + np.maximum(pos - self.workspace_max, 0)
            worst = max(worst, float(np.linalg.norm(outside)))
        return worst

    @property
    def latest_input(self) -> Optional[OperatorInput]:
        """The newest accepted operator message (what the current command is based on)."""
        return self._latest

    # -- streams -------------------------------------------------------------------------------------
    def stream_specs(self) -> List[StreamSpec]:
        """Everything this loop will push, so the recorder can be set up before the episode starts."""
        n = len(self.kin.command_joints)
        rate = self.cfg.control.rate_hz
        joint_attrs = {"joint_names": list(self.kin.command_joints)}
        specs = [
            StreamSpec("joints", {"position": FieldSpec((n,)), "velocity": FieldSpec((n,)),
                                  "effort": FieldSpec((n,))}, rate, kind="joints", default_align="linear",
                       attrs=joint_attrs),
            StreamSpec("command", {"position": FieldSpec((n,))}, rate, kind="command", attrs=joint_attrs),
            StreamSpec("input", {name: FieldSpec(shape, dtype) for name, (shape, dtype) in recording_field_shapes().items()},
                       rate, kind="input", attrs={"operator_frame": self.cfg.retarget.operator_frame}),
            StreamSpec("ik_target", {**{side: FieldSpec((7,)) for side in self.robot.end_effectors},
                                     "active": FieldSpec((len(self.robot.end_effectors),), "uint8")},
                       rate, kind="pose",
                       attrs={"layout": "x y z qw qx qy qz (world frame); inactive arms hold their commanded pose",
                              "sides": list(self.robot.end_effectors)}),
            StreamSpec("safety", {"state": FieldSpec((), "uint8"), "enable": FieldSpec((), "uint8"),
                                  "clamped": FieldSpec((), "uint8")}, rate, kind="generic",
                       attrs={"states": {s.value: c for s, c in GATE_STATE_CODES.items()}}),
        ]
        for name, cam in self.backend.cameras().items():
            specs.append(camera_stream(f"camera_{name}", cam.width, cam.height, cam.fps))
        world_streams = getattr(self.backend, "world_streams", None)
        if callable(world_streams):  # simulation: the full simulator state and every object's pose
            specs.extend(world_streams())
        if callable(getattr(self.backend, "illuminance", None)):
            specs.append(StreamSpec("illuminance", {"value": FieldSpec(())}, ILLUMINANCE_RATE_HZ, kind="sensor",
                                    attrs={"unit": "lux"}))
        return specs

    def recording_metadata(self) -> dict:
        """Episode metadata only the loop knows: the joint limits and QA's tolerance past them.

        In simulation the tolerance is MuJoCo's soft-limit deflection (collector/sim/limits.py);
        on hardware a fixed small one.
        """
        from collector.sim.limits import joint_limit_metadata

        env = getattr(self.backend, "env", None)
        return {"joint_limits": joint_limit_metadata(self.robot, getattr(env, "model", None))}

    def _push(self, stream: str, t: float, **fields) -> None:
        if self.sink is not None and not self.sink.push(stream, t, **fields):
            self.stats.sink_rejected += 1

    # -- episode ---------------------------------------------------------------------------------
    def start(self, seed: Optional[int] = None) -> None:
        """Hold the robot where it is and hand the device its context."""
        state = self.backend.read_state()
        self.gate.reset(state.position, t=self.backend.now())
        self.retargeter.reset()
        self.ik.reset()
        self._targets = {s: None for s in self.robot.end_effectors}
        self._latest = None
        self._last_input_t = None
        self._last_input_stamp = -math.inf
        self._last_seq.clear()
        self._next_illuminance_t = -math.inf
        if hasattr(self.backend, "reset_camera_clocks"):
            self.backend.reset_camera_clocks()
        if self.device is not None:
            self.device.start(DeviceContext(self.backend, self.retargeter, self.kin, self.control_dt, seed))
        self.stats = LoopStats()
        self._started = True

    def _accept(self, msg: OperatorInput) -> bool:
        last = self._last_seq.get(msg.source)
        # Late or duplicated messages are dropped; a seq far below the last one is a restarted sender.
        if last is not None and msg.seq <= last and last - msg.seq < 1000:
            self.stats.inputs_out_of_order += 1
            return False
        self._last_seq[msg.source] = msg.seq
        return True

    def _receive(self, now: float, expect: bool) -> Optional[float]:
        """Read all pending input; returns the monotonic receive time of the newest accepted message."""
        rejected_before = self.subscriber.rejected
        messages = self._pending + self.subscriber.receive(0.0)
        self._pending = []
        if expect and not messages:
            messages = self.subscriber.receive(0.05)  # non-inproc transports deliver asynchronously
        self.stats.inputs_rejected += self.subscriber.rejected - rejected_before
        newest = None
        tick_mono = time.monotonic()
        for received_at, msg in messages:
            t_arrival = now
            if self._realtime:
                # Session time of arrival (the session clock runs at wall speed here): messages read
                # while waiting for this tick arrived earlier. Never before the previous input.
                t_arrival = max(now - max(0.0, tick_mono - received_at), self._last_input_stamp)
            self._last_input_stamp = t_arrival
            self._push("input", t_arrival, **flatten_for_recording(msg))
            if self._accept(msg):
                self._latest = msg
                self._latest_arrival = received_at
                self._last_input_t = t_arrival
                newest = received_at
                self.stats.inputs += 1
        return newest

    def _push_ik_target(self, now: float, q_command: np.ndarray) -> None:
        if self.sink is None:
            return
        held = None
        fields = {}
        for side, target in self._targets.items():
            if target is None:  # no target: the arm holds where it is commanded
                held = held or self.kin.ee_poses(q_command)
                target = held[side]
            fields[side] = np.concatenate([target[0] + self.kin.base_offset, target[1]])
        fields["active"] = np.array([t is not None for t in self._targets.values()], dtype=np.uint8)
        self._push("ik_target", now, **fields)

    def _push_world(self) -> None:
        """The simulator's state and object poses at the record rate (on the camera frames' ticks)."""
        world_sample = getattr(self.backend, "world_sample", None)
        if self.sink is None or not callable(world_sample):
            return
        sample = world_sample()
        if sample is not None:
            t, state, poses = sample
            self._push("sim_state", t, state=state)
            for stream, pose in poses.items():
                self._push(stream, t, pose=pose)

    def _current_ee(self):
        return self.kin.ee_poses(self.gate.command)

    def _clip_target(self, pose):
        pos, quat = pose
        return np.clip(pos, self.workspace_min, self.workspace_max), quat

    def tick(self) -> None:
        """One control period."""
        t_start = time.monotonic()
        now = self.backend.now()
        published_at = None
        if self.device is not None:
            msg = self.device.poll(now)
            if msg is not None:
                published_at = time.monotonic()
                self.publisher.publish(msg)
        received_at = self._receive(now, expect=published_at is not None)
        if received_at is not None:
            self._retarget = self.retargeter.update(self._latest, self._current_ee)

        state = self.backend.read_state()
        self._push("joints", state.t, position=state.position, velocity=state.velocity, effort=state.effort)

        q_desired = None
        rt = self._retarget
        enable = bool(rt is not None and rt.enable)
        if rt is not None and rt.engaged:
            for side, pose in rt.targets.items():
                if pose is not None:
                    self._targets[side] = self._clip_target(pose)
            q_base = self.gate.command
            result = self.ik.solve(q_base, self._targets)
            self.stats.ik_s.append(result.solve_s)
            if result.ok:
                q_desired = result.q
                for side, closure in rt.gripper.items():
                    if closure is not None and side in self.gripper_idx:
                        q_desired[self.gripper_idx[side]] = self.robot.gripper_command(side, closure)
                if rt.head is not None and self.retargeter.head_mapping is not None:
                    q_desired[self.kin.index(self.robot.head["pan"])] = rt.head[0]
                    q_desired[self.kin.index(self.robot.head["tilt"])] = rt.head[1]
            else:
                self.stats.ik_failures += 1
                log.warning("IK failed: %s", result.error)
        elif rt is not None and not rt.engaged:
            self.ik.reset()  # after re-engagement each arm restarts from where it is held
            self._targets = {s: None for s in self.robot.end_effectors}

        out = self.gate.step(now, q_desired, enable, self._last_input_t)
        if out.state is GateState.STOPPED and self.retargeter.calibrated:
            self.retargeter.release()
        self.backend.send_command(now, out.q)
        t_cmd = time.monotonic()
        if received_at is not None:
            self.stats.input_to_command_s.append(t_cmd - (published_at if published_at is not None else received_at))
        self._push("command", now, position=out.q)
        self._push_ik_target(now, out.q)
        self._push("safety", now, state=np.uint8(GATE_STATE_CODES[out.state]), enable=np.uint8(enable),
                   clamped=np.uint8(out.clamped))
        self.stats.gate[out.state.value] = self.stats.gate.get(out.state.value, 0) + 1

        for name in self._camera_names:
            frame = self.backend.capture(name)
            if frame is not None:
                self.stats.frames += 1
                self._push(f"camera_{name}", frame[0], image=frame[1])
        self._push_world()
        illuminance = getattr(self.backend, "illuminance", None)
        if callable(illuminance) and now >= self._next_illuminance_t:
            value = illuminance()
            if value is not None:
                self._push("illuminance", now, value=np.float64(value))
            self._next_illuminance_t = now + 1.0 / ILLUMINANCE_RATE_HZ
        self.stats.ticks += 1
        self.stats.tick_s.append(time.monotonic() - t_start)
        if self.backend.lockstep:
            self.backend.advance()

    def run(self, max_duration_s: float, until=None, realtime: Optional[bool] = None) -> None:
        """Tick until `until()` is true, the device is done, or max_duration_s of session time passed.

        realtime: pace ticks on the wall clock (default: only for non-lockstep backends). A live
        operator on the in-process sim wants realtime=True: the sim still advances one period per tick.
        """
        if not self._started:
            self.start()
        realtime = (not self.backend.lockstep) if realtime is None else bool(realtime)
        self._realtime = realtime
        set_realtime = getattr(self.backend, "set_realtime", None)
        if callable(set_realtime):
            set_realtime(realtime)
        restore_policy = raise_priority(self.cfg.control.realtime_priority) if realtime else None
        self.realtime_scheduling = restore_policy is not None
        t0_session = self.backend.now()
        wall0 = time.monotonic()
        period = self.control_dt
        self.phase_lock = PhaseLock(period, self.cfg.control.phase_lock_lag_ms / 1000.0) \
            if realtime and self.cfg.control.phase_lock else None
        next_tick = wall0
        previous_start = None
        try:
            while True:
                tick_start = time.monotonic()
                if realtime and previous_start is not None:
                    # Jitter: how far this period differed from the nominal one (phase-lock nudges included).
                    self.stats.jitter_s.append(abs(tick_start - previous_start - period))
                previous_start = tick_start
                self.tick()
                if self.backend.now() - t0_session >= max_duration_s:
                    break
                if self.device is not None and self.device.done:
                    break
                if until is not None and until():
                    break
                if realtime:
                    next_tick += period
                    if self.phase_lock is not None:  # tick just after inputs arrive (see phase_lock.py)
                        next_tick -= self.phase_lock.update(tick_start, self._latest_arrival)
                    if time.monotonic() > next_tick:
                        self.stats.overruns += 1
                        next_tick = time.monotonic()
                    self._wait_until(next_tick)
        finally:
            if restore_policy is not None:
                restore_policy()
        self.stats.wall_s = time.monotonic() - wall0  # the ticking itself (the rate), not the frame drain below
        finish = getattr(self.backend, "finish_frames", None)
        if callable(finish):  # frames rendered off-thread that the last ticks did not hand out yet
            for name, t, image in finish():
                self.stats.frames += 1
                self._push(f"camera_{name}", t, image=image)

    def _wait_until(self, deadline: float) -> None:
        """Sleep until the next tick, reading operator input as it arrives (true arrival times)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.0006:
                break
            # Wakes on the first message or ~0.5 ms before the deadline, whichever comes first.
            self._pending.extend(self.subscriber.receive(remaining - 0.0005))
        while time.monotonic() < deadline:  # the OS wakes us ~0.1 ms late at best: spin the rest
            pass

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
        if self.publisher is not None:
            self.publisher.close()
        self.subscriber.close()
        if self._own_zmq:
            self._zmq.term()


def run_episode(backend, operator=None, sink=None, max_duration_s: float = 60.0, stop_on_success: bool = True,
                config: Optional[TeleopConfig] = None, seed: Optional[int] = None, success_hold_s: float = 0.5,
                loop: Optional[TeleopLoop] = None, realtime: Optional[bool] = None) -> EpisodeResult:
    """Run one episode through the full loop and report task success (when the backend can judge it).

    operator: a local device (e.g. ScriptedOperator), or None to listen on the configured ZMQ endpoint.
    Stops when the operator is done, after max_duration_s of session time, or (stop_on_success) once
    the task has been successful for success_hold_s.
    """
    own_loop = loop is None
    if loop is None:
        loop = TeleopLoop(backend, config=config, device=operator, sink=sink)
    elif sink is not None:
        loop.sink = sink
    success_fn = getattr(backend, "task_success", None)
    success_since: List[Optional[float]] = [None]

    def until() -> bool:
        if not (stop_on_success and callable(success_fn)):
            return False
        if success_fn():
            if success_since[0] is None:
                success_since[0] = backend.now()
            return backend.now() - success_since[0] >= success_hold_s
        success_since[0] = None
        return False

    try:
        loop.start(seed=seed)
        t0 = backend.now()
        loop.run(max_duration_s, until=until, realtime=realtime)
        duration = backend.now() - t0
        success = bool(success_fn()) if callable(success_fn) else False
        metrics_fn = getattr(backend, "task_metrics", None)
        metrics = dict(metrics_fn()) if callable(metrics_fn) else {}
        conditions = dict(getattr(backend, "conditions", {}) or {})
        return EpisodeResult(success, metrics, duration, loop.stats.ticks, loop.stats.summary(), conditions)
    finally:
        if own_loop:
            loop.close()

