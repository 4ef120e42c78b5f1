"""The grasp gate (collector/policy/grasp_gate.py): a gripper held open while its hand is higher than the gate
above the policy's own estimate of the target, until a close goes through; in the runner, from the same
network pass as the chunk; in `collector eval --grasp-gate-mm`, through the real loop into the episode.

The policy is a tiny `ee_to_head` baseline trained for a few steps on the session's demo take (conftest.py),
then made to see the target at a chosen place (its target scale set to zero, so the estimate is the mean)
and to command its grippers closed on every tick (the action statistics of the finger columns), so what
the gate does is visible in every command.
"""
import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.cli import main
from collector.errors import ConfigError
from collector.policy.assists import Assists
from collector.policy.checkpoint import Checkpoint
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.grasp_gate import GatedGripper, GraspGate, grasp_gate_for
from collector.policy.normalization import ACTION, Normalizer
from collector.policy.runner import PolicyRunner
from collector.recorder import EpisodeReader
from collector.robot import load_robot
from helpers.policy_seeds import known_seeds
from helpers.tiny_baselines import collect_policy_take, first_frame, train_tiny_baseline

torch.set_num_threads(1)
OPEN, CLOSED = 0.045, 0.0
FINGERS = ("left_finger_a", "right_finger_a")


def _gate(height_m=0.03):
    return GraspGate([GatedGripper(column=0, open=OPEN, closed=CLOSED, hand=0),
                      GatedGripper(column=1, open=OPEN, closed=CLOSED, hand=1)], height_m)


def _hands(left_z, right_z):
    return np.array([0.35, 0.2, left_z, 0.35, -0.2, right_z])


def test_a_close_is_held_open_while_the_hand_is_high_then_goes_through_and_the_gate_stands_aside():
    gate, target = _gate(), np.array([0.4, 0.2, 0.80])
    closing = np.array([0.0, 0.0, 7.0])  # both grippers closing; the third column is not a gripper
    held = gate.apply(closing, _hands(0.85, 0.95), target)  # 5 and 15 cm above the target
    assert held.tolist() == [OPEN, OPEN, 7.0] and gate.held_ticks == 2
    opening = np.array([OPEN, 0.04, 7.0])  # an open command, and one barely closing: nothing to hold for the first
    assert gate.apply(opening, _hands(0.85, 0.95), target).tolist() == [OPEN, OPEN, 7.0]
    # down at the target (2 cm above its centre): the close goes through, and from then on the gate stands aside
    assert gate.apply(closing, _hands(0.82, 0.95), target).tolist() == [0.0, OPEN, 7.0]
    assert gate.apply(closing, _hands(0.95, 0.95), target).tolist() == [0.0, OPEN, 7.0]  # the lift: still closed
    gate.reset()
    assert gate.apply(closing, _hands(0.95, 0.95), target).tolist() == [OPEN, OPEN, 7.0]


def test_a_slight_close_down_at_the_target_does_not_release_the_gate():
    """Only a command a third of the way closed counts as the close: the ensembled command starts closing
    gradually, and the gate must still hold if the hand rises again before it has closed."""
    gate, target = _gate(), np.array([0.4, 0.2, 0.80])
    assert gate.apply(np.array([0.04, OPEN]), _hands(0.81, 1.0), target)[0] == 0.04  # low: passes, not released
    assert gate.apply(np.array([0.04, OPEN]), _hands(0.90, 1.0), target)[0] == OPEN  # high again: held
    assert gate.released == [False, False]


@pytest.mark.parametrize("height", [0.0, -0.01, float("nan"), float("inf"), "3"])
def test_a_bad_gate_height_is_refused(height):
    with pytest.raises(ConfigError, match="grasp gate height must be a positive number of metres"):
        _gate(height)


def test_the_humanoids_gate_finds_both_grippers_in_the_action_and_their_hands():
    robot = load_robot("humanoid")
    names = list(robot.command_joints)
    gate = grasp_gate_for(robot, names, 0.03)
    assert [(g.column, g.open, g.closed, g.hand) for g in gate.grippers] == [
        (names.index("left_finger_a"), OPEN, CLOSED, 0), (names.index("right_finger_a"), OPEN, CLOSED, 1)]
    with pytest.raises(ConfigError, match="no gripper in the policy's action"):
        grasp_gate_for(robot, [n for n in names if n not in FINGERS], 0.03)


# -- in the runner and in `collector eval` --------------------------------------------------------------
@pytest.fixture(scope="module")
def hands_policy(tmp_path_factory, demo_take):
    root = tmp_path_factory.mktemp("grasp_gate")
    return Checkpoint.load(train_tiny_baseline(root, demo_take, "hands").checkpoint), root


def _seeing(checkpoint: Checkpoint, target, path):
    """The checkpoint made to estimate the target at `target` and to command its grippers closed."""
    weights = dict(checkpoint.weights, target_mean=torch.tensor(target, dtype=torch.float32),
                   target_std=torch.zeros(3))
    action = checkpoint.normalizer.stats[ACTION]
    mean, m2 = action.mean.copy(), action.m2.copy()
    for finger in FINGERS:
        column = checkpoint.action_names.index(finger)
        mean[column], m2[column] = -0.05, 0.0  # beyond closed; the std is then the floor (1 cm)
    stats = dict(checkpoint.normalizer.stats, **{ACTION: dataclasses.replace(action, mean=mean, m2=m2)})
    changed = dataclasses.replace(checkpoint, weights=weights,
                                  normalizer=Normalizer(stats, checkpoint.normalizer.std_floor))
    return changed.save(path)


def test_the_runner_holds_the_policys_close_while_its_hand_is_above_its_estimate(hands_policy, demo_take):
    checkpoint, root = hands_policy
    observation, instruction = first_frame(demo_take)
    hands = EndEffectorKinematics("humanoid", checkpoint.joint_names).positions(observation["qpos"][None])[0]
    columns = [checkpoint.action_names.index(f) for f in FINGERS]
    others = [i for i in range(len(checkpoint.action_names)) if i not in columns]
    below = _seeing(checkpoint, [0.4, 0.0, min(hands[2], hands[5]) - 0.10], root / "below.pt")  # 10 cm under both
    gated, plain = PolicyRunner(below, assists=Assists(grasp_gate_m=0.03)), PolicyRunner(below)
    assert gated.network.frozen and plain.network.frozen, (gated.network.reason, plain.network.reason)
    for runner in (gated, plain):
        runner.reset(instruction)
    for _ in range(3):
        held, free = gated.step(observation), plain.step(observation)
        assert held[columns].tolist() == [OPEN, OPEN] and (free[columns] < 0).all()  # the policy closes; held open
        np.testing.assert_allclose(held[others], free[others], atol=1e-5)  # everything else is the policy's
    assert gated.grasp_gate.held_ticks == 6
    # the estimate comes from the same pass as the chunk: at the hands' height, the close goes through
    level = _seeing(checkpoint, [0.4, 0.0, max(hands[2], hands[5]) - 0.01], root / "level.pt")
    gated = PolicyRunner(level, assists=Assists(grasp_gate_m=0.03))
    gated.reset(instruction)
    assert (gated.step(observation)[columns] < 0).all() and gated.grasp_gate.released == [True, True]


def test_the_gate_needs_a_policy_that_estimates_the_target_and_knows_its_hands(hands_policy, tiny_checkpoint):
    with pytest.raises(ConfigError, match="the grasp gate needs a policy that estimates the target"):
        PolicyRunner(tiny_checkpoint, assists=Assists(grasp_gate_m=0.03))  # an ACT: no object head, no hands


def test_eval_with_the_gate_keeps_the_grippers_open_above_the_target_in_the_recorded_commands(
        hands_policy, demo_take, tmp_path, capsys):
    checkpoint, root = hands_policy
    hands = EndEffectorKinematics("humanoid", checkpoint.joint_names).positions(
        first_frame(demo_take)[0]["qpos"][None])[0]
    below = _seeing(checkpoint, [0.4, 0.0, min(hands[2], hands[5]) - 0.30], tmp_path / "below.pt")
    seed = known_seeds(below, 1)
    out = tmp_path / "eval"
    assert main(["eval", str(below), "--seeds", "1", "--seed-base", str(seed), "--max-seconds", "1.0",
                 "--lighting", "bright", "--weight", "light", "--grasp-gate-mm", "30", "--hold-estimate-mm", "120",
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["grasp_gate_m"] == 0.03 and summary["hold_estimate_m"] == 0.12 and summary["rollouts"] == 1
    results = json.loads((out / "results.json").read_text())
    assert results["grasp_gate_m"] == 0.03 and results["hold_estimate_m"] == 0.12 and not results["steer_hands"]
    (episode,) = sorted((out / "episodes").glob("*.hdf5"))
    with EpisodeReader(episode) as reader:
        names = list(reader.streams["command"].attrs["joint_names"])
        command = reader.raw("command", "position")[: reader.count("command")]
    fingers = command[:, [names.index(f) for f in FINGERS]]
    assert len(fingers) > 50 and np.abs(fingers - OPEN).max() < 1e-4  # the policy commands them closed (-0.05)


@pytest.mark.parametrize("flags, message", [
    (["--grasp-gate-mm", "-5"], "--grasp-gate-mm must be a positive number of millimetres"),
    (["--grasp-gate-mm", "30", "--hold-estimate-mm", "nan"], "--hold-estimate-mm must be a positive number"),
    (["--hold-estimate-mm", "120"], "--hold-estimate-mm needs --grasp-gate-mm or --steer-hands"),
])
def test_a_bad_assist_on_the_command_line_is_one_line(hands_policy, tmp_path, capsys, flags, message):
    checkpoint, _ = hands_policy
    code = main(["eval", str(checkpoint.path), "--seeds", "1", *flags, "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1


def test_collect_with_a_policy_takes_the_gate_from_the_teleop_config(hands_policy, demo_take, tmp_path):
    """`collect --plan --policy --teleop-config`: `policy.grasp_gate_mm` reaches the policy driving the takes, and
    the recorded commands of its ticks keep the grippers open above the target."""
    checkpoint, _ = hands_policy
    hands = EndEffectorKinematics("humanoid", checkpoint.joint_names).positions(
        first_frame(demo_take)[0]["qpos"][None])[0]
    below = _seeing(checkpoint, [0.4, 0.0, min(hands[2], hands[5]) - 0.30], tmp_path / "below.pt")
    names, command = collect_policy_take(tmp_path, below, "policy: {grasp_gate_mm: 30}\n")
    fingers = command[:, [names.index(f) for f in FINGERS]]
    assert len(fingers) > 50 and np.abs(fingers - OPEN).max() < 1e-4  # the policy commands them closed (-0.05)
