"""Eighteenth run of the study: the target estimate held while a hand is near it.

The seventeenth run's steered rollouts, read again frame by frame (estimate_time.py): the object head places
the target to about 5 mm across the table on the take's first frame and 15-37 mm off (median, failures, per
seed set) at the first close; the error grows as a hand comes near. A rule fixed from that reading, before any
rollout of it: the gate and the steering act on the mean of the newest 30 estimates seen while both hands were
farther than 12 cm (the steering's outer radius) from it, held while one is nearer
(collector.policy.held_estimate). Same two policies (the seventeenth run's, not trained again), steered
without the gate (its best way); evaluated with and without the hold, rollout by rollout paired, on 84 seeds
per policy never evaluated before (seed bases 3,000,000 and 3,500,000). Then the same job trained again with
training seeds 2 and 3 (`train`), evaluated both ways on two more fresh seed sets (4,000,000 and 4,500,000).
Usage: python run_eighteenth.py train WORK
       python run_eighteenth.py [held|steered]_[a|b|c|d] WORK   (a, b: training seeds 0 and 1; c, d: 2 and 3)"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-05"))
import run_seventeenth as P  # noqa: E402  (the seventeenth run's jobs; through it train/evaluate/held_out)

T, S = P.T, P.S
HOLD_M = 0.12
SEED_SETS = {"a": 3_000_000, "b": 3_500_000, "c": 4_000_000, "d": 4_500_000}
MORE_TRAINING_SEEDS = (2, 3)


def more_training_seeds():
    """The seventeenth run's job (training seed 0) again with training seeds 2 and 3: <name>_seed2, _seed3."""
    first = P.jobs()[0]
    assert first.get("seed", 0) == 0, first
    return [dict(first, name=f"{first['name']}_seed{k}", out=str(S.WORK / "policies" / f"{first['name']}_seed{k}.pt"),
                 seed=k) for k in MORE_TRAINING_SEEDS]


def evaluations(stage):
    line, seed_set = stage.rsplit("_", 1)
    out = []
    trained = P.jobs() if seed_set in ("a", "b") else more_training_seeds()
    for job in T.held_out(trained):
        name = f"{job['name']}_{line}_{seed_set}"
        folder = S.WORK / "eval18"
        extra = {"steer_hands": True, "seed_base": SEED_SETS[seed_set]}
        if line == "held":
            extra["hold_estimate_m"] = HOLD_M
        out.append(dict(job, name=name, out=str(folder / f"{name}.json"), episodes=str(folder / name), **extra))
    return out


if __name__ == "__main__":
    if sys.argv[1] == "train":
        T.train(more_training_seeds())
    else:
        T.evaluate(evaluations(sys.argv[1]))
