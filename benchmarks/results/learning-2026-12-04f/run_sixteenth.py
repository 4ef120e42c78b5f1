"""Sixteenth run of the study: the grasp gate on the fifteenth run's `ee_to_head` policies (the 100
demonstrations, training seeds 0 and 1), without training anything again. Those policies close the gripper
on schedule wherever the hand is (closing.py); the gate (collector/policy/grasp_gate.py) holds a gripper
open while its hand is more than 30 mm above the policy's own estimate of the target, until a close goes
through. Evaluated on the same 84 held-out seeds per policy as the ungated line (89/168), paired with it; then, with
the same 30 mm, on the fifteenth run's steered line (`_steered`: 90/168 ungated), a replication on two
other policies.
Usage: python run_sixteenth.py eval|more_seeds|eval_steered|more_seeds_steered WORK
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


if __name__ == "__main__":
    stage = sys.argv[1]
    line = F.steered_jobs() if stage.endswith("_steered") else F.jobs()
    T.evaluate(gated(T.held_out(line), 1_500_000 if stage.startswith("more_seeds") else None))
