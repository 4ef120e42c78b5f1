"""Eighteenth run, the reading behind the held estimate: for each of the seventeenth run's steered rollouts, the
object head's estimate of the named target on every frame up to the first close, recomputed from the recorded
frames by the policy that drove it, against the target's recorded position (mm, across the table: x and y).
Prints, per outcome, the median error at the close, on the first frame, averaged over the take, over its last
10 frames, the spread within a take, and averaged over the frames where the hand was nearer / farther than
10 cm; then a few takes' errors every 6th frame. Saves the per-frame arrays for holds.py.
Usage: python estimate_time.py CHECKPOINT FOLDER OUT.pkl  (estimate_time.log: the 8 folders, 2 policies x 4 seed sets)"""
import glob, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning-2026-12-03d"))
from approach import hands_and_target
from collector.dataset.episode import AlignedEpisode
from collector.policy.runner import PolicyRunner

CLOSED_BELOW_M = 0.035
runner = PolicyRunner(sys.argv[1], frozen=False)
scale, offset = runner.policy.target_std.numpy(), runner.policy.target_mean.numpy()
rows = []
for path in sorted(glob.glob(sys.argv[2] + "/**/*.hdf5", recursive=True)):
    with AlignedEpisode(path) as episode:
        states, names, hands, target, where = hands_and_target(episode)
        arm = 0 if where[0, 1] > 0 else 1
        closing = np.nonzero(states[:, names.index(("left", "right")[arm] + "_finger_a")] < CLOSED_BELOW_M)[0]
        i = int(closing[0]) if len(closing) else len(states) - 1
        runner.reset(episode.metadata["instruction"])
        cams = runner.checkpoint.spec.cameras
        qpos = episode.read("observations/qpos")
        frames = list(range(0, i + 1))
        imgs = {c: episode.images(c, frames) for c in cams}
        est = np.array([runner.estimate_objects({"qpos": qpos[f], "images": {c: imgs[c][k] for c in cams}})[:3]
                        * scale + offset for k, f in enumerate(frames)])
        err = (est - where[: i + 1]) * 1e3
        d = np.linalg.norm(hands[: i + 1, 3 * arm:3 * arm + 3] - where[: i + 1], axis=1)
        rows.append(dict(ok=episode.metadata.get("outcome") == "success", target=target, i=i, err=err, d=d,
                         est=est, where=where[: i + 1], hands=hands[: i + 1]))
def xy(e): return np.linalg.norm(e[..., :2], axis=-1)
for ok in (True, False):
    rs = [r for r in rows if r["ok"] == ok]
    if not rs: continue
    at_close = np.median([xy(r["err"][-1]) for r in rs])
    mean_all = np.median([xy(r["err"].mean(0)) for r in rs])
    first = np.median([xy(r["err"][0]) for r in rs])
    last10 = np.median([xy(r["err"][-10:].mean(0)) for r in rs])
    sd = np.median([np.linalg.norm(r["err"][:, :2].std(0)) for r in rs])
    # when the hand is within 10 cm
    near = np.median([xy(r["err"][r["d"] < 0.10].mean(0)) if (r["d"] < 0.10).any() else np.nan for r in rs])
    far = np.median([xy(r["err"][r["d"] >= 0.10].mean(0)) if (r["d"] >= 0.10).any() else np.nan for r in rs])
    print(f"{'ok' if ok else 'fail'} n={len(rs)} |xy err| at close {at_close:.1f}, first frame {first:.1f}, "
          f"mean all {mean_all:.1f}, mean last10 {last10:.1f}, within-take sd {sd:.1f}, mean near(<10cm) {near:.1f}, far {far:.1f}")
    for r in rs[:6]:
        e = r["err"]
        print("   ", r["target"], r["i"], " ".join(f"{xy(e[k]):.0f}" for k in range(0, len(e), 6)))

import pickle
pickle.dump(rows, open(sys.argv[3], "wb"))
