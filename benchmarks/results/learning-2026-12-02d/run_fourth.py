"""Fourth run of the study: the FiLM + object-loss baseline (reference) and the same with objects_to_head,
trained side by side on the same 100 demonstrations. Usage: python run_fourth.py train|eval|localize WORK"""
import json, os, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import bench_learning as B

WORK = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("study4")
os.environ.setdefault("COLLECTOR_CACHE", str(WORK / "cache"))
MINUTES = float(os.environ.get("MINUTES", "28"))


def jobs():
    base = [j for j in B.train_jobs(WORK, False, MINUTES) if j["name"] == "baseline_pick_full"][0]
    # as it ran: the study's defaults since (the tenth run's hand loss, the twelfth's weight average) left out
    base = dict(base, ema_decay=0.0, hyperparameters={"film": True, "object_loss": 1.0})
    steered = dict(base, name="steered_pick_full", out=str(WORK / "policies" / "steered_pick_full.pt"),
                   hyperparameters={**base["hyperparameters"], "objects_to_head": True})
    return [base, steered]


def main(stage):
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
