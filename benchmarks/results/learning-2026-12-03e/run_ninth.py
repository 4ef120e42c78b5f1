"""Ninth run of the study: more correction rounds on the eighth run's two corrected policies (MuJoCo 4.0.1; the
same 42 held-out seeds as every run since the fourth). The seventh run's rounds (run_seventh.py), on the eighth
run's policy lines and work folder, with TAKES_PER_CELL (environment, default 3: more corrected reaches than the
seventh run's 2) takes a lighting x weight cell. Round k (k >= 2, environment ROUND): each policy retrained after
round k - 1 acts in the new takes (seeds 3,000,000 + 100 (k - 1) + i), the scripted corrector taking over where it
stalls, drifts or drops; then it is retrained from scratch on its 100 demonstrations plus the operator rows of
rounds 1..k, with the views, in the same 28-minute box, two trainings side by side.
`longer` asks whether the round-k policies recover from a miss given time: the held-out rollouts that failed
within the study's 14 s are rolled out again (same seeds; rollouts are deterministic, so the first 14 s are the
same) with LONGER_S (environment, default 30) seconds. Written to WORK/eval/<name>.longer<S>.json.
Usage: ROUND=k python run_ninth.py correct|retrain|eval|longer WORK"""
import json, os, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-03d"))
sys.path.insert(0, str(HERE.parent / "learning-2026-12-03c"))
import run_eighth as E  # noqa: E402  (its policy lines; through it the sixth run's WORK and views)
import run_seventh as R  # noqa: E402  (the rounds; it shares run_eighth's run_sixth module)

# The seventh run's rounds start from the sixth run's lines; these start from the eighth run's.
EIGHTH, CORRECTED = E.jobs(), E.corrected_jobs()
E.S.first_jobs, E.S.corrected_jobs = (lambda: EIGHTH), (lambda: CORRECTED)
E.S.TAKES_PER_CELL = int(os.environ.get("TAKES_PER_CELL", "3"))

LONGER_S = float(os.environ.get("LONGER_S", "30"))


def longer(job):
    import torch

    from collector.policy.evaluate import Cell, PolicyRollouts, load_checkpoint

    torch.set_num_threads(1)
    first = json.loads((E.S.WORK / "eval" / f"{job['name']}.json").read_text())
    failed = [r for r in first["rollouts"] if not r["success"]]
    rows = []
    with PolicyRollouts(load_checkpoint(job["out"]), "pick_place") as rollouts:
        for r in failed:
            result = rollouts.run(Cell("pick_place", r["lighting"], r["weight"]), r["seed"], max_seconds=LONGER_S)
            rows.append({**r, "success": bool(result.success), "duration_s": round(result.duration_s, 2)})
    summary = {"name": job["name"], "max_seconds": LONGER_S, "within_14s": sum(r["success"] for r in first["rollouts"]),
               "rerun": len(rows), "recovered": sum(r["success"] for r in rows), "of": len(first["rollouts"]),
               "rollouts": rows}
    (E.S.WORK / "eval" / f"{job['name']}.longer{LONGER_S:g}.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    if sys.argv[1] == "longer":
        with ProcessPoolExecutor(2) as pool:
            for summary in pool.map(longer, R.retrained_after(R.ROUND)):
                print(json.dumps({k: v for k, v in summary.items() if k != "rollouts"}), flush=True)
    else:
        R.main(sys.argv[1])
