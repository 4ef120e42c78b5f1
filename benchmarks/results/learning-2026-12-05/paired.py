"""Seventeenth run: two ways of running the same `hand_offsets` policies (or this run's line against the sixteenth
run's `ee_to_head` line trained again), rollout by rollout over both held-out seed sets (the same seeds, training
seeds 0 and 1), with an exact McNemar test on the discordant pairs.
Usage: python paired.py WORK A B [fresh]   A, B: gated | steered | steered_ungated | steered_gate20 | ee_gated (the
sixteenth run's peer); fresh: over the fresh seed sets (2,000,000 and 2,500,000) instead of the first two"""
import json
import sys
from math import comb
from pathlib import Path

WORK = Path(sys.argv[1])
LINE = "viewed_hand_ee_offsets_pick_full_ema"
PEER = "viewed_hand_ee_pick_full_ema"


FRESH = len(sys.argv) > 4 and sys.argv[4] == "fresh"


def files(way, seed):
    if FRESH:
        name = f"{LINE}{seed}_{way}"
        return {"first": WORK / "eval17" / f"{name}_fresh.json", "more": WORK / "eval17" / f"{name}_fresh_more.json"}
    if way == "ee_gated":
        name = PEER + seed
        return {"first": WORK / "eval_gate" / f"{name}_gate30.json", "more": WORK / "eval_gate" / f"{name}_gate30_more.json"}
    name = f"{LINE}{seed}_{way}"
    return {"first": WORK / "eval17" / f"{name}.json", "more": WORK / "eval17" / f"{name}_more.json"}


def outcomes(paths):
    return {(key, r["seed"]): bool(r["success"]) for key, path in paths.items()
            for r in json.loads(path.read_text())["rollouts"]}


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


if __name__ == "__main__":
    a, b = sys.argv[2], sys.argv[3]
    totals = {a: 0, b: 0, f"only_{a}": 0, f"only_{b}": 0, "rollouts": 0}
    for seed in ("", "_seed1"):
        first, second = outcomes(files(a, seed)), outcomes(files(b, seed))
        assert first.keys() == second.keys(), seed
        print(f"training seed {seed or '_seed0'}: {a} {sum(first.values())}/{len(first)}, "
              f"{b} {sum(second.values())}/{len(second)}")
        totals[a] += sum(first.values())
        totals[b] += sum(second.values())
        totals[f"only_{a}"] += sum(first[k] and not second[k] for k in first)
        totals[f"only_{b}"] += sum(second[k] and not first[k] for k in first)
        totals["rollouts"] += len(first)
    totals["mcnemar_p"] = float(f"{mcnemar(totals[f'only_{a}'], totals[f'only_{b}']):.2g}")
    print(json.dumps(totals))
