"""Eighth run of the study: the first on MuJoCo 4.0.1, and the hands' positions as an input. A new recording of
the sixth run's plan (100 good takes) and its 18,000 scene views rendered again, then two policies trained side
by side in 28-minute boxes: the study's best line (FiLM + object loss + scene views) and the same with
`ee_to_head` (the end effectors' positions from forward kinematics of the joint state, and the object head's
target estimate minus each of them, as inputs of the action MLP: collector.policy.end_effectors). Both
evaluated on the same 42 held-out seeds as every run since the fourth; then one correction round each (as the
sixth run's: two takes a lighting x weight cell, seeds 3,000,000 + i), retrained from scratch on demonstrations
plus the corrections' operator rows, and evaluated again.
Usage: python run_eighth.py record|views|train|eval|correct|retrain|localize WORK"""
import json, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "learning-2026-12-03b"))
import run_sixth as S  # noqa: E402  (recording, views and the first jobs; it reads sys.argv[2] as we do)

B = S.B


def jobs():
    plain = S.first_jobs()[0]
    hands = dict(plain, name="viewed_ee_pick_full", out=str(S.WORK / "policies" / "viewed_ee_pick_full.pt"),
                 hyperparameters={**plain["hyperparameters"], "ee_to_head": True})
    return [plain, hands]


def corrected_jobs():
    # HG-DAgger: the rows the policy commanded before a takeover are its mistakes, not teaching
    return [dict(job, name=job["name"].replace("_full", "_corrected"), out=job["out"].replace("_full.pt", "_corrected.pt"),
                 sources=job["sources"] + [str(S.corrections_folder(job) / "episodes")],
                 filters={"outcome": ["success"]}, control=["operator"]) for job in jobs()]


def main(stage):
    if stage in ("record", "views"):
        return S.main(stage)
    pool = ProcessPoolExecutor(2)
    if stage in ("train", "retrain"):
        for r in pool.map(B.train_one, jobs() if stage == "train" else corrected_jobs()):
            print(json.dumps(r), flush=True)
    if stage == "correct":
        for r in pool.map(S.correct, jobs()):
            print(json.dumps({k: v for k, v in r.items() if k != "takes"}), flush=True)
    if stage == "eval":
        names = [j["name"] for j in jobs() + (corrected_jobs() if (S.WORK / "policies" / "viewed_pick_corrected.pt").exists() else [])]
        for r in pool.map(B.evaluate_one, B.eval_jobs(S.WORK, False, 2, names)):
            print(r["name"], r["success"], r["by_lighting"], r["by_weight"], r["by_target"], r["inference_ms"], flush=True)
    if stage == "localize":
        for j in jobs():
            heldout = sorted((S.WORK / "eval" / j["name"]).glob("*.hdf5"))
            r = B.localization(j["out"], B.demo_files(S.WORK / "data" / "pick_full"), heldout)
            (S.WORK / "eval" / f"{j['name']}.localization.json").write_text(json.dumps(r, indent=1))
            print(j["name"], r["training"], r["heldout"], flush=True)
    pool.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
