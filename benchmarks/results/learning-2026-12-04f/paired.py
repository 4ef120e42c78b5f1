"""Sixteenth run: the gated line against the ungated one, rollout by rollout over both seed sets, with an exact
McNemar test on the discordant pairs. Usage: python paired.py WORK [steered]"""
import json, sys
from math import comb
from pathlib import Path

WORK = Path(sys.argv[1])
LINE = "viewed_hand_ee_steered_pick_full_ema" if sys.argv[2:] == ["steered"] else "viewed_hand_ee_pick_full_ema"
POLICIES = (LINE, LINE + "_seed1")


def outcomes(files):
    out = {}
    for key, path in files.items():
        for r in json.loads(path.read_text())["rollouts"]:
            out[(key, r["seed"])] = bool(r["success"])
    return out


def mcnemar(b, c):
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


totals = {"ungated": 0, "gated": 0, "only_gated": 0, "only_ungated": 0, "rollouts": 0}
for name in POLICIES:
    plain = outcomes({"first": WORK / "eval" / f"{name}.json", "more": WORK / "eval_more" / f"{name}.json"})
    gated = outcomes({"first": WORK / "eval_gate" / f"{name}_gate30.json",
                      "more": WORK / "eval_gate" / f"{name}_gate30_more.json"})
    assert plain.keys() == gated.keys(), name
    print(f"{name}: ungated {sum(plain.values())}/{len(plain)}, gated {sum(gated.values())}/{len(gated)}")
    totals["ungated"] += sum(plain.values())
    totals["gated"] += sum(gated.values())
    totals["only_gated"] += sum(gated[k] and not plain[k] for k in plain)
    totals["only_ungated"] += sum(plain[k] and not gated[k] for k in plain)
    totals["rollouts"] += len(plain)
totals["mcnemar_p"] = round(mcnemar(totals["only_gated"], totals["only_ungated"]), 4)
print(json.dumps(totals))
