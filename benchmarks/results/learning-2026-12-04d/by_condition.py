"""Fourteenth run: successes per lighting preset and per weight preset of a line (its policies over both held-out
seed sets together). Usage: python by_condition.py WORK POLICY[,POLICY...]"""
import json, sys
from collections import Counter
from pathlib import Path

WORK = Path(sys.argv[1])
lighting, weight, total = Counter(), Counter(), 0
for name in sys.argv[2].split(","):
    for folder in ("eval", "eval_more"):
        for r in json.loads((WORK / folder / f"{name}.json").read_text())["rollouts"]:
            lighting[r["lighting"]] += r["success"]
            weight[r["weight"]] += r["success"]
            total += r["success"]
order = ["bright", "dim", "warm", "cool", "side_lit", "back_lit", "low_light"]
print(json.dumps({"success": total, "by_lighting": {k: lighting[k] for k in order},
                  "by_weight": {k: weight[k] for k in ("light", "medium", "heavy")}}))
