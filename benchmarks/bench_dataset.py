"""Benchmark of the dataset tools (issue 9).

Measures, on episodes written by the real EpisodeWriter (3 JPEG cameras at the robot's 320x240,
20 joints, 100 Hz control, aligned at 30 Hz):
- training-read throughput: samples/s of EpisodeDataset (observation with 3 decoded camera images,
  50-step action chunk, normalized) from our HDF5, with 1 and 2 worker processes, against the same
  episodes exported to LeRobot v3 and read with PyAV (LeRobotV3Reader, same sample), 1 and 2 workers;
- statistics over the whole dataset (200 episodes; --quick: 40; qpos, qvel, effort, action and
  per-channel pixel statistics of 16 frames per camera) on the Dask engine with 1 and 2 workers
  (job time on a running cluster, best of two alternating runs; cluster start-up reported
  separately), and whether both gave identical results;
- export time per episode for LeRobot v3, robomimic and MCAP on 2 Dask workers.

    python benchmarks/bench_dataset.py [--quick] [--data DIR]

The last line is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.dataset import EpisodeDataset, JobEngine, select_episodes  # noqa: E402
from collector.dataset.exports.lerobot import export_lerobot  # noqa: E402
from collector.dataset.exports.lerobot_reader import LeRobotV3Reader  # noqa: E402
from collector.dataset.exports.mcap import export_mcap  # noqa: E402
from collector.dataset.exports.robomimic import export_robomimic  # noqa: E402
from collector.dataset.normalization import dataset_feature_stats  # noqa: E402
from collector.dataset.synthetic import write_synthetic_dataset  # noqa: E402

CAMERAS = ("head", "left_wrist", "right_wrist")
STAT_KEYS = ["observations/qpos", "observations/qvel", "observations/effort", "action"]
CHUNK = 50


def make_dataset(root: Path, episodes: int, duration_s: float) -> Path:
    """Episodes in `root`, reusing (and topping up) what an earlier run with --data left there."""
    have = len(select_episodes(root)) if (root / "catalog.sqlite").is_file() else 0
    if have < episodes:
        started = time.perf_counter()
        write_synthetic_dataset(root, episodes - have, duration_s=duration_s, cameras=CAMERAS,
                                camera_size=(240, 320))
        print(f"wrote {episodes - have} episodes of {duration_s:g} s in {time.perf_counter() - started:.1f} s",
              flush=True)
    return root


# -- training reads --------------------------------------------------------------------------------

_WORKER_READERS = []


def _keep_readers(readers):
    """Pool initializer: each worker process keeps its own readers for all its tasks, as a torch
    DataLoader worker keeps its copy of the dataset (files are opened once per worker)."""
    _WORKER_READERS[:] = readers


def _read_samples(args):
    which, indices = args
    reader = _WORKER_READERS[which]
    for i in indices:
        reader[int(i)]
    return len(indices)


def throughput(readers, samples: int, workers: int, rounds: int = 4, seed: int = 0):
    """Random-access samples per second of each reader with `workers` processes.

    The readers take turns in `rounds` rounds, so a change in machine load (this machine is shared)
    hits both alike instead of whichever happened to run second."""
    order = np.random.default_rng(seed).integers(0, len(readers[0]), samples)
    batches = np.array_split(order, rounds)
    elapsed = [0.0] * len(readers)
    _keep_readers(readers)
    # Warm-up outside the clock: one sample of every episode, so each process has opened every file
    # (a DataLoader worker does that once per epoch) and the page cache holds the data.
    firsts = np.asarray(readers[0].starts[:-1], dtype=np.int64)
    for k, _ in enumerate(readers):
        _read_samples((k, firsts))
    # spawn, not fork: FFmpeg (PyAV) deadlocks in a child forked after the parent used it (seen here);
    # the readers are pickled to each worker once, without open files, like a DataLoader's dataset.
    pool = (multiprocessing.get_context("spawn").Pool(workers, initializer=_keep_readers, initargs=(readers,))
            if workers > 1 else None)
    try:
        if pool is not None:
            for k, _ in enumerate(readers):
                pool.map(_read_samples, [(k, firsts)] * (workers * 2), chunksize=1)
        for batch in batches:
            for k, _ in enumerate(readers):
                started = time.perf_counter()
                if pool is None:
                    _read_samples((k, batch))
                else:
                    pool.map(_read_samples, [(k, part) for part in np.array_split(batch, workers * 4)],
                             chunksize=1)
                elapsed[k] += time.perf_counter() - started
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return [samples / e for e in elapsed]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller dataset and fewer samples")
    parser.add_argument("--data", metavar="DIR", help="keep (and reuse) the generated dataset here")
    args = parser.parse_args()
    episodes = 40 if args.quick else 200
    duration = 1.0 if args.quick else 2.0
    samples = 150 if args.quick else 600
    read_episodes = 8 if args.quick else 20
    export_episodes = 4 if args.quick else 10

    tmp = Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    os.environ.setdefault("COLLECTOR_CACHE", str(tmp / "cache"))
    data_root = Path(args.data) if args.data else tmp / "data"
    try:
        root = make_dataset(data_root, episodes, duration)
        refs = select_episodes(root)[:episodes]
        results = {"episodes": len(refs), "episode_s": duration, "cameras": len(CAMERAS), "image": "320x240 jpeg"}

        # Training reads: the same episodes from HDF5 and from their LeRobot v3 export.
        read_refs = refs[:read_episodes]
        lerobot_dir = tmp / "lerobot_read"
        with JobEngine("inline") as engine:
            export_lerobot(read_refs, lerobot_dir, engine)
        hdf5 = EpisodeDataset([r.path for r in read_refs], chunk=CHUNK, cameras=list(CAMERAS))
        lerobot = LeRobotV3Reader(lerobot_dir, chunk=CHUNK, cameras=list(CAMERAS))
        assert len(hdf5) == len(lerobot)
        for workers in (1, 2):
            ours, theirs = throughput([hdf5, lerobot], samples, workers)
            results[f"hdf5_samples_per_s_{workers}w"] = round(ours, 1)
            results[f"lerobot_samples_per_s_{workers}w"] = round(theirs, 1)

        # Statistics over the whole dataset on 1 and 2 Dask workers: both clusters up, runs alternating,
        # best of two per cluster (load from other users of the machine comes and goes).
        paths = [r.path for r in refs]
        stats = {}
        engines = {}
        try:
            for workers in (1, 2):
                started = time.perf_counter()
                engines[workers] = JobEngine("dask", workers=workers, progress=False)
                engines[workers].start()
                results[f"cluster_start_s_{workers}w"] = round(time.perf_counter() - started, 2)
            for _ in range(2):
                for workers in (1, 2):
                    started = time.perf_counter()
                    stats[workers] = dataset_feature_stats(paths, STAT_KEYS, cameras=list(CAMERAS),
                                                           engine=engines[workers])
                    took = round(time.perf_counter() - started, 2)
                    key = f"stats_s_{workers}w"
                    results[key] = min(results.get(key, took), took)
        finally:
            for engine in engines.values():
                engine.close()
        results["stats_identical_1w_2w"] = all(
            np.array_equal(getattr(stats[1][name], f), getattr(stats[2][name], f))
            for name in stats[1] for f in ("count", "mean", "m2", "min", "max"))

        # Export time per episode on 2 workers.
        export_refs = refs[:export_episodes]
        with JobEngine("dask", workers=2, progress=False) as engine:
            engine.start()
            for name, run in (
                ("lerobot", lambda: export_lerobot(export_refs, tmp / "lerobot_export", engine)),
                ("robomimic", lambda: export_robomimic(export_refs, tmp / "demo.hdf5", engine)),
                ("mcap", lambda: export_mcap(export_refs, tmp / "mcap", engine)),
            ):
                started = time.perf_counter()
                run()
                results[f"export_{name}_s_per_episode"] = round((time.perf_counter() - started) / len(export_refs), 3)

        rows = [
            ("training read, HDF5 (ours), 1 worker", f"{results['hdf5_samples_per_s_1w']:.1f} samples/s"),
            ("training read, HDF5 (ours), 2 workers", f"{results['hdf5_samples_per_s_2w']:.1f} samples/s"),
            ("training read, LeRobot v3 + PyAV, 1 worker", f"{results['lerobot_samples_per_s_1w']:.1f} samples/s"),
            ("training read, LeRobot v3 + PyAV, 2 workers", f"{results['lerobot_samples_per_s_2w']:.1f} samples/s"),
            (f"statistics, {len(refs)} episodes, 1 Dask worker", f"{results['stats_s_1w']:.2f} s "
                                                                f"(+{results['cluster_start_s_1w']:.1f} s start)"),
            (f"statistics, {len(refs)} episodes, 2 Dask workers", f"{results['stats_s_2w']:.2f} s "
                                                                 f"(+{results['cluster_start_s_2w']:.1f} s start)"),
            ("statistics identical on 1 and 2 workers", str(results["stats_identical_1w_2w"])),
            ("export LeRobot v3 (2 workers)", f"{results['export_lerobot_s_per_episode']:.3f} s/episode"),
            ("export robomimic (2 workers)", f"{results['export_robomimic_s_per_episode']:.3f} s/episode"),
            ("export MCAP (2 workers)", f"{results['export_mcap_s_per_episode']:.3f} s/episode"),
        ]
        print(f"\ndataset benchmark: {len(refs)} episodes x {duration:g} s, 3 cameras 320x240 JPEG, "
              f"samples with {CHUNK}-step action chunks, {os.cpu_count()} CPU(s)")
        width = max(len(r[0]) for r in rows)
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
        print(json.dumps(results), flush=True)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
