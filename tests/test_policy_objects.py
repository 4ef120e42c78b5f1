"""The baseline's instruction-conditioned features (FiLM) and its auxiliary object-position loss, on a
real recorded take (conftest.py's `demo_take`: scripted pick-and-place with the recorded object poses).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.dataset.episode import AlignedEpisode
from collector.dataset.synthetic import write_sim_episode
from collector.errors import ConfigError
from collector.policy.checkpoint import Checkpoint
from collector.policy.object_targets import episode_object_targets, object_names, target_statistics
from collector.policy.runner import PolicyRunner
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
pytestmark = pytest.mark.slow
TINY = dict(cameras=["head"], image_size=(30, 40), chunk=10, batch_size=16, lr=1e-3, progress=False,
            checkpoint_every=10_000, plot=False)
SMALL_BASELINE = {"cnn_channels": [8, 16, 32], "feature_channels": 8, "hidden": 128}


def test_object_targets_are_the_recorded_positions_at_each_frame(demo_take):
    with AlignedEpisode(demo_take) as take:
        names = object_names([take])
        assert names == ["ball", "cube", "cylinder", "tray"]
        targets = episode_object_targets(take, names)
        layout = take.conditions["object_layout"]
        value, mask = targets["value"], targets["mask"]
        assert value.shape == (take.length, 15) and mask.all()
        # frame 0: where the simulator placed each object (the layout it recorded), to a few mm of settling
        for k, name in enumerate(names, start=1):
            placed = layout["tray"] if name == "tray" else layout["objects"][name]["pos"]
            assert np.abs(value[0, 3 * k:3 * k + 3] - placed).max() < 0.01, name
        # the first entry is the named target, wherever it goes: the scripted operator carries it off the table
        target = names.index(layout["target"]) + 1
        np.testing.assert_array_equal(value[:, 0:3], value[:, 3 * target:3 * target + 3])
        assert value[:, 2].max() - value[0, 2] > 0.03
        stats = target_statistics([targets])
        assert stats["std"].min() >= 0.01 and stats["mean"].shape == (15,)


def test_film_and_the_object_loss_learn_and_the_checkpoint_acts_without_them(tmp_path, demo_take):
    out = tmp_path / "objects.pt"
    result = train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=150, seed=0,
                               hyperparameters={**SMALL_BASELINE, "film": True, "object_loss": 1.0}, **TINY))
    first = np.mean([p["objects"] for p in result.parts[:10]])
    last = np.mean([p["objects"] for p in result.parts[-10:]])
    assert last < 0.6 * first, (first, last)  # the features learned where the objects are
    checkpoint = Checkpoint.load(out)
    assert checkpoint.spec.object_targets == 15 and checkpoint.hyperparameters["film"] is True
    runner = PolicyRunner(out)
    with AlignedEpisode(demo_take) as take:
        runner.reset(take.metadata["instruction"])
        frame = take.images("head", [0])[0]
        qpos = take.read("observations/qpos")[0]
        chunk = runner.predict_chunk({"qpos": qpos, "images": {"head": frame}})
    assert np.isfinite(chunk).all() and chunk.shape == (10, qpos.shape[0])
    # the instruction reaches the image features: FiLM's modulation moved away from identity
    film = {k: v for k, v in checkpoint.weights.items() if k.startswith("film.")}
    assert film and max(float(v.abs().max()) for v in film.values()) > 0


def test_the_object_loss_on_takes_without_recorded_poses_is_one_line(tmp_path):
    write_sim_episode(tmp_path / "sim", "episode_000001", duration_s=1.0, seed=1, camera_fps=15.0)
    with pytest.raises(ConfigError, match="object_loss needs episodes with recorded object poses"):
        train(TrainConfig(sources=[str(tmp_path / "sim")], out=str(tmp_path / "p.pt"), policy="baseline",
                          steps=2, hyperparameters={**SMALL_BASELINE, "object_loss": 1.0}, **TINY))


def test_objects_to_head_steers_the_actions_by_the_object_estimate(tmp_path, demo_take):
    out = tmp_path / "steered.pt"
    train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=60, seed=0,
                      hyperparameters={**SMALL_BASELINE, "film": True, "object_loss": 1.0, "objects_to_head": True},
                      **TINY))
    runner = PolicyRunner(out)
    policy = runner.policy
    with AlignedEpisode(demo_take) as take:
        runner.reset(take.metadata["instruction"])
        observation = {"qpos": take.read("observations/qpos")[0], "images": {"head": take.images("head", [0])[0]}}
        estimate = runner.estimate_objects(observation)
        chunk = runner.predict_chunk(observation)
        assert estimate.shape == (15,) and np.isfinite(estimate).all()
        # the estimate is an input of the action MLP: another estimate, another chunk (the same image)
        unsteered = type(policy)(policy.spec, **{**policy.hyperparameters, "objects_to_head": False})
        assert policy.head[0].in_features == unsteered.head[0].in_features + 15
        bias = policy.object_head[-1].bias.data
        # restored from a copy: float32 b + 1 - 1 is not b (the low bits go), which moved the chunk by ~1e-6
        original = bias.clone()
        bias += 1.0
        assert np.abs(runner.predict_chunk(observation) - chunk).max() > 1e-4
        bias.copy_(original)
        assert np.allclose(runner.predict_chunk(observation), chunk, atol=1e-6)


def test_objects_to_head_without_the_object_head_and_a_policy_without_one_are_refused(tmp_path, demo_take):
    with pytest.raises(ConfigError, match="objects_to_head needs object_loss > 0"):
        train(TrainConfig(sources=[str(demo_take)], out=str(tmp_path / "p.pt"), policy="baseline", steps=2,
                          hyperparameters={**SMALL_BASELINE, "objects_to_head": True}, **TINY))
    train(TrainConfig(sources=[str(demo_take)], out=str(tmp_path / "plain.pt"), policy="baseline", steps=2,
                      hyperparameters=SMALL_BASELINE, **TINY))
    runner = PolicyRunner(tmp_path / "plain.pt")
    with AlignedEpisode(demo_take) as take:
        runner.reset(take.metadata["instruction"])
        with pytest.raises(ConfigError, match="no object head"):
            runner.estimate_objects({"qpos": take.read("observations/qpos")[0],
                                     "images": {"head": take.images("head", [0])[0]}})


def _positions_policy(**hyperparameters):
    from collector.policy.base import PolicySpec
    from collector.policy.baseline import BaselinePolicy

    spec = PolicySpec(cameras=["head"], image_size=(30, 40), state_dim=5, action_dim=5, chunk=4, vocabulary_size=4,
                      object_targets=15)
    torch.manual_seed(0)
    return BaselinePolicy(spec, **{**SMALL_BASELINE, "film": True, "object_loss": 1.0, "objects_to_head": True,
                                   **hyperparameters})


def _batch(seed):
    generator = torch.Generator().manual_seed(seed)
    return {"images": torch.rand(2, 1, 3, 30, 40, generator=generator), "state": torch.zeros(2, 5),
            "conditioning": torch.tensor([[0, 2], [1, 3]]), "action": torch.zeros(2, 4, 5),
            "action_is_pad": torch.zeros(2, 4, dtype=torch.bool)}


def test_an_action_head_without_images_sees_the_cameras_only_through_the_object_estimate():
    positions, usual = _positions_policy(images_to_head=False), _positions_policy()
    assert usual.head[0].in_features - positions.head[0].in_features == usual.object_head[0].in_features - 32
    one, other = _batch(1), _batch(2)
    with torch.no_grad():
        for policy in (positions, usual):  # the estimate fixed: only the usual head still sees the pictures
            policy.object_head[-1].weight.zero_()
        assert torch.equal(positions.predict_chunk(one), positions.predict_chunk(other))
        assert not torch.allclose(usual.predict_chunk(one), usual.predict_chunk(other))
    with pytest.raises(TypeError, match="images_to_head=false needs objects_to_head=true"):
        _positions_policy(images_to_head=False, objects_to_head=False)


@pytest.mark.parametrize("detached", [False, True])
def test_a_detached_estimate_keeps_the_action_loss_out_of_the_object_head(detached):
    from collector.policy.base import masked_l1

    policy = _positions_policy(images_to_head=False, detach_objects=detached)
    batch = _batch(3)
    masked_l1(policy.predict_chunk(batch), batch["action"] + 1.0, batch["action_is_pad"]).backward()
    reached = policy.object_head[-1].weight.grad
    assert (reached is None or float(reached.abs().sum()) == 0.0) == detached
    assert float(policy.head[0].weight.grad.abs().sum()) > 0


def _recorded_batch(n, objects, mask=True):
    generator = torch.Generator().manual_seed(n)
    return {"images": torch.rand(n, 1, 3, 30, 40, generator=generator), "state": torch.zeros(n, 5),
            "conditioning": torch.tensor([[0, 2]] * n), "objects": objects,
            "objects_mask": torch.full((n, 15), mask, dtype=torch.bool)}


def _head_inputs(policy, batch):
    seen = []
    hook = policy.head[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        policy.predict_chunk(batch)
    hook.remove()
    return seen[0]


def test_steering_by_the_record_feeds_recorded_positions_in_training_and_the_estimate_when_acting():
    policy = _positions_policy(images_to_head=False, steer_recorded=True)
    recorded = torch.linspace(-1, 1, 15).repeat(3, 1)
    batch = _recorded_batch(3, recorded)
    policy.train()
    assert torch.equal(_head_inputs(policy, batch)[:, -15:], recorded)  # the record, not the estimate
    other_pictures = dict(batch, images=torch.rand(3, 1, 3, 30, 40))
    assert torch.equal(policy.predict_chunk(batch), policy.predict_chunk(other_pictures))
    unrecorded = _recorded_batch(3, recorded, mask=False)  # a real robot's take: the estimate
    with torch.no_grad():
        estimate = policy.predict_objects(unrecorded)
    assert torch.equal(_head_inputs(policy, unrecorded)[:, -15:], estimate)
    policy.eval()  # acting (and validation): the estimate, whatever the batch carries
    assert torch.equal(_head_inputs(policy, batch)[:, -15:], estimate)


def test_steering_noise_is_drawn_in_metres_and_bad_settings_are_refused():
    policy = _positions_policy(images_to_head=False, steer_recorded=True, steer_noise_m=0.01)
    policy.set_object_scale(torch.full((15,), 0.02))  # 2 cm per normalized unit: 1 cm is 0.5
    policy.train()
    torch.manual_seed(5)
    noise = _head_inputs(policy, _recorded_batch(400, torch.zeros(400, 15)))[:, -15:]
    assert abs(float(noise.std()) - 0.5) < 0.02 and abs(float(noise.mean())) < 0.02
    with pytest.raises(TypeError, match="steer_recorded needs an object input"):
        _positions_policy(objects_to_head=False, steer_recorded=True)
    with pytest.raises(TypeError, match="steer_noise_m must be >= 0"):
        _positions_policy(steer_recorded=True, steer_noise_m=-0.01)


def test_training_with_steering_by_the_record_keeps_the_targets_scale(tmp_path, demo_take):
    out = tmp_path / "steered.pt"
    train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=3, seed=0,
                      hyperparameters={**SMALL_BASELINE, "film": True, "object_loss": 1.0, "objects_to_head": True,
                                       "steer_recorded": True, "steer_noise_m": 0.008}, **TINY))
    with AlignedEpisode(demo_take) as take:
        names = object_names([take])
        expected = target_statistics([episode_object_targets(take, names)])["std"]
    saved = Checkpoint.load(out).weights["object_std"].numpy()
    assert np.allclose(saved, expected, rtol=1e-5)
