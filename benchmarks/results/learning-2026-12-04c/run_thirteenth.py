"""Thirteenth run of the study: what the study's defaults of today (FiLM + object loss + scene views + the hand
loss + the weight average, `ema_decay` 0.999) make of the 100 demonstrations alone, the goal's own terms. The
machine of the twelfth run was shut down and its work folder with it, so the sixth run's plan is recorded again
(MuJoCo 4.0.1, two stations) and its 18,000 scene views rendered again; then the tenth run's demonstrations-only
hand-loss job (`viewed_hand_pick_full`, 19/42 without the average) is trained with the average, training seeds 0
and 1 side by side in the 28-minute box. The averaged and last-step weights of each (`raw`, as the twelfth run)
are evaluated on the 42 held-out seeds of every run since the fourth, the averaged ones also on the eleventh run's
42 further ones.
Then one correction round with each averaged policy as the ninth run's (`correct`: three takes a lighting x weight
cell, the ninth run's TAKES_PER_CELL, 63 takes at seeds 3,000,000 + i, the scripted corrector taking over), each retrained from scratch on the 100
demonstrations plus its own round's operator rows (`retrain`, same seed, same box) and evaluated on both sets
(`eval_corrected`, `more_seeds_corrected`).
Usage: python run_thirteenth.py record|views|train|raw|eval|more_seeds|correct|retrain|eval_corrected|more_seeds_corrected WORK"""
import json, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "learning-2026-12-04b"))
import run_twelfth as W  # noqa: E402  (raw checkpoints; through it the tenth run's jobs, train and evaluate)

T, S = W.T, W.S
EMA_DECAY = W.EMA_DECAY


def record():
    """The sixth run's two stations; the second starts once the first has created the catalogue (as it ran: the
    first try, both at once on the new folder, failed on the catalogue race fixed the same session)."""
    catalogue = S.WORK / "data" / "pick_full" / "catalog.sqlite"
    with ProcessPoolExecutor(2) as pool:
        first = pool.submit(S.record_station, "st1")
        while not catalogue.exists() and not first.done():
            time.sleep(0.5)
        time.sleep(2.0)
        second = pool.submit(S.record_station, "st2")
        for r in (first.result(), second.result()):
            print(json.dumps(r), flush=True)


def jobs():
    base = T.jobs()[0]
    assert base["name"] == "viewed_hand_pick_full", base
    return W.averaged(base, (0, 1))


def raw_jobs():
    return [dict(job, name=f"{job['name']}_raw", out=str(S.WORK / "policies" / f"{job['name']}_raw.pt"))
            for job in jobs()]


def corrected_jobs():
    # HG-DAgger: the rows the policy commanded before a takeover are its mistakes, not teaching
    return [dict(job, name=job["name"].replace("_full", "_corrected"), out=job["out"].replace("_full", "_corrected"),
                 sources=job["sources"] + [str(S.corrections_folder(job) / "episodes")],
                 filters={"outcome": ["success"]}, control=["operator"]) for job in jobs()]


def more_seeds(evaluated):
    T.evaluate([dict(job, seed_base=1_500_000, out=str(S.WORK / "eval_more" / f"{job['name']}.json"),
                     episodes=str(S.WORK / "eval_more" / job["name"])) for job in T.held_out(evaluated)])


if __name__ == "__main__":
    stage = sys.argv[1]
    if stage == "record":
        record()
    if stage == "views":
        S.main("views")
    if stage == "train":
        T.train(jobs())
    if stage == "raw":
        W.write_raw_of(jobs(), raw_jobs())
    if stage == "eval":
        T.evaluate(T.held_out(jobs() + raw_jobs()))
    if stage == "more_seeds":  # the averaged ones only: the last-step weights had the first 42 (time)
        more_seeds(jobs())
    if stage == "correct":
        with ProcessPoolExecutor(2) as pool:
            for r in pool.map(S.correct, jobs()):
                print(json.dumps({k: v for k, v in r.items() if k != "takes"}), flush=True)
    if stage == "retrain":
        T.train(corrected_jobs())
    if stage == "eval_corrected":
        T.evaluate(T.held_out(corrected_jobs()))
    if stage == "more_seeds_corrected":
        more_seeds(corrected_jobs())
