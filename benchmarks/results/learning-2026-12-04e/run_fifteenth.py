"""Fifteenth run of the study: the thirteenth run's demonstrations-only policies close the gripper on schedule
(about 2.2 s into a rollout, as their successes do) wherever the hand then is, on failures 4 cm too high and
3 cm off to the side (closing.py). The one input that says where the hand is relative to the target is
`ee_to_head` (the end effectors' positions by forward kinematics and the vector from each to the object head's
target estimate); the eighth run measured it before the weight average and the hand loss were defaults (24/42
against 17/42 from the 100 demonstrations, not significant). Here it is added to the thirteenth run's job
(FiLM + object loss + the same 18,000 scene views + hand loss + the weight average) on the same 100
demonstrations, training seeds 0 and 1 side by side in the 28-minute box, and evaluated on the same 84 held-out
seeds: paired against the thirteenth run's 80/168.
Then the same with the action head steered by the record in training (`steered`: `steer_recorded`, the recorded
target position with 8 mm of noise per coordinate instead of the head's estimate; at run time the estimate):
the thirteenth run's policies follow the target's depth only half the way (slope.py), as a regression on a
noisy input does.
Usage: python run_fifteenth.py train|eval|more_seeds|train_steered|eval_steered|more_seeds_steered WORK
(WORK: the thirteenth run's work folder)"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04c"))
import run_thirteenth as R  # noqa: E402  (the demonstrations-only job; through it train/evaluate/held_out)

T, S = R.T, R.S


def jobs():
    out = []
    for job in R.jobs():
        name = job["name"].replace("viewed_hand_", "viewed_hand_ee_")
        out.append(dict(job, name=name, out=str(S.WORK / "policies" / f"{name}.pt"),
                        hyperparameters=dict(job["hyperparameters"], ee_to_head=True)))
    return out


STEER_NOISE_M = 0.008  # about the object head's error per coordinate on held-out layouts (fifth run: 7 mm median)


def steered_jobs():
    return [dict(job, name=job["name"].replace("_ee_", "_ee_steered_"),
                 out=job["out"].replace("_ee_", "_ee_steered_"),
                 hyperparameters=dict(job["hyperparameters"], steer_recorded=True, steer_noise_m=STEER_NOISE_M))
            for job in jobs()]


STAGES = {"train": T.train, "eval": lambda line: T.evaluate(T.held_out(line)), "more_seeds": R.more_seeds}

if __name__ == "__main__":
    stage = sys.argv[1]
    STAGES[stage.removesuffix("_steered")](steered_jobs() if stage.endswith("_steered") else jobs())
