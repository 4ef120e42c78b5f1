#!/usr/bin/env python3
"""Benchmark the episode recorder under the issue's load, against ALOHA-style in-memory recording.

    python benchmarks/bench_recorder.py [--quick] [--seconds S] [--keep DIR]

Load: 4 cameras 640x480 at 30 Hz (JPEG q90, the default codec), joints at 1 kHz (position, velocity
and effort of 20 joints = 60 values), VR input at 90 Hz (head and two hand poses, triggers: 29 values),
each pushed from its own producer thread with its own stamps, for 2 minutes (--quick: 15 s).
Camera content: a MuJoCo scene (checker floor, table, objects, a moving two-link arm) rendered
offscreen from four cameras, 10 poses per camera, and 30 distinct frames per camera made from them by
adding Gaussian sensor noise (sigma 2 levels); producers cycle through those. If offscreen rendering is
unavailable, smooth synthetic gradients with the same noise are used instead (the output says which).

Phases, each in a fresh child process so memory and CPU are its own:
  record    the sustained run: frames written/s, CPU, queue high-water marks, drops, push and write
            latency, bytes per frame, finalize time, peak RSS;
  long      a 10-minute episode (2 minutes with --quick) pushed faster than real time with 160x120
            cameras, to time finalizing a long episode (beyond the aligned view, and the view itself);
  codecs    bytes per frame and throughput for raw / lzf / JPEG on the same frames;
  kill      full load, kill -9 at a random moment, data lost = kill time - last stamp in the file;
  aloha     the same producers buffering everything in memory, then JPEG-compressing, padding and
            writing at stop as ALOHA's record_episodes does: peak memory and save time after stop.
            Run for a shorter time (15 s, --quick 5 s) because it holds every raw frame in RAM
            (4 x 30 x 0.92 MB per second); its memory and save time are also given scaled linearly to
            the sustained run's duration (labelled "scaled").
The last line printed is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CAMERAS = ("head", "wrist_left", "wrist_right", "chest")
WIDTH, HEIGHT, FPS = 640, 480, 30
N_JOINTS = 20
VR_VALUES = 29
JOINT_HZ, VR_HZ = 1000.0, 90.0
FRAMES_PER_CAMERA = 30
MiB = 1024 * 1024

SCENE = """
<mujoco>
  <visual><global offwidth="640" offheight="480"/><quality shadowsize="0" offsamples="0"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".2 .3 .4" rgb2=".7 .7 .7" width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="6 6"/>
    <texture name="wood" type="2d" builtin="flat" mark="random" random="0.3" rgb1=".55 .38 .2" rgb2=".4 .25 .1"
             markrgb=".3 .2 .1" width="128" height="128"/>
    <material name="wood" texture="wood"/>
  </asset>
  <worldbody>
    <light pos="0 -1 2.5" dir="0 0.3 -1" diffuse=".8 .8 .8"/>
    <light pos="1 1 2" dir="-0.3 -0.3 -1" diffuse=".4 .4 .35"/>
    <geom type="plane" size="4 4 .1" material="grid"/>
    <geom type="box" pos="0.6 0 0.4" size=".35 .6 .02" material="wood"/>
    <geom type="box" pos="0.55 -0.2 0.47" size=".05 .05 .05" rgba=".8 .1 .1 1"/>
    <geom type="cylinder" pos="0.7 0.15 0.48" size=".04 .06" rgba=".1 .5 .9 1"/>
    <geom type="sphere" pos="0.5 0.3 0.46" size=".04" rgba=".9 .8 .1 1"/>
    <body pos="0.1 0 0.8">
      <joint name="shoulder" type="hinge" axis="0 0 1"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size=".04" rgba=".8 .8 .85 1"/>
      <body pos="0.3 0 0">
        <joint name="elbow" type="hinge" axis="0 1 0"/>
        <geom type="capsule" fromto="0 0 0 0.25 0 -0.2" size=".035" rgba=".3 .3 .35 1"/>
        <camera name="wrist_left" pos="0.2 0.05 -0.1" xyaxes="0 -1 0 0.7 0 0.7"/>
      </body>
    </body>
    <camera name="head" pos="-0.4 0 1.5" xyaxes="0 -1 0 0.6 0 0.8"/>
    <camera name="wrist_right" pos="0.6 -0.9 0.9" xyaxes="1 0 0 0 0.5 0.86"/>
    <camera name="chest" pos="0 0 1.0" xyaxes="0 -1 0 0.3 0 0.95"/>
  </worldbody>
</mujoco>
"""


# ------------------------------------------------------------------ camera content ------------
def render_frames(poses: int, seed: int = 0):
    """(len(CAMERAS), FRAMES_PER_CAMERA, H, W, 3) uint8 and a description of the content."""
    rng = np.random.default_rng(seed)
    try:
        import collector  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
        import mujoco

        model = mujoco.MjModel.from_xml_string(SCENE)
        data = mujoco.MjData(model)
        base = np.zeros((len(CAMERAS), poses, HEIGHT, WIDTH, 3), np.uint8)
        with mujoco.Renderer(model, HEIGHT, WIDTH) as renderer:
            for k in range(poses):
                data.qpos[:] = [0.8 * np.sin(2 * np.pi * k / poses), 0.5 * np.cos(2 * np.pi * k / poses)]
                mujoco.mj_forward(model, data)
                for c, cam in enumerate(CAMERAS):
                    renderer.update_scene(data, camera=cam)
                    base[c, k] = renderer.render()
        content = f"MuJoCo scene rendered offscreen ({os.environ.get('MUJOCO_GL')}), {poses} poses x 4 cameras"
    except Exception as exc:  # no GL here: fall back to smooth synthetic images
        y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
        base = np.zeros((len(CAMERAS), poses, HEIGHT, WIDTH, 3), np.uint8)
        for c in range(len(CAMERAS)):
            for k in range(poses):
                phase = 2 * np.pi * k / poses + c
                img = np.stack([128 + 100 * np.sin(x / 90 + phase), 128 + 100 * np.cos(y / 70 + phase),
                                128 + 60 * np.sin((x + y) / 150)], axis=-1)
                base[c, k] = img.astype(np.uint8)
        content = f"smooth synthetic gradients (rendering unavailable: {type(exc).__name__})"
    frames = np.empty((len(CAMERAS), FRAMES_PER_CAMERA, HEIGHT, WIDTH, 3), np.uint8)
    for c in range(len(CAMERAS)):
        for k in range(FRAMES_PER_CAMERA):
            noise = rng.normal(0, 2.0, (HEIGHT, WIDTH, 3))
            frames[c, k] = np.clip(base[c, k % poses] + noise, 0, 255).astype(np.uint8)
    return frames, content + ", + Gaussian sensor noise sigma 2, 30 distinct frames per camera"


# ------------------------------------------------------------------ measurement helpers -------
def thread_cpu_seconds(native_ids) -> float:
    """CPU time (user+sys) of the given threads of this process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for tid in native_ids:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def specs(width=WIDTH, height=HEIGHT, codec="jpeg"):
    from collector.recorder import FieldSpec, StreamSpec, camera_stream

    out = [
        StreamSpec("joints", {"position": FieldSpec((N_JOINTS,)), "velocity": FieldSpec((N_JOINTS,)),
                              "effort": FieldSpec((N_JOINTS,))}, rate_hz=JOINT_HZ, kind="joints"),
        StreamSpec("input", {"vr": FieldSpec((VR_VALUES,))}, rate_hz=VR_HZ, kind="input"),
    ]
    out += [camera_stream(f"camera_{cam}", width, height, FPS, codec=codec) for cam in CAMERAS]
    return out


METADATA = {"task": "benchmark", "sim": True, "operator": "bench",
            "conditions": {"lighting": {"name": "bench"}, "weights": {"none": 0.0}}}


class Producers:
    """One thread per stream, paced on absolute deadlines; stamps from the monotonic clock.

    `sink(stream, t, **fields)` is the recorder's push or an in-memory buffer. Each thread measures
    how long its push calls take (the control loop's view of the recorder)."""

    def __init__(self, sink, frames, seconds):
        self.sink = sink
        self.frames = frames
        self.seconds = seconds
        self.stop = threading.Event()
        self.push_times = {}
        self.cpu_s = {}
        self.threads = []

    def _loop(self, name, rate, make):
        period = 1.0 / rate
        start = time.monotonic()
        times = []
        k = 0
        while not self.stop.is_set():
            deadline = start + k * period
            now = time.monotonic()
            if now - start >= self.seconds:
                break
            if deadline > now:
                time.sleep(deadline - now)
            t = time.monotonic()
            fields = make(k, t)
            t0 = time.perf_counter()
            self.sink(name, t, **fields)
            times.append(time.perf_counter() - t0)
            k += 1
        self.push_times[name] = np.array(times)
        self.cpu_s[name] = time.thread_time()

    def start(self):
        joint_base = np.arange(N_JOINTS)

        def joints(k, t):
            q = np.sin(t + joint_base)
            return {"position": q, "velocity": np.cos(t + joint_base), "effort": 0.1 * q}

        def vr(k, t):
            return {"vr": np.sin(t * 0.5 + np.arange(VR_VALUES))}

        jobs = [("joints", JOINT_HZ, joints), ("input", VR_HZ, vr)]
        for c, cam in enumerate(CAMERAS):
            jobs.append((f"camera_{cam}", FPS,
                         lambda k, t, c=c: {"image": self.frames[c, k % self.frames.shape[1]]}))
        for name, rate, make in jobs:
            thread = threading.Thread(target=self._loop, args=(name, rate, make), daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self):
        for thread in self.threads:
            thread.join()

    def cpu_seconds(self) -> float:
        return sum(self.cpu_s.values())


# ------------------------------------------------------------------ phases (children) ---------
def phase_record(args):
    from collector.recorder import EpisodeReader, EpisodeWriter

    frames = np.load(args.frames)
    baseline_rss = current_rss_mb()
    writer = EpisodeWriter(args.out, f"episode_{args.tag}", specs(), metadata=METADATA)
    writer.start()
    recorder_threads = [w.native_id for w in writer._workers] + [writer._disk.native_id]
    producers = Producers(writer.push, frames, args.seconds)
    wall0, cpu0 = time.monotonic(), os.times()
    producers.start()
    if args.no_stop:
        print("RECORDING", flush=True)
    producers.join()
    wall = time.monotonic() - wall0
    cpu1 = os.times()
    recorder_cpu = thread_cpu_seconds(recorder_threads)
    producer_cpu = producers.cpu_seconds()
    if args.no_stop:  # the kill phase: keep going until killed
        time.sleep(3600)
    t_stop = time.perf_counter()
    path = writer.stop(outcome="success")
    stop_s = time.perf_counter() - t_stop
    stats = writer.stats
    with EpisodeReader(path) as r:
        cams = [f"camera_{c}" for c in CAMERAS]
        frames_written = sum(r.count(c) for c in cams)
        jpeg_bytes = sum(int(r.h5[f"raw/{c}/jpeg"].shape[0]) for c in cams) / max(frames_written, 1)
        view_rows = len(r.timestamps)
        view_image_bytes = sum(r.h5[f"observations/images/{c}"].id.get_storage_size() for c in CAMERAS)
    push = {name: {"p50_us": float(np.percentile(v, 50) * 1e6), "p99_us": float(np.percentile(v, 99) * 1e6),
                   "max_us": float(v.max() * 1e6)} for name, v in producers.push_times.items()}
    result = {
        "seconds": wall,
        "frames_written": frames_written,
        "frames_per_s": frames_written / wall,
        "joint_samples_per_s": stats["streams"]["joints"]["written"] / wall,
        "cpu_process_percent": 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall,
        "cpu_recorder_threads_percent": 100 * recorder_cpu / wall,
        "cpu_producer_threads_percent": 100 * producer_cpu / wall,
        "drops": stats["drops"],
        "rejected": stats["rejected"],
        "queues": {n: {"high_water": s["queue_high_water"], "capacity": s["queue_capacity"],
                       **({"encoded_high_water": s["encoded_queue_high_water"],
                           "encoded_capacity": s["encoded_queue_capacity"]} if "encoded_queue_capacity" in s else {})}
                   for n, s in stats["streams"].items()},
        "write_latency": stats["write_latency"],
        "durable_latency": stats["durable_latency"],
        "max_flush_s": stats["max_flush_s"],
        "push": push,
        "jpeg_bytes_per_frame": jpeg_bytes,
        "stop_s": stop_s,
        "drain_s": stats["drain_s"],
        "aligned_view_s": stats["aligned_view_s"],
        "finalize_s": stats["finalize_s"],
        "finalize_beyond_view_s": stats["finalize_s"] - stats["aligned_view_s"],
        "aligned_rows": view_rows,
        "aligned_image_bytes_per_row": view_image_bytes / max(view_rows * len(CAMERAS), 1),
        "file_mb": path.stat().st_size / MiB,
        "baseline_rss_mb": baseline_rss,
        "peak_rss_mb": peak_rss_mb(),
    }
    print("RESULT", json.dumps(result), flush=True)


def phase_long(args):
    """A long episode pushed faster than real time (small frames keep the encoding cost down)."""
    from collector.recorder import EpisodeWriter

    w, h = 160, 120
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (len(CAMERAS), 8, h, w, 3), dtype=np.uint8)
    small = np.clip(small // 8 + np.linspace(0, 200, w)[None, None, None, :, None], 0, 255).astype(np.uint8)
    writer = EpisodeWriter(args.out, f"episode_{args.tag}", specs(w, h), metadata=METADATA, queue_seconds=60.0)
    writer.start()
    seconds = args.seconds
    t0 = 1000.0
    n_joint = int(seconds * JOINT_HZ)
    joint_base = np.arange(N_JOINTS)
    pushed = 0
    wall0 = time.monotonic()
    # Interleave streams in time order, as producers would; pace so the queues never overflow.
    step = 1.0  # seconds of data per round
    for s0 in np.arange(0.0, seconds, step):
        for k in range(int(s0 * JOINT_HZ), min(n_joint, int((s0 + step) * JOINT_HZ))):
            t = t0 + k / JOINT_HZ
            q = np.sin(t + joint_base)
            pushed += writer.push("joints", t, position=q, velocity=q, effort=q)
        for k in range(int(s0 * VR_HZ), int((s0 + step) * VR_HZ)):
            pushed += writer.push("input", t0 + k / VR_HZ, vr=np.full(VR_VALUES, k % 7, float))
        for c, cam in enumerate(CAMERAS):
            for k in range(int(s0 * FPS), int((s0 + step) * FPS)):
                pushed += writer.push(f"camera_{cam}", t0 + k / FPS, image=small[c, k % 8])
        while any(len(q) > q.capacity // 2 for q in writer._push_queues.values()):
            time.sleep(0.01)  # let the writer catch up: this phase measures finalize, not throughput
    record_wall = time.monotonic() - wall0
    path = writer.stop()
    stats = writer.stats
    result = {"episode_seconds": seconds, "record_wall_s": record_wall, "frame_size": [w, h],
              "drops": stats["drops"], "drain_s": stats["drain_s"], "aligned_view_s": stats["aligned_view_s"],
              "finalize_s": stats["finalize_s"],
              "finalize_beyond_view_s": stats["finalize_s"] - stats["aligned_view_s"],
              "file_mb": path.stat().st_size / MiB, "peak_rss_mb": peak_rss_mb()}
    print("RESULT", json.dumps(result), flush=True)


def phase_codecs(args):
    from collector.recorder import EpisodeReader, EpisodeWriter, camera_stream

    frames = np.load(args.frames)[0]
    n = args.count
    result = {}
    for codec in ("raw", "lzf", "jpeg"):
        spec = camera_stream("camera_head", WIDTH, HEIGHT, FPS, codec=codec)
        writer = EpisodeWriter(args.out, f"codec_{codec}", [spec], metadata=METADATA, queue_seconds=n / FPS + 1)
        writer.start()
        t0 = time.perf_counter()
        for k in range(n):
            writer.push("camera_head", k / FPS, image=frames[k % len(frames)])
        writer._drain_and_join(abort=False)  # time to encode and write everything, before the view
        elapsed = time.perf_counter() - t0
        writer._state = "recording"
        path = writer.stop()
        with EpisodeReader(path) as r:
            group = r.h5["raw/camera_head"]
            stored = group["jpeg" if codec == "jpeg" else "image"].id.get_storage_size()
        result[codec] = {"bytes_per_frame": stored / n, "frames_per_s": n / elapsed, "frames": n}
        path.unlink()
    print("RESULT", json.dumps(result), flush=True)


def phase_aloha(args):
    """ALOHA-style: every sample buffered in RAM; at stop, JPEG-compress, pad and write everything."""
    import cv2
    import h5py

    frames = np.load(args.frames)
    baseline_rss = current_rss_mb()
    buffers = {}
    lock = threading.Lock()

    def sink(stream, t, **fields):
        copied = {k: np.array(v) for k, v in fields.items()}  # a camera driver hands out new buffers
        with lock:
            buffers.setdefault(stream, []).append((t, copied))
        return True

    producers = Producers(sink, frames, args.seconds)
    producers.start()
    producers.join()
    t_save = time.perf_counter()
    path = Path(args.out) / "aloha_style.hdf5"
    with h5py.File(path, "w", rdcc_nbytes=1024 ** 2 * 2) as root:
        root.attrs["sim"] = True
        root.attrs["compress"] = True
        obs = root.create_group("observations")
        images = obs.create_group("images")
        joints = buffers["joints"]
        obs.create_dataset("qpos", data=np.stack([s[1]["position"] for s in joints]))
        obs.create_dataset("qvel", data=np.stack([s[1]["velocity"] for s in joints]))
        obs.create_dataset("effort", data=np.stack([s[1]["effort"] for s in joints]))
        obs.create_dataset("vr", data=np.stack([s[1]["vr"] for s in buffers["input"]]))
        lengths = []
        for cam in CAMERAS:
            samples = buffers[f"camera_{cam}"]
            encoded = [cv2.imencode(".jpg", s[1]["image"], [int(cv2.IMWRITE_JPEG_QUALITY), 90])[1] for s in samples]
            lengths.append([e.size for e in encoded])
            width = max(lengths[-1])
            padded = np.zeros((len(encoded), width), np.uint8)
            for i, e in enumerate(encoded):
                padded[i, : e.size] = e.ravel()
            images.create_dataset(cam, data=padded, chunks=(1, width))
        T = min(len(x) for x in lengths)
        root.create_dataset("compress_len", data=np.array([x[:T] for x in lengths]))
    save_s = time.perf_counter() - t_save
    frames_buffered = sum(len(buffers[f"camera_{c}"]) for c in CAMERAS)
    result = {"seconds": args.seconds, "frames_buffered": frames_buffered, "save_s": save_s,
              "baseline_rss_mb": baseline_rss, "peak_rss_mb": peak_rss_mb(),
              "file_mb": path.stat().st_size / MiB}
    print("RESULT", json.dumps(result), flush=True)


# ------------------------------------------------------------------ parent ------------------
def child(args, phase, *extra, wait=True):
    cmd = [sys.executable, __file__, "--phase", phase, "--frames", str(args.frames_file), "--out", str(args.workdir),
           *map(str, extra)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0 or "RESULT" not in out.stdout:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.split("RESULT", 1)[1])


def kill_trial(args, tag, rng):
    import h5py

    proc = child(args, "record", "--seconds", 3600, "--tag", tag, "--no-stop", wait=False)
    line = proc.stdout.readline()
    if not line.startswith("RECORDING"):
        proc.kill()
        raise SystemExit(f"kill phase: child did not start: {proc.stderr.read()[-2000:]}")
    time.sleep(rng.uniform(3.0, 8.0))
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    partial = Path(args.workdir) / f"episode_{tag}.partial.h5"
    with h5py.File(partial, "r") as h5:  # plain h5py
        joints_t = h5["raw/joints/t"][:]
        cam_t = [h5[f"raw/camera_{c}/t"][:] for c in CAMERAS]
    loss = killed_at - joints_t[-1]
    cam_loss = max(killed_at - t[-1] for t in cam_t)
    partial.unlink()
    Path(args.workdir, f".episode_{tag}.partial.h5.reserve").unlink(missing_ok=True)
    return loss, cam_loss


def row(label, value, unit=""):
    print(f"  {label:<46} {value}{(' ' + unit) if unit else ''}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (~1 minute) for CI and smoke checks")
    parser.add_argument("--seconds", type=float, default=None, help="sustained run length (default 120, quick 15)")
    parser.add_argument("--keep", metavar="DIR", help="write files here and keep them (default: a temp dir)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=150, help=argparse.SUPPRESS)
    parser.add_argument("--no-stop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        {"record": phase_record, "long": phase_long, "codecs": phase_codecs, "aloha": phase_aloha}[args.phase](args)
        return

    seconds = args.seconds or (15.0 if args.quick else 120.0)
    long_seconds = 120.0 if args.quick else 600.0
    aloha_seconds = min(seconds, 5.0 if args.quick else 15.0)
    kills = 1 if args.quick else 3
    args.workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_recorder_"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        t_render = time.perf_counter()
        frames, content = render_frames(poses=4 if args.quick else 10)
        args.frames_file = args.workdir / "frames.npy"
        np.save(args.frames_file, frames)
        del frames
        print(f"camera content: {content} ({time.perf_counter() - t_render:.1f} s to prepare)")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
              "(shared machine: other work competes for the CPU)")

        print(f"\n[record] {seconds:.0f} s sustained: 4 cameras {WIDTH}x{HEIGHT} @ {FPS} Hz JPEG q90, "
              f"joints {JOINT_HZ:.0f} Hz x {3 * N_JOINTS} values, VR {VR_HZ:.0f} Hz x {VR_VALUES} values")
        rec = child(args, "record", "--seconds", seconds, "--tag", "record")
        row("camera frames written per second", f"{rec['frames_per_s']:.1f}", f"(goal {4 * FPS})")
        row("joint samples written per second", f"{rec['joint_samples_per_s']:.0f}")
        row("CPU, whole process", f"{rec['cpu_process_percent']:.0f}", "% of one core")
        row("CPU, recorder threads (encode + write)", f"{rec['cpu_recorder_threads_percent']:.0f}", "% of one core")
        row("CPU, producer threads (incl. push)", f"{rec['cpu_producer_threads_percent']:.0f}", "% of one core")
        row("drops (goal 0)", rec["drops"])
        for name, q in rec["queues"].items():
            extra = (f", encoded {q['encoded_high_water']}/{q['encoded_capacity']}"
                     if "encoded_capacity" in q else "")
            row(f"queue high water {name}", f"{q['high_water']}/{q['capacity']}{extra}")
        row("push() time p99 joints / camera", f"{rec['push']['joints']['p99_us']:.0f} / "
            f"{rec['push']['camera_head']['p99_us']:.0f}", "us")
        row("write latency push->file p50 / p99", f"{rec['write_latency']['p50_ms']:.1f} / "
            f"{rec['write_latency']['p99_ms']:.1f}", "ms")
        row("durable latency push->flushed p99", f"{rec['durable_latency']['p99_ms']:.0f}", "ms")
        row("slowest flush", f"{rec['max_flush_s'] * 1e3:.0f}", "ms")
        row("JPEG bytes per frame (raw stream)", f"{rec['jpeg_bytes_per_frame']:.0f}")
        row("aligned view: rows / image bytes per row", f"{rec['aligned_rows']} / "
            f"{rec['aligned_image_bytes_per_row']:.0f}")
        row("stop(): total / drain / aligned view", f"{rec['finalize_s']:.2f} / {rec['drain_s']:.2f} / "
            f"{rec['aligned_view_s']:.2f}", "s")
        row("finalize beyond the aligned view", f"{rec['finalize_beyond_view_s'] * 1e3:.0f}", "ms")
        row("file size", f"{rec['file_mb']:.0f}", "MiB")
        row("peak RSS (frames loaded: baseline)", f"{rec['peak_rss_mb']:.0f} ({rec['baseline_rss_mb']:.0f})", "MiB")

        print(f"\n[long] a {long_seconds / 60:.0f}-minute episode pushed faster than real time (160x120 cameras)")
        lng = child(args, "long", "--seconds", long_seconds, "--tag", "long")
        row("drops", lng["drops"])
        row("stop(): total / drain / aligned view", f"{lng['finalize_s']:.2f} / {lng['drain_s']:.2f} / "
            f"{lng['aligned_view_s']:.2f}", "s")
        row("finalize beyond the aligned view", f"{lng['finalize_beyond_view_s'] * 1e3:.0f}", "ms")
        row("file size / peak RSS", f"{lng['file_mb']:.0f} / {lng['peak_rss_mb']:.0f}", "MiB")

        count = 60 if args.quick else 150
        print(f"\n[codecs] {count} frames {WIDTH}x{HEIGHT} per codec, one camera, pushed at once")
        cod = child(args, "codecs", "--count", count)
        for codec, c in cod.items():
            row(f"{codec:<5} bytes per frame / frames per second", f"{c['bytes_per_frame']:.0f} / "
                f"{c['frames_per_s']:.0f}")

        print(f"\n[kill] {kills} x kill -9 at a random moment 3-8 s into a full-load recording")
        rng = random.Random(7)
        trials = [kill_trial(args, f"kill{i}", rng) for i in range(kills)]
        for i, (loss, cam_loss) in enumerate(trials):
            row(f"trial {i}: data lost joints / cameras", f"{loss:.3f} / {cam_loss:.3f}", "s")
        kill_loss = max(max(t) for t in trials)

        print(f"\n[aloha] ALOHA-style: buffer {aloha_seconds:.0f} s in memory, compress + write at stop")
        alo = child(args, "aloha", "--seconds", aloha_seconds)
        scale = seconds / aloha_seconds
        aloha_peak_scaled = alo["baseline_rss_mb"] + (alo["peak_rss_mb"] - alo["baseline_rss_mb"]) * scale
        aloha_save_scaled = alo["save_s"] * scale
        row("frames buffered", alo["frames_buffered"])
        row(f"peak RSS measured ({aloha_seconds:.0f} s) / scaled to {seconds:.0f} s",
            f"{alo['peak_rss_mb']:.0f} / {aloha_peak_scaled:.0f}", "MiB")
        row("save time after stop measured / scaled", f"{alo['save_s']:.2f} / {aloha_save_scaled:.1f}", "s")
        row(f"recorder for comparison ({seconds:.0f} s): peak RSS / stop()",
            f"{rec['peak_rss_mb']:.0f} / {rec['finalize_s']:.2f}", "MiB / s")

        summary = {
            "frames_per_s": round(rec["frames_per_s"], 2),
            "drops": rec["drops"],
            "write_latency_p99_ms": rec["write_latency"]["p99_ms"],
            "finalize_s": round(lng["finalize_beyond_view_s"], 4),
            "finalize_long_episode_s": long_seconds,
            "finalize_total_s": round(lng["finalize_s"], 3),
            "aligned_view_s": round(lng["aligned_view_s"], 3),
            "record_finalize_total_s": round(rec["finalize_s"], 3),
            "kill_loss_s": round(kill_loss, 3),
            "peak_rss_mb": round(rec["peak_rss_mb"], 1),
            "aloha_style_peak_rss_mb": round(aloha_peak_scaled, 1),
            "aloha_style_save_s": round(aloha_save_scaled, 2),
            "aloha_style_measured_s": aloha_seconds,
            "aloha_style_measured_peak_rss_mb": round(alo["peak_rss_mb"], 1),
            "aloha_style_measured_save_s": round(alo["save_s"], 3),
            "jpeg_bytes_per_frame": round(rec["jpeg_bytes_per_frame"]),
            "lzf_bytes_per_frame": round(cod["lzf"]["bytes_per_frame"]),
            "raw_bytes_per_frame": round(cod["raw"]["bytes_per_frame"]),
            "cpu_percent": round(rec["cpu_process_percent"], 1),
            "push_p99_us": round(max(p["p99_us"] for p in rec["push"].values()), 1),
            "seconds": seconds,
            "content": "mujoco" if content.startswith("MuJoCo") else "synthetic",
        }
        print(json.dumps(summary))
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
