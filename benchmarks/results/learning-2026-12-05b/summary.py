"""Eighteenth run: the steered `hand_offsets` policies with the held estimate (`held`) and without (`steered`),
on the same fresh seeds (sets a and b: training seeds 0 and 1; c and d: training seeds 2 and 3), per training
seed and seed set; successes per lighting, weight and
target; timing; and the two ways paired rollout by rollout (exact McNemar on the discordant pairs).
Usage: python summary.py WORK"""
import json
import sys
from collections import Counter
from math import comb, sqrt
from pathlib import Path

WORK = Path(sys.argv[1])
LINE = "viewed_hand_ee_offsets_pick_full_ema"
WAYS = ("held", "steered")
RUNS = [(seed, seed_set) for seeds, sets in ((("", "_seed1"), ("a", "b")), (("_seed2", "_seed3"), ("c", "d")))
        for seed in seeds for seed_set in sets]


def load(way, seed, seed_set):
    return json.loads((WORK / "eval18" / f"{LINE}{seed}_{way}_{seed_set}.json").read_text())


def wilson(k, n, z=1.96):
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return f"{100 * (centre - half):.1f}-{100 * (centre + half):.1f} %"


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


figures = {}
for way in WAYS:
    wins = total = 0
    by = {key: (Counter(), Counter()) for key in ("lighting", "weight", "target")}
    parts, timing = [], []
    for seed, seed_set in RUNS:
        result = load(way, seed, seed_set)
        k = sum(r["success"] for r in result["rollouts"])
        parts.append(f"seed{seed[-1:] or '0'}/{seed_set} {k}/{len(result['rollouts'])}")
        wins, total = wins + k, total + len(result["rollouts"])
        for r in result["rollouts"]:
            for key, (won, seen) in by.items():
                seen[r[key]] += 1
                won[r[key]] += r["success"]
        timing.append((result["inference_ms"]["p50"], result["inference_ms"]["p99"], result["tick_ms"]["p99"]))
    figures[way] = wins / total
    print(f"== {way}: {wins}/{total} = {100 * wins / total:.1f} % (Wilson {wilson(wins, total)}); " + ", ".join(parts))
    for key, (won, seen) in by.items():
        print(f"   by {key}: " + ", ".join(f"{v} {won[v]}/{seen[v]}" for v in seen))
    print("   inference p50 / p99, tick p99 (ms) per evaluation: " + "; ".join(f"{a} / {b}, {c}" for a, b, c in timing))
only = {way: 0 for way in WAYS}
for seed, seed_set in RUNS:
    a, b = ({r["seed"]: r["success"] for r in load(way, seed, seed_set)["rollouts"]} for way in WAYS)
    assert a.keys() == b.keys()
    only["held"] += sum(a[s] and not b[s] for s in a)
    only["steered"] += sum(b[s] and not a[s] for s in a)
print(f"paired: held only {only['held']}, steered only {only['steered']}, McNemar p = "
      f"{mcnemar(only['held'], only['steered']):.2g}")
print(json.dumps({"pick_success_heldout_held": round(figures["held"], 4),
                  "pick_success_heldout_steered": round(figures["steered"], 4), **{f"only_{k}": v for k, v in only.items()}}))
