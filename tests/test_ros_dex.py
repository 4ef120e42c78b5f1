"""The dexterous humanoid over ROS 2 (issue 16): `collector ros sim-hw --robot humanoid_dex` in its own process
publishes the finger joints on /joint_states and follows finger commands sent the ros2_control way the arms use,
one forward_command_controller group per hand (/<group>_controller/commands) or a JointTrajectory naming the
finger joints; and the teleop side's RosBackend commands the hands through the same topics. Touch and grasp
force travel on /hand_touch and /grasp_force into the recorder node's `hand_touch` and `grasp_force` streams."""
import itertools
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


# -- touch and grasp force over ROS 2 ------------------------------------------------------------------

class Readings:
    """Every /hand_touch or /grasp_force message the test node sees: stamp -> (names, effort)."""

    def __init__(self, runtime, topic):
        from sensor_msgs.msg import JointState
        from collector.ros.qos import qos_for

        self.by_stamp = {}
        self.sub = runtime.node.create_subscription(JointState, topic, self._on, qos_for("state"))

    def _on(self, msg):
        from collector.ros.conversions import seconds_from_stamp

        self.by_stamp[round(seconds_from_stamp(msg.header.stamp), 6)] = (list(msg.name), np.array(msg.effort))


def test_touch_and_grasp_force_are_published_and_recorded_as_the_simulator_records_them(sim, test_node, dex, tmp_path):
    """sim-hw (its own process) publishes /hand_touch and /grasp_force; the recorder node (in this process,
    over DDS) records them as the `hand_touch` and `grasp_force` streams the sim backend records (names,
    fields, attrs), each sample equal to the message with its stamp, while the right hand closes."""
    from collector.backends.sim import SimBackend
    from collector.recorder import EpisodeReader, validate_episode
    from collector.ros.config import RosConfig
    from collector.ros.conversions import joint_trajectory_msg
    from collector.ros.qos import qos_for
    from collector.ros.recorder_node import RecorderNode, RecorderOptions
    from collector.sim import SimEnv
    from collector.teleop.hand_synergies import HandSynergies
    from trajectory_msgs.msg import JointTrajectory

    runtime = RosRuntime("dex_recorder", domain_id=DOMAIN, handle_signals=False, stream_lane=True)
    recorder = RecorderNode(runtime, dex, RosConfig.for_robot(dex),
                            RecorderOptions(output_dir=tmp_path / "episodes", cameras=[], discover_poses=False,
                                            record_illuminance=False))
    runtime.start()
    touch, force = Readings(test_node, "/hand_touch"), Readings(test_node, "/grasp_force")
    states = JointStates(test_node)
    pub = test_node.node.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                          qos_for("command"))
    try:
        current = states.wait(lambda s: True, START_TIMEOUT_S, "joint states", sim)
        home = np.array([current[j] for j in dex.command_joints])
        closed = HandSynergies(dex).apply(home, "right", "power", 0.9)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (runtime.node.count_publishers("/grasp_force") and runtime.node.count_publishers("/hand_touch")
                   and pub.get_subscription_count() >= 2) and time.monotonic() < deadline:
            time.sleep(0.05)  # discovery: the sim's hand topics, and sim-hw and the recorder on the commands
        recorder.start_episode()
        seen_at_start = len(force.by_stamp)
        right_closed = lambda: states.latest is not None and max(
            abs(states.latest[j] - closed[dex.command_joints.index(j)]) for j in dex.hands["right"].joints) < 0.05
        deadline = time.monotonic() + 90
        for i in itertools.count():  # home, then the right hand closes; at least 1.2 s of sim time (a loaded sim is slow)
            pub.publish(joint_trajectory_msg(dex.command_joints, home if i < 30 else closed))
            time.sleep(0.01)
            if i >= 150 and right_closed() and len(force.by_stamp) - seen_at_start >= 120:
                break
            assert time.monotonic() < deadline, f"the hand did not close; {states.latest}\n{sim.log()[-2000:]}"
        path = Path(recorder.stop_episode("success"))
    finally:
        runtime.close()

    expected = {s.name: s for s in SimBackend(SimEnv(robot="humanoid_dex", task="pick_place"), render=False).hand_streams()}
    right = [dex.command_joints.index(j) for j in dex.hands["right"].joints]
    with EpisodeReader(path) as episode:
        for stream, readings in (("hand_touch", touch), ("grasp_force", force)):
            spec = episode.streams[stream]
            assert set(spec.fields) == set(expected[stream].fields) | {"receive_t"}
            for key in ("names", "sensors", "units", "unit"):
                assert spec.attrs.get(key) == expected[stream].attrs.get(key), f"{stream} attrs[{key}]"
            stamps = episode.stamps(stream)
            assert len(stamps) >= 100, f"{stream}: {len(stamps)} samples in >= 1.2 s at 100 Hz"
            np.testing.assert_allclose(np.diff(stamps), 0.01, atol=1e-6)  # 100 Hz on the sim clock
            names = spec.attrs["sensors"] if stream == "hand_touch" else spec.attrs["names"]  # as published
            compared = 0
            for k, t in enumerate(stamps):
                published = readings.by_stamp.get(round(float(t), 6))
                if published is None:
                    continue
                by_name = dict(zip(*published))
                for side in names:
                    sent = [by_name[n] for n in names[side]]
                    np.testing.assert_array_equal(episode.raw(stream, side)[k], sent, err_msg=f"{stream} {side} t={t}")
                compared += 1
            assert compared >= 0.9 * len(stamps), "the test node saw the messages the recorder recorded"
        grip = episode.raw("grasp_force", "right")[:]
        assert np.abs(grip).max() > 0.05, "closing fingers take actuator force"
        assert np.abs(episode.raw("grasp_force", "left")[:]).max() < np.abs(grip).max() / 5, "the left hand stayed"
        np.testing.assert_allclose(episode.raw("joints", "position")[-1][right], closed[right], atol=0.05)
    # QA passes the hand streams (the test's own 100 Hz commands, sent by sleeping, may have gaps under load)
    problems = validate_episode(path)
    assert not [p for p in problems if "hand_touch" in p or "grasp_force" in p], problems


def test_hand_readings_are_read_by_name_in_any_order_and_a_missing_sensor_is_one_line(dex):
    from collector.errors import DataError
    from collector.ros.config import RosConfig
    from collector.ros.conversions import joint_state_msg
    from collector.ros.hand_topics import HandTopics

    topics = HandTopics(dex, RosConfig())
    touch = {side: np.arange(len(names), dtype=float) + (10 if side == "left" else 20)
             for side, names in topics.touch_sensors.items()}
    msg = topics.touch_msg(touch, None)
    order = list(reversed(range(len(msg.name))))  # a driver listing them the other way round, plus one extra
    shuffled = joint_state_msg([msg.name[i] for i in order] + ["wrist_camera_temp"], [],
                               effort=[msg.effort[i] for i in order] + [41.0])
    for side, values in topics.read_touch(shuffled).items():
        np.testing.assert_array_equal(values, touch[side])
    with pytest.raises(DataError, match="missing joints.*right_palm_touch"):
        topics.read_touch(joint_state_msg([n for n in msg.name if n != "right_palm_touch"], [],
                                          effort=np.zeros(len(msg.name) - 1)))
    with pytest.raises(DataError, match="effort contains NaN"):
        topics.read_force(topics.force_msg({s: np.full(6, np.nan) for s in topics.sides}, None))
