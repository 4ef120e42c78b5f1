"""Fifth run of the study: the fourth run's two policies (FiLM + object loss, and the same with
objects_to_head) trained again on the same 100 demonstrations, now with the object head also trained on
scene views of 6,000 new layouts (collector.policy.scene_views). Same 42 held-out seeds.
Usage: [PAIR=2] python run_fifth.py views|train|eval|localize WORK   (WORK/data: the fourth run's recordings;
PAIR=2: the second pair of policies, trained after the first)"""
import json, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_learning as B

WORK = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("study5")
os.environ.setdefault("COLLECTOR_CACHE", str(WORK / "cache"))
MINUTES = float(os.environ.get("MINUTES", "28"))
LAYOUTS, VIEWS, SEED_BASE = 6000, 3, 5_000_000  # seeds apart from evaluation (1 M + ...), corrections (3 M), recordings (>= 100 M)
VIEW_FILES = [WORK / "views" / f"pick_views_{k}.h5" for k in range(2)]


def render(k):
    from collector.policy.scene_views import recorded_poses, render_scene_views

    started = time.perf_counter()
    half = LAYOUTS // len(VIEW_FILES)
    poses = recorded_poses(B.demo_files(WORK / "data" / "pick_full"))
    render_scene_views(VIEW_FILES[k], task="pick_place", seeds=range(SEED_BASE + k * half, SEED_BASE + (k + 1) * half),
                       lighting=B.LIGHTING, weights=B.WEIGHTS, image_size=B.STUDY_IMAGE, views_per_layout=VIEWS,
                       poses=poses)
    return {"file": str(VIEW_FILES[k]), "layouts": half, "poses": len(poses), "wall_s": round(time.perf_counter() - started, 1)}


def jobs():
    base = [j for j in B.train_jobs(WORK, False, MINUTES) if j["name"] == "baseline_pick_full"][0]
    # as it ran: the study's defaults since (the tenth run's hand loss, the twelfth's weight average) left out
    base = dict(base, ema_decay=0.0, hyperparameters={"film": True, "object_loss": 1.0})
    views = dict(base, name="viewed_pick_full", out=str(WORK / "policies" / "viewed_pick_full.pt"),
                 scene_views=[str(f) for f in VIEW_FILES], scene_batch=16)
    steered = dict(views, name="viewed_steered_pick_full", out=str(WORK / "policies" / "viewed_steered_pick_full.pt"),
                   hyperparameters={**base["hyperparameters"], "objects_to_head": True})
    # second pair (after the first showed the estimate right on new layouts and success still at a third):
    # the action head acts on the estimated positions, state and instruction only, no image features;
    # with the estimate detached from the action loss, or not
    positions = dict(steered, name="positions_pick_full", out=str(WORK / "policies" / "positions_pick_full.pt"),
                     hyperparameters={**steered["hyperparameters"], "images_to_head": False})
    detached = dict(positions, name="positions_detached_pick_full",
                    out=str(WORK / "policies" / "positions_detached_pick_full.pt"),
                    hyperparameters={**positions["hyperparameters"], "detach_objects": True})
    pairs = {"1": [views, steered], "2": [positions, detached]}
    return pairs[os.environ.get("PAIR", "1")]


def main(stage):
    if stage == "views":
        with ProcessPoolExecutor(2) as pool:
            for r in pool.map(render, range(len(VIEW_FILES))):
                print(json.dumps(r), flush=True)
    if stage == "train":
        with ProcessPoolExecutor(2) as pool:
            for r in pool.map(B.train_one, jobs()):
                print(json.dumps(r), flush=True)
    if stage == "eval":
        ejobs = B.eval_jobs(WORK, False, 2, [j["name"] for j in jobs()])
        with ProcessPoolExecutor(2) as pool:
            for r in pool.map(B.evaluate_one, ejobs):
                print(r["name"], r["success"], r["by_lighting"], r["by_weight"], r["by_target"], r["inference_ms"], flush=True)
    if stage == "localize":
        for j in jobs():
            heldout = sorted((WORK / "eval" / j["name"]).glob("*.hdf5"))
            r = B.localization(j["out"], j["sources"], heldout)
            (WORK / "eval" / f"{j['name']}.localization.json").write_text(json.dumps(r, indent=1))
            print(j["name"], r["training"], r["heldout"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
