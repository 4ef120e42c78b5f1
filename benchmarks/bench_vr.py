#!/usr/bin/env python3
"""Benchmark the VR bridge over loopback: pose rate and backlog, pose-to-joint-command latency, camera to
WebSocket send latency and frame rate at 640x480 per eye.

    python benchmarks/bench_vr.py [--quick]

The server runs as `collector vr serve` in its own process (TLS, token, as deployed). The "headset" is
the Python page client (collector.teleop.vr.client), sending the synthetic operator (two 25-joint hands
plus two controllers, the largest frames the page sends, ~10 KB of JSON) at 90 Hz. The teleop loop is the
real TeleopLoop on the MuJoCo humanoid (retargeting, mink IK, safety gate), subscribed over ZMQ.

Phases (peers measured in the same run):
  poses/event     the loop ticks as soon as input arrives: latency of the pipeline itself
                  (page JSON -> WebSocket -> server -> ZMQ -> retarget -> IK -> gate -> command);
  poses/100Hz     the loop ticks at its 100 Hz control rate, as in a session: adds up to one period of
                  waiting for the next tick;
  poses/direct    baseline without the bridge: the same inputs published straight on ZMQ to the loop;
  poses/max       the client sends as fast as it can: the bridge's throughput ceiling;
  camera          a stereo pair (640x480 per eye) published at 60 fps through CameraFeedPublisher
                  (JPEG off the control path) -> server -> WebSocket -> client, at JPEG quality 80
                  (the default) and, as peers, 60 and 95; and unthrottled (the frame-rate ceiling).
Camera-to-send is measured by the server (publish() call to WebSocket send completed, /stats).
The last line printed is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.teleop.vr.client import PageClient  # noqa: E402
from collector.teleop.vr.feeds import CameraFeedPublisher  # noqa: E402
from collector.teleop.vr.synthetic import operator_pose, page_frame  # noqa: E402

POSE_HZ = 90.0
EYE_W, EYE_H = 640, 480


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


class BridgeProcess:
    """`collector vr serve` in a child process with its own certificate and endpoints."""

    def __init__(self, workdir: Path):
        self.endpoints = {k: free_endpoint() for k in ("input", "camera", "status", "event")}
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "vr", "serve", "--port", "0", "--cert-dir", str(workdir),
             "--input-endpoint", self.endpoints["input"], "--camera-endpoint", self.endpoints["camera"],
             "--status-endpoint", self.endpoints["status"], "--event-endpoint", self.endpoints["event"],
             "--max-rate", "5000", "--max-age-ms", "100000"],  # deliver every frame: each one is timed
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        banner = ""
        deadline = time.monotonic() + 90
        while "Ctrl-C to stop" not in banner and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            banner += line
        match = re.search(r"open on the headset:\s+(\S+)", banner)
        if not match:
            self.close()
            raise RuntimeError(f"VR server did not start:\n{banner}")
        self.url = match.group(1)
        self.cafile = workdir / "vr-server-cert.pem"
        self._ssl = ssl.create_default_context(cafile=str(self.cafile))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    def stats(self, reset: bool = False) -> dict:
        url = self.url.replace("/?token=", "/stats?token=") + ("&reset=1" if reset else "")
        with urllib.request.urlopen(url, context=self._ssl, timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class AsyncThread:
    """An asyncio loop in a thread, for the page client while the main thread runs the teleop loop."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


# ---------------------------------------------------------------------------------------------
# Poses through the bridge into the real teleop loop
# ---------------------------------------------------------------------------------------------

class TimedSubscriber:
    """Wraps the loop's InputSubscriber: notes which seqs each tick consumed and, event-driven, waits for input."""

    def __init__(self, inner, wait_s: float):
        self.inner, self.wait_s = inner, wait_s
        self.batch = []

    def receive(self, timeout_s: float = 0.0):
        got = self.inner.receive(max(timeout_s, self.wait_s))
        self.batch = [(received_at, head_key(msg.head.position) if msg.head is not None else None)
                      for received_at, msg in got]
        return got

    def __getattr__(self, name):
        return getattr(self.inner, name)


def make_loop(endpoint: str):
    from collector.teleop.rig import build_sim_rig

    rig = build_sim_rig(robot="humanoid", task="pick_place", device=None, render=False, endpoint=endpoint, bind=False)
    loop, backend = rig.loop, rig.backend
    command_times = []
    send_command = backend.send_command

    def timed_send(t, q):
        send_command(t, q)
        command_times.append(time.monotonic())

    backend.send_command = timed_send
    return loop, backend, command_times


def drive_loop(loop, command_times, subscriber, until, paced: bool, extra_ticks: int = 20):
    """Tick until until() (then a few more to drain); returns [(head key, received_at, command_at)]."""
    consumed = []
    next_tick = time.perf_counter()
    remaining = extra_ticks
    while remaining > 0:
        if until():
            remaining -= 1
        loop.tick()
        for received_at, key in subscriber.batch:
            consumed.append((key, received_at, command_times[-1]))
        subscriber.batch = []
        if paced:
            next_tick += loop.control_dt
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.perf_counter()
    return consumed


async def send_poses(url: str, cafile: Path, seconds: float, rate_hz: float, send_log: list):
    """The headset: frames at rate_hz (or back to back if rate_hz is 0); logs (page seq, send time)."""
    client = PageClient(url, cafile=cafile, client_name="bench")
    await client.connect()
    n = int(seconds * (rate_hz or 100000))
    # Timed runs send distinct frames (matched by head pose); the throughput run may repeat them.
    frames = [page_frame(i, i / POSE_HZ, hands=True, controllers=True) for i in range(min(n, 1800))]
    start = time.monotonic()
    for i in range(n):
        if rate_hz:
            delay = start + i / rate_hz - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        elif time.monotonic() - start > seconds:
            break
        t_send = time.monotonic()
        await client.send_frame(frames[i % len(frames)])
        send_log.append(t_send)
    await asyncio.sleep(0.3)
    errors = list(client.errors)
    await client.close()
    return errors


class HeadsetProcess:
    """The sending headset in its own process (as a real headset is), so it does not share a GIL with the loop."""

    def __init__(self, bridge: BridgeProcess, seconds: float, rate_hz: float, workdir: Path):
        self.out = workdir / f"sends-{time.monotonic_ns()}.json"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--headset", bridge.url, str(bridge.cafile), str(seconds), str(rate_hz),
             str(self.out)], env={**os.environ, "PYTHONPATH": str(REPO)})

    def done(self) -> bool:
        return self.proc.poll() is not None

    def result(self):
        self.proc.wait(timeout=120)
        data = json.loads(self.out.read_text())
        return data["send_times"], data["errors"]


def headset_main(url: str, cafile: str, seconds: float, rate_hz: float, out: str) -> None:
    send_log = []
    errors = asyncio.run(send_poses(url, Path(cafile), seconds, rate_hz, send_log))
    Path(out).write_text(json.dumps({"send_times": send_log, "errors": errors}))


def pose_phase(bridge: BridgeProcess, workdir: Path, seconds: float, paced: bool) -> dict:
    loop, backend, command_times = make_loop(bridge.endpoints["input"])
    subscriber = TimedSubscriber(loop.subscriber, wait_s=0.0 if paced else 0.02)
    loop.subscriber = subscriber
    time.sleep(0.5)  # the SUB connects to the server's publisher
    loop.start()
    dropped_before = bridge.stats(reset=True)["stale_dropped"]
    headset = HeadsetProcess(bridge, seconds, POSE_HZ, workdir)
    consumed = drive_loop(loop, command_times, subscriber, headset.done, paced)
    send_log, errors = headset.result()
    server = bridge.stats(reset=True)
    loop.close()
    backend.close()
    result = summarize_poses(consumed, send_log, errors, seconds)
    result["server_age_p50_ms"] = server["pose_age_at_publish_ms"].get("p50", float("nan"))
    result["server_age_p99_ms"] = server["pose_age_at_publish_ms"].get("p99", float("nan"))
    result["stale_dropped"] = server["stale_dropped"] - dropped_before
    return result


def head_key(position) -> tuple:
    """Frame identity: the synthetic operator's head never returns to the same (x, y) within a run,
    and floats survive JSON, msgpack and the server bit for bit."""
    return (float(position[0]), float(position[1]))


def frame_index(n: int) -> dict:
    return {head_key(operator_pose(i / POSE_HZ)["head"][0]): i for i in range(n)}


def summarize_poses(consumed, send_log, errors, seconds) -> dict:
    """Latencies per consumed input, matched to the frame the client sent by its head pose (the server
    renumbers inputs and may drop some, so sequence numbers cannot be used)."""
    index = frame_index(len(send_log))
    frames = [(index[key], received_at, command_at) for key, received_at, command_at in consumed if key in index]
    to_command, to_receive = [], []
    for i, received_at, command_at in frames:
        sent = send_log[i]
        to_command.append((command_at - sent) * 1000)
        to_receive.append((received_at - sent) * 1000)
    receive_times = [c[1] for c in frames]
    span = receive_times[-1] - receive_times[0] if len(receive_times) > 1 else float("nan")
    second = max(1, int(POSE_HZ))
    # Backlog: if the bridge could not keep up, the delay of the last second would exceed the first's.
    backlog = pct(to_receive[-second:], 50) - pct(to_receive[:second], 50) if len(to_receive) > 2 * second else 0.0
    return {
        "sent": len(send_log), "received": len(frames), "errors": len(errors),
        "rate_hz": (len(frames) - 1) / span if span > 0 else float("nan"),
        "to_receive_p50_ms": pct(to_receive, 50), "to_receive_p99_ms": pct(to_receive, 99),
        "to_command_p50_ms": pct(to_command, 50), "to_command_p99_ms": pct(to_command, 99),
        "backlog_growth_ms": backlog, "seconds": seconds,
    }


def direct_phase(seconds: float) -> dict:
    """Peer: the same inputs published straight onto ZMQ (no WebSocket, no JSON), event-driven loop."""
    import itertools
    import json as _json

    from collector.teleop.vr.controls import ControlMapper
    from collector.teleop.vr.converter import FrameConverter
    from collector.teleop.vr.protocol import parse_client_message
    from collector.teleop.zmq_link import InputPublisher

    endpoint = free_endpoint()
    publisher = InputPublisher(endpoint, bind=True)
    loop, backend, command_times = make_loop(endpoint)
    subscriber = TimedSubscriber(loop.subscriber, wait_s=0.02)
    loop.subscriber = subscriber
    publisher.wait_for_subscriber(10)
    loop.start()
    converter = FrameConverter(itertools.count(), ControlMapper())
    send_log = []
    n = int(seconds * POSE_HZ)
    inputs = []
    for i in range(n):  # the very inputs the bridge would publish, one distinct frame each
        frame = parse_client_message(_json.dumps(page_frame(i, i / POSE_HZ, hands=True, controllers=True)))
        inputs.append(converter.convert(frame, time.monotonic())[0])

    def produce():
        start = time.monotonic()
        for i in range(n):
            delay = start + i / POSE_HZ - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            send_log.append(time.monotonic())
            publisher.publish(inputs[i])

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    consumed = drive_loop(loop, command_times, subscriber, lambda: not producer.is_alive(), paced=False)
    publisher.close()
    loop.close()
    backend.close()
    return summarize_poses(consumed, send_log, [], seconds)


def cpu_phase(images, n: int = 300) -> dict:
    """CPU time (not wall time, so it holds on a busy machine) the server spends per pose frame and the
    publisher per stereo camera pair: what a dedicated machine needs at 90 Hz / 60 fps."""
    import itertools
    import json as _json

    from collector.teleop.messages import encode
    from collector.teleop.vr.clock import HeadsetClock
    from collector.teleop.vr.controls import ControlMapper
    from collector.teleop.vr.converter import FrameConverter
    from collector.teleop.vr.feeds import encode_jpeg
    from collector.teleop.vr.protocol import decode_message, parse_frame

    texts = [_json.dumps(page_frame(i, i / POSE_HZ, hands=True, controllers=True)) for i in range(n)]
    converter, clock = FrameConverter(itertools.count(), ControlMapper()), HeadsetClock()
    start = time.thread_time()
    for i, text in enumerate(texts):
        frame = parse_frame(decode_message(text))
        converter.accept_seq(frame.seq)
        encode(converter.convert(frame, clock.to_host(frame.device_t, 100.0 + i / POSE_HZ))[0])
    pose_ms = (time.thread_time() - start) / n * 1000
    start = time.thread_time()
    for left, right in images * 4:
        encode_jpeg(left, 80)
        encode_jpeg(right, 80)
    jpeg_ms = (time.thread_time() - start) / (len(images) * 4) * 1000
    return {"pose_frame_cpu_ms": pose_ms, "frame_bytes": len(texts[0]), "stereo_jpeg_q80_cpu_ms": jpeg_ms}


def max_rate_phase(bridge: BridgeProcess, workdir: Path, seconds: float) -> dict:
    from collector.teleop.zmq_link import InputSubscriber

    sub = InputSubscriber(bridge.endpoints["input"])
    time.sleep(0.5)
    received = []
    headset = HeadsetProcess(bridge, seconds, 0, workdir)
    while not headset.done():
        received += [r for r, _ in sub.receive(0.05)]
    received += [r for r, _ in sub.receive(0.3)]
    send_log, errors = headset.result()
    sub.close()
    span = send_log[-1] - send_log[0] if len(send_log) > 1 else float("nan")
    return {"sent": len(send_log), "received": len(received), "errors": len(errors),
            "send_rate_hz": (len(send_log) - 1) / span,
            "receive_rate_hz": (len(received) - 1) / (received[-1] - received[0]) if len(received) > 1 else 0.0}


# ---------------------------------------------------------------------------------------------
# Camera
# ---------------------------------------------------------------------------------------------

def camera_images():
    """A stereo pair of realistic content: the sim's head cameras at 640x480, else a test pattern."""
    try:
        from collector.sim import SimEnv

        env = SimEnv(robot="humanoid", task="pick_place")
        env.reset(seed=0)
        pair = [env.render(cam, EYE_W, EYE_H) for cam in ("head_left", "head_right")]
        env.close()
        source = "MuJoCo head_left/head_right"
    except Exception as exc:  # rendering is optional for this benchmark
        from collector.teleop.vr.demo_feed import pattern_frame

        pair = [pattern_frame(EYE_W, EYE_H, 0.3, "LEFT"), pattern_frame(EYE_W, EYE_H, 0.3, "RIGHT")]
        source = f"test pattern ({type(exc).__name__})"
    rng = np.random.default_rng(0)
    # Sensor noise makes every frame different, as a real camera's are (JPEG cost depends on it).
    variants = [[np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8) for img in pair]
                for _ in range(8)]
    return variants, source


async def watch_camera(url: str, cafile: Path, stop: threading.Event):
    client = PageClient(url, cafile=cafile, client_name="bench-camera", keep_frames=10)
    await client.connect()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    count, last = client.camera_count, [f.header for f in client.camera]
    await client.close()
    return count, last


def camera_phase(bridge: BridgeProcess, runner: AsyncThread, images, seconds: float, quality: int,
                 fps: float) -> dict:
    stop = threading.Event()
    future = runner.submit(watch_camera(bridge.url, bridge.cafile, stop))
    publisher = CameraFeedPublisher(bridge.endpoints["camera"], quality=quality)
    time.sleep(0.5)  # connections up before measuring
    bridge.stats(reset=True)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        left, right = images[i % len(images)]
        t = time.monotonic() - start
        publisher.publish("head_left", t, left)
        publisher.publish("head_right", t, right)
        i += 1
        if fps:
            delay = start + i / fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        else:
            time.sleep(0.001)  # yield: the encoder thread needs the GIL for its Python part
    elapsed = time.monotonic() - start
    time.sleep(0.3)
    stats = bridge.stats(reset=True)
    stop.set()
    received, _ = future.result()
    published, dropped = publisher.published, publisher.dropped
    publisher.close()
    lat = stats["camera_to_send_ms"]
    sent = sum(stats["camera_frames_sent"].values())
    return {"quality": quality, "target_fps": fps, "published_pairs": i, "dropped_at_encoder": dropped,
            "frames_sent": sent, "frames_received": received,
            "fps_per_eye": received / 2 / elapsed, "p50_ms": lat.get("p50", float("nan")),
            "p99_ms": lat.get("p99", float("nan")), "published": published}


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (about a minute in all)")
    parser.add_argument("--headset", nargs=5, metavar=("URL", "CAFILE", "SECONDS", "RATE", "OUT"),
                        help=argparse.SUPPRESS)  # internal: the sending headset's process
    args = parser.parse_args()
    if args.headset:
        url, cafile, seconds, rate, out = args.headset
        headset_main(url, cafile, float(seconds), float(rate), out)
        return
    pose_s = 4.0 if args.quick else 15.0
    cam_s = 3.0 if args.quick else 10.0

    workdir = Path(tempfile.mkdtemp(prefix="bench-vr-"))
    runner = AsyncThread()  # the camera watcher (a cheap client: it only counts frames)
    bridge = BridgeProcess(workdir)
    try:
        print(f"VR bridge benchmark ({'quick' if args.quick else 'full'}), server {bridge.url.split('?')[0]}")
        print(f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        event = pose_phase(bridge, workdir, pose_s, paced=False)
        paced = pose_phase(bridge, workdir, pose_s, paced=True)
        direct = direct_phase(pose_s)
        ceiling = max_rate_phase(bridge, workdir, 2.0 if args.quick else 5.0)
        images, source = camera_images()
        cpu = cpu_phase(images)
        print("\nPoses (90 Hz, two hands + two controllers per frame)")
        print(f"  {'path':<16}{'rate Hz':>9}{'recv/sent':>11}{'to ZMQ p50/p99 ms':>20}"
              f"{'to command p50/p99 ms':>24}{'backlog ms':>12}")
        for name, r in (("bridge, event", event), ("bridge, 100 Hz", paced), ("direct ZMQ", direct)):
            print(f"  {name:<16}{r['rate_hz']:>9.1f}{r['received']:>6}/{r['sent']:<4}"
                  f"{r['to_receive_p50_ms']:>10.2f}/{r['to_receive_p99_ms']:<9.2f}"
                  f"{r['to_command_p50_ms']:>12.2f}/{r['to_command_p99_ms']:<11.2f}{r['backlog_growth_ms']:>10.2f}")
        print(f"  bridge alone (headset stamp -> published on ZMQ, server clock map): event run p50 "
              f"{event['server_age_p50_ms']:.2f} / p99 {event['server_age_p99_ms']:.2f} ms; "
              f"stale frames dropped: {event['stale_dropped']} (event), {paced['stale_dropped']} (100 Hz)")
        print(f"  CPU per frame in the server: {cpu['pose_frame_cpu_ms']:.2f} ms ({cpu['frame_bytes']} B of JSON) "
              f"= {cpu['pose_frame_cpu_ms'] * POSE_HZ / 10:.1f}% of one core at 90 Hz")
        print(f"  ceiling: client sent {ceiling['send_rate_hz']:.0f}/s, bridge delivered "
              f"{ceiling['receive_rate_hz']:.0f}/s ({ceiling['received']}/{ceiling['sent']})")

        print(f"\nCamera: stereo {EYE_W}x{EYE_H} per eye, content: {source}; JPEG q80 encode "
              f"{cpu['stereo_jpeg_q80_cpu_ms']:.2f} ms CPU per stereo pair")
        print(f"  {'JPEG q':>7}{'target fps':>11}{'fps/eye':>9}{'to-send p50 ms':>16}{'p99 ms':>9}{'enc drops':>11}")
        cams = []
        for quality, fps in ((80, 60.0), (60, 60.0), (95, 60.0), (80, 0.0)):
            r = camera_phase(bridge, runner, images, cam_s, quality, fps)
            cams.append(r)
            print(f"  {quality:>7}{(f'{fps:.0f}' if fps else 'max'):>11}{r['fps_per_eye']:>9.1f}"
                  f"{r['p50_ms']:>16.2f}{r['p99_ms']:>9.2f}{r['dropped_at_encoder']:>11}")
        head = cams[0]
        summary = {
            "pose_rate_hz": round(event["rate_hz"], 2),
            "pose_frames_lost": event["sent"] - event["received"],
            "pose_backlog_growth_ms": round(event["backlog_growth_ms"], 3),
            "pose_to_zmq_p99_ms": round(event["to_receive_p99_ms"], 3),
            "bridge_pose_age_p99_ms": round(event["server_age_p99_ms"], 3),
            "pose_to_command_p50_ms": round(event["to_command_p50_ms"], 3),
            "pose_to_command_p99_ms": round(event["to_command_p99_ms"], 3),
            "pose_to_command_loop100hz_p50_ms": round(paced["to_command_p50_ms"], 3),
            "pose_to_command_loop100hz_p99_ms": round(paced["to_command_p99_ms"], 3),
            "direct_zmq_pose_to_command_p99_ms": round(direct["to_command_p99_ms"], 3),
            "pose_max_rate_hz": round(ceiling["receive_rate_hz"], 1),
            "pose_frame_cpu_ms": round(cpu["pose_frame_cpu_ms"], 3),
            "stereo_jpeg_q80_cpu_ms": round(cpu["stereo_jpeg_q80_cpu_ms"], 3),
            "load_average": round(os.getloadavg()[0], 1),
            "camera_to_send_p50_ms": round(head["p50_ms"], 3),
            "camera_to_send_p99_ms": round(head["p99_ms"], 3),
            "camera_fps": round(head["fps_per_eye"], 2),
            "camera_target_fps": head["target_fps"],
            "camera_max_fps": round(cams[-1]["fps_per_eye"], 2),
            "camera_q60_to_send_p99_ms": round(cams[1]["p99_ms"], 3),
            "camera_q95_to_send_p99_ms": round(cams[2]["p99_ms"], 3),
            "camera_eye_size": f"{EYE_W}x{EYE_H}",
            "quick": args.quick,
        }
        print(json.dumps(summary))
    finally:
        bridge.close()
        runner.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
