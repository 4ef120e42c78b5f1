"""SCHED_FIFO for the control thread and the input I/O thread: applied where permitted, never fatal."""
import os
import threading
from unittest import mock

import zmq

from collector.teleop.realtime import fifo_permitted, input_context, raise_priority
from helpers.vr import wait_until


def _zmq_io_threads():
    tids = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            if f.read().startswith("ZMQbg/IO"):
                tids.append(int(tid))
    return set(tids)


def test_input_context_io_thread_gets_fifo_exactly_when_permitted():
    permitted = fifo_permitted(10)
    before = _zmq_io_threads()
    context = input_context(10)
    socket = None
    try:
        socket = context.socket(zmq.SUB)  # starts the context's I/O thread, which then names itself
        assert wait_until(lambda: len(_zmq_io_threads() - before) == 1, timeout_s=5)
        (io_thread,) = _zmq_io_threads() - before
        policy = os.sched_getscheduler(io_thread)
        assert policy == (os.SCHED_FIFO if permitted else os.SCHED_OTHER)
    finally:
        if socket is not None:
            socket.close(linger=0)
        context.term()
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the permission probe left this thread alone


def test_without_permission_nothing_is_configured_and_nothing_aborts(caplog):
    with mock.patch("os.sched_setscheduler", side_effect=PermissionError(1, "Operation not permitted")):
        assert not fifo_permitted(50)
        context = input_context(50)  # libzmq would abort on a priority it cannot apply
        context.socket(zmq.SUB).close(linger=0)
        context.term()
        assert raise_priority(50) is None
    assert "realtime_priority 50 not applied" in caplog.text


def test_raise_priority_is_undone_and_zero_means_off():
    assert raise_priority(0) is None
    result = {}

    def worker():  # on its own thread, so a failure cannot leave the test runner under FIFO
        undo = raise_priority(5)
        result["during"] = os.sched_getscheduler(0)
        if undo is not None:
            undo()
        result["after"] = os.sched_getscheduler(0)
        result["applied"] = undo is not None

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert result["applied"] == fifo_permitted(5)
    assert result["during"] == (os.SCHED_FIFO if result["applied"] else os.SCHED_OTHER)
    assert result["after"] == os.SCHED_OTHER
