"""The hands' positions as a policy input (`ee_to_head`): forward kinematics of the joint state that match the
simulator's own end-effector sites, and a baseline that trains on them, carries their statistics in its
checkpoint and computes them again wherever it runs (conftest.py's `demo_take`: a real scripted take).
"""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.dataset.episode import AlignedEpisode
from collector.errors import ConfigError
from collector.policy.checkpoint import Checkpoint
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.runner import PolicyRunner
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
pytestmark = pytest.mark.slow
TINY = dict(cameras=["head"], image_size=(30, 40), chunk=10, batch_size=16, lr=1e-3, progress=False,
            checkpoint_every=10_000, plot=False)
HANDS = {"cnn_channels": [8, 16, 32], "feature_channels": 8, "hidden": 128, "film": True, "object_loss": 1.0,
         "ee_to_head": True}


def test_hand_positions_are_where_the_simulator_puts_the_end_effector_sites():
    import mujoco

    from collector.sim.env import SimEnv

    env = SimEnv(task="pick_place")
    env.reset(seed=5)
    kinematics = EndEffectorKinematics("humanoid", env.robot.command_joints, env.robot.model_hash)
    assert kinematics.sites == ["left_ee", "right_ee"] and kinematics.width == 6
    rng = np.random.default_rng(0)
    index = env.robot.qpos_indices(env.model)
    states = env.data.qpos[index] + rng.normal(0.0, 0.3, (5, len(index)))
    computed = kinematics.positions(states)
    for state, row in zip(states, computed):
        env.data.qpos[index] = state
        mujoco.mj_kinematics(env.model, env.data)
        scene = np.concatenate([env.data.site(s).xpos for s in kinematics.sites])
        assert np.abs(row - scene).max() < 1e-5  # the scene's world frame is the robot model's
    assert np.abs(computed[0] - computed[1]).max() > 0.01  # the joints move the hands


def test_kinematics_refuse_another_robot_model_and_unknown_joints():
    with pytest.raises(ConfigError, match="is not the one the policy's hand positions were learned on"):
        EndEffectorKinematics("humanoid", ["left_elbow"], model_hash="0" * 64)
    with pytest.raises(ConfigError, match="has no joint 'elbow_of_nobody'"):
        EndEffectorKinematics("humanoid", ["left_elbow", "elbow_of_nobody"])
    with pytest.raises(ConfigError, match="joint state has 3 values; the hand positions need 1"):
        EndEffectorKinematics("humanoid", ["left_elbow"]).positions(np.zeros(3))


def test_a_policy_trained_with_its_hands_positions_carries_them_and_acts_on_them(tmp_path, demo_take):
    out = tmp_path / "hands.pt"
    train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=40, seed=0,
                      hyperparameters=HANDS, **TINY))
    checkpoint = Checkpoint.load(out)
    spec = checkpoint.spec
    with AlignedEpisode(demo_take) as take:
        metadata, states = take.metadata, take.read("observations/qpos")
        frame = take.images("head", [0])[0]
    assert (spec.end_effectors, spec.robot, spec.robot_model_hash) == (6, "humanoid", metadata["conditions"]["robot_model_hash"])
    hands = EndEffectorKinematics("humanoid", checkpoint.joint_names).positions(states)
    # the statistics the policy normalizes with are the take's own hand positions
    np.testing.assert_allclose(checkpoint.weights["ee_mean"].numpy(), hands.mean(0), atol=1e-5)
    np.testing.assert_allclose(checkpoint.weights["ee_std"].numpy(), np.maximum(hands.std(0), 0.01), atol=1e-5)
    runner = PolicyRunner(out)
    runner.warm_up()
    runner.reset(metadata["instruction"])
    observation = {"qpos": states[0], "images": {"head": frame}}
    chunk = runner.predict_chunk(observation)
    assert np.isfinite(chunk).all()
    # hands and hand-to-target vectors (2 x 6) are inputs of the action MLP, and they reach the chunk
    plain = type(runner.policy)(spec, **{**checkpoint.hyperparameters, "ee_to_head": False})
    assert runner.policy.head[0].in_features == plain.head[0].in_features + 12
    runner.policy.ee_mean += 0.05
    assert np.abs(runner.predict_chunk(observation) - chunk).max() > 1e-4
    runner.policy.ee_mean -= 0.05
    # a checkpoint saved again predicts the same (the statistics travel with the weights)
    again = PolicyRunner(checkpoint.save(tmp_path / "again.pt"))
    again.reset(metadata["instruction"])
    np.testing.assert_allclose(again.predict_chunk(observation), chunk, atol=1e-6)
    # a robot whose model changed since is refused in one line, before any step
    moved = dataclasses.replace(checkpoint, spec=dataclasses.replace(spec, robot_model_hash="f" * 64))
    with pytest.raises(ConfigError, match="is not the one the policy's hand positions were learned on"):
        PolicyRunner(moved.save(tmp_path / "moved.pt"))


def test_resuming_a_hands_policy_is_the_uninterrupted_run(tmp_path, demo_take):
    straight, first = tmp_path / "straight.pt", tmp_path / "first.pt"
    train(TrainConfig(sources=[str(demo_take)], out=str(straight), policy="baseline", steps=12, seed=3,
                      hyperparameters=HANDS, **TINY))
    train(TrainConfig(sources=[str(demo_take)], out=str(first), policy="baseline", steps=6, seed=3,
                      hyperparameters=HANDS, **TINY))
    train(TrainConfig(sources=[str(demo_take)], out=str(first), policy="baseline", steps=12, seed=3,
                      resume=str(first), hyperparameters=HANDS, **TINY))
    a, b = Checkpoint.load(straight).weights, Checkpoint.load(first).weights
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_hands_without_a_named_robot_are_one_line(tmp_path):
    from collector.dataset.synthetic import write_synthetic_episode

    write_synthetic_episode(tmp_path / "data", "episode_000001", duration_s=1.0, camera_fps=15.0, robot="")
    with pytest.raises(ConfigError, match="ee_to_head needs episodes of one named robot model"):
        train(TrainConfig(sources=[str(tmp_path / "data")], out=str(tmp_path / "p.pt"), policy="baseline", steps=2,
                          hyperparameters={k: v for k, v in HANDS.items() if k != "object_loss"}, **TINY))
