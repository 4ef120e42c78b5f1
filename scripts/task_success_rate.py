#!/usr/bin/env python3
"""Scripted-operator task success through the full teleop loop, over every lighting x weight preset.

    python scripts/task_success_rate.py                      # both tasks, all presets, 1 seed each
    python scripts/task_success_rate.py --repeats 3 --workers 2
    python scripts/task_success_rate.py --task pour --lighting dim --weight heavy

Prints one line per episode, a table per task, and as the last line one JSON object
({"pick_place": rate, "pour": rate, "episodes": {...}, ...}). Goals: pick_place >= 0.90, pour >= 0.70.
"""
import argparse
import json
import sys
import time

import collector  # noqa: F401  (sets MUJOCO_GL before anything imports mujoco)
from collector.teleop.evaluation import condition_grid, default_presets, run_jobs, summarise

GOALS = {"pick_place": 0.90, "pour": 0.70}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", action="append", choices=sorted(GOALS), help="task(s) (default both)")
    parser.add_argument("--lighting", action="append", help="lighting preset(s) (default all)")
    parser.add_argument("--weight", action="append", help="weight preset(s) (default all)")
    parser.add_argument("--repeats", type=int, default=1, help="seeds per condition (default 1)")
    parser.add_argument("--seed", type=int, default=1000, help="first seed (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    args = parser.parse_args(argv)

    tasks = args.task or sorted(GOALS)
    lightings, weights = default_presets(args.lighting, args.weight)
    jobs = condition_grid(tasks, lightings, weights, args.repeats, args.seed)
    print(f"{len(jobs)} episodes: tasks {tasks} x lighting {lightings} x weight {weights} x {args.repeats} seed(s)")
    start = time.time()

    def progress(o):
        mark = "ok  " if o.success else "FAIL"
        print(f"  {mark} {o.task:10s} {o.lighting:9s} {o.weight:6s} seed {o.seed}  "
              f"{o.duration_s:5.1f} s sim, {o.wall_s:5.1f} s wall  {o.error or o.metrics}", flush=True)

    outcomes = run_jobs(jobs, workers=args.workers, progress=progress)
    summary = summarise(outcomes)
    print()
    for task, s in summary.items():
        goal = GOALS.get(task, 0)
        print(f"{task}: {s['successes']}/{s['episodes']} = {s['rate']:.0%} (goal {goal:.0%})")
        print("  lighting: " + "  ".join(f"{k} {a}/{b}" for k, (a, b) in s["by_lighting"].items()))
        print("  weight:   " + "  ".join(f"{k} {a}/{b}" for k, (a, b) in s["by_weight"].items()))
    print(f"wall time {time.time() - start:.0f} s")
    result = {task: round(s["rate"], 4) for task, s in summary.items()}
    result["episodes"] = {task: s["episodes"] for task, s in summary.items()}
    result["seeds"] = f"{args.seed}..{args.seed + len(lightings) * len(weights) * args.repeats - 1}"
    result["goals_met"] = all(summary[t]["rate"] >= GOALS[t] for t in summary)
    print(json.dumps(result))
    return 0 if result["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
