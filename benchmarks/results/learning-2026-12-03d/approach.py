"""Eighth run: how close each held-out rollout's hand came to the named target, and what the gripper did there.
For each rollout: the hand that came closest (end-effector site from forward kinematics of the recorded joint
state: collector.policy.end_effectors), its closest distance to the target's centre (mm), that hand's gripper
opening at that moment and at its smallest (mm; 45 open, 0 closed on nothing, ~24 closed on an object),
whether the target was ever lifted 3 cm, and how far it was pushed across the table (mm).
Usage: [EVAL_DIR=eval] python approach.py WORK POLICY..."""
import glob, json, os, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from collector.dataset.episode import AlignedEpisode
from collector.dataset.exports.common import joint_names
from collector.policy.conditioning import episode_conditioning
from collector.policy.end_effectors import EndEffectorKinematics
from collector.recorder.vocabulary import JOINTS



def hands_and_target(episode):
    """(joint states, joint names, both hands' grasp centres (frames, 6), the named target, its position per
    frame (frames, 3)) of an open AlignedEpisode (later runs' scripts use this too)."""
    states = episode.read("observations/qpos")
    names = joint_names(episode, JOINTS, states.shape[1])
    hands = EndEffectorKinematics("humanoid", names).positions(states)
    _, target = episode_conditioning(episode.metadata)
    reader = episode.reader()
    stamps = reader.stamps(f"pose_objects_{target}")
    poses = reader.raw(f"pose_objects_{target}", "pose")[: len(stamps)]
    at = np.clip(np.searchsorted(stamps, reader.timestamps + 1e-9) - 1, 0, len(stamps) - 1)
    return states, names, hands, target, poses[at, :3]


def rollout(path):
    with AlignedEpisode(path) as episode:
        states, names, hands, target, where = hands_and_target(episode)
        distances = [np.linalg.norm(hands[:, 3 * h:3 * h + 3] - where, axis=1) for h in (0, 1)]
        hand = int(np.argmin([d.min() for d in distances]))
        closest = int(distances[hand].argmin())
        gripper = states[:, names.index(("left", "right")[hand] + "_finger_a")]
        return {"success": episode.metadata.get("outcome") == "success", "target": target,
                "weight": episode.metadata.get("weight_preset"), "hand": ("left", "right")[hand],
                "closest_mm": round(float(distances[hand][closest]) * 1e3, 1),
                "gripper_there_mm": round(float(gripper[closest]) * 1e3, 1),
                "gripper_min_mm": round(float(gripper.min()) * 1e3, 1),
                "lifted": bool(where[:, 2].max() - where[0, 2] > 0.03),
                "pushed_mm": round(float(np.linalg.norm(where[:, :2] - where[0, :2], axis=1).max()) * 1e3, 1)}


if __name__ == "__main__":
    WORK, EVAL = sys.argv[1], os.environ.get("EVAL_DIR", "eval")
    for name in sys.argv[2:]:
        rows = [rollout(p) for p in sorted(glob.glob(f"{WORK}/{EVAL}/{name}/**/*.hdf5", recursive=True))]
        for row in sorted(rows, key=lambda r: (r["success"], r["target"], r["closest_mm"])):
            print(name, json.dumps(row))
        for outcome in (True, False):
            some = [r for r in rows if r["success"] == outcome]
            if some:
                closest = np.array([r["closest_mm"] for r in some])
                print(f"{name} {'successes' if outcome else 'failures'}: {len(some)}, closest approach median "
                      f"{np.median(closest):.0f} mm (range {closest.min():.0f}-{closest.max():.0f}), gripper closed on "
                      f"nothing {sum(r['gripper_min_mm'] < 1 for r in some)}, target untouched (pushed < 1 mm) "
                      f"{sum(r['pushed_mm'] < 1 and not r['lifted'] for r in some)}, lifted {sum(r['lifted'] for r in some)}")
