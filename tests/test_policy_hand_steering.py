"""Hand steering (collector/policy/hand_steering.py): a hand near the target sent to the policy's estimate of
the target plus its predicted offset, by the teleop's IK (mink), from the policy's own joint targets; the
offsets the policy learns (`hand_offsets`, collector/policy/baseline.py); in the runner from the same network
pass as the chunk; and `collector eval --steer-hands`.

The policy is a tiny `ee_to_head` + `hand_offsets` baseline trained for a few steps on the session's demo take
(conftest.py), then made to see the target at a chosen place (its target scale zero, so the estimate is the
mean) and to predict a chosen offset (the offset outputs' weights zero, their bias the offset), so where the
steered hand must go is known exactly.
"""
import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.cli import main
from collector.errors import ConfigError
from collector.policy.assists import Assists
from collector.policy.baseline import OFFSET_SCALE_M
from collector.policy.checkpoint import Checkpoint
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.hand_steering import HandSteering
from collector.policy.normalization import ACTION, Normalizer
from collector.policy.runner import PolicyRunner
from collector.robot import load_robot
from helpers.tiny_baselines import collect_policy_take, first_frame, train_tiny_baseline

torch.set_num_threads(1)
ROBOT = load_robot("humanoid")
NAMES = list(ROBOT.command_joints)
FINGERS, OPEN = ("left_finger_a", "right_finger_a"), 0.045


def _hands(action):
    return EndEffectorKinematics("humanoid", NAMES).positions(np.asarray(action)[None])[0].reshape(2, 3)


def test_a_hand_near_the_target_goes_to_the_target_plus_its_offset_and_nothing_else_moves():
    steering, home = HandSteering(ROBOT, NAMES), ROBOT.home_vector()
    left, right = _hands(home)
    goal = right + np.array([0.03, -0.02, -0.02])
    offsets = np.concatenate([left - goal + 0.2, [0.0, 0.0, 0.02]])  # left 35 cm away: not steered
    steered = steering.apply(home, offsets, goal - [0.0, 0.0, 0.02])
    new_left, new_right = _hands(steered)
    assert np.linalg.norm(new_right - goal) < 0.003, new_right - goal
    np.testing.assert_allclose(new_left, left, atol=1e-9)
    not_right_arm = [i for i, j in enumerate(NAMES) if j not in ROBOT.groups["right_arm"]]
    np.testing.assert_allclose(steered[not_right_arm], home[not_right_arm], atol=1e-9)
    assert steering.steered_ticks == 1


def test_the_steering_fades_out_between_near_and_far():
    steering, home = HandSteering(ROBOT, NAMES, near_m=0.06, far_m=0.12), ROBOT.home_vector()
    right = _hands(home)[1]
    far = np.array([0.0, 0.0, 0.09])  # halfway between near and far: half the way to the goal
    moved = _hands(steering.apply(home, np.concatenate([[1.0, 1.0, 1.0], far]), right - far + [0.04, 0.0, 0.0]))[1]
    assert abs((moved - right)[0] - 0.02) < 0.003, moved - right
    beyond = np.array([0.0, 0.0, 0.13])
    untouched = steering.apply(home, np.concatenate([[1.0, 1.0, 1.0], beyond]), right - beyond + [0.04, 0.0, 0.0])
    np.testing.assert_array_equal(untouched, home)


def test_once_the_hands_gripper_has_been_closed_for_a_while_it_is_not_steered_again_in_the_take():
    steering, home = HandSteering(ROBOT, NAMES, release_ticks=3), ROBOT.home_vector()
    right = _hands(home)[1]
    offsets, target = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.02]), right - [0.03, 0.0, 0.02]
    goal = target + offsets[3:]
    closing = home.copy()
    closing[NAMES.index("right_finger_a")] = 0.0  # closed
    for _ in range(2):  # the fingers are shutting: the hand stays where it is sent
        assert np.linalg.norm(_hands(steering.apply(closing, offsets, target))[1] - goal) < 0.003
    np.testing.assert_array_equal(steering.apply(closing, offsets, target), closing)  # the third closed tick
    np.testing.assert_array_equal(steering.apply(home, offsets, target), home)  # open again: still released
    assert steering.released == [False, True]
    steering.reset()
    assert np.linalg.norm(_hands(steering.apply(home, offsets, target))[1] - goal) < 0.003


def test_a_goal_the_ik_cannot_solve_leaves_the_policys_own_targets():
    """A non-finite estimate (the IK's solver finds no solution) costs the steering that tick, not the take."""
    steering, home = HandSteering(ROBOT, NAMES), ROBOT.home_vector()
    out = steering.apply(home, np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.02]), np.array([np.nan, 0.0, 1.0]))
    np.testing.assert_array_equal(out, home)
    assert steering.steered_ticks == 0


@pytest.mark.parametrize("near, far", [(0.1, 0.05), (-0.01, 0.1), (float("nan"), 0.1)])
def test_bad_steering_distances_are_refused(near, far):
    with pytest.raises(ConfigError, match="hand steering: need 0 <= near < far"):
        HandSteering(ROBOT, NAMES, near_m=near, far_m=far)
    with pytest.raises(ConfigError, match="release_ticks must be a whole number >= 1"):
        HandSteering(ROBOT, NAMES, release_ticks=0)


# -- learned, and in the runner ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def offsets_policy(tmp_path_factory, demo_take):
    root = tmp_path_factory.mktemp("hand_steering")
    result = train_tiny_baseline(root, demo_take, "offsets", steps=40, batch_size=8, hand_offsets=1.0)
    return Checkpoint.load(result.checkpoint), root, result


def test_training_with_hand_offsets_learns_where_the_hands_go_relative_to_the_target(offsets_policy):
    _, _, result = offsets_policy
    curve = [parts["offsets"] for parts in result.parts]
    assert len(curve) >= 2 and np.isfinite(curve).all()
    assert np.mean(curve[-5:]) < 0.8 * np.mean(curve[:5]), curve  # decimetres, L1: it learns


def _placing(checkpoint: Checkpoint, target, offsets, path):
    """The checkpoint made to estimate the target at `target`, to place the hands at `offsets` (3 x hands)
    from it on every step of its chunk, and to hold its grippers open (a closed one is not steered)."""
    policy = checkpoint.build_policy("cpu")
    last = f"head.{len(policy.head) - 1}"
    width, chunk, actions = policy.spec.action_dim + policy.offset_width, policy.spec.chunk, policy.spec.action_dim
    fingers = [checkpoint.action_names.index(f) for f in FINGERS]
    placed = [k * width + actions + j for k in range(chunk) for j in range(policy.offset_width)]
    held = [k * width + f for k in range(chunk) for f in fingers]
    weight, bias = checkpoint.weights[f"{last}.weight"].clone(), checkpoint.weights[f"{last}.bias"].clone()
    weight[placed + held] = 0.0
    bias[placed] = torch.tensor(np.tile(offsets, chunk) / OFFSET_SCALE_M, dtype=bias.dtype)
    bias[held] = 0.0  # normalized 0: the statistics' mean, set to open below
    weights = dict(checkpoint.weights, target_mean=torch.tensor(target, dtype=torch.float32),
                   target_std=torch.zeros(3), **{f"{last}.weight": weight, f"{last}.bias": bias})
    action = checkpoint.normalizer.stats[ACTION]
    mean = action.mean.copy()
    mean[fingers] = OPEN
    stats = dict(checkpoint.normalizer.stats, **{ACTION: dataclasses.replace(action, mean=mean)})
    return dataclasses.replace(checkpoint, weights=weights,
                               normalizer=Normalizer(stats, checkpoint.normalizer.std_floor)).save(path)


def test_the_runner_sends_the_hand_to_its_estimate_plus_its_offset_from_the_same_pass(offsets_policy, demo_take):
    checkpoint, root, _ = offsets_policy
    observation, instruction = first_frame(demo_take)
    target = np.array([0.40, -0.18, 0.95])
    offsets = np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.015])  # the left hand half a metre away: not steered
    placed = _placing(checkpoint, target, offsets, root / "placed.pt")
    steered, unsteered = PolicyRunner(placed, assists=Assists(steer_hands=True)), PolicyRunner(placed)
    assert steered.network.frozen, steered.network.reason
    for runner in (steered, unsteered):
        runner.reset(instruction)
    action, own = steered.step(observation), unsteered.step(observation)
    goal = target + offsets[3:]
    assert np.linalg.norm(_hands(own)[1] - goal) > 0.02  # where the policy's joint targets alone send it
    assert np.linalg.norm(_hands(action)[1] - goal) < 0.004
    assert steered.steering.steered_ticks == 1
    right_arm = [NAMES.index(j) for j in ROBOT.groups["right_arm"]]
    others = [i for i in range(len(NAMES)) if i not in right_arm]
    np.testing.assert_allclose(action[others], own[others], atol=1e-5)


def test_steering_needs_a_policy_that_predicts_its_hands_offsets(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(ConfigError, match="hand steering needs a policy that predicts its hands' offsets"):
        PolicyRunner(tiny_checkpoint, assists=Assists(steer_hands=True))
    code = main(["eval", str(tiny_checkpoint), "--seeds", "1", "--seed-base", "1000000", "--steer-hands",
                 "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code != 0 and "hand steering needs a policy" in err and len(err.strip().splitlines()) == 1


def test_collect_with_a_policy_takes_hand_steering_from_the_teleop_config(offsets_policy, tmp_path):
    """`collect --plan --policy --teleop-config`: `policy.steer_hands` reaches the policy driving the takes, and
    the recorded commands of its ticks bring the right hand to the estimate plus the offset."""
    checkpoint, _, _ = offsets_policy
    offsets = np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.015])
    goal = np.array([0.40, -0.18, 0.965])  # within reach of the tiny policy's arm pose (its wrist at a limit)
    placed = _placing(checkpoint, goal - offsets[3:], offsets, tmp_path / "placed.pt")
    names, steered = collect_policy_take(tmp_path, placed, "policy: {steer_hands: true}\n")
    assert len(steered) > 50 and names == NAMES
    assert np.linalg.norm(_hands(steered[-1])[1] - goal) < 0.005


def test_a_held_estimate_keeps_the_steered_hand_on_the_target_it_saw_from_afar(offsets_policy, demo_take, tmp_path):
    """`hold_estimate_m`: once a hand is that near the estimate, a new estimate (the policy now sees the target
    3 cm away, as it does when its hand comes into view around it) does not move the steered hand."""
    checkpoint, _, _ = offsets_policy
    observation, instruction = first_frame(demo_take)
    target, offsets = np.array([0.40, -0.18, 0.95]), np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.015])
    placed = _placing(checkpoint, target, offsets, tmp_path / "placed.pt")
    held = PolicyRunner(placed, assists=Assists(steer_hands=True, hold_estimate_m=0.12))
    newest = PolicyRunner(placed, assists=Assists(steer_hands=True))
    assert held.checkpoint.joint_names == NAMES  # so a command can stand for the joint state below
    assert np.linalg.norm(_hands(observation["qpos"]) - target, axis=1).min() > 0.12  # both hands far at first
    steered = [runner.reset(instruction) or runner.step(observation) for runner in (held, newest)][0]
    assert np.linalg.norm(_hands(steered)[1] - (target + offsets[3:])) < 0.004  # the right hand now 1.5 cm above it
    moved = target + np.array([0.0, 0.03, 0.0])
    for runner in (held, newest):
        runner.policy.target_mean.copy_(torch.tensor(moved))
    near = dict(observation, qpos=steered)
    hands = {name: _hands(runner.step(near))[1] for name, runner in (("held", held), ("newest", newest))}
    assert np.linalg.norm(hands["held"] - (target + offsets[3:])) < 0.004
    assert np.linalg.norm(hands["newest"] - (moved + offsets[3:])) < 0.004
    assert held.held.held_ticks == 1


def test_holding_the_estimate_needs_something_that_reads_it(offsets_policy):
    checkpoint, _, _ = offsets_policy
    with pytest.raises(ConfigError, match="holding the target estimate needs the grasp gate or hand steering"):
        PolicyRunner(checkpoint, assists=Assists(hold_estimate_m=0.12))
