"""Tiny `ee_to_head` baselines trained for a few steps on the session's demo take, and what the tests that rig
them (grasp gate, hand steering) share: the take's first frame as the policy sees it, and one take of
`collect --plan --policy` with a teleop config, read back as the commands of the policy's ticks."""
from pathlib import Path

import numpy as np
import pytest
import torch

from collector.cli import main
from collector.dataset.episode import AlignedEpisode
from collector.policy.train import TrainConfig, train
from collector.recorder import EpisodeReader
from helpers.policy_seeds import plan_seed_naming


def train_tiny_baseline(root: Path, demo_take, name: str, steps: int = 3, batch_size: int = 4, **hyperparameters):
    """A baseline with an object head and the hands' positions (plus `hyperparameters`), at root/NAME.pt."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLLECTOR_CACHE", str(root / "cache"))
        torch.manual_seed(0)
        return train(TrainConfig(
            sources=[str(demo_take)], out=str(root / f"{name}.pt"), policy="baseline", steps=steps, seed=0,
            cameras=["head"], image_size=(30, 40), chunk=10, batch_size=batch_size, lr=1e-3, progress=False,
            checkpoint_every=10_000, plot=False,
            hyperparameters={"cnn_channels": [8, 16], "feature_channels": 8, "hidden": 64, "object_loss": 1.0,
                             "ee_to_head": True, **hyperparameters}))


def first_frame(demo_take):
    """The take's first frame as the policy sees it, and the take's instruction."""
    with AlignedEpisode(demo_take) as take:
        return ({"qpos": take.read("observations/qpos")[0], "images": {"head": take.images("head", [0])[0]}},
                take.metadata["instruction"])


def collect_policy_take(tmp_path: Path, checkpoint, teleop_config: str):
    """One 1.5 s pick-and-place take of `collect --plan --policy CHECKPOINT --teleop-config` (its YAML text):
    (the command's joint names, the commands recorded while the policy was in control)."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"""name: policy_take
robot: humanoid
backend: sim
operator: scripted
tasks: [pick_place]
lighting: [bright]
weights: [light]
takes_per_cell: 1
max_attempts_per_cell: 1
episode_time_limit_s: 1.5
seed: {plan_seed_naming(checkpoint)}
""")
    config = tmp_path / "teleop.yaml"
    config.write_text(teleop_config)
    out = tmp_path / "out"
    assert main(["collect", "--plan", str(plan), "--policy", str(checkpoint), "--teleop-config", str(config),
                 "--out", str(out), "--no-progress"]) == 0
    (episode,) = sorted((out / "episodes").glob("*.hdf5"))
    with EpisodeReader(episode) as reader:
        names = list(reader.streams["command"].attrs["joint_names"])
        command = reader.raw("command", "position")[: reader.count("command")]
        sources = reader.streams["control"].attrs["sources"]
        driver = reader.raw("control", "source")[: reader.count("control")]
    return names, np.asarray(command)[driver == sources["policy"]]
