"""Seventeenth run of the study: hands placed relative to the target, sent there by the teleop's IK.

The sixteenth run found the action head fits its 100 layouts (1-2 mm) and is 6-15 mm off on takes it was not
trained on, and the failures close 2 cm beyond the target. Here the `ee_to_head` job (the thirteenth run's
100 demonstrations, FiLM, object loss, scene views, hand loss, weight average, the hands' positions as inputs)
also learns `hand_offsets`: for every step of its chunk, where the recorded joint targets put each hand
relative to the frame's recorded target (collector/policy/baseline.py). Training seeds 0 and 1 side by side
in the 28-minute box, on the sixteenth run's work folder (the thirteenth run's `record` and `views`).
Each policy is evaluated on the same 84 held-out seeds three ways, rollout by rollout paired: gated at 30 mm
(the sixteenth run's rule: the peer), gated and steered (`steer_hands`: each hand near the target is sent to
the estimate plus the predicted offset by mink IK, collector/policy/hand_steering.py), and steered ungated.
Usage: python run_seventeenth.py train|eval_gated|more_seeds_gated|eval_steered|more_seeds_steered|
eval_steered_ungated|more_seeds_steered_ungated|jobs WORK"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04e"))
import run_fifteenth as F  # noqa: E402  (the ee_to_head jobs; through it train/evaluate/held_out)

T, S = F.T, F.S
GATE_M = 0.030  # the sixteenth run's gate, fixed before any of its rollouts
OFFSET_WEIGHT = 1.0  # the hand loss's weight, in the same unit (decimetres, L1)
MORE_SEEDS = 1_500_000


def jobs():
    return [dict(job, name=job["name"].replace("_ee_", "_ee_offsets_"), out=job["out"].replace("_ee_", "_ee_offsets_"),
                 hyperparameters=dict(job["hyperparameters"], hand_offsets=OFFSET_WEIGHT))
            for job in F.jobs()]


def evaluations(stage):
    """The held-out jobs of a stage: gated, steered (gated too), or steered_ungated; first 42 or further 42."""
    line = stage.split("_", 1)[1] if stage.startswith("eval_") else stage.removeprefix("more_seeds_")
    more = stage.startswith("more_seeds")
    out = []
    for job in T.held_out(jobs()):
        name = f"{job['name']}_{line}" + ("_more" if more else "")
        folder = S.WORK / "eval17"
        extra = {"grasp_gate_m": GATE_M} if line in ("gated", "steered") else {}
        if line.startswith("steered"):
            extra["steer_hands"] = True
        if more:
            extra["seed_base"] = MORE_SEEDS
        out.append(dict(job, name=name, out=str(folder / f"{name}.json"), episodes=str(folder / name), **extra))
    return out


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage == "train":
        T.train(jobs())
    elif stage == "jobs":
        print(json.dumps(jobs() + evaluations("eval_steered") + evaluations("more_seeds_steered_ungated"), indent=1,
                         default=str))
    else:
        T.evaluate(evaluations(stage))
