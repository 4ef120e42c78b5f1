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
Then, from where the steered failures close (28-32 mm above the target's centre, successes 16-22 mm), a gate
at 20 mm with the steering (`steered_gate20`), fixed before any of its rollouts, against the steering alone, on
84 fresh held-out seeds per policy (`fresh_`: seed bases 2,000,000 and 2,500,000, never evaluated before).
Usage: python run_seventeenth.py train|jobs WORK
       python run_seventeenth.py [eval|more_seeds|fresh|fresh_more]_[gated|steered|steered_ungated|steered_gate20] WORK"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04e"))
import run_fifteenth as F  # noqa: E402  (the ee_to_head jobs; through it train/evaluate/held_out)

T, S = F.T, F.S
GATE_M = 0.030  # the sixteenth run's gate, fixed before any of its rollouts
OFFSET_WEIGHT = 1.0  # the hand loss's weight, in the same unit (decimetres, L1)
SEED_SETS = {"eval": None, "more_seeds": 1_500_000, "fresh": 2_000_000, "fresh_more": 2_500_000}
SUFFIX = {"eval": "", "more_seeds": "_more", "fresh": "_fresh", "fresh_more": "_fresh_more"}
GATES = {"gated": GATE_M, "steered": GATE_M, "steered_gate20": 0.020}


def jobs():
    return [dict(job, name=job["name"].replace("_ee_", "_ee_offsets_"), out=job["out"].replace("_ee_", "_ee_offsets_"),
                 hyperparameters=dict(job["hyperparameters"], hand_offsets=OFFSET_WEIGHT))
            for job in F.jobs()]


def evaluations(stage):
    """The held-out jobs of a stage: a seed set (SEED_SETS) and a way of running (GATES, steered_ungated)."""
    seed_set = max((k for k in SEED_SETS if stage.startswith(k + "_")), key=len)
    line = stage[len(seed_set) + 1:]
    out = []
    for job in T.held_out(jobs()):
        name = f"{job['name']}_{line}{SUFFIX[seed_set]}"
        folder = S.WORK / "eval17"
        extra = {"grasp_gate_m": GATES[line]} if line in GATES else {}
        if line.startswith("steered"):
            extra["steer_hands"] = True
        if SEED_SETS[seed_set] is not None:
            extra["seed_base"] = SEED_SETS[seed_set]
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
