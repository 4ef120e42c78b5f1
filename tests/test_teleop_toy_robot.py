"""A small two-arm robot (6-DoF arms, slide grippers, pan/tilt head) written as MJCF + robot YAML,
to prove the teleop stack works for any robot the YAML describes, not only the bundled humanoid."""
from helpers.toy_robots import write_toy_robot


def test_toy_robot_loads_and_its_arms_reach_with_the_same_ik(tmp_path):
    from collector.robot import load_robot
    from collector.teleop.config import load_teleop_config
    from collector.teleop.ik import ArmIK, RobotKinematics

    spec = load_robot(str(write_toy_robot(tmp_path)))
    kin = RobotKinematics(spec)
    ik = ArmIK(kin, load_teleop_config().ik, 0.01, {j: 3.0 for j in spec.command_joints})
    assert len(ik.limits) == 3  # configuration, velocity and collision limits from the YAML pairs
    home = kin.ee_poses(kin.q_home)
    targets = {side: (pos + [0.05, 0.0, -0.04], quat) for side, (pos, quat) in home.items()}
    q = kin.q_home.copy()
    for _ in range(150):
        result = ik.solve(q, targets)
        q = result.q
    assert max(result.position_error.values()) < 0.003
    assert q[spec.command_joints.index("pan")] == kin.q_home[spec.command_joints.index("pan")]
