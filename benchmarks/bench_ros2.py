#!/usr/bin/env python3
"""ROS 2 transport benchmark: the sim-hardware node and the recorder node in separate processes.

For each configuration the recorder starts an episode, the sim-hardware node publishes for a fixed
time (500 Hz joint states and three 640x480 cameras at 30 fps, host-clock stamps taken at publish),
and the episode is read back: achieved rates (wall clock), drops (published - recorded), latency
from the publish stamp to the recorder's receive time (p50/p99), and each node's CPU.
Physics runs in real time (`--camera-sync drop`): when rendering cannot keep 30 fps on this CPU,
the frames it skips are counted as render drops, not transport drops.

Peers in the same run: the shipped Fast DDS profile (16 MB shared memory, loopback UDP) against Fast
DDS's defaults (512 KB shared memory, a 640x480 frame does not fit), reliable against best-effort
cameras, raw Image against CompressedImage (JPEG).

    python benchmarks/bench_ros2.py [--quick] [--seconds S]

Last line: one JSON object (joint_states_published, joint_states_recorded, images_published,
images_recorded, joint_latency_p99_ms, image_latency_p99_ms, ... for the main configuration,
plus every configuration under "configs").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.recorder import EpisodeReader  # noqa: E402
from collector.recorder.vocabulary import JOINTS, camera_receive_stream_name, camera_stream_name  # noqa: E402
from collector.ros.environment import domain_id_for_pid, ros_environment  # noqa: E402
from collector.ros.runtime import RosRuntime  # noqa: E402

CAMERAS = ("head", "left_wrist", "right_wrist")
DEFAULTS_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <participant profile_name="fastdds_defaults" is_default_profile="true"><rtps/></participant>
</profiles></dds>
"""

CONFIGS = [
    # name, camera transport, camera reliability, Fast DDS profile
    ("raw reliable, shipped profile", "raw", "reliable", "shipped"),
    ("joint states only, shipped profile", "none", "reliable", "shipped"),
    ("raw reliable, Fast DDS defaults", "raw", "reliable", "defaults"),
    ("raw best-effort, shipped profile", "raw", "best_effort", "shipped"),
    ("raw best-effort, Fast DDS defaults", "raw", "best_effort", "defaults"),
    ("jpeg best-effort, shipped profile", "compressed", "best_effort", "shipped"),
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values) -> dict:
    values = np.asarray(values, dtype=float) * 1e3
    if values.size == 0:
        return {"p50": None, "p99": None}
    return {"p50": round(float(np.percentile(values, 50)), 3), "p99": round(float(np.percentile(values, 99)), 3)}


def call(runtime, service: str, timeout: float = 120.0) -> str:
    from std_srvs.srv import Trigger

    client = runtime.node.create_client(Trigger, service)
    try:
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"{service} never appeared")
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        response = future.result()
        if not response.success:
            raise RuntimeError(f"{service}: {response.message}")
        return response.message
    finally:
        runtime.node.destroy_client(client)


def run_config(runtime, env, workdir: Path, name: str, transport: str, reliability: str, seconds: float) -> dict:
    out = workdir / "episodes"
    cameras = () if transport == "none" else CAMERAS
    common = ["--camera-transport", "raw" if transport == "none" else transport, "--camera-qos", reliability,
              "--camera-size", "640x480", "--cameras", ",".join(cameras) or "none"]
    logs = []

    def spawn(args, log_name):
        log = open(workdir / log_name, "wb")
        logs.append(log)
        return subprocess.Popen([sys.executable, "-m", "collector", *map(str, args)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    recorder = spawn(["ros", "recorder", "-o", out, "--illuminance", "off", "--no-discover-poses", *common],
                     "recorder.log")
    sim = None
    # The sim's ~/stats topic is first published on its first step: the recorder's CPU is measured
    # from then until the sim exits, the span both nodes are busy.
    from std_msgs.msg import String
    from collector.ros.qos import qos_for

    started = []
    stats_sub = runtime.node.create_subscription(String, "/sim_hardware/stats",
                                                 lambda msg: started.append(time.monotonic()), qos_for("control"))
    try:
        call(runtime, "/recorder/start_episode")
        stats_file = workdir / "sim_stats.json"
        sim = spawn(["ros", "sim-hw", "--stamps", "host", "--camera-sync", "drop",
                     "--duration", seconds, "--wait-for-subscribers", 120,
                     "--stats-file", stats_file, *common], "sim.log")
        deadline = time.monotonic() + 300
        while not started and sim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        cpu0, wall0 = cpu_seconds(recorder.pid), time.monotonic()
        if sim.wait(timeout=600 + 20 * seconds) != 0:
            raise RuntimeError(f"sim-hw failed: {(workdir / 'sim.log').read_text()[-2000:]}")
        recorder_cpu = (cpu_seconds(recorder.pid) - cpu0) / (time.monotonic() - wall0)
        path = Path(call(runtime, "/recorder/stop_episode"))
    finally:
        runtime.node.destroy_subscription(stats_sub)
        for proc in (recorder, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in logs:
            log.close()
    sim_stats = json.loads(stats_file.read_text())
    published = sim_stats["published"]
    wall = sim_stats["run_wall_s"]
    with EpisodeReader(path) as episode:
        joints_recorded = episode.count(JOINTS)
        joint_latency = episode.raw(JOINTS, "receive_t")[:] - episode.stamps(JOINTS)
        images_recorded, image_latency = 0, [np.zeros(0)]
        for cam in cameras:
            images_recorded += episode.count(camera_stream_name(cam))
            image_latency.append(episode.raw(camera_receive_stream_name(cam), "receive_t")[:]
                                 - episode.stamps(camera_receive_stream_name(cam)))
    images_published = sum(published[camera_stream_name(cam)] for cam in cameras)
    return {
        "name": name,
        "joint_states_published": published["joint_states"],
        "joint_states_recorded": joints_recorded,
        "images_published": images_published,
        "images_recorded": images_recorded,
        "joint_drops": published["joint_states"] - joints_recorded,
        "image_drops": images_published - images_recorded,
        "render_drops": sum(sim_stats["camera_frames_dropped"].values()),
        "joint_rate_hz": round(published["joint_states"] / wall, 1),
        "image_rate_hz_per_camera": round(images_published / len(cameras) / wall, 1) if cameras else 0.0,
        "joint_latency_ms": percentiles(joint_latency),
        "image_latency_ms": percentiles(np.concatenate(image_latency)),
        "render_ms_p50": sim_stats["render_ms_p50"],
        "sim_cpu_percent": round(100 * sim_stats["cpu_s"] / wall, 1),
        "recorder_cpu_percent": round(100 * recorder_cpu, 1),
        "wall_s": round(wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per configuration instead of 15 s")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of publishing per configuration")
    parser.add_argument("--configs", default=None,
                        help="comma-separated configuration numbers to run (default: all; 0 is the main one)")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    domain = domain_id_for_pid()
    runtime = RosRuntime("bench_ros2", domain_id=domain, handle_signals=False).start()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_ros2_") as tmp:
            defaults = Path(tmp) / "fastdds_defaults.xml"
            defaults.write_text(DEFAULTS_PROFILE)
            chosen = [int(c) for c in args.configs.split(",")] if args.configs else range(len(CONFIGS))
            for i in chosen:
                name, transport, reliability, profile = CONFIGS[i]
                env = ros_environment(domain_id=domain)
                env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
                if profile == "defaults":
                    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(defaults)
                workdir = Path(tmp) / f"config{i}"
                workdir.mkdir()
                print(f"running: {name} ({seconds:g} s) ...", file=sys.stderr, flush=True)
                results.append(run_config(runtime, env, workdir, name, transport, reliability, seconds))
    finally:
        runtime.close()

    header = (f"{'configuration':36} {'joints pub/rec':>15} {'Hz':>6} {'lat p50/p99 ms':>15} "
              f"{'images pub/rec':>15} {'fps/cam':>7} {'lat p50/p99 ms':>17} {'render drop':>11} "
              f"{'sim cpu':>7} {'rec cpu':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        jl, il = r["joint_latency_ms"], r["image_latency_ms"]
        print(f"{r['name']:36} {r['joint_states_published']:>7}/{r['joint_states_recorded']:<7} "
              f"{r['joint_rate_hz']:>6} {jl['p50']!s:>7}/{jl['p99']!s:<7} "
              f"{r['images_published']:>7}/{r['images_recorded']:<7} {r['image_rate_hz_per_camera']:>7} "
              f"{il['p50']!s:>8}/{il['p99']!s:<8} {r['render_drops']:>11} "
              f"{r['sim_cpu_percent']:>6}% {r['recorder_cpu_percent']:>6}%")
    main_result = results[0]
    summary = {
        "joint_states_published": main_result["joint_states_published"],
        "joint_states_recorded": main_result["joint_states_recorded"],
        "images_published": main_result["images_published"],
        "images_recorded": main_result["images_recorded"],
        "joint_latency_p50_ms": main_result["joint_latency_ms"]["p50"],
        "joint_latency_p99_ms": main_result["joint_latency_ms"]["p99"],
        "image_latency_p50_ms": main_result["image_latency_ms"]["p50"],
        "image_latency_p99_ms": main_result["image_latency_ms"]["p99"],
        "sim_cpu_percent": main_result["sim_cpu_percent"],
        "recorder_cpu_percent": main_result["recorder_cpu_percent"],
        "seconds_per_config": seconds,
        "configs": results,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
