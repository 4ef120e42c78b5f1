"""The dexterous humanoid over ROS 2 (issue 16): `collector ros sim-hw --robot humanoid_dex` in its own process
publishes the finger joints on /joint_states and follows finger commands sent the ros2_control way the arms use,
one forward_command_controller group per hand (/<group>_controller/commands) or a JointTrajectory naming the
finger joints; and the teleop side's RosBackend commands the hands through the same topics."""
import os
import time
from pathlib import Path

import numpy as np
import pytest

from collector.robot import load_robot
from collector.ros.environment import domain_id_for_pid, ros_environment
from collector.ros.runtime import RosRuntime
from helpers.ros_nodes import NodeProcess

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = (domain_id_for_pid() + 7) % 100  # not test_ros_nodes' domain, should both run in one session
START_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def dex():
    return load_robot("humanoid_dex")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    env = ros_environment(domain_id=DOMAIN)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    node = NodeProcess(["ros", "sim-hw", "--robot", "humanoid_dex", "--no-cameras", "--duration", 600], env,
                       tmp_path_factory.mktemp("ros_dex") / "sim.log")
    yield node
    node.stop()
    node.close()


@pytest.fixture(scope="module")
def test_node(sim):
    runtime = RosRuntime("collector_ros_dex_test", domain_id=DOMAIN, handle_signals=False).start()
    yield runtime
    runtime.close()


class JointStates:
    def __init__(self, runtime):
        from sensor_msgs.msg import JointState
        from collector.ros.qos import qos_for

        self.latest = None
        self.sub = runtime.node.create_subscription(JointState, "/joint_states", self._on, qos_for("state"))

    def _on(self, msg):
        self.latest = dict(zip(msg.name, msg.position))

    def wait(self, predicate, timeout: float, what: str, sim):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.latest is not None and predicate(self.latest):
                return self.latest
            assert sim.proc.poll() is None, f"sim-hw exited:\n{sim.log()[-3000:]}"
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last: {self.latest}\n{sim.log()[-2000:]}")


def _publish_until(publisher, msg, done, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publisher.publish(msg)
        if done():
            return True
        time.sleep(0.05)
    return False


def test_sim_hw_publishes_the_finger_joints_and_follows_a_hand_group_command(sim, test_node, dex):
    from std_msgs.msg import Float64MultiArray
    from collector.ros.conversions import float64_array
    from collector.ros.qos import qos_for

    states = JointStates(test_node)
    first = states.wait(lambda s: True, START_TIMEOUT_S, "the dex robot's first joint state", sim)
    assert set(dex.command_joints) <= set(first)
    for side in ("left", "right"):
        for joint in dex.groups[f"{side}_hand"]:
            assert first[joint] == pytest.approx(dex.home[joint], abs=0.05)  # the hands rest at home

    # forward_command_controller: the right hand's group, its joints in the group's order
    hand = dex.groups["right_hand"]
    target = np.array([dex.home[j] for j in hand])
    target[hand.index("right_index_flexion")] = 1.2
    target[hand.index("right_thumb_rotation")] = 1.4
    pub = test_node.node.create_publisher(Float64MultiArray, "/right_hand_controller/commands", qos_for("command"))
    msg = Float64MultiArray()
    msg.data = float64_array(target)
    reached = lambda: (states.latest is not None and abs(states.latest["right_index_flexion"] - 1.2) < 0.03
                       and abs(states.latest["right_thumb_rotation"] - 1.4) < 0.03)
    assert _publish_until(pub, msg, reached), f"the finger never followed; last: {states.latest}"
    now = states.latest
    assert now["left_index_flexion"] == pytest.approx(dex.home["left_index_flexion"], abs=0.05)  # only that hand
    assert now["right_middle_flexion"] == pytest.approx(dex.home["right_middle_flexion"], abs=0.05)


def test_ros_backend_commands_the_hands_through_the_trajectory_topic(sim, test_node, dex):
    """The teleop side (RosBackend, JointTrajectory of every command joint, as the arms are commanded) closes the
    left hand in the power synergy and reads the finger joints back from /joint_states."""
    from collector.ros.backend import RosBackend
    from collector.teleop.hand_synergies import HandSynergies

    backend = RosBackend("humanoid_dex", domain_id=DOMAIN, node_name="dex_backend_test",
                         connect_timeout_s=START_TIMEOUT_S)
    try:
        target = HandSynergies(dex).apply(backend.read_state().position, "left", "power", 0.8)
        left = [dex.command_joints.index(j) for j in dex.hands["left"].joints]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            backend.send_command(backend.now(), target)
            if np.max(np.abs(backend.read_state().position[left] - target[left])) < 0.04:
                break
            time.sleep(0.05)
        position = backend.read_state().position
        np.testing.assert_allclose(position[left], target[left], atol=0.04)
        assert backend.robot.command_joints == dex.command_joints
    finally:
        backend.close()
