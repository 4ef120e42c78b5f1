#!/usr/bin/env python3
"""Benchmark a fleet's parts. Shared storage: can uploads keep up with what a floor of stations records?

    python benchmarks/bench_fleet.py [--quick] [--episode FILE] [--stations 20] [--cameras 4]

Upload throughput: `collector publish`'s publisher (upload, read back, SHA-256 compare, queue update)
on copies of one recorded episode, to a folder (file://) and to S3 (moto's standalone server on a
loopback port: the S3 wire protocol; a real store's throughput is the network's, moto's is its own
Python's, so this is a floor). MB/s is over the whole publish, verification included.

Recorder's write rate: the episode's bytes / its recorded duration, scaled to --cameras (camera data
dominates a file) and multiplied by --stations. Each station runs its own publisher, so uploads keep
up when one publisher outruns one station's write rate (`uploads_keep_up`, `headroom_per_station_*`);
`one_publisher_for_floor_*` says whether a single publisher could carry all stations' takes; the default episode is a fresh `collector demo
--episodes 1` take (the humanoid's cameras, JPEG). `--episode` takes another (e.g. one kept by
bench_recorder.py --keep at 640x480). Each part is a function (F1 adds the catalogue's parts).
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def record_demo_episode(work: Path) -> Path:
    from collector.recorder import schema

    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "collector", "demo", "--episodes", "1", "--no-progress", "--out",
                    str(work / "demo")], cwd=work, env=env, check=True, capture_output=True, timeout=900)
    (take,) = schema.episode_files_under(work / "demo" / "episodes", final_only=True)
    return take


def recorder_write_rate(episode: Path, stations: int, cameras: int) -> dict:
    """Bytes per second one station writes, from a recorded episode, and for the whole floor."""
    from collector.recorder.reader import EpisodeReader
    from collector.recorder.vocabulary import camera_of_stream

    with EpisodeReader(episode) as reader:
        recorded_cameras = [name for name in reader.streams if camera_of_stream(name)]
        spans = [float(s[-1] - s[0]) for s in (reader.stamps(name) for name in reader.streams) if len(s) > 1]
        duration = float(reader.metadata.get("duration_s") or max(spans))
    size = episode.stat().st_size
    per_station = size / duration * (cameras / max(1, len(recorded_cameras)))
    return {"episode_bytes": size, "episode_duration_s": round(duration, 2), "episode_cameras": len(recorded_cameras),
            "station_write_MBps": round(per_station / 1e6, 3),
            "floor_write_MBps": round(per_station * stations / 1e6, 3)}


def make_dataset(root: Path, episode: Path, copies: int) -> Path:
    episodes = root / "episodes"
    episodes.mkdir(parents=True)
    for i in range(copies):
        shutil.copyfile(episode, episodes / f"episode_{i + 1:06d}.hdf5")
    return root


def publish_throughput(dataset: Path, destination: str) -> dict:
    from collector.fleet.publisher import Publisher

    started = time.monotonic()
    summary = Publisher(dataset, destination, report=lambda text: None).run_once()
    wall = time.monotonic() - started
    if summary.failed:
        raise SystemExit(f"publishing to {destination} failed: {summary.failed}")
    return {"files": summary.published, "MB": round(summary.bytes / 1e6, 1), "wall_s": round(wall, 2),
            "MBps": round(summary.bytes / 1e6 / wall, 1)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple:
    import fsspec

    port = _free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    fsspec.config.conf["s3"] = {"endpoint_url": f"http://127.0.0.1:{port}"}
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("bench")
    return server, port


def upload_part(episode: Path, copies: int, stations: int, cameras: int, work: Path) -> dict:
    rate = recorder_write_rate(episode, stations, cameras)
    to_folder = publish_throughput(make_dataset(work / "ds_file", episode, copies), f"file://{work / 'share'}")
    server, _ = start_moto()
    try:
        to_s3 = publish_throughput(make_dataset(work / "ds_s3", episode, copies), "s3://bench/ds")
    finally:
        server.terminate()
        server.wait(10)
    # Each station publishes its own takes, so one publisher must outrun one station; the store (or
    # folder) must take the floor's sum, which this one machine cannot show for a real store.
    station, floor = rate["station_write_MBps"], rate["floor_write_MBps"]
    return {**rate, "upload_file": to_folder, "upload_s3_moto": to_s3,
            "upload_file_MBps": to_folder["MBps"], "upload_s3_MBps": to_s3["MBps"],
            "uploads_keep_up": to_folder["MBps"] >= station and to_s3["MBps"] >= station,
            "headroom_per_station_file": round(to_folder["MBps"] / station, 1),
            "headroom_per_station_s3_moto": round(to_s3["MBps"] / station, 1),
            "one_publisher_for_floor_file": to_folder["MBps"] >= floor,
            "one_publisher_for_floor_s3_moto": to_s3["MBps"] >= floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer copies of the episode")
    parser.add_argument("--episode", type=Path, help="a recorded episode (default: record a demo take)")
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--copies", type=int, help="episode copies to publish (default 20, --quick 5)")
    args = parser.parse_args()
    copies = args.copies or (5 if args.quick else 20)
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmp:
        work = Path(tmp)
        episode = args.episode or record_demo_episode(work)
        result = upload_part(episode, copies, args.stations, args.cameras, work)
    result.update({"stations": args.stations, "cameras_per_station": args.cameras, "copies": copies})
    print(f"recorder: {result['station_write_MBps']} MB/s per station ({args.cameras} cameras), "
          f"{result['floor_write_MBps']} MB/s for {args.stations} stations")
    print(f"publish to file://: {result['upload_file_MBps']} MB/s; to S3 (moto): {result['upload_s3_MBps']} MB/s "
          f"(verified, {copies} x {result['episode_bytes'] / 1e6:.1f} MB)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
