"""A trained policy as one more command source of the control loop (collector.teleop.arbiter).

    source = PolicySource(PolicyRunner("policy.pt", joint_names=..., cameras=...), lockstep=True)
    loop = TeleopLoop(backend, device=..., sources=[source], choose=lambda tick: "policy")

The policy sees what the recorder records: the measured joint state of the tick and the newest
frame of each of its cameras (`TickContext.frames`). It acts at its own rate, the aligned view's
rate it was trained at (`checkpoint.rate_hz`); between its steps the loop keeps commanding its last
action, and the safety gate limits every step as for any source.

Two ways to run it, one per clock (`TickContext.realtime`):
- lockstep (simulation as fast as it goes: time stops while the tick runs): the policy steps inside
  the tick. A background thread would race the sim, whose clock does not wait for it.
- realtime (ticks paced on the wall clock: a live sim, ROS 2 hardware): the policy steps on a thread
  of its own with the newest observation, and `propose` only reads its newest action, so a control
  tick never waits on the network. Until the first action exists, the proposal is empty and the gate
  holds the robot.

Handover (`take_control`): the runner's chunk schedule restarts from the current observation, so the
policy does not replay actions it predicted before the operator moved the robot.
"""
from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.policy.assists import Assists
from collector.policy.conditioning import episode_conditioning
from collector.policy.runner import PolicyRunner
from collector.teleop.arbiter import CommandSource, Proposal, TickContext

SOURCE_ID = "policy"


def percentiles_ms(values: List[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    v = np.asarray(values)
    return {"p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3),
            "max": round(float(v.max()), 3), "count": int(v.size)}


class PolicySource(CommandSource):
    def __init__(self, runner: PolicyRunner, *, conditions: Optional[callable] = None,
                 instruction: str = "", task: Optional[str] = None, target: Optional[str] = None,
                 source_id: str = SOURCE_ID):
        """conditions(): the scene conditions of the take now starting (the backend's `conditions`),
        from which the task and target object are read at every start; or a fixed instruction/task/target."""
        self.id = source_id
        self.runner = runner
        self.period = 1.0 / float(runner.rate_hz)
        self.cameras = list(runner.checkpoint.spec.cameras)
        self._conditions = conditions
        self._fixed = (instruction, task, target)
        self.tick_ms: List[float] = []  # per control tick in control: the cost the loop pays
        self.error: Optional[BaseException] = None
        self._action: Optional[np.ndarray] = None
        self._action_t: Optional[float] = None  # session time of the observation behind _action
        self._next_step_t = -np.inf
        self._runner_lock = threading.Lock()  # the realtime thread steps the runner; resets come from the loop
        self._worker: Optional[_Worker] = None  # started by the first realtime tick
        self.task = self.target = None
        runner.warm_up()  # before any tick: the first inference is slow
        if conditions is None:  # a fixed instruction: an unknown task or object fails here, once
            self.reset_instruction()
        # else each take's conditions are read at its start (the scene built now may not be the first take's)

    # -- what the policy is told --------------------------------------------------------------------
    def set_conditions(self, conditions) -> None:
        """Where each take's task and target object come from from now on: conditions() -> dict."""
        self._conditions = conditions

    def reset_instruction(self) -> None:
        instruction, task, target = self._fixed
        if self._conditions is not None:
            conditions = self._conditions() or {}
            recorded_task, recorded_target = episode_conditioning({"conditions": conditions})
            instruction = instruction or str(conditions.get("instruction") or "")
            task = task or recorded_task or None
            target = target or (recorded_target if task and recorded_target else None)
        with self._runner_lock:
            self.runner.reset(instruction, task=task, target=target)  # an unknown task/object: one ConfigError
        self.task, self.target = self.runner.task, self.runner.target

    # -- CommandSource ------------------------------------------------------------------------------
    def start(self) -> None:
        self.reset_instruction()
        self._action = self._action_t = None
        self._next_step_t = -np.inf
        if self._worker is not None:
            self._worker.restart()

    def take_control(self, tick: TickContext) -> None:
        with self._runner_lock:
            self.runner.schedule.reset()
        self._action = self._action_t = None
        self._next_step_t = -np.inf
        if self._worker is not None:
            self._worker.restart()

    def observe(self, tick: TickContext) -> None:
        if tick.realtime and self._worker is None:
            self._worker = _Worker(self)
        if self._worker is not None:
            self._worker.offer(tick)

    def propose(self, tick: TickContext) -> Proposal:
        started = time.perf_counter()
        if not tick.realtime and tick.now >= self._next_step_t - 1e-9:
            observation = self.observation(tick)
            if observation is not None:
                self._action = self.runner.step(observation)  # lockstep: nothing else touches the runner
                self._action_t = tick.now
                # on a fixed grid of its period, so the steps keep the rate its chunks were learned at
                start = self._next_step_t if np.isfinite(self._next_step_t) else tick.now
                self._next_step_t = max(start + self.period, tick.now)
        elif tick.realtime and self._worker is not None:
            self._raise_worker_error()
            self._action, self._action_t = self._worker.newest()
        proposal = Proposal(None, False, None) if self._action is None else \
            Proposal(self._action.copy(), True, self._action_t)
        self.tick_ms.append((time.perf_counter() - started) * 1e3)
        return proposal

    def observation(self, tick: TickContext) -> Optional[dict]:
        """The runner's observation from a tick, or None while a camera has no frame yet."""
        images = {}
        for camera in self.cameras:
            frame = tick.frames.get(camera)
            if frame is None:
                return None
            images[camera] = frame[1]
        return {"qpos": np.asarray(tick.state.position, dtype=np.float32), "images": images}

    def _raise_worker_error(self) -> None:
        if self.error is not None:
            raise DataError(f"policy inference failed: {type(self.error).__name__}: {self.error}")

    # -- reporting ----------------------------------------------------------------------------------
    def timing(self) -> dict:
        """Milliseconds: per control tick in control (what the loop waits), and per network call."""
        return {"tick_ms": percentiles_ms(self.tick_ms), "inference_ms": percentiles_ms(self.runner.inference_ms)}

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self._raise_worker_error()


class _Worker:
    """The realtime path: steps the policy on its own thread with the newest observation."""

    def __init__(self, source: PolicySource):
        self.source = source
        self._cond = threading.Condition()
        self._tick: Optional[TickContext] = None
        self._generation = 0
        self._newest: Tuple[Optional[np.ndarray], Optional[float]] = (None, None)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def offer(self, tick: TickContext) -> None:
        with self._cond:
            self._tick = tick
            self._cond.notify()

    def newest(self) -> Tuple[Optional[np.ndarray], Optional[float]]:
        with self._cond:
            return self._newest

    def restart(self) -> None:
        with self._cond:
            self._generation += 1
            self._newest = (None, None)
            self._tick = None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        source = self.source
        next_wall = 0.0
        while True:
            with self._cond:
                while not self._stopped and (self._tick is None or time.monotonic() < next_wall):
                    self._cond.wait(max(0.0005, min(0.05, next_wall - time.monotonic())))
                if self._stopped:
                    return
                tick, generation = self._tick, self._generation
                self._tick = None
            observation = source.observation(tick)
            if observation is None:
                continue
            try:
                with source._runner_lock:
                    action = source.runner.step(observation)
            except BaseException as exc:  # noqa: BLE001 - raised on the control thread by propose/close
                source.error = exc
                return
            next_wall = time.monotonic() + source.period * 0.95
            with self._cond:
                if generation == self._generation:
                    self._newest = (action, tick.now)


def policy_source(checkpoint, backend, *, device: str = "cpu", schedule: str = "ensemble",
                  assists: Assists = Assists(), **kwargs) -> PolicySource:
    """A PolicySource for a backend: checked against its joints and cameras (one ConfigError naming
    what does not match), conditioned on the scene conditions the backend applies at each take.
    assists: what the runner adds to the network's action (collector.policy.assists)."""
    robot = backend.robot
    runner = PolicyRunner(checkpoint, joint_names=list(robot.command_joints), cameras=list(backend.cameras()),
                          schedule=schedule, device=device, assists=assists)
    missing = [c for c in runner.checkpoint.spec.cameras if c not in backend.cameras()]
    if missing:
        raise ConfigError(f"the policy needs camera(s) {', '.join(missing)}; the robot renders "
                          f"{', '.join(backend.cameras()) or 'none'}")
    return PolicySource(runner, conditions=lambda: backend.conditions, **kwargs)
