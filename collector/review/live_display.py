"""`--display`: the live take in a Rerun viewer while it records, without touching the control loop's timing.

    display = open_display()                             # a viewer, spawned at the first take
    tap = display.take("episode_000007", specs, writer)  # a Sink in front of the recorder
    ... the loop pushes into `tap` as into the recorder ...
    display.close()

The control loop never calls Rerun: `DisplayTap.push` forwards the sample to the recorder and appends
it to a bounded deque (when the display falls behind, the oldest sample is dropped, and counted).
A display thread drains the deque every `period_s`, groups the batch per stream (keeping the newest
frame of each camera) and pipes it to a display *process* (niced), which JPEG-encodes the frames and
logs the batch with the offline viewer's layout (collector/review/rerun_view.py).
Rerun's logging calls hold the GIL for a few hundred microseconds each, and a control thread waiting
for the GIL waits for them, whatever its scheduling priority: in a process of their own they cannot
delay a tick. Each take is its own recording, as `collector view` shows a recorded episode.

`run_ticks` runs the simulated teleop loop with and without a display, for the latency benchmark.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from collections import deque
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder import vocabulary
from collector.recorder.streams import Sink, StreamSpec

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 8192  # samples: ~8 s of the loop's streams at 100 Hz before the oldest are dropped
DEFAULT_PERIOD_S = 0.1  # the display thread's batch period (10 Hz: the live frame rate of the cameras)
HIDDEN_STREAMS = (vocabulary.INPUT, vocabulary.SIM_STATE)  # recorded, but nothing to look at live
VIEWER = "viewer"  # --display with no value
CLOSE_TIMEOUT_S = 30.0
DISPLAY_NICENESS = 10


def open_display(target: str = VIEWER, robot: Optional[str] = None, **kwargs) -> "LiveDisplay":
    """The display a `--display [TARGET]` option asks for: a spawned viewer (no value), a running viewer
    (a rerun+http:// URL, e.g. on the operator's laptop), or a .rrd file (a headless station; one file
    per take: FILE.rrd, FILE-2.rrd, ...)."""
    target = str(target or VIEWER)
    if target == VIEWER and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                    or os.environ.get("WAYLAND_DISPLAY")):
        raise ConfigError("--display: no display here for a Rerun viewer (DISPLAY and WAYLAND_DISPLAY are unset); "
                          "give a .rrd file (--display live.rrd) or a running viewer's rerun+http:// URL")
    if target.startswith("rerun"):
        from collector.review.rerun_view import check_viewer_url

        check_viewer_url(target)
    elif target != VIEWER:
        path = Path(target)
        if path.suffix != ".rrd":
            raise ConfigError(f"--display {target}: give nothing (spawn a viewer), a rerun+http:// viewer URL "
                              f"or a .rrd file")
        if not path.parent.is_dir():
            raise ConfigError(f"--display {target}: folder {path.parent} does not exist")
    return LiveDisplay(target, robot=robot, **kwargs)


class DisplayTap(Sink):
    """A Sink in front of the recorder (or of nothing) that also hands every sample to the display."""

    def __init__(self, name: str, specs: Iterable[StreamSpec], sink=None, capacity: int = DEFAULT_CAPACITY):
        self.name = name
        self.specs = [s for s in specs if s.name not in HIDDEN_STREAMS]
        self.sink = sink
        self.queue: deque = deque(maxlen=int(capacity))
        self._shown = {s.name for s in self.specs}
        self.pushed = 0
        self.dropped = 0  # samples the display fell too far behind to show

    def push(self, stream: str, t: float, **fields) -> bool:
        if stream in self._shown:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append((stream, t, fields))  # deque append: atomic, never blocks
            self.pushed += 1
        return self.sink.push(stream, t, **fields) if self.sink is not None else True

    def set_lockstep(self, lockstep: bool) -> None:
        if self.sink is not None:
            self.sink.set_lockstep(lockstep)

    def __getattr__(self, name):
        # Anything else the loop asks of its sink (stats, drop counters) is the recorder's.
        if name == "sink" or self.sink is None:
            raise AttributeError(name)
        return getattr(self.sink, name)


class LiveDisplay:
    """A display thread (batches) and a display process (Rerun) for the takes of one run."""

    def __init__(self, target: str = VIEWER, capacity: int = DEFAULT_CAPACITY, period_s: float = DEFAULT_PERIOD_S,
                 robot: Optional[str] = None):
        if importlib.util.find_spec("rerun") is None:
            raise DataError("--display needs rerun-sdk (pip install -e '.[view]')")
        self.capacity = int(capacity)
        self.period_s = float(period_s)
        self.logged: Dict[str, int] = {}  # per stream over every take, as the display process reports at close
        self.error: Optional[str] = None  # the display stops at its first error; the takes go on
        self._tap: Optional[DisplayTap] = None
        self._specs: Dict[str, StreamSpec] = {}
        self._process, self._inbox, self._outbox = _start_display_process(str(target), robot)
        self._lock = threading.Lock()  # the display thread's drain vs a take switch (never the loop)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerun-display-batches", daemon=True)
        self._thread.start()
        self._closed = False

    def take(self, name: str, specs: Iterable[StreamSpec], sink=None) -> DisplayTap:
        """A new recording for this take; returns the tap the loop pushes into (instead of `sink`)."""
        tap = DisplayTap(name, specs, sink, self.capacity)
        with self._lock:
            self._drain()
            self._send(("take", name, tap.specs))
            self._tap, self._specs = tap, {s.name: s for s in tap.specs}
        return tap

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Wait until the display process has imported Rerun (benchmarks: its start-up is not the loop's)."""
        try:
            return self._inbox.poll(timeout_s) and "ready" in self._inbox.recv()
        except (EOFError, OSError):
            return False

    @property
    def pid(self) -> int:
        """The display process's id."""
        return self._process.pid

    @property
    def dropped(self) -> int:
        return self._tap.dropped if self._tap is not None else 0

    def close(self) -> None:
        """Send what is still queued, let the display process finish its recording, stop both."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=10.0)
        if self._thread.is_alive():  # stuck sending to a display process that stopped reading
            self._process.kill()
            self._fail("display process stopped reading; killed")
        with self._lock:
            self._drain()
            self._send(("close",))
        try:
            deadline = time.monotonic() + CLOSE_TIMEOUT_S
            while self.error is None and self._inbox.poll(max(0.0, deadline - time.monotonic())):
                report = self._inbox.recv()
                if "logged" in report:
                    self.logged = dict(report["logged"])
                    self.error = self.error or report.get("error")
                    break
        except (EOFError, OSError) as exc:
            self._fail(f"display process ended early ({type(exc).__name__})")
        try:
            self._process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._inbox.close()
        self._outbox.close()

    def __enter__(self) -> "LiveDisplay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the display thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        tap = self._tap
        if tap is None or self.error is not None or not tap.queue:
            return
        batch = [tap.queue.popleft() for _ in range(len(tap.queue))]
        try:
            grouped = group_batch(batch, self._specs)
        except Exception as exc:  # a sample the display cannot show must never reach the take
            self._fail(f"{type(exc).__name__}: {exc}")
            return
        self._send(("batch", grouped))

    def _send(self, message) -> None:
        if self.error is not None:
            return
        try:
            self._outbox.send(message)
        except (OSError, ValueError) as exc:  # the process died (viewer closed it, out of memory...)
            self._fail(f"display process gone ({type(exc).__name__}: {exc})")

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            log.warning("live display stopped: %s (the take goes on)", message)


def group_batch(batch: List[tuple], specs: Dict[str, StreamSpec]) -> Dict[str, tuple]:
    """Samples grouped per stream as (stamps, {field: stacked values}); a camera keeps only its newest
    frame (the display's frame rate is the batch rate)."""
    grouped: Dict[str, list] = {}
    for stream, t, fields in batch:
        grouped.setdefault(stream, []).append((t, fields))
    out = {}
    for stream, samples in grouped.items():
        spec = specs.get(stream)
        if spec is None:
            continue
        if spec.is_camera:
            t, fields = samples[-1]
            out[stream] = (np.array([t], np.float64), {"image": np.asarray(fields["image"])[None]})
            continue
        stamps = np.array([t for t, _ in samples], np.float64)
        out[stream] = (stamps, {name: np.stack([np.asarray(f[name]) for _, f in samples]) for name in samples[0][1]})
    return out


# -- the display process -------------------------------------------------------------------------------

def _start_display_process(target: str, robot: Optional[str]):
    """A fresh interpreter running display_main, with one pipe each way. Not multiprocessing: a spawned
    child re-imports the caller's __main__, which a script without a main guard would run again."""
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    source_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)}
    code = "import sys; from collector.review.live_display import display_main; display_main(*sys.argv[1:])"
    try:
        process = subprocess.Popen([sys.executable, "-c", code, str(to_child_r), str(to_parent_w), target, robot or ""],
                                   pass_fds=(to_child_r, to_parent_w), env=env, stdin=subprocess.DEVNULL)
    finally:
        os.close(to_child_r)
        os.close(to_parent_w)
    return process, Connection(to_parent_r, writable=False), Connection(to_child_w, readable=False)


def display_main(inbox_fd: str, outbox_fd: str, target: str, robot: str) -> None:
    """The display process's entry point (see _start_display_process)."""
    display_process(Connection(int(inbox_fd), writable=False), Connection(int(outbox_fd), readable=False),
                    target, robot or None)


def display_process(inbox, outbox, target: str, robot: Optional[str]) -> None:
    """Receives takes and batches from the display thread and logs them to Rerun; at "close" (or when the
    pipe closes) finishes the recording and answers with what it logged."""
    import collector.review.rerun_view  # noqa: F401  (imports Rerun before saying ready)

    # Below the station's own work: a process competing for the cores would delay the threads of the
    # control process that hold the GIL (renderer, recorder), and through them the control thread.
    os.nice(DISPLAY_NICENESS)

    logged: Dict[str, int] = {}
    error: Optional[str] = None
    rec = logger = None
    connect = _connector(target)
    outbox.send({"ready": True})
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            break
        if message[0] == "close":
            break
        if error is not None:
            continue
        try:
            if message[0] == "take":
                _finish(rec)
                rec, logger = _start_take(message[1], message[2], robot, connect)
            elif message[0] == "batch" and logger is not None:
                for stream, (t, fields) in message[1].items():
                    fields = _as_jpeg(fields, logger.specs[stream])
                    logged[stream] = logged.get(stream, 0) + logger.log(stream, t, fields)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    try:
        _finish(rec)
    except Exception as exc:
        error = error or f"{type(exc).__name__}: {exc}"
    try:
        outbox.send({"logged": logged, "error": error})
    except (OSError, ValueError):
        pass


def _as_jpeg(fields: dict, spec: StreamSpec) -> dict:
    """Camera frames as standard JPEG (RGB flipped for the encoder), so the viewer holds kilobytes a frame."""
    if not spec.is_camera or "image" not in fields:
        return fields
    from collector.episodes.topics import viewer_jpeg

    return {"jpeg": [viewer_jpeg(image, spec.jpeg_quality) for image in fields["image"]]}


def _start_take(name: str, specs: List[StreamSpec], robot: Optional[str], connect):
    import uuid

    from collector.review.rerun_view import APPLICATION_ID, StreamLogger, blueprint, rerun

    rr = rerun()
    rec = rr.RecordingStream(APPLICATION_ID, recording_id=f"{name}-live-{uuid.uuid4().hex[:8]}")
    connect(rec)
    rec.send_recording_name(f"{name} (live)")
    logger = StreamLogger(rec, specs, robot=robot)
    rec.send_blueprint(blueprint(logger), make_active=True)
    logger.declare()
    return rec, logger


def _finish(rec) -> None:
    if rec is not None:
        rec.flush()
        rec.disconnect()


def _connector(target: str):
    """connect(rec) for the display target: one viewer spawned at the first take, a viewer URL, or files."""
    takes = [0]

    def connect(rec) -> None:
        takes[0] += 1
        if target == VIEWER:
            if takes[0] == 1:
                from collector.review.rerun_view import spawn

                spawn(rec)
            else:
                rec.connect_grpc()
        elif target.startswith("rerun"):
            rec.connect_grpc(target)
        else:
            path = Path(target)
            rec.save(path if takes[0] == 1 else path.with_name(f"{path.stem}-{takes[0]}{path.suffix}"))
    return connect


# -- benchmark hook ------------------------------------------------------------------------------------

def run_ticks(ticks: int, display: bool, out_rrd=None, realtime: bool = True, record_dir=None,
              task: str = "pick_place", seed: int = 0) -> dict:
    """Run the simulated teleop loop (scripted operator over ZMQ, cameras rendering) for up to `ticks`
    ticks, with or without a live display; returns the loop's timing and what the display logged.

    out_rrd: where the display's recording goes (default: a temporary file; a viewer would compete
    for the same cores and measure itself). record_dir: also record the take with the EpisodeWriter."""
    import tempfile
    from pathlib import Path

    from collector.teleop.rig import build_sim_rig

    rig = build_sim_rig(task=task, device="scripted", render=True, seed=seed)
    tmp = tempfile.TemporaryDirectory(prefix="collector-display-")
    live = None
    writer = None
    try:
        rig.backend.reset(seed=seed)
        specs = rig.loop.stream_specs()
        if record_dir is not None:
            writer = rig.recorder(record_dir, f"display_bench_{seed:06d}", {"task": task, "sim": True})
        sink = writer
        path = Path(out_rrd) if out_rrd else Path(tmp.name) / "live.rrd"
        if display:
            live = LiveDisplay(str(path), robot=rig.robot.name)
            live.wait_ready()
            sink = live.take(f"display_bench_{seed:06d}", specs, writer)
        started = time.monotonic()
        result = rig.run_episode(ticks * rig.loop.control_dt, sink=sink, seed=seed, stop_on_success=False,
                                 realtime=realtime)
        wall = time.monotonic() - started
        tap = sink if display else None
        if live is not None:
            live.close()
        episode = writer.stop(outcome="success" if result.success else "failure") if writer is not None else None
    finally:
        if live is not None:
            live.close()
        rig.close()
    stats = result.stats
    report = {
        "display": display, "realtime": realtime, "ticks": result.ticks, "wall_s": wall,
        "control_hz": stats["control_hz"],
        "input_to_command_ms": stats["input_to_command_ms"], "tick_ms": stats["tick_ms"],
        "jitter_ms": stats["jitter_ms"], "overruns": stats["overruns"], "frames": stats["frames"],
        "realtime_scheduling": rig.loop.realtime_scheduling,
        "episode": str(episode) if episode else None,
        "display_pushed": tap.pushed if tap is not None else 0,
        "display_dropped": tap.dropped if tap is not None else 0,
        "display_logged": dict(live.logged) if live is not None else {},
        "display_error": live.error if live is not None else None,
        "rrd": str(path) if display and out_rrd else None,
    }
    tmp.cleanup()
    return report
