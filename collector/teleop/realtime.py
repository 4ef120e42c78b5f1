"""Scheduling for the realtime control loop: SCHED_FIFO for the control thread and its input path.

On a shared 2-core machine, camera rendering and recording keep both cores busy; under normal
scheduling the control thread then waits its turn behind them (jitter), and so does the ZMQ I/O
thread that receives operator input (a message that misses its tick waits a whole period). With
`control.realtime_priority` set, both run under SCHED_FIFO. That needs CAP_SYS_NICE (root, or an
rtprio limit in /etc/security/limits.conf); without it a warning says so and scheduling stays normal.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import zmq

log = logging.getLogger(__name__)


def _set_fifo(priority: int) -> Callable[[], None]:
    """Put the calling thread under SCHED_FIFO at `priority`; returns the undo. Raises OSError if refused."""
    previous = (os.sched_getscheduler(0), os.sched_getparam(0))
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))

    def restore():
        try:
            os.sched_setscheduler(0, previous[0], previous[1])
        except OSError:
            pass

    return restore


def fifo_permitted(priority: int) -> bool:
    """Whether this process may put a thread under SCHED_FIFO at `priority` (tried on this thread, undone)."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        restore = _set_fifo(priority)
    except OSError:
        return False
    restore()
    return True


def input_context(priority: int) -> zmq.Context:
    """A ZMQ context for the loop's operator input; its I/O thread runs under SCHED_FIFO when permitted.

    libzmq aborts the process if it cannot apply a thread priority, so permission is checked first.
    The options must be set before the first socket starts the I/O thread.
    """
    context = zmq.Context()
    if fifo_permitted(priority):
        context.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
        context.set(zmq.THREAD_PRIORITY, int(priority))
    return context


def raise_priority(priority: int) -> Optional[Callable[[], None]]:
    """Run the calling thread under SCHED_FIFO at `priority` (0: leave it alone). Returns an undo function."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return None
    try:
        return _set_fifo(priority)
    except OSError as exc:
        log.warning("control.realtime_priority %s not applied (%s); running with normal scheduling", priority, exc)
        return None
