"""Sixth run: how each failed held-out rollout failed. Never lifted = the named target never 3 cm above its
starting height; lifted, not placed = it was, and the task still failed.
Usage: [EVAL_DIR=eval] python lifts.py WORK [POLICY...] (default: the sixth run's four)"""
import glob, json, os, sys

import h5py

WORK = sys.argv[1] if len(sys.argv) > 1 else "study6"
EVAL = os.environ.get("EVAL_DIR", "eval")  # the evaluations' folder under WORK
for name in sys.argv[2:] or ["viewed_pick_full", "viewed_steered_pick_full", "viewed_pick_corrected",
                             "viewed_steered_pick_corrected"]:
    evaluation = json.load(open(f"{WORK}/{EVAL}/{name}.json"))
    never = lifted = 0
    for rollout in evaluation["rollouts"]:
        if rollout["success"]:
            continue
        path = glob.glob(f"{WORK}/{EVAL}/{name}/*_{rollout['seed']}.hdf5")[0]
        with h5py.File(path, "r") as f:
            z = f[f"raw/pose_objects_{rollout['target']}/pose"][:, 2]
        if z.max() - z[0] > 0.03:
            lifted += 1
        else:
            never += 1
    print(name, "failures", never + lifted, "never lifted", never, "lifted, not placed", lifted)
