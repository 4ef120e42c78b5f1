"""Seventeenth run: each way of running the two `hand_offsets` policies, per training seed and seed set, with
the successes per lighting, weight and target over all its rollouts and the inference and tick timing.
Usage: python summary.py WORK"""
import json
import sys
from collections import Counter
from pathlib import Path

WORK = Path(sys.argv[1])
LINE = "viewed_hand_ee_offsets_pick_full_ema"
WAYS = ("gated", "steered", "steered_ungated", "steered_gate20")
SETS = ("", "_more", "_fresh", "_fresh_more")

for way in WAYS:
    counts, rollouts, by = [], 0, {"lighting": Counter(), "weight": Counter(), "target": Counter()}
    seen = {key: Counter() for key in by}
    timing = []
    for seed in ("", "_seed1"):
        per_seed = []
        for seed_set in SETS:
            path = WORK / "eval17" / f"{LINE}{seed}_{way}{seed_set}.json"
            if not path.exists():
                continue
            result = json.loads(path.read_text())
            wins = [r for r in result["rollouts"] if r["success"]]
            per_seed.append(f"{seed_set or '_first'}: {len(wins)}/{len(result['rollouts'])}")
            rollouts += len(result["rollouts"])
            for r in result["rollouts"]:
                for key in by:
                    seen[key][r[key]] += 1
                    by[key][r[key]] += bool(r["success"])
            timing.append((result["inference_ms"]["p50"], result["inference_ms"]["p99"], result["tick_ms"]["p99"]))
        counts.append(f"seed{seed or '_seed0'}: " + ", ".join(per_seed))
    if not rollouts:
        continue
    total = sum(by["target"].values())
    print(f"== {way}: {total}/{rollouts} = {100 * total / rollouts:.1f} %")
    for line in counts:
        print("  " + line)
    for key, counter in by.items():
        print(f"  successes by {key}: " + ", ".join(f"{k} {counter[k]}/{seen[key][k]}" for k in sorted(seen[key])))
    p50s, p99s, ticks = zip(*timing)
    print(f"  inference p50 {min(p50s):.2f}-{max(p50s):.2f} ms, p99 {min(p99s):.2f}-{max(p99s):.2f} ms; "
          f"tick p99 {min(ticks):.2f}-{max(ticks):.2f} ms")
