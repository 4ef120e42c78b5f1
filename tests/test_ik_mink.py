"""mink IK on the humanoid: convergence, limits, frozen joints, arm-torso collision avoidance."""
import mujoco
import numpy as np
import pytest

from collector.errors import ConfigError
from collector.teleop.config import load_teleop_config
from collector.teleop.ik import ArmIK, RobotKinematics

DT = 0.01


@pytest.fixture(scope="module")
def humanoid_ik(humanoid):
    """The humanoid, its kinematics and a 2 rad/s velocity limit on every commanded joint."""
    kin = RobotKinematics(humanoid)
    vel = {j: 2.0 for j in humanoid.command_joints}
    return humanoid, kin, vel


def make_ik(humanoid_ik, **ik_overrides):
    spec, kin, vel = humanoid_ik
    return ArmIK(kin, load_teleop_config(overrides={"ik": ik_overrides}).ik, DT, vel)


def test_reachable_targets_converge_and_other_joints_stay(humanoid_ik):
    spec, kin, vel = humanoid_ik
    ik = make_ik(humanoid_ik)
    lo, hi = kin.position_limits()
    rng = np.random.default_rng(3)
    arm_idx = ik.ik_cmd_idx
    for trial in range(4):
        # A target the arm can reach exactly: forward kinematics of a random nearby arm posture.
        q_goal = kin.q_home.copy()
        q_goal[arm_idx] = np.clip(q_goal[arm_idx] + rng.uniform(-0.35, 0.35, arm_idx.size), lo[arm_idx], hi[arm_idx])
        targets = kin.ee_poses(q_goal)
        q = kin.q_home.copy()
        ik.reset()
        for _ in range(250):
            result = ik.solve(q, targets)
            assert result.ok, result.error
            step = np.abs(result.q - q)
            assert np.all(step <= 2.0 * DT + 1e-9)  # the velocity limit binds inside the IK too
            q = result.q
            assert np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9)
        assert max(result.position_error.values()) < 0.002, (trial, result.position_error)
        frozen = np.setdiff1d(np.arange(len(q)), arm_idx)
        np.testing.assert_array_equal(q[frozen], kin.q_home[frozen])  # waist, head, grippers untouched


def palm_torso_distance(kin, q):
    data = kin.data
    data.qpos[:] = kin.full_q(q)
    mujoco.mj_forward(kin.model, data)
    palm = mujoco.mj_name2id(kin.model, mujoco.mjtObj.mjOBJ_GEOM, "left_palm")
    torso = mujoco.mj_name2id(kin.model, mujoco.mjtObj.mjOBJ_GEOM, "torso_geom")
    return mujoco.mj_geomDistance(kin.model, data, palm, torso, 1.0, None)


def test_collision_avoidance_keeps_the_hand_out_of_the_torso(humanoid_ik):
    spec, kin, vel = humanoid_ik
    torso_centre = np.array([0.0, 0.0, 1.21])
    home = kin.ee_poses(kin.q_home)
    target = {"left": (torso_centre, home["left"][1]), "right": None}
    ik = make_ik(humanoid_ik)
    q = kin.q_home.copy()
    closest = np.inf
    for _ in range(300):
        q = ik.solve(q, target).q
        closest = min(closest, palm_torso_distance(kin, q))
    assert closest > 0.0, "the IK drove the palm into the torso"

    # Without the collision limit the same target does go through the torso: the limit is what helps.
    import copy
    bare = copy.copy(spec)
    bare.ik_collision_pairs = []
    ik_bare = ArmIK(RobotKinematics(bare), load_teleop_config().ik, DT, vel)
    q = kin.q_home.copy()
    for _ in range(300):
        q = ik_bare.solve(q, target).q
    assert palm_torso_distance(kin, q) < 0.0


def test_bad_ik_config_is_a_config_error(humanoid_ik):
    with pytest.raises(ConfigError, match="ik.groups"):
        make_ik(humanoid_ik, groups=["left_arm", "tail"])
