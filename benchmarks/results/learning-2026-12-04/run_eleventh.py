"""Eleventh run of the study: a third correction round on the hand-loss line (MuJoCo 4.0.1, the eighth run's work
folder, the same 42 held-out seeds as every run since the fourth). The tenth run's viewed_hand_pick_corrected2
(hand_loss = 1, the 100 demonstrations plus the operator rows of two rounds acted by the policies without the
hand loss; 31/42 held out) acts in new takes, the scripted corrector taking over where it stalls, drifts or drops:
two processes side by side, each TAKES_PER_CELL (environment, default 3) takes a lighting x weight cell on its own
seeds (part a: 3,000,000 + 200 + i, the third round's range; part b: 3,010,000 + 200 + i). Then two trainings
from scratch side by side in the same 28-minute box, on the 100 demonstrations plus the operator rows of rounds 1,
2 and both parts of round 3:
  viewed_hand_pick_corrected3    hand_loss = 1
  viewed_hand3_pick_corrected3   hand_loss = 3 (how much the weight matters)
`more_seeds`: the tenth run's best (viewed_hand_pick_corrected2) and viewed_hand_pick_corrected3 on 42 further
held-out seeds (2 a cell, seeds 1,500,000 + 1000 cell + j: never recorded, never used for corrections), so
each has 84 rollouts; written to WORK/eval_more/<name>.json.
`seeds`/`eval_seeds`: how much one training run's held-out success owes to its seed: viewed_hand_pick_corrected3
trained again with seeds 1 and 2 (the same data, configuration and box; initial weights, batch order and
augmentation differ), side by side, and evaluated on the 42 held-out seeds.
Usage: python run_eleventh.py correct|retrain|eval|more_seeds|seeds|eval_seeds WORK"""
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-03f"))
import run_tenth as T  # noqa: E402  (the hand-loss jobs; through it the eighth/ninth runs' WORK and rounds)

S, B = T.S, T.B
ROUND = 3
ACTING = T.jobs()[1]
assert ACTING["name"] == "viewed_hand_pick_corrected2", ACTING
PARTS = {"a": B.CORRECTION_SEED_BASE, "b": B.CORRECTION_SEED_BASE + 10_000}


def part_folder(part):
    return S.WORK / f"corrections{ROUND}" / f"{ACTING['name']}_{part}"


def correction_part(part):
    import torch

    from collector.teleop.corrected_take import Corrections

    torch.set_num_threads(1)
    folder = part_folder(part)
    cells = [(light, weight) for light in B.LIGHTING for weight in B.WEIGHTS for _ in range(S.TAKES_PER_CELL)]
    takes, started = [], time.perf_counter()
    with Corrections(ACTING["out"], "pick_place") as corrections:
        for i, (light, weight) in enumerate(cells):
            seed = PARTS[part] + B.CORRECTION_ROUND_SEEDS * (ROUND - 1) + i
            take = corrections.run(light, weight, seed=seed, out_dir=folder / "episodes", max_seconds=40.0)
            takes.append(B.take_row(light, weight, seed, take))
    summary = {"policy": ACTING["name"], "round": ROUND, "part": part, **B.corrections_summary(takes, started)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def jobs():
    sources = ACTING["sources"] + [str(part_folder(p) / "episodes") for p in PARTS]
    return [dict(ACTING, name=name, out=str(S.WORK / "policies" / f"{name}.pt"), sources=sources,
                 hyperparameters={**ACTING["hyperparameters"], "hand_loss": weight})
            for name, weight in (("viewed_hand_pick_corrected3", 1.0), ("viewed_hand3_pick_corrected3", 3.0))]


def reseeded():
    first = jobs()[0]
    return [dict(first, name=f"{first['name']}_seed{k}", out=str(S.WORK / "policies" / f"{first['name']}_seed{k}.pt"),
                 seed=k) for k in (1, 2)]


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage == "correct":
        with ProcessPoolExecutor(2) as pool:
            for r in pool.map(correction_part, PARTS):
                print(json.dumps({k: v for k, v in r.items() if k != "takes"}), flush=True)
    if stage in ("retrain", "seeds"):
        T.train(jobs() if stage == "retrain" else reseeded())
    if stage in ("eval", "eval_seeds"):
        T.evaluate(T.held_out(jobs() if stage == "eval" else reseeded()))
    if stage == "more_seeds":
        T.evaluate([dict(job, seed_base=1_500_000, out=str(S.WORK / "eval_more" / f"{job['name']}.json"),
                         episodes=str(S.WORK / "eval_more" / job["name"]))
                    for job in T.held_out([ACTING, jobs()[0]])])
