"""The control loop: read input -> choose who commands -> retarget + IK -> safety gate -> send -> record.

Each stage is its own object, and `tick` calls them in that order:

    input     InputReader (input_reader.py): the device's message over ZMQ, late/duplicate drops
    arbiter   CommandArbiter (arbiter.py): every command source sees the tick, one is in control
    source    OperatorSource (operator_source.py): retargeting + mink IK; or any CommandSource
    gate      SafetyGate (safety.py): limits, velocity, deadman, stale input, workspace; for every source
    backend   RobotBackend.send_command (collector/backends)
    record    RecordingTap (recording.py): the loop's streams and the backend's sensors into the sink
    pace      Pacer (pacer.py): realtime runs only

Two modes, chosen by the backend:
- lockstep (in-process sim): each tick reads the state, computes and sends the command, then
  advances the sim by one control period; sim time is the session clock; runs as fast as the
  CPU allows (demo, tests, CI).
- realtime (live operators, ROS 2 hardware): ticks are paced on the wall clock at the control
  rate; the tick phase locks onto the operator stream so an input waits ~1 ms for the loop, not
  up to a period.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from collector.errors import ConfigError
from collector.interrupts import deferred
from collector.teleop.arbiter import CommandArbiter, CommandSource, Chooser, TickContext
from collector.teleop.config import TeleopConfig, load_teleop_config
from collector.teleop.devices.base import DeviceContext
from collector.teleop.ik import RobotKinematics
from collector.teleop.input_reader import InputReader
from collector.teleop.loop_stats import LoopStats
from collector.teleop.messages import OperatorInput
from collector.teleop.operator_source import OperatorSource
from collector.teleop.pacer import Pacer
from collector.teleop.phase_lock import PhaseLock
from collector.teleop.realtime import raise_priority
from collector.teleop.recording import RecordingTap
from collector.teleop.robot_limits import Workspace, joint_limits
from collector.teleop.safety import SafetyGate


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
                 endpoint: Optional[str] = None, bind: Optional[bool] = None,
                 sources: Sequence[CommandSource] = (), choose: Optional[Chooser] = None):
        """sources: command sources besides the operator (who is always the first, and in control
        by default); choose(tick) -> source id picks the one in control per tick (arbiter.py)."""
        self.backend = backend
        self.robot = backend.robot
        self.cfg = config if config is not None else load_teleop_config()
        self.device = device
        self.control_dt = self.cfg.control_dt
        self._check_control_rate()
        self.stats = LoopStats()

        self.kin = RobotKinematics(self.robot)
        self.limits = joint_limits(self.robot, self.kin, self.cfg.safety)
        home_ee = self.kin.ee_poses(self.kin.q_home)
        self.workspace = Workspace(self.kin, self.cfg.safety, home_ee)

        self.operator = OperatorSource(self.robot, self.kin, self.cfg, self.control_dt, self.limits,
                                       self.workspace, home_ee, self.stats)
        self.arbiter = CommandArbiter([self.operator, *sources], choose)
        self.gate = SafetyGate(self.limits, self.control_dt, self.cfg.input.hold_after_s,
                               self.cfg.input.stop_after_s, workspace_violation=self.workspace.violation)
        self.recording = RecordingTap(backend, self.kin, self.cfg, self.arbiter, self.stats, sink)
        # Last: it opens the ZMQ sockets, which nothing after it could fail to close.
        self.input = InputReader(self.cfg.control, device, endpoint, bind, self.stats, record=self.recording.input)

        self._started = False
        self.phase_lock: Optional[PhaseLock] = None  # realtime runs: set by run()
        self.realtime_scheduling = False  # whether the last run() got SCHED_FIFO

    def _check_control_rate(self) -> None:
        backend_dt = self.backend.control_dt
        if self.backend.lockstep and backend_dt is not None and abs(backend_dt - self.control_dt) > 1e-9:
            raise ConfigError(f"teleop control rate {self.cfg.control.rate_hz} Hz does not match the sim's control "
                              f"period {backend_dt} s; create the SimEnv with control_hz={self.cfg.control.rate_hz}")

    # -- what the stages hold, under the names callers use ------------------------------------------
    @property
    def sink(self):
        return self.recording.sink

    @sink.setter
    def sink(self, sink) -> None:
        self.recording.sink = sink

    @property
    def subscriber(self):
        return self.input.subscriber

    @subscriber.setter
    def subscriber(self, subscriber) -> None:
        self.input.subscriber = subscriber

    @property
    def retargeter(self):
        return self.operator.retargeter

    @property
    def latest_input(self) -> Optional[OperatorInput]:
        """The newest accepted operator message (what the operator's command is based on)."""
        return self.input.latest

    def stream_specs(self) -> list:
        """Everything this loop will push, so the recorder can be set up before the episode starts."""
        return self.recording.stream_specs()

    def recording_metadata(self) -> dict:
        """Episode metadata only the robot side knows: the joint limits and QA's tolerance past them."""
        return self.backend.recording_metadata()

    # -- episode ---------------------------------------------------------------------------------
    def start(self, seed: Optional[int] = None) -> None:
        """Hold the robot where it is and hand the device its context."""
        state = self.backend.read_state()
        self.gate.reset(state.position, t=self.backend.now())
        self.arbiter.start()
        self.input.start()
        self.recording.start()
        self.backend.reset_camera_clocks()
        if self.device is not None:
            self.device.start(DeviceContext(self.backend, self.retargeter, self.kin, self.control_dt, seed))
        self.stats.reset()
        self._started = True

    def tick(self) -> None:
        """One control period, along the data path."""
        t_start = time.monotonic()
        now = self.backend.now()
        arrived = self.input.read(now)
        state = self.backend.read_state()
        self.recording.joints(state)
        tick = TickContext(now, state, self.gate.command, arrived.new, self.input.latest, self.input.last_input_t,
                           self.recording.latest_frames, self.input.realtime)
        source = self.arbiter.decide(tick)
        proposal = source.propose(tick)
        out = self.gate.step(now, proposal.q, proposal.enable, proposal.fresh_at)
        source.gate_result(out)
        self.backend.send_command(now, out.q)
        if arrived.new:
            self.stats.input_to_command_s.append(time.monotonic() - arrived.sent_at)
        self.recording.command(now, out, proposal)
        self.stats.gate[out.state.value] = self.stats.gate.get(out.state.value, 0) + 1
        self.recording.sensors(now)
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
        self.input.realtime = realtime
        set_lockstep = getattr(self.recording.sink, "set_lockstep", None)  # any object with push() may be a sink
        if set_lockstep is not None:
            set_lockstep(not realtime)
        self.backend.set_realtime(realtime)
        restore_policy = raise_priority(self.cfg.control.realtime_priority) if realtime else None
        self.realtime_scheduling = restore_policy is not None
        t0_session = self.backend.now()
        wall0 = time.monotonic()
        self.phase_lock = PhaseLock(self.control_dt, self.cfg.control.phase_lock_lag_ms / 1000.0) \
            if realtime and self.cfg.control.phase_lock else None
        pacer = Pacer(self.control_dt, self.phase_lock, self.input.wait_until, self.stats, wall0) \
            if realtime else None
        signalled = []
        # A stop signal (under the CLI's interrupts.handled()) ends the loop between two ticks and is raised
        # once the recording has finished: an exception in the middle of a tick could leave a recorder lock
        # held (collector/interrupts.py).
        with deferred(on_signal=lambda: signalled.append(True)):
            try:
                while not signalled:
                    tick_start = time.monotonic()
                    if pacer is not None:
                        pacer.tick_started(tick_start)
                    self.tick()
                    if self.backend.now() - t0_session >= max_duration_s:
                        break
                    if self.device is not None and self.device.done:
                        break
                    if until is not None and until():
                        break
                    if pacer is not None and not signalled:
                        pacer.wait_for_next(tick_start, self.input.latest_arrival)
            finally:
                if restore_policy is not None:
                    restore_policy()
            self.stats.wall_s = time.monotonic() - wall0  # the ticking itself (the rate), not the frame drain below
            self.recording.finish()

    def close(self) -> None:
        self.input.close()


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
    success_since: List[Optional[float]] = [None]

    def until() -> bool:
        if not stop_on_success:
            return False
        if backend.task_success():
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
        success = bool(backend.task_success())
        metrics = dict(backend.task_metrics())
        conditions = dict(backend.conditions or {})
        return EpisodeResult(success, metrics, duration, loop.stats.ticks, loop.stats.summary(), conditions)
    finally:
        if own_loop:
            loop.close()

