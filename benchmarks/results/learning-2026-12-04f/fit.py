"""Sixteenth run: does the action head send the hand where the demonstrations did, on the demonstrations it was
trained on? From the frame one chunk before each take's first close (fingers below 35 mm), the hand position
the chunk's last action commands for the close (forward kinematics of its joint targets), against the one the
take's own action commanded then and against the target (mm, world frame: x forward, y left, z up). On
training takes a head that fits its data predicts what the take did; on held-out rollouts the take's command is
the policy's own (ensembled) one. Takes the checkpoint was trained on and others are reported apart.
Usage: python fit.py CHECKPOINT FOLDER [LIMIT]"""
import glob, sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learning-2026-12-03d"))
from approach import hands_and_target  # noqa: E402  (the eighth run's reading of hands and target)
from collector.dataset.episode import AlignedEpisode  # noqa: E402
from collector.policy.end_effectors import EndEffectorKinematics  # noqa: E402
from collector.policy.runner import PolicyRunner  # noqa: E402

CLOSED_BELOW_M = 0.035  # as closing.py (the fifteenth run)

runner = PolicyRunner(sys.argv[1], frozen=False)
names = list(runner.checkpoint.action_names)
kinematics = EndEffectorKinematics(runner.checkpoint.spec.robot, names)
files = sorted(glob.glob(sys.argv[2] + "/**/*.hdf5", recursive=True))[: int(sys.argv[3]) if len(sys.argv) > 3 else None]
trained_on = {Path(e["path"]).resolve() for e in runner.checkpoint.provenance.get("episodes", [])}
rows = []
for path in files:
    with AlignedEpisode(path) as episode:
        states, state_names, hands, _, where = hands_and_target(episode)
        arm = 0 if where[0, 1] > 0 else 1
        closing = np.nonzero(states[:, state_names.index(("left", "right")[arm] + "_finger_a")] < CLOSED_BELOW_M)[0]
        if not len(closing):
            continue
        i = int(closing[0])
        before = max(0, i - runner.checkpoint.spec.chunk + 1)  # the chunk predicted there ends at the close
        runner.reset(episode.metadata["instruction"])
        predicted = runner.predict_chunk({
            "qpos": episode.read("observations/qpos")[before],
            "images": {c: episode.images(c, [before])[0] for c in runner.checkpoint.spec.cameras}})[i - before]
        recorded = episode.read("action")[i]
        commanded = kinematics.positions(np.stack([predicted, recorded]))[:, 3 * arm:3 * arm + 3]
        rows.append(((Path(path).resolve() in trained_on, episode.metadata.get("outcome") == "success"),
                     (commanded[0] - where[i]) * 1e3, (commanded[1] - where[i]) * 1e3))
fmt = lambda v, sign="+": " / ".join(f"{x:{sign}.0f}" for x in v)  # noqa: E731
for group in ((True, True), (True, False), (False, True), (False, False)):
    policy = np.array([r[1] for r in rows if r[0] == group])
    take = np.array([r[2] for r in rows if r[0] == group])
    if len(policy):
        print(f"{'trained on' if group[0] else 'not trained on'}, {'successes' if group[1] else 'failures'} "
              f"({len(policy)}), median x / y / z mm: policy's command - target {fmt(np.median(policy, 0))}, take's "
              f"command - target {fmt(np.median(take, 0))}, policy - take {fmt(np.median(policy - take, 0))}, "
              f"|policy - take| {fmt(np.median(np.abs(policy - take), 0), '')}")
