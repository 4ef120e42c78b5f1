"""Tenth run of the study: a loss measured where the hands go (`hand_loss`: collector.policy.hand_chain). The
eighth and ninth runs found the failures in the reach: the hand stops 3-5 cm short of the target and closes.
The action loss is an L1 over normalized joint angles, in which a shoulder error that moves the hand 4 cm is as
small as a wrist error that moves it 4 mm; this run adds, with weight HAND_LOSS (environment, default 1), the L1
distance in decimetres between the end-effector positions of the predicted and the recorded joint targets
(forward kinematics in torch, every chunk step). Two trainings side by side in the same 28-minute boxes, on the
eighth run's work folder (MuJoCo 4.0.1), each the same data and configuration as an existing policy with the
hand loss added:
  viewed_hand_pick_full        = viewed_pick_full (100 demonstrations; 17/42 held out)            + hand_loss
  viewed_hand_pick_corrected2  = viewed_pick_corrected2 (+ the operator rows of two correction
                                 rounds; 26/42 held out)                                           + hand_loss
Evaluated on the same 42 held-out seeds as every run since the fourth. The machine's speed changes from one
session to the next (the same box held 12,700 steps in the ninth run), so the two policies without the hand loss
are trained again in this session as its peers (`control`: the same jobs, side by side in the same box, as
viewed_pick_full_rerun and viewed_pick_corrected2_rerun) and evaluated on the same seeds.
Usage: python run_tenth.py train|eval|control|eval_control WORK"""
import json, os, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-03e"))
import run_ninth as N  # noqa: E402  (the eighth run's lines and the seventh run's rounds, on the same WORK)

E, R = N.E, N.R
S, B = E.S, E.B
HAND_LOSS = float(os.environ.get("HAND_LOSS", "1"))


def with_hand_loss(job, name):
    return dict(job, name=name, out=str(S.WORK / "policies" / f"{name}.pt"),
                hyperparameters={**job["hyperparameters"], "hand_loss": HAND_LOSS})


def jobs():
    plain = E.jobs()[0]
    corrected2 = R.retrained_after(2)[0]
    assert plain["name"] == "viewed_pick_full" and corrected2["name"] == "viewed_pick_corrected2", (plain, corrected2)
    return [with_hand_loss(plain, "viewed_hand_pick_full"), with_hand_loss(corrected2, "viewed_hand_pick_corrected2")]


def controls():
    return [dict(job, name=f"{job['name']}_rerun", out=str(S.WORK / "policies" / f"{job['name']}_rerun.pt"))
            for job in (E.jobs()[0], R.retrained_after(2)[0])]


def train(training_jobs):
    """Side by side, two processes; each summary printed as it finishes (later runs use this too)."""
    with ProcessPoolExecutor(2) as pool:
        for r in pool.map(B.train_one, training_jobs):
            print(json.dumps(r), flush=True)


def evaluate(evaluation_jobs):
    with ProcessPoolExecutor(2) as pool:
        for r in pool.map(B.evaluate_one, evaluation_jobs):
            print(r["name"], r["success"], r["by_lighting"], r["by_weight"], r["by_target"], r["inference_ms"],
                  flush=True)


def held_out(training_jobs):
    """The evaluation jobs of every run since the fourth: the same 42 held-out seeds."""
    return B.eval_jobs(S.WORK, False, 2, [j["name"] for j in training_jobs])


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage in ("train", "control"):
        train(jobs() if stage == "train" else controls())
    if stage in ("eval", "eval_control"):
        evaluate(held_out(jobs() if stage == "eval" else controls()))
