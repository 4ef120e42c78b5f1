"""Twelfth run of the study: does a moving average of the weights make one training run reliable? The eleventh
run found the line's held-out success owes several rollouts of 42 to the training seed (29, 26 and 27 of 42 for
seeds 0, 1 and 2 of viewed_hand_pick_corrected3) and most failures specific to one run. Here the same job (the
100 demonstrations plus the operator rows of three correction rounds, hand_loss 1, the eighth run's work folder,
MuJoCo 4.0.1) is trained again with `ema_decay` EMA_DECAY (environment, default 0.999: the average of the last
~1000 of ~12,000 steps), seeds 0 and 1 side by side in the same 28-minute box. Each checkpoint carries both the
average (`weights`) and the optimizer's own last weights (`training_weights`); `raw` writes the latter as
<name>_raw.pt, so the average and the last step of the same run are evaluated on the same 42 held-out seeds
(those of every run since the fourth): a paired comparison that the session's speed cannot bias.
`more_seeds`: the averaged policies on the eleventh run's 42 further held-out seeds (1,500,000 + 1000 cell + j).
`<stage>_seeds23`: the same with training seeds 2 and 3 (trained after the first two's evaluations).
Usage: python run_twelfth.py train|raw|eval|more_seeds[_seeds23] WORK"""
import os, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04"))
import run_eleventh as L  # noqa: E402  (the third round's job; through it the tenth run's train/evaluate)

T, S = L.T, L.S
EMA_DECAY = float(os.environ.get("EMA_DECAY", "0.999"))


def jobs(seeds=(0, 1)):
    base = L.jobs()[0]
    assert base["name"] == "viewed_hand_pick_corrected3", base
    return averaged(base, seeds)


def averaged(base, seeds):
    """`base` with the weight average, once per training seed: <name>_ema, <name>_ema_seed<k>."""
    out = []
    for seed in seeds:
        name = f"{base['name']}_ema" + (f"_seed{seed}" if seed else "")
        out.append(dict(base, name=name, out=str(S.WORK / "policies" / f"{name}.pt"), seed=seed,
                        ema_decay=EMA_DECAY))
    return out


def raw_jobs(seeds=(0, 1)):
    return [dict(job, name=f"{job['name']}_raw", out=str(S.WORK / "policies" / f"{job['name']}_raw.pt"))
            for job in jobs(seeds)]


def write_raw(seeds=(0, 1)):
    write_raw_of(jobs(seeds), raw_jobs(seeds))


def write_raw_of(averaged_jobs, raw_jobs_):
    """<name>_raw.pt: the same checkpoint with the optimizer's last weights as the ones that run."""
    from collector.policy.checkpoint import Checkpoint

    for job, raw in zip(averaged_jobs, raw_jobs_):
        checkpoint = Checkpoint.load(job["out"])
        checkpoint.weights, checkpoint.training_weights = checkpoint.training_weights, None
        checkpoint.save(raw["out"])
        print("wrote", raw["out"], "at step", checkpoint.step, flush=True)


if __name__ == "__main__":
    stage, seeds = sys.argv[1], (2, 3) if sys.argv[1].endswith("_seeds23") else (0, 1)
    stage = stage.removesuffix("_seeds23")
    if stage == "train":
        T.train(jobs(seeds))
    if stage == "raw":
        write_raw(seeds)
    if stage == "eval":
        T.evaluate(T.held_out(jobs(seeds) + raw_jobs(seeds)))
    if stage == "more_seeds":
        T.evaluate([dict(job, seed_base=1_500_000, out=str(S.WORK / "eval_more" / f"{job['name']}.json"),
                         episodes=str(S.WORK / "eval_more" / job["name"]))
                    for job in T.held_out(jobs(seeds) + raw_jobs(seeds))])
