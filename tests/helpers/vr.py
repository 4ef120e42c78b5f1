"""Shared helpers for the VR bridge tests: a real TLS server on loopback with free ports."""
import asyncio
import contextlib
import socket
import threading
import time

from collector.errors import DeviceError
from collector.teleop.vr.certificate import ensure_certificate, host_names
from collector.teleop.vr.server import ServerConfig, ServerThread


_handed_out: set = set()


def free_port() -> int:
    """A port nothing listens on now, never one this process handed out before: the kernel can give the
    same ephemeral port to two bind(0) calls in a row, and one server's endpoints are picked before any
    of them is bound (a full CI run once got a status port equal to another endpoint's)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def running_server(cert_dir, **overrides):
    """A VRServer with a self-signed certificate and its own ZMQ endpoints; yields (server, cert info, thread).

    Stale-frame dropping is relaxed to 5 s: on a busy test machine the server may take more than the
    production 100 ms to get to a frame, and most tests count frames. The stall test sets it back.
    """
    info = ensure_certificate(host_names("127.0.0.1"), cert_dir=cert_dir)
    with contextlib.ExitStack() as stack:
        for attempt in range(3):
            config = ServerConfig(
                host="127.0.0.1", port=0, ssl_context=info.ssl_context(), cert_path=info.cert_path,
                input_endpoint=free_endpoint(), camera_endpoint=free_endpoint(), status_endpoint=free_endpoint(),
                event_endpoint=free_endpoint(), max_frame_age_s=5.0,
            )
            for key, value in overrides.items():
                setattr(config, key, value)
            thread = ServerThread(config)
            try:
                server = stack.enter_context(thread)
                break
            except DeviceError as e:
                # another process may take a picked port before the server binds it: pick again, unless the
                # test chose the endpoints itself
                if "Address already in use" not in str(e) or attempt == 2 or any("endpoint" in k for k in overrides):
                    raise
        yield server, info, thread


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def wait_until(predicate, timeout_s=5.0, poll_s=0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


class PacedLoop:
    """Ticks the lockstep sim loop at its control rate on the wall clock, as a live session does.

    It runs on the thread that created the sim: MuJoCo's EGL context belongs to that thread.
    """

    def __init__(self, loop, sink=None):
        self.loop = loop
        self.sink = sink
        # Rendering is slow on a CPU-only machine, so the head camera is only rendered when asked,
        # on this same thread (the loop's), and pushed to the sink as the loop does with its cameras.
        self.render_head = threading.Event()
        self.states = []

    def run_until(self, done, on_tick=None):
        """Tick until done(); on_tick() after every tick."""
        period = self.loop.control_dt
        next_tick = time.perf_counter()
        while not done():
            self.loop.tick()
            self.states.append((time.monotonic(), self.loop.gate.state))
            if on_tick is not None:
                on_tick()
            if self.render_head.is_set():
                backend = self.loop.backend
                self.sink.push("camera_head", backend.now(), image=backend.env.render("head"))
            next_tick += period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()
