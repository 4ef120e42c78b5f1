"""A stop signal that a compiled extension turns into an error of its own is still a stop; and a
stop signal never cuts a control tick in half.

Found by a clean-clone CI run: SIGTERM in the middle of a take ended `collector collect` with
"unexpected ValueError: Buffer dtype mismatch, expected 'int' but got Python object" and exit 1, and
the take was counted as aborted. daqp, the IK's QP solver (called every control tick), reports an
`Interrupted` raised while it checks its arguments as that ValueError about one time in ten.
"""
import os
import signal
from ctypes import c_int

import numpy as np
import pytest

from collector import interrupts
from collector.backends.sim import SimBackend
from collector.cli import main
from collector.session.drivers import SimDriver
from collector.session.plan import parse_plan
from collector.session.runner import SessionRunner
from collector.teleop.loop import TeleopLoop
from helpers.teleop import ListSink

PLAN = """\
name: stopped
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright]
weights: [light]
takes_per_cell: 1
"""
MORPHED = "Buffer dtype mismatch, expected 'int' but got Python object"


def sigterm_turned_into_value_error():
    """What daqp does with a signal: a real SIGTERM to this process, reported as a ValueError."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    except KeyboardInterrupt:
        raise ValueError(MORPHED) from None
    pytest.fail("the SIGTERM handler never ran")


def test_daqp_turns_a_signal_into_a_value_error_and_it_is_recognised_as_the_signal():
    """Real daqp under real SIGTERMs at random moments: every error it raises after one is the signal's."""
    import daqp

    n, m = 20, 10
    rng = np.random.default_rng(0)
    H, f, A = np.eye(n), np.ones(n), rng.random((m, n))
    upper, lower = np.ones(m), -np.ones(m)
    outcomes = {"interrupted": 0, "morphed": 0}
    # An interval timer lands the SIGTERM anywhere in the solver loop, as a `kill` from outside does.
    previous = signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGTERM))
    try:
        for attempt in range(5000):
            with interrupts.handled():
                try:
                    signal.setitimer(signal.ITIMER_REAL, 1e-5 * (1 + attempt % 50))
                    for _ in range(200):
                        sense = np.zeros(m, dtype=c_int)
                        daqp.solve(H, f, A, upper, lower, sense)
                    for _ in range(100_000):
                        pass
                    pytest.fail("the SIGTERM handler never ran")
                except BaseException as exc:
                    if isinstance(exc, pytest.fail.Exception):
                        raise
                    behind = interrupts.signal_behind(exc)
                    assert isinstance(behind, interrupts.Interrupted) and behind.signum == signal.SIGTERM, repr(exc)
                    outcomes["interrupted" if isinstance(exc, KeyboardInterrupt) else "morphed"] += 1
            assert interrupts.signal_behind(ValueError("after the block")) is None  # handled() forgets it
            if outcomes["morphed"] >= 3:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert outcomes["morphed"] >= 1, outcomes  # daqp did what the CI run showed, and it was recognised


def test_an_error_with_no_signal_behind_it_is_not_taken_for_one():
    with interrupts.handled():
        assert interrupts.signal_behind(ValueError(MORPHED)) is None
        ctrl_c = KeyboardInterrupt()
        assert interrupts.signal_behind(ctrl_c) is ctrl_c


def test_the_cli_reports_a_morphed_sigterm_as_stopped_by_sigterm(monkeypatch, capsys):
    import collector.commands.stats as stats

    monkeypatch.setattr(stats, "run", lambda args: sigterm_turned_into_value_error())
    assert main(["stats", "nowhere.hdf5"]) == 143
    err = capsys.readouterr().err
    assert err.strip() == "collector stats: stopped by SIGTERM", err


def test_a_take_whose_sigterm_was_morphed_is_finalized_as_interrupted_not_aborted(tmp_path):
    # Inside the control loop a signal is held until the tick ends (the test below), so daqp no longer
    # meets one there; the morph is made right after a second of recording, outside the loop.
    plan = parse_plan(PLAN, str(tmp_path / "stopped.yaml"))
    driver = SimDriver(plan, render=False)
    real_run = driver.run

    def run_then_signal(sink, time_limit_s, stop):
        real_run(sink, 1.0, stop)
        sigterm_turned_into_value_error()

    driver.run = run_then_signal
    runner = SessionRunner(plan, tmp_path / "data", driver, station="st1").open()
    try:
        cell = runner.next_cell()
        with pytest.raises(interrupts.Interrupted) as raised, interrupts.handled():
            runner.record(cell)
        assert raised.value.signum == signal.SIGTERM
        assert isinstance(raised.value.__cause__, ValueError)
        row = runner.catalog.episodes()[-1]
        assert row.interrupted_by == "SIGTERM" and "aborted" not in row.note, row
        assert row.status in ("kept", "recovered") and row.path, row  # what was recorded is a valid episode
        assert (runner.layout.absolute(row.path)).is_file()
    finally:
        runner.close()


class SignallingSink(ListSink):
    """Sends this process SIGTERM from inside the `at`-th push of `stream`: a real signal in the middle of
    a control tick (after the joint state and the command were recorded, before the safety rows)."""

    def __init__(self, stream: str, at: int):
        super().__init__()
        self.stream, self.at = stream, at
        self.returned_after_signal = False

    def push(self, stream, t, **fields):
        kept = super().push(stream, t, **fields)
        if stream == self.stream and len(self.samples[stream]) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass  # Python runs the handler by here at the latest
            self.returned_after_signal = True
        return kept


def test_a_stop_signal_mid_tick_ends_the_control_loop_between_ticks_then_is_raised(toy_env):
    """Found by a clean-clone CI run: `collector session` still running 120 s after one SIGTERM. Raised
    at an arbitrary instant of a tick, the Interrupted can land inside a Condition's __enter__ after
    its lock was taken (the recorder's sample queues), and the take's finalization then waits forever
    for the writer thread blocked on that lock."""
    backend = SimBackend(toy_env, render=False)
    toy_env.reset(seed=1)
    sink = SignallingSink("ik_target", at=5)
    loop = TeleopLoop(backend, sink=sink, endpoint="inproc://toy-signalled", bind=True)
    try:
        loop.start()
        with interrupts.handled():
            with pytest.raises(interrupts.Interrupted) as stopped:
                loop.run(30.0)
        assert stopped.value.signum == signal.SIGTERM
        assert sink.returned_after_signal  # the push that got the signal finished
        assert loop.stats.ticks == 5  # the signal's tick was finished and no other started
        per_tick = ("joints", "command", "ik_target", "safety", "control")
        assert {name: len(sink.samples[name]) for name in per_tick} == dict.fromkeys(per_tick, 5)
    finally:
        loop.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handled() put the handler back


def test_a_held_signal_asks_every_open_stretch_to_stop_and_is_raised_once_when_the_outer_one_ends():
    asked = []
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted):
            with interrupts.deferred(on_signal=lambda: asked.append("outer")):
                with interrupts.deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):
                        pass
                asked.append("inner ended without raising")
                with interrupts.deferred(on_signal=lambda: asked.append("opened after the signal")):
                    pass
    assert asked == ["outer", "inner ended without raising", "opened after the signal"]


class _SignalInsideEnter:
    """A queue Condition that sends this process SIGTERM inside its first `__enter__`, after the lock was taken:
    the instant in which an exception raised by a signal handler leaves the queue's lock held (Python 3.11)."""

    def __init__(self, condition):
        self.condition, self.fired = condition, False

    def __enter__(self):
        held = self.condition.__enter__()
        if not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at one of these bytecodes, with the lock held
                pass
        return held

    def __exit__(self, *exc):
        return self.condition.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.condition, name)


def test_a_stop_signal_while_the_session_idles_leaves_its_action_queue_usable():
    """Found by reading, after the control loop's fix: the interactive session waits for the next button press
    in `queue.Queue.get`; a SIGTERM landing in that queue's Condition left its lock held, and the shutdown's
    own `put` (and every dashboard press) would then block for ever."""
    from types import SimpleNamespace

    from collector.session.interactive import InteractiveSession
    from collector.session.live import LiveState

    session = InteractiveSession(SimpleNamespace(live=LiveState()))
    session._actions.not_empty = _SignalInsideEnter(session._actions.not_empty)
    with interrupts.handled():
        with pytest.raises(interrupts.Interrupted) as stopped:
            session._next_action(block=True, timeout=5.0)
    assert stopped.value.signum == signal.SIGTERM and session._actions.not_empty.fired
    assert not session._actions.mutex.locked()
    session.shutdown()  # puts "quit": it would block on a held lock
    assert session._actions.get(timeout=1.0)[0] == "quit"
