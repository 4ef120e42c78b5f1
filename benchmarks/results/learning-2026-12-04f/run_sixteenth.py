"""Sixteenth run of the study: the grasp gate on the fifteenth run's `ee_to_head` policies (the 100
demonstrations, training seeds 0 and 1), without training anything again. Those policies close the gripper
on schedule wherever the hand is (closing.py); the gate (collector/policy/grasp_gate.py) holds a gripper
open while its hand is more than 30 mm above the policy's own estimate of the target, until a close goes
through. Evaluated on the same 84 held-out seeds per policy as the ungated line (89/168), paired with it; then, with
the same 30 mm, on the fifteenth run's steered line (`_steered`: 90/168 ungated), a replication on two
other policies.
Then one training: fit.py shows the action head predicts where the hand closes to 1-2 mm on the 100 takes it
was trained on and 6-15 mm off on recorded takes it was not; `positions` trains the `ee_to_head` job again with
`images_to_head` off and `objects_to_head` on (the action MLP sees the estimates of the target and every object, the
hands and the vectors from them to the target, the
joint state and the instruction, not the image features it could tell its 100 layouts apart by), training
seeds 0 and 1 side by side in the 28-minute box, and evaluates it gated on the same 84 held-out seeds.
The work folder of the first two trainings was lost with its machine, so the thirteenth run's `record` and
`views` were run again into a new one; there the `ee_to_head` line (`python ../learning-2026-12-04e/run_fifteenth.py
train WORK`) is trained again beside `positions`, on the same machine, as its peer.
Usage: python run_sixteenth.py eval|more_seeds|eval_steered|more_seeds_steered|train_positions|eval_positions|
more_seeds_positions|eval_positions_ungated|more_seeds_positions_ungated WORK
(WORK: the thirteenth run's work folder)"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04e"))
import run_fifteenth as F  # noqa: E402  (the ee_to_head jobs; through it train/evaluate/held_out)

T, S = F.T, F.S
GATE_M = 0.030  # between the successes' close (19-20 mm above the target's centre) and the failures' (43-51 mm)


def gated(evaluation_jobs, seed_base=None):
    out = []
    for job in evaluation_jobs:
        name = f"{job['name']}_gate{round(GATE_M * 1e3)}" + ("_more" if seed_base else "")
        folder = S.WORK / "eval_gate"
        out.append(dict(job, name=name, out=str(folder / f"{name}.json"), episodes=str(folder / name),
                        grasp_gate_m=GATE_M, **({"seed_base": seed_base} if seed_base else {})))
    return out


def positions_jobs():
    return [dict(job, name=job["name"].replace("_ee_", "_ee_positions_"),
                 out=job["out"].replace("_ee_", "_ee_positions_"),
                 hyperparameters=dict(job["hyperparameters"], images_to_head=False, objects_to_head=True))
            for job in F.jobs()]


LINES = {"": F.jobs, "_steered": F.steered_jobs, "_positions": positions_jobs}

if __name__ == "__main__":
    stage = sys.argv[1]
    if stage == "train_positions":
        T.train(positions_jobs())
    elif stage.endswith("_ungated"):  # the positions line without the gate, where the ungated lines are
        (T.evaluate(T.held_out(positions_jobs())) if stage.startswith("eval") else F.R.more_seeds(positions_jobs()))
    else:
        suffix = next(s for s in ("_steered", "_positions", "") if stage.endswith(s))
        T.evaluate(gated(T.held_out(LINES[suffix]()), 1_500_000 if stage.startswith("more_seeds") else None))
