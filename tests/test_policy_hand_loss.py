"""The hand loss (`hand_loss`): an action loss measured where the hands go. Forward kinematics in torch that
equal MuJoCo's and carry gradients, a loss that is the distance between where the predicted and the recorded
joint targets put the hands, and a policy that trains on it from a real take (conftest.py's `demo_take`).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.errors import ConfigError
from collector.policy.baseline import OFFSET_SCALE_M, BaselinePolicy
from collector.policy.base import PolicySpec
from collector.policy.checkpoint import Checkpoint
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.hand_chain import HandChain
from collector.policy.runner import PolicyRunner
from collector.policy.train import TrainConfig, train

torch.set_num_threads(1)
pytestmark = pytest.mark.slow
ARM_AND_WAIST = ["right_elbow", "waist_yaw", "left_shoulder_pitch", "left_shoulder_roll", "left_shoulder_yaw",
                 "left_elbow", "left_wrist_yaw", "left_wrist_pitch", "right_shoulder_pitch", "left_finger_a"]
TINY = dict(cameras=["head"], image_size=(30, 40), chunk=10, batch_size=16, lr=1e-3, progress=False,
            checkpoint_every=10_000, plot=False)
HAND_LOSS = {"cnn_channels": [8, 16, 32], "feature_channels": 8, "hidden": 128, "hand_loss": 1.0}


def test_the_hand_chain_is_mujocos_forward_kinematics_and_has_gradients():
    # a shuffled subset of the joints: the others (the right wrist, the waist's pitch) stay at home
    chain = HandChain("humanoid", ARM_AND_WAIST)
    reference = EndEffectorKinematics("humanoid", ARM_AND_WAIST)
    states = np.random.default_rng(1).uniform(-1.0, 1.0, (64, len(ARM_AND_WAIST)))
    computed = chain(torch.tensor(states)).numpy()
    assert computed.shape == (64, 6)
    assert np.abs(computed - reference.positions(states)).max() < 1e-6
    assert np.abs(computed[0] - computed[1]).max() > 0.01
    # leading dimensions are kept (a batch of chunks), float32 works
    chunked = chain(torch.tensor(states.reshape(8, 8, -1), dtype=torch.float32))
    assert chunked.shape == (8, 8, 6) and np.abs(chunked.reshape(64, 6).numpy() - computed).max() < 1e-5
    # the gradient is the kinematics' own (finite differences), and the finger moves no hand
    q = torch.tensor(states[:3], requires_grad=True)
    assert torch.autograd.gradcheck(chain, (q,), eps=1e-6, atol=1e-6)
    chain(q).sum().backward()
    assert torch.all(q.grad[:, ARM_AND_WAIST.index("left_finger_a")] == 0)
    assert torch.all(q.grad[:, ARM_AND_WAIST.index("left_elbow")].abs() > 0)


def test_the_hand_chain_refuses_unknown_joints_and_another_robot_model():
    with pytest.raises(ConfigError, match="has no joint 'elbow_of_nobody' of the policy's actions"):
        HandChain("humanoid", ["left_elbow", "elbow_of_nobody"])
    with pytest.raises(ConfigError, match="is not the one the episodes were recorded with"):
        HandChain("humanoid", ["left_elbow"], model_hash="0" * 64)


def test_the_hand_loss_is_the_distance_between_where_the_predicted_and_recorded_targets_put_the_hands():
    joints = ARM_AND_WAIST
    spec = PolicySpec(cameras=[], image_size=(30, 40), state_dim=len(joints), action_dim=len(joints), chunk=5,
                      vocabulary_size=3)
    policy = BaselinePolicy(spec, hidden=32, hand_loss=2.0)
    mean, std = np.linspace(-0.3, 0.3, len(joints)), np.linspace(0.2, 0.6, len(joints))
    policy.set_hand_chain(HandChain("humanoid", joints), mean, std)
    rng = np.random.default_rng(4)
    predicted, recorded = rng.normal(size=(2, 3, 5, len(joints)))
    is_pad = np.zeros((3, 5), bool)
    is_pad[0, 3:] = True  # steps past an episode's end count for nothing
    recorded[0, 3:] += 50.0
    value = policy._hands_l1(torch.tensor(predicted, dtype=torch.float32),
                             {"action": torch.tensor(recorded, dtype=torch.float32), "action_is_pad": torch.tensor(is_pad)})
    kinematics = EndEffectorKinematics("humanoid", joints)
    distances = [np.abs(kinematics.positions(p * std + mean) - kinematics.positions(r * std + mean)).mean()
                 for p, r in zip(predicted.reshape(-1, len(joints)), recorded.reshape(-1, len(joints)))]
    expected = np.mean(np.array(distances)[~is_pad.reshape(-1)]) / OFFSET_SCALE_M
    assert float(value) == pytest.approx(expected, rel=1e-4)
    # a policy whose trainer gave it no kinematics cannot compute it, and says so
    with pytest.raises(TypeError, match="hand_loss needs the robot's kinematics"):
        BaselinePolicy(spec, hidden=32, hand_loss=1.0)._hands_l1(torch.zeros(1, 5, len(joints)),
                                                                  {"action": torch.zeros(1, 5, len(joints)),
                                                                   "action_is_pad": torch.zeros(1, 5, dtype=torch.bool)})


def test_a_policy_trained_with_the_hand_loss_learns_where_the_takes_hands_go(tmp_path, demo_take):
    out = tmp_path / "hands.pt"
    result = train(TrainConfig(sources=[str(demo_take)], out=str(out), policy="baseline", steps=150, seed=0,
                               hyperparameters=HAND_LOSS, **TINY))
    hands = [p["hands"] for p in result.parts]
    first, last = np.mean(hands[:10]), np.mean(hands[-10:])
    assert last < 0.5 * first, (first, last)  # decimetres per coordinate, falling with the joint L1
    assert last < 0.3  # within 3 cm per coordinate after 150 steps on one take
    # the loss is training only: the checkpoint runs without the kinematics
    runner = PolicyRunner(out)
    assert "hand_loss" in runner.policy.hyperparameters and Checkpoint.load(out).spec.end_effectors == 0
    from collector.dataset.episode import AlignedEpisode

    with AlignedEpisode(demo_take) as take:
        metadata, state, frame = take.metadata, take.read("observations/qpos")[0], take.images("head", [0])[0]
    runner.reset(metadata["instruction"])
    assert np.isfinite(runner.predict_chunk({"qpos": state, "images": {"head": frame}})).all()


def test_hand_loss_errors_are_one_line(tmp_path):
    from collector.dataset.synthetic import write_synthetic_episode

    write_synthetic_episode(tmp_path / "data", "episode_000001", duration_s=1.0, camera_fps=15.0, robot="")
    config = dict(sources=[str(tmp_path / "data")], out=str(tmp_path / "p.pt"), steps=2, **TINY)
    with pytest.raises(ConfigError, match="hand_loss needs episodes of one named robot model"):
        train(TrainConfig(policy="baseline", hyperparameters=HAND_LOSS, **config))
    with pytest.raises(ConfigError, match="hand_loss must be a weight >= 0, got -1"):
        train(TrainConfig(policy="baseline", hyperparameters={**HAND_LOSS, "hand_loss": -1}, **config))
    with pytest.raises(ConfigError, match=r"unknown ACT hyperparameter\(s\) \['hand_loss'\]"):
        train(TrainConfig(policy="act", hyperparameters={"hand_loss": 1.0}, **config))
    assert not (tmp_path / "p.pt").exists()
