"""One ROS 2 node per process: its context, its executor thread, and a clean stop on SIGINT/SIGTERM.

Every collector node runs its own work in the main thread (the physics loop, the recorder's
bookkeeping) while subscriptions and services are served by an executor in a background thread.
rclpy's own signal handlers are turned off: they would shut the context down under the main loop
(and SIGTERM would end the process before the recorder finalised its file). Instead both signals
set `stop_requested`, the main loop winds down, and `close()` tears ROS down in order. A node saves
what it must (the recorder finalizes its take) before `close()`, so a signal that arrives while
`close()` runs (a supervisor escalating to SIGTERM because the DDS teardown is slow under load) ends
the process at once instead of waiting for the teardown and then the supervisor's SIGKILL. A node
with nothing left to save calls `exit_on_next_signal()` earlier (the sim hardware, once its loop has
ended). From then on SIGTERM is left to the kernel's default action: a Python handler runs only when
the main thread returns to the interpreter, and rclpy's C calls can block holding the GIL (measured:
a flush in `wait_for_all_acked` on a subscriber frozen by SIGSTOP held a SIGTERM back for 2 s, and a
supervisor's SIGTERM during such a call was noted, not acted on, until its SIGKILL).

High-rate subscriptions (500 Hz joint states, camera frames) go on a second node, `stream_node`,
served by its own executor thread: rclpy's executor rebuilds its wait set over every entity of its
nodes for each message, so keeping the services, timers and low-rate topics out of that loop cut
the CPU of a 500 Hz JointState subscriber by about 40 % here.

The executors are rclpy's SingleThreadedExecutor. The experimental EventsExecutor needs about half
the CPU for 500 Hz joint states, but here (rclpy 9.1.2) it deadlocked when the main thread published
to a topic it also subscribed to, and when the context was shut down from another thread.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable, Optional

from collector.ros.environment import apply_ros_environment, import_rclpy

log = logging.getLogger(__name__)


def make_executor(context):
    import rclpy.executors

    return rclpy.executors.SingleThreadedExecutor(context=context)


class RosRuntime:
    def __init__(self, node_name: str, namespace: str = "", domain_id: Optional[int] = None,
                 handle_signals: bool = True, parameter_overrides=None, stream_lane: bool = False):
        apply_ros_environment(domain_id=domain_id)
        rclpy = import_rclpy()
        from rclpy.signals import SignalHandlerOptions

        self.stop_requested = threading.Event()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(node_name, namespace=namespace, context=self.context,
                                      parameter_overrides=parameter_overrides or [])
        self.executor = make_executor(self.context)
        self.executor.add_node(self.node)
        self.stream_node = None
        self._executors = [self.executor]
        if stream_lane:
            self.stream_node = rclpy.create_node(f"{node_name}_streams", namespace=namespace, context=self.context)
            lane = make_executor(self.context)
            lane.add_node(self.stream_node)
            self._executors.append(lane)
        self._threads: list = []
        self._exit_armed: Optional[tuple] = None  # (why, since) once a further signal ends the process
        self._previous_handlers = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def exit_on_next_signal(self, why: str = "tearing ROS down") -> None:
        """From now on a stop signal ends the process at once: nothing is left to save."""
        if self._exit_armed is not None:
            return
        self._exit_armed = (why, time.monotonic())
        if self._previous_handlers and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _on_signal(self, signum, _frame) -> None:
        name = signal.Signals(signum).name
        if self._exit_armed is not None:
            why, since = self._exit_armed
            log.warning("%s received %s %.1f s into %s; exiting now", self.node.get_name(), name,
                        time.monotonic() - since, why)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(128 + signum)
        log.info("%s received %s, stopping", self.node.get_name(), name)
        self.stop_requested.set()

    def start(self) -> "RosRuntime":
        for i, executor in enumerate(self._executors):
            thread = threading.Thread(target=self._spin, args=(executor,), daemon=True,
                                      name=f"{self.node.get_name()}-executor-{i}")
            thread.start()
            self._threads.append(thread)
        return self

    def _spin(self, executor) -> None:
        try:
            executor.spin()
        except Exception as exc:  # a context shut down under the executor ends spinning; anything else is a bug
            if self.context.ok():
                log.exception("executor of %s stopped: %s", self.node.get_name(), exc)
                self.stop_requested.set()

    @property
    def logger(self):
        return self.node.get_logger()

    def ok(self) -> bool:
        return self.context.ok() and not self.stop_requested.is_set()

    def close(self) -> None:
        """Stop the executor, destroy the node, shut the context down, restore signal handlers."""
        self.exit_on_next_signal()
        self.stop_requested.set()
        for executor in self._executors:
            try:
                executor.shutdown(timeout_sec=2.0)
            except Exception:  # shutting down twice or after the context went away is harmless
                pass
        self.context.try_shutdown()
        for thread in self._threads:
            thread.join(timeout=3.0)
        self._threads.clear()
        for node in (self.node, self.stream_node):
            try:
                if node is not None:
                    node.destroy_node()
            except Exception:
                pass
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def __enter__(self) -> "RosRuntime":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def subscribe_batched(node, msg_type, topic: str, callback, qos):
    """A subscription whose callback, once woken by the executor, also takes every further message
    already waiting, instead of paying an executor cycle (a wait-set rebuild over all entities)
    per message. For 500 Hz joint states next to camera frames this is what keeps the recorder
    from falling behind. Falls back to one message per cycle if rclpy lacks the take call.
    """
    holder = {}

    def drain(first):
        callback(first)
        sub = holder["sub"]
        try:
            with sub.handle:
                while True:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
                    if taken is None:
                        return
                    callback(taken[0])
        except (AttributeError, TypeError):  # another rclpy: the executor delivers the rest
            return

    holder["sub"] = node.create_subscription(msg_type, topic, drain, qos)
    return holder["sub"]


def wait_for_subscribers(publishers: Iterable, timeout_s: float, still_waiting: Callable[[], bool] = lambda: True,
                         period_s: float = 0.02) -> bool:
    """True once every publisher is matched with a subscriber (DDS discovery takes a moment, and volatile
    topics do not keep what was sent before it); False after timeout_s, or once still_waiting() is false."""
    publishers = list(publishers)
    deadline = time.monotonic() + timeout_s
    while still_waiting():
        if all(p.get_subscription_count() > 0 for p in publishers):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period_s)
    return False
