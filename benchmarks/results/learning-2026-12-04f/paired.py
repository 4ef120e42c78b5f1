"""Sixteenth run: one line against another, rollout by rollout over both held-out seed sets (the same seeds, the
same training seeds 0 and 1), with an exact McNemar test on the discordant pairs.
Usage: python paired.py WORK [steered|positions]   the line gated against itself ungated (default: ee_to_head)
       python paired.py WORK positions-vs-ee       positions gated against ee_to_head gated"""
import json, sys
from math import comb
from pathlib import Path

WORK = Path(sys.argv[1])
MODE = sys.argv[2] if len(sys.argv) > 2 else "ee"
LINES = {"ee": "viewed_hand_ee_pick_full_ema", "steered": "viewed_hand_ee_steered_pick_full_ema",
         "positions": "viewed_hand_ee_positions_pick_full_ema"}


def ungated(name):
    return {"first": WORK / "eval" / f"{name}.json", "more": WORK / "eval_more" / f"{name}.json"}


def gated(name):
    return {"first": WORK / "eval_gate" / f"{name}_gate30.json", "more": WORK / "eval_gate" / f"{name}_gate30_more.json"}


def outcomes(files):
    out = {}
    for key, path in files.items():
        for r in json.loads(path.read_text())["rollouts"]:
            out[(key, r["seed"])] = bool(r["success"])
    return out


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


if MODE == "positions-vs-ee":
    pairs, labels = [(gated(LINES["positions"] + s), gated(LINES["ee"] + s)) for s in ("", "_seed1")], ("positions", "ee")
else:
    pairs, labels = [(gated(LINES[MODE] + s), ungated(LINES[MODE] + s)) for s in ("", "_seed1")], ("gated", "ungated")
a, b = labels
totals = {a: 0, b: 0, f"only_{a}": 0, f"only_{b}": 0, "rollouts": 0}
for files_a, files_b in pairs:
    first, second = outcomes(files_a), outcomes(files_b)
    assert first.keys() == second.keys(), files_a
    print(f"{files_a['first'].stem}: {a} {sum(first.values())}/{len(first)}, {b} {sum(second.values())}/{len(second)}")
    totals[a] += sum(first.values())
    totals[b] += sum(second.values())
    totals[f"only_{a}"] += sum(first[k] and not second[k] for k in first)
    totals[f"only_{b}"] += sum(second[k] and not first[k] for k in first)
    totals["rollouts"] += len(first)
totals["mcnemar_p"] = round(mcnemar(totals[f"only_{a}"], totals[f"only_{b}"]), 4)
print(json.dumps(totals))
