"""Fourteenth run: paired held-out comparison of two lines (each a list of policies, one per training seed), rollout
by rollout over both seed sets (WORK/eval and WORK/eval_more), with an exact McNemar test on the discordant pairs.
Usage: python paired.py WORK LINE_A LINE_B   (a line: comma-separated policy names, matched by position)"""
import json, sys
from math import comb
from pathlib import Path

WORK = Path(sys.argv[1])


def outcomes(name):
    out = {}
    for folder in ("eval", "eval_more"):
        for r in json.loads((WORK / folder / f"{name}.json").read_text())["rollouts"]:
            out[(folder, r["seed"])] = bool(r["success"])
    return out


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


a_line, b_line = sys.argv[2].split(","), sys.argv[3].split(",")
wins_a = wins_b = total_a = total_b = n = 0
for a, b in zip(a_line, b_line):
    oa, ob = outcomes(a), outcomes(b)
    assert oa.keys() == ob.keys(), (a, b)
    sa, sb = sum(oa.values()), sum(ob.values())
    print(f"{a}: {sa}/{len(oa)}   {b}: {sb}/{len(ob)}")
    wins_a += sum(oa[k] and not ob[k] for k in oa)
    wins_b += sum(ob[k] and not oa[k] for k in oa)
    total_a, total_b, n = total_a + sa, total_b + sb, n + len(oa)
print(json.dumps({"a": total_a, "b": total_b, "rollouts": n, "only_a": wins_a, "only_b": wins_b,
                  "mcnemar_p": round(mcnemar(wins_a, wins_b), 4)}))
