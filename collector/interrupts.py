"""SIGTERM and SIGHUP handled like Ctrl-C, and moments a signal must not cut in half.

Systemd, container runtimes and a closing terminal stop a process with SIGTERM or SIGHUP. Python's
default for both is to die on the spot, which leaves a take 'recording' with a partial file. Under
`handled()` (the CLI wraps every command in it) they raise `Interrupted`, a KeyboardInterrupt, so
every path that already finalizes a take on Ctrl-C does the same for them.

`deferred()` marks a short stretch that must finish once started (finalizing a take, settling it in
the catalogue): a signal arriving inside it is held and raised when the stretch ends. A second
signal while one is held raises at once, so a stuck finalization can still be interrupted.
`deferred(on_signal=...)` also serves a long stretch that can end early at a safe point: the control
loop is told to stop at its next tick boundary, and the signal is raised once it has. An exception
raised at an arbitrary instant of a tick is not safe: in Python 3.11 it can land inside a
`threading.Condition`'s `__enter__` after the lock was taken (`queue.Queue.put`, the recorder's
sample queues), leaving the lock held, and the recorder's writer thread, then the take's
finalization waiting for it, block forever (what a clean-clone CI run met: a session still running
120 s after SIGTERM).

A compiled extension can turn the `Interrupted` raised inside it into an error of its own: daqp (the
IK's QP solver, called every control tick) reports a signal that lands while it checks its arguments
as "ValueError: Buffer dtype mismatch" about one time in ten. `signal_behind(exc)` recognises such an
error as the signal's, so the take is finalized and the process exits as stopped, not as crashed.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal (Ctrl-C is SIGINT)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP


def signal_name_of(exc: BaseException) -> str:
    """'SIGTERM' for an Interrupted, 'SIGINT' for a plain KeyboardInterrupt (Ctrl-C)."""
    return exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"


_depth = 0  # nesting of deferred() in the main thread (signal handlers only ever run there)
_held: Optional[int] = None
_raised: Optional[int] = None  # the signal last raised as Interrupted under handled()
_stoppers: List[Callable[[], None]] = []  # on_signal of the deferred() blocks open now, innermost last


def _on_signal(signum, frame) -> None:
    global _held, _raised
    if _depth > 0 and _held is None:
        _held = signum
        for stop in list(_stoppers):
            stop()
        return
    _raised = signum
    raise Interrupted(signum)


def signal_behind(exc: BaseException) -> Optional[KeyboardInterrupt]:
    """The interruption `exc` stands for: `exc` itself if it is one, or, once a signal has been raised
    under handled(), an `Interrupted` for it (whatever a compiled extension turned it into); else None."""
    if isinstance(exc, KeyboardInterrupt):
        return exc
    return Interrupted(_raised) if _raised is not None else None


@contextmanager
def deferred(on_signal: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends (main thread; elsewhere a no-op).

    on_signal: called (from the signal handler, so it must only set a flag) when a signal is held,
    to make the block end soon at a point of its choosing."""
    global _depth, _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    if on_signal is not None:
        _stoppers.append(on_signal)
    try:
        if on_signal is not None and _held is not None:
            on_signal()  # a signal held by an enclosing block already asks to stop
        yield
    finally:
        if on_signal is not None:
            _stoppers.remove(on_signal)
        _depth -= 1
        if _depth == 0 and _held is not None:
            signum, _held = _held, None
            raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into `Interrupted` for the block; restores the previous handlers.

    An error that leaves the block after such a signal leaves it as that `Interrupted`.

    A signal someone chose to ignore stays ignored (`nohup` ignores SIGHUP)."""
    global _held, _raised
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            current = signal.getsignal(signum)
            if current == signal.SIG_IGN:
                continue
            try:
                previous[signum] = signal.signal(signum, _on_signal)
            except (OSError, ValueError):  # not settable on this platform
                pass
    try:
        yield
    except Exception as exc:
        signalled = signal_behind(exc)
        if signalled is None:
            raise
        raise signalled from exc
    finally:
        for signum, handler in previous.items():
            # None: the previous handler was installed from C and cannot be put back; use the default.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        _held = _raised = None
