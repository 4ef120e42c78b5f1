"""Operator-driven sessions: dashboard buttons (and keys) drive a SessionRunner.

All session work happens on one worker thread (the one calling `run()`); the dashboard's HTTP threads
only hand it actions through a queue and wait for the answer, so the runner, the catalogue writes and
the simulator are never used from two threads at once. The one exception is stopping a take: the
recording call blocks the worker, so `stop` (and `discard` while recording) set an event the teleop
loop polls every tick.

Phases shown on the dashboard:
  calibrating       a robot with hands under VR hand tracking, before the first take: the operator holds
                    both hands open and flat (collector/session/hand_calibration.py), unless their stored
                    calibration is found; again when another person logs in and presses Start (theirs is
                    read if kept, else measured, and they press Start once more)
  ready             the scene is set up for the next cell: start (S)
  recording         stop (Space) or discard (D)
  awaiting_outcome  hardware: say success (Y) or failure (N), or discard / re-record
  waiting           other stations hold every cell still open (the page says how many); looked at again
                    every WAITING_POLL_S, the next take is set up as soon as one is freed
  done              the plan is covered (the last take can still be discarded or re-recorded)
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Optional

from collector import interrupts
from collector.errors import CollectorError, DataError
from collector.session.hand_calibration import PROMPT as CALIBRATION_PROMPT, hand_calibration_step
from collector.session.runner import SessionRunner

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 30.0
SIGNAL_POLL_S = 0.2  # an idle session notices a held stop signal within this
WAITING_POLL_S = 1.0


class InteractiveSession:
    def __init__(self, runner: SessionRunner, auto_start: bool = False):
        self.runner = runner
        self.live = runner.live
        self.auto_start = auto_start  # start each take without a button press (watching a scripted run)
        self._actions: "queue.Queue[tuple]" = queue.Queue()
        self._take_stop = threading.Event()
        self._discard_after_stop = False
        self._recording = threading.Event()
        self._calibrating = threading.Event()
        self._closing = threading.Event()
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None

    # -- called from the dashboard's threads -------------------------------------------------------
    def handle(self, action: str) -> str:
        if self._recording.is_set():
            if action == "stop":
                self._take_stop.set()
                return "stopping the take"
            if action == "discard":
                self._discard_after_stop = True
                self._take_stop.set()
                return "stopping and discarding the take"
            raise DataError(f"cannot {action} while recording (stop or discard first)")
        if self._calibrating.is_set():
            raise DataError("calibrating the operator's hands first: hold both hands open and flat")
        if self.finished.is_set():
            raise DataError("the session has ended")
        answer: Future = Future()
        self._actions.put((action, answer))
        try:
            return answer.result(timeout=ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise DataError(f"the session did not answer {action!r} in time") from None

    def is_recording(self) -> bool:
        return self._recording.is_set()

    def shutdown(self) -> None:
        self._closing.set()
        self._take_stop.set()
        self._actions.put(("quit", Future()))

    # -- the worker ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Serve actions until `shutdown()`; returns when the session ends."""
        try:
            if not self._calibrate_hands():
                return  # shut down before the operator's hands were calibrated
            self._prepare_next()
            while True:
                auto_ready = self.auto_start and self.live.snapshot()["phase"] == "ready"
                waiting = self.live.snapshot()["phase"] == "waiting"
                try:
                    # Button presses first; with auto_start an idle "ready" starts the next take itself.
                    action, answer = self._next_action(block=not auto_ready,
                                                       timeout=WAITING_POLL_S if waiting else None)
                except queue.Empty:
                    if waiting:  # a cell another station held may be free now
                        self._prepare_next()
                        continue
                    action, answer = "start", Future()
                if action == "quit":
                    answer.set_result("bye")
                    return
                try:
                    if action == "start":
                        self._record(answer)
                    else:
                        answer.set_result(self._do(action))
                except CollectorError as exc:
                    if not answer.done():
                        answer.set_exception(exc)
                    if action == "start":
                        self._after_failed_take()
                    self.live.update(message=str(exc))
        except BaseException as exc:
            self.error = exc
            self.live.update(phase="error", message=f"{type(exc).__name__}: {exc}", controls=[])
            raise
        finally:
            self.finished.set()

    def _next_action(self, block: bool, timeout: Optional[float]) -> tuple:
        """The next queued (action, answer), or queue.Empty after `timeout`, as `queue.Queue.get`. A stop
        signal is held while it waits and raised once the queue's lock is free: raised inside the wait, it
        can land in the queue's Condition just after the lock was taken and leave it held
        (collector.interrupts), and the shutdown's own put, then every dashboard press, would block for ever."""
        stopped = threading.Event()
        with interrupts.deferred(on_signal=stopped.set):
            if not block:
                return self._actions.get(block=False)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not stopped.is_set():
                left = SIGNAL_POLL_S if deadline is None else min(SIGNAL_POLL_S, deadline - time.monotonic())
                if left <= 0:
                    raise queue.Empty
                try:
                    return self._actions.get(timeout=left)
                except queue.Empty:
                    continue
        return "quit", Future()  # an enclosing deferred() holds the signal: end the session, it raises it

    def _calibrate_hands(self) -> bool:
        """The hand-calibration step before the first take (robots with hands, VR input); False if the
        session was shut down meanwhile. Each one-line instruction or problem goes to the dashboard and
        the headset (the live state's message)."""
        runner = self.runner
        step = hand_calibration_step(runner, getattr(runner.driver, "operator", runner.plan.operator))
        if step is None:
            return True
        return self._run_calibration(step)

    def _run_calibration(self, step) -> bool:
        self._calibrating.set()
        self.live.update(phase="calibrating", instruction=CALIBRATION_PROMPT, message=CALIBRATION_PROMPT, controls=[])
        try:
            return step.ensure(tell=lambda line: self.live.update(message=line), stopped=self._closing.is_set)
        finally:
            self._calibrating.clear()

    def _do(self, action: str) -> str:
        runner = self.runner
        if action == "stop":
            raise DataError("not recording")
        if action in ("success", "failure"):
            row = runner.mark_last(action)
            message = f"{row.episode_id} marked {action}"
        elif action == "discard":
            row = runner.discard_last()
            message = f"{row.episode_id} discarded (kept in discarded/ until cleaned)"
        elif action == "rerecord":
            row = runner.rerecord_last()
            message = f"{row.episode_id} discarded; recording its cell again"
        else:
            raise DataError(f"unknown action {action!r}")
        self._prepare_next()
        self.live.update(message=message)
        return message

    def _record(self, answer: Future) -> str:
        """Record one take; `answer` is resolved as soon as recording starts (a button press must not
        wait for the whole take), and stop/discard presses meanwhile go through the stop event."""
        runner = self.runner
        phase = self.live.snapshot()["phase"]
        if phase != "ready":
            raise DataError(f"cannot start now ({phase.replace('_', ' ')})")
        cell = runner.next_cell()
        if cell is None:
            raise DataError("the plan is complete")
        step = runner.lifecycle.hand_calibration  # the step _calibrate_hands attached, if this robot needs one
        if step is not None and not step.is_current():
            # Another person logged in and pressed Start: their hands, not the last operator's.
            if not step.is_stored():
                answer.set_result(f"calibrating the hands of {runner.operator} first; press Start again after it")
                if self._run_calibration(step):
                    self._prepare_next()
                return "calibrated"
            self._run_calibration(step)  # kept from an earlier session: read at once, then the take starts
        self._take_stop.clear()
        self._discard_after_stop = False
        self._recording.set()
        answer.set_result(f"recording {cell.label()}")
        try:
            row = runner.record(cell, stop=self._take_stop)
        finally:
            self._recording.clear()
        message = f"{row.episode_id}: {row.outcome}, QA {row.qa}"
        if self._discard_after_stop:
            row = runner.discard_last()
            message = f"{row.episode_id} discarded (kept in discarded/ until cleaned)"
        if row.status == "kept" and row.outcome == "unknown":
            # Hardware: only the operator can say whether the take succeeded.
            self.live.update(phase="awaiting_outcome", message=f"{row.episode_id}: was it a success? (Y/N)",
                             controls=["success", "failure", "discard", "rerecord"])
            return message
        self._prepare_next()
        self.live.update(message=message)
        return message

    def _after_failed_take(self) -> None:
        """A take that could not start or finish (e.g. the disk is full) must not leave the dashboard
        showing 'recording': offer the next take again, so the operator can retry once it is fixed."""
        try:
            self._prepare_next()
        except CollectorError as exc:
            log.error("cannot set up the next take: %s", exc)
            self.live.update(phase="error", controls=[])

    def _prepare_next(self) -> None:
        runner = self.runner
        last = runner.last_row()
        after_take = []
        if last and last.status in ("kept", "recovered"):
            after_take = ["discard", "rerecord", "success", "failure"]
        elif last and last.status in ("discarded", "purged", "interrupted"):
            after_take = ["rerecord"]
        cell = runner.next_cell()
        if cell is None:
            held = runner.cells_held_by_others()
            if held:
                stations = sorted({station for holders in held.values() for station in holders})
                self.live.update(phase="waiting", controls=after_take,
                                 message=f"{len(held)} cell{'s' if len(held) != 1 else ''} held by other stations"
                                         f" ({', '.join(stations)}); the next take is set up when one is freed")
                return
            self.live.update(phase="done", message="plan complete: every cell has its takes", controls=after_take)
            return
        if not runner.is_prepared(cell):  # e.g. marking the last take needs no new scene
            runner.prepare(cell)
        self.live.update(phase="ready", controls=["start"] + after_take)
