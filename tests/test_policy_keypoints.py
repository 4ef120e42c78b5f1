"""Keypoint image features for the baseline policy (collector/policy/keypoints.py): the spatial softmax
returns where each feature map peaks, a baseline on keypoints learns a recorded take, and checkpoints
written before the option existed still load as the flattened-map baseline."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.errors import ConfigError
from collector.dataset.episode import AlignedEpisode
from collector.policy.base import PolicySpec
from collector.policy.baseline import BaselinePolicy
from collector.policy.keypoints import KeypointEncoder, spatial_expectation
from collector.policy.registry import build_policy
from collector.policy.runner import PolicyRunner
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
SPEC = PolicySpec(cameras=["head", "left_wrist"], image_size=(48, 64), state_dim=5, action_dim=5, chunk=4,
                  vocabulary_size=4)


@pytest.mark.parametrize("row,col,expected", [(0, 0, (-1.0, -1.0)), (11, 15, (1.0, 1.0)), (0, 15, (1.0, -1.0)),
                                              (6, 3, (3 / 15 * 2 - 1, 6 / 11 * 2 - 1))])
def test_a_sharp_peak_gives_its_cell_coordinates(row, col, expected):
    features = torch.full((1, 1, 12, 16), -50.0)
    features[0, 0, row, col] = 50.0
    x, y = spatial_expectation(features, 1.0)[0, 0].tolist()
    assert (x, y) == pytest.approx(expected, abs=1e-5)


def test_the_keypoints_follow_a_bright_square_across_the_frame():
    # with the last layer summing the input's red channel, each keypoint is where red is
    torch.manual_seed(0)
    encoder = KeypointEncoder(channels=[4], strides=[1], keypoints=1)
    with torch.no_grad():
        for module in encoder.net:
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_(); module.bias.zero_()
        encoder.net[0].weight[:, 0, 1, 1] = 1.0  # every channel copies red (then GroupNorm, ReLU)
        encoder.net[-1].weight[0, :, 0, 0] = 5.0
    xs = []
    for left in (4, 28, 52):
        image = torch.zeros(1, 3, 48, 64)
        image[0, 0, 20:28, left:left + 8] = 1.0
        x, y = encoder(image)[0].tolist()
        xs.append(x)
        assert y == pytest.approx((23.5 / 47) * 2 - 1, abs=0.1)
    assert xs[0] < -0.6 and abs(xs[1]) < 0.15 and xs[2] > 0.6, xs


def test_a_baseline_on_keypoints_learns_a_recorded_take(demo_take, tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTOR_CACHE", str(tmp_path / "cache"))
    result = train(TrainConfig(sources=[str(demo_take)], out=str(tmp_path / "kp.pt"), policy="baseline",
                               hyperparameters={"image_features": "keypoints", "keypoint_channels": [8, 16],
                                                "keypoint_strides": [2, 2], "keypoints": 8, "hidden": 128},
                               cameras=["head"], image_size=(30, 40), chunk=10, steps=300, batch_size=16, lr=1e-3,
                               progress=False, checkpoint_every=10_000, seed=0))
    first, last = (np.mean([p["l1"] for p in part]) for part in (result.parts[:20], result.parts[-20:]))
    assert last < 0.2 and first > 2 * last, (first, last)
    runner = PolicyRunner(result.checkpoint)
    with AlignedEpisode(demo_take) as take:
        runner.reset(take.metadata["instruction"])
        qpos, action = take.read("observations/qpos"), take.read("action")
        rows = list(range(0, take.length, 3))
        predicted = np.array([runner.predict_chunk({"qpos": qpos[t], "images": {"head": take.images("head", [t])[0]}})[0]
                              for t in rows])
    error = np.abs(predicted - action[rows]).mean()
    floor = np.abs(action.mean(axis=0) - action[rows]).mean()  # what learning nothing per frame gives
    assert error < 0.3 * floor, (error, floor)


def test_checkpoints_from_before_the_option_build_the_flattened_map_baseline():
    old_hyperparameters = {"cnn_channels": [16, 32, 64, 128], "feature_channels": 16, "conditioning_dim": 32,
                           "hidden": 512, "dropout": 0.0}
    policy = build_policy("baseline", SPEC, old_hyperparameters)
    assert not policy.keypoint_features and policy.hyperparameters["image_features"] == "flatten"
    keypoints = build_policy("baseline", SPEC, {"image_features": "keypoints"})
    batch = {"images": torch.rand(2, 2, 3, 48, 64), "state": torch.zeros(2, 5),
             "conditioning": torch.zeros(2, 2, dtype=torch.long)}
    assert keypoints.predict_chunk(batch).shape == (2, 4, 5)
    with pytest.raises(ConfigError) as err:
        build_policy("baseline", SPEC, {"image_features": "pixels"})
    assert "image_features" in str(err.value) and "keypoints" in str(err.value) and "\n" not in str(err.value)
    assert isinstance(keypoints, BaselinePolicy)
