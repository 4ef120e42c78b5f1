"""Fifteenth run: inference time per call of the frozen trace against the eager network, measured in the same
run under the study's load (two evaluations at once on the two cores): `collector eval` of one checkpoint on
the same cells and seeds, once as its frozen trace and once with --eager, side by side; then again with the
two swapped in start order. Also checks that both commanded the same, episode by episode.
Usage: python inference.py CHECKPOINT WORK_OUT [SEEDS_PER_CELL]"""
import json, subprocess, sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from collector.recorder import EpisodeReader  # noqa: E402

CHECKPOINT, OUT = sys.argv[1], Path(sys.argv[2])
SEEDS = sys.argv[3] if len(sys.argv) > 3 else "1"
SEED_BASE = "1000500000"


def launch(name, eager):
    args = [sys.executable, "-m", "collector", "eval", CHECKPOINT, "--lighting", "all", "--weight", "all",
            "--seeds", SEEDS, "--seed-base", SEED_BASE, "--max-seconds", "14", "--out", str(OUT / name)]
    return subprocess.Popen(args + (["--eager"] if eager else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def commands(path):
    if not Path(path).exists():
        return None
    with EpisodeReader(path) as reader:
        return reader.raw("command", "position")[: reader.count("command")]


rows = []
for order in ("frozen_first", "eager_first"):
    names = [f"{order}_frozen", f"{order}_eager"]
    started = time.perf_counter()
    jobs = [launch(names[0], False), launch(names[1], True)]
    if order == "eager_first":
        jobs.reverse()
    outs = [job.communicate() for job in jobs]
    if order == "eager_first":
        outs.reverse()
    for name, (stdout, stderr) in zip(names, outs):
        summary = json.loads(stdout.strip().splitlines()[-1])
        rows.append({"run": name, "network": summary["network"], "inference_p50_ms": summary["inference_p50_ms"],
                     "inference_p99_ms": summary["inference_p99_ms"], "success_rate": summary["success_rate"],
                     "rollouts": summary["rollouts"]})
    same = 0
    episodes = sorted((OUT / names[0] / "episodes").glob("*.hdf5"))
    for path in episodes:
        a, b = commands(path), commands(OUT / names[1] / "episodes" / path.name)
        same += int(a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))
    rows.append({"run": order, "episodes_commanding_the_same": f"{same}/{len(episodes)}",
                 "wall_s": round(time.perf_counter() - started, 1)})
print(f"{'run':<22}{'network':<16}{'p50 ms':>8}{'p99 ms':>8}{'success':>9}")
for row in rows:
    if "network" in row:
        print(f"{row['run']:<22}{row['network'][:15]:<16}{row['inference_p50_ms']:>8.2f}{row['inference_p99_ms']:>8.2f}"
              f"{row['success_rate']:>9.2f}")
    else:
        print(f"{row['run']}: episodes commanding the same {row['episodes_commanding_the_same']}, {row['wall_s']} s")
frozen = [r["inference_p99_ms"] for r in rows if r.get("network") == "frozen trace"]
eager = [r["inference_p99_ms"] for r in rows if str(r.get("network", "")).startswith("eager")]
print(json.dumps({"rows": rows, "inference_p99_ms_frozen": max(frozen), "inference_p99_ms_eager": max(eager)}))
