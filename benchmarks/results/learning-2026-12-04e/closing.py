"""Fifteenth run: when and where the gripper closes. For each rollout (or recorded take) of the given folders:
the hand nearer the named target, the time its fingers first close below 35 mm (45 open), and where that hand's
grasp centre is then relative to the target's centre (world frame, mm: x forward, y left, z up; forward
kinematics of the recorded joint state, collector.policy.end_effectors). Then, per arm and axis, how far the
hand follows the target across rollouts: the least-squares slope of the hand's position at the close on the
target's (1: it goes where the target is; 0: to one place whatever the layout).
Usage: python closing.py FOLDER..."""
import glob, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning-2026-12-03d"))
from approach import hands_and_target  # noqa: E402  (the eighth run's reading of hands and target)
from collector.dataset.episode import AlignedEpisode  # noqa: E402

CLOSED_BELOW_M = 0.035


def one(path):
    with AlignedEpisode(path) as episode:
        states, names, hands, _, where = hands_and_target(episode)
        reader = episode.reader()
        hand = 0 if where[0, 1] > 0 else 1  # the left arm serves the slots on the left (y > 0)
        fingers = states[:, names.index(("left", "right")[hand] + "_finger_a")]
        closing = np.nonzero(fingers < CLOSED_BELOW_M)[0]
        i = int(closing[0]) if len(closing) else len(states) - 1
        return {"success": episode.metadata.get("outcome") == "success", "arm": hand,
                "t": float(reader.timestamps[i] - reader.timestamps[0]), "closed": bool(len(closing)),
                "offset_mm": (hands[i, 3 * hand:3 * hand + 3] - where[i]) * 1e3,
                "target": where[0, :2], "hand": hands[i, 3 * hand:3 * hand + 2]}


rows = [one(p) for folder in sys.argv[1:] for p in sorted(glob.glob(folder + "/**/*.hdf5", recursive=True))]
print(f"{len(rows)} takes from {', '.join(sys.argv[1:])}")
for outcome in (True, False):
    some = [r for r in rows if r["success"] == outcome and r["closed"]]
    if some:
        offsets = np.array([r["offset_mm"] for r in some])
        print(f"  {'successes' if outcome else 'failures'} ({len(some)} closed): first close at "
              f"{np.median([r['t'] for r in some]):.2f} s (median), hand - target there x/y/z median "
              f"{' / '.join(f'{v:+.0f}' for v in np.median(offsets, 0))} mm, |x|/|y|/|z - median z| "
              f"{' / '.join(f'{v:.0f}' for v in np.median(np.abs(offsets[:, :2]), 0))} / "
              f"{np.median(np.abs(offsets[:, 2] - np.median(offsets[:, 2]))):.0f} mm")
for arm in (0, 1):
    some = [r for r in rows if r["arm"] == arm]
    if len(some) < 3:
        continue
    target, hand = np.array([r["target"] for r in some]), np.array([r["hand"] for r in some])
    slopes = [np.polyfit(target[:, k], hand[:, k], 1)[0] for k in (0, 1)]
    print(f"  {('left', 'right')[arm]} arm ({len(some)}): hand follows the target with slope x {slopes[0]:.2f}, "
          f"y {slopes[1]:.2f} (target spread x {target[:, 0].std() * 1e3:.0f} mm, y {target[:, 1].std() * 1e3:.0f} mm)")
