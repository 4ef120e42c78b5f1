"""Sixth run of the study: the fifth run's two view-trained policies (FiLM + object loss + scene views, and the
same with objects_to_head) trained again, then one correction round each with the scripted corrector (two
takes a lighting x weight cell, 42), then each retrained from scratch on its 100 demonstrations plus its
corrections' operator rows, with the views. Before and after on the same 42 held-out seeds.
Usage: python run_sixth.py record|views|train|correct|retrain|eval|localize WORK"""
import json, os, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_learning as B

HERE = Path(__file__).resolve().parent
WORK = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("study6")
os.environ.setdefault("COLLECTOR_CACHE", str(WORK / "cache"))
MINUTES = float(os.environ.get("MINUTES", "28"))
LAYOUTS, VIEWS, SEED_BASE = 6000, 3, 5_000_000  # the fifth run's views
VIEW_FILES = [WORK / "views" / f"pick_views_{k}.h5" for k in range(2)]
TAKES_PER_CELL = 2  # corrections: seeds 3,000,000 + i, apart from evaluation (1 M + ...) and recordings (>= 100 M)


def record_station(station):
    plan = HERE.parent / "learning-2026-12-02d" / "pick_full.yaml"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "collector", "collect", "--plan", str(plan), "--out",
                           str(WORK / "data" / "pick_full"), "--station", station, "--no-progress"],
                          capture_output=True, text=True)
    return {"station": station, "rc": done.returncode, "wall_s": round(time.perf_counter() - started, 1),
            "tail": done.stdout.strip()[-300:] + done.stderr.strip()[-300:]}


def render(k):
    started = time.perf_counter()
    half = LAYOUTS // len(VIEW_FILES)
    B._render_views_part({"out": VIEW_FILES[k], "seeds": (SEED_BASE + k * half, SEED_BASE + (k + 1) * half),
                         "lighting": B.LIGHTING, "weights": B.WEIGHTS, "image": B.STUDY_IMAGE, "views": VIEWS,
                         "poses_from": B.demo_files(WORK / "data" / "pick_full"), "targets": None})
    return {"file": str(VIEW_FILES[k]), "layouts": half, "wall_s": round(time.perf_counter() - started, 1)}


def first_jobs():
    base = [j for j in B.train_jobs(WORK, False, MINUTES) if j["name"] == "baseline_pick_full"][0]
    # as it ran: the study's defaults since (the tenth run's hand loss, the twelfth's weight average) left out
    base = dict(base, ema_decay=0.0, hyperparameters={"film": True, "object_loss": 1.0})
    views = dict(base, name="viewed_pick_full", out=str(WORK / "policies" / "viewed_pick_full.pt"),
                 scene_views=[str(f) for f in VIEW_FILES], scene_batch=16)
    steered = dict(views, name="viewed_steered_pick_full", out=str(WORK / "policies" / "viewed_steered_pick_full.pt"),
                   hyperparameters={**base["hyperparameters"], "objects_to_head": True})
    return [views, steered]


def corrections_folder(job):
    return WORK / "corrections" / job["name"]


def corrected_jobs():
    # HG-DAgger: the rows the policy commanded before a takeover are its mistakes, not teaching
    return [dict(job, name=job["name"].replace("_full", "_corrected"),
                 out=job["out"].replace("_full.pt", "_corrected.pt"),
                 sources=job["sources"] + [str(corrections_folder(job) / "episodes")],
                 filters={"outcome": ["success"]}, control=["operator"]) for job in first_jobs()]


def correct(job):
    import torch

    from collector.teleop.corrected_take import Corrections

    torch.set_num_threads(1)
    folder = corrections_folder(job)
    cells = [(light, weight) for light in B.LIGHTING for weight in B.WEIGHTS for _ in range(TAKES_PER_CELL)]
    takes, started = [], time.perf_counter()
    with Corrections(job["out"], "pick_place") as corrections:
        for i, (light, weight) in enumerate(cells):
            take = corrections.run(light, weight, seed=B.CORRECTION_SEED_BASE + i, out_dir=folder / "episodes",
                                   max_seconds=40.0)
            takes.append(B.take_row(light, weight, B.CORRECTION_SEED_BASE + i, take))
    summary = {"policy": job["name"], **B.corrections_summary(takes, started)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(stage):
    pool = ProcessPoolExecutor(2)
    if stage == "record":
        for r in pool.map(record_station, ["st1", "st2"]):
            print(json.dumps(r), flush=True)
    if stage == "views":
        for r in pool.map(render, range(len(VIEW_FILES))):
            print(json.dumps(r), flush=True)
    if stage in ("train", "retrain"):
        for r in pool.map(B.train_one, first_jobs() if stage == "train" else corrected_jobs()):
            print(json.dumps(r), flush=True)
    if stage == "correct":
        for r in pool.map(correct, first_jobs()):
            print(json.dumps({k: v for k, v in r.items() if k != "takes"}), flush=True)
    if stage == "eval":
        names = [j["name"] for j in first_jobs() + corrected_jobs()]
        for r in pool.map(B.evaluate_one, B.eval_jobs(WORK, False, 2, names)):
            print(r["name"], r["success"], r["by_lighting"], r["by_weight"], r["by_target"], r["inference_ms"], flush=True)
    if stage == "localize":
        for j in first_jobs() + corrected_jobs():
            heldout = sorted((WORK / "eval" / j["name"]).glob("*.hdf5"))
            r = B.localization(j["out"], B.demo_files(WORK / "data" / "pick_full"), heldout)
            (WORK / "eval" / f"{j['name']}.localization.json").write_text(json.dumps(r, indent=1))
            print(j["name"], r["training"], r["heldout"], flush=True)
    pool.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
