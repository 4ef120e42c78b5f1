"""Sixteenth run: at each rollout's first close, where the hand, the target and the policy's own estimate of the
target are (mm, world frame: x forward, y left, z up). The estimate is the object head's, from the frame's
cameras, computed again from the recorded frame by the policy that drove the rollout.
Usage: python estimate.py CHECKPOINT FOLDER"""
import glob, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning-2026-12-03d"))
from approach import hands_and_target  # noqa: E402  (the eighth run's reading of hands and target)
from collector.dataset.episode import AlignedEpisode  # noqa: E402
from collector.policy.runner import PolicyRunner  # noqa: E402

CLOSED_BELOW_M = 0.035  # as closing.py (the fifteenth run)

runner = PolicyRunner(sys.argv[1], frozen=False)
scale, offset = runner.policy.target_std.numpy(), runner.policy.target_mean.numpy()
rows = []
for path in sorted(glob.glob(sys.argv[2] + "/**/*.hdf5", recursive=True)):
    with AlignedEpisode(path) as episode:
        states, names, hands, _, where = hands_and_target(episode)
        arm = 0 if where[0, 1] > 0 else 1
        closing = np.nonzero(states[:, names.index(("left", "right")[arm] + "_finger_a")] < CLOSED_BELOW_M)[0]
        i = int(closing[0]) if len(closing) else len(states) - 1
        runner.reset(episode.metadata["instruction"])
        estimate = runner.estimate_objects({
            "qpos": episode.read("observations/qpos")[i],
            "images": {c: episode.images(c, [i])[0] for c in runner.checkpoint.spec.cameras}})[:3] * scale + offset
        rows.append((episode.metadata.get("outcome") == "success", (hands[i, 3 * arm:3 * arm + 3] - where[i]) * 1e3,
                     (estimate - where[i]) * 1e3))
for outcome in (True, False):
    hand = np.array([r[1] for r in rows if r[0] == outcome])
    estimate = np.array([r[2] for r in rows if r[0] == outcome])
    if len(hand):
        fmt = lambda v, sign="+": " / ".join(f"{x:{sign}.0f}" for x in v)  # noqa: E731
        print(f"{'successes' if outcome else 'failures'} ({len(hand)}), median x / y / z mm: hand - target "
              f"{fmt(np.median(hand, 0))}, estimate - target {fmt(np.median(estimate, 0))}, hand - estimate "
              f"{fmt(np.median(hand - estimate, 0))}; |estimate - target| {fmt(np.median(np.abs(estimate), 0), '')}")
