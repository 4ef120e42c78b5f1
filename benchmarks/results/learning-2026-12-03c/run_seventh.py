"""Seventh run of the study: more correction rounds on the sixth run's two corrected policies (the same 42
held-out seeds throughout). Round k (k >= 2, environment ROUND, default 2): each policy retrained after
round k - 1 acts in 42 new takes (two a lighting x weight cell, seeds 3,000,000 + 100 (k - 1) + i) with the
scripted corrector taking over where it stalls, drifts or drops; then it is retrained from scratch on its
100 demonstrations plus the operator rows of rounds 1..k, with the views, in the same 28-minute box.
Reads and extends the sixth run's work folder.
Usage: ROUND=k [EVAL_DIR=eval] python run_seventh.py correct|retrain|eval WORK"""
import json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "learning-2026-12-03b"))
import run_sixth as S  # noqa: E402  (its WORK, jobs and views; it reads sys.argv[2] as we do)

B = S.B
ROUND = int(os.environ.get("ROUND", "2"))
EVAL_DIR = os.environ.get("EVAL_DIR", "eval")  # under WORK


def round_folder(round_, acting):
    return S.WORK / f"corrections{round_}" / acting["name"]


def retrained_after(round_):
    """The two policies retrained after round `round_` (1: the sixth run's corrected policies)."""
    jobs = S.corrected_jobs()
    for k in range(2, round_ + 1):
        jobs = [dict(job, name=first["name"].replace("_full", f"_corrected{k}"),
                     out=first["out"].replace("_full.pt", f"_corrected{k}.pt"),
                     sources=job["sources"] + [str(round_folder(k, job) / "episodes")])
                for first, job in zip(S.first_jobs(), jobs)]
    return jobs


def correction_round(acting):
    import torch

    from collector.teleop.corrected_take import Corrections

    torch.set_num_threads(1)
    folder = round_folder(ROUND, acting)
    cells = [(light, weight) for light in B.LIGHTING for weight in B.WEIGHTS for _ in range(S.TAKES_PER_CELL)]
    takes, started = [], time.perf_counter()
    with Corrections(acting["out"], "pick_place") as corrections:
        for i, (light, weight) in enumerate(cells):
            seed = B.CORRECTION_SEED_BASE + 100 * (ROUND - 1) + i
            take = corrections.run(light, weight, seed=seed, out_dir=folder / "episodes", max_seconds=40.0)
            takes.append(B.take_row(light, weight, seed, take))
    summary = {"policy": acting["name"], "round": ROUND, **B.corrections_summary(takes, started)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(stage):
    pool = ProcessPoolExecutor(2)
    if stage == "correct":
        for r in pool.map(correction_round, retrained_after(ROUND - 1)):
            print(json.dumps({k: v for k, v in r.items() if k != "takes"}), flush=True)
    if stage == "retrain":
        for r in pool.map(B.train_one, retrained_after(ROUND)):
            print(json.dumps(r), flush=True)
    if stage == "eval":
        names = [j["name"] for j in retrained_after(ROUND)]
        jobs = B.eval_jobs(S.WORK, False, 2, names)
        if EVAL_DIR != "eval":  # the same policies and seeds evaluated again (e.g. on another MuJoCo release)
            jobs = [dict(job, out=str(S.WORK / EVAL_DIR / Path(job["out"]).name),
                         episodes=str(S.WORK / EVAL_DIR / job["name"])) for job in jobs]
        for r in pool.map(B.evaluate_one, jobs):
            print(r["name"], r["success"], r["by_lighting"], r["by_weight"], r["by_target"], r["inference_ms"], flush=True)
    pool.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
