"""collector's ROS 2 nodes as separate processes talking over real DDS on this machine.

Every run uses its own ROS_DOMAIN_ID (from the pid) and localhost-only discovery, so runs in
parallel never see each other. COLLECTOR_ROS_TEST_SECONDS sets the length of the recording test
(default 8 s of sim time; the issue's full run is 60).
"""
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from collector.errors import DeviceError
from collector.recorder import EpisodeReader, recover_episode, validate_episode
from collector.ros.conversions import joint_trajectory_msg
from collector.ros.environment import domain_id_for_pid, ros_environment
from collector.ros.runtime import RosRuntime
from helpers.ros_nodes import NodeProcess

# rosidl's parser (lark) imports deprecated stdlib modules; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = domain_id_for_pid()
SECONDS = float(os.environ.get("COLLECTOR_ROS_TEST_SECONDS", "8"))
CAMERAS = ("head", "left_wrist", "right_wrist")
START_TIMEOUT_S = 120.0  # a node imports mujoco, builds the scene and discovers its peers


@pytest.fixture(scope="module")
def ros_env():
    env = ros_environment(domain_id=DOMAIN)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.fixture(scope="module")
def test_node():
    """The test's own rclpy node: calls services, watches topics, sends commands."""
    runtime = RosRuntime("collector_ros_test", domain_id=DOMAIN, handle_signals=False).start()
    yield runtime
    runtime.close()


@pytest.fixture
def processes():
    started = []
    yield started
    for p in started:
        p.close()


def start(processes, args, env, tmp_path, name) -> NodeProcess:
    node = NodeProcess(args, env, tmp_path / f"{name}.log")
    processes.append(node)
    return node


def call_trigger(runtime, service: str, timeout: float = START_TIMEOUT_S) -> str:
    from std_srvs.srv import Trigger
    from collector.ros.services import NoAnswer, ServiceNotAvailable, call_trigger as call

    client = runtime.node.create_client(Trigger, service)
    try:
        response = call(client, timeout)
    except ServiceNotAvailable:
        raise AssertionError(f"service {service} never appeared") from None
    except NoAnswer:
        raise AssertionError(f"{service} did not answer") from None
    finally:
        runtime.node.destroy_client(client)
    assert response.success, f"{service}: {response.message}"
    return response.message


class Latest:
    """Keeps the newest message of a topic (JSON strings decoded)."""

    def __init__(self, runtime, msg_type, topic, qos, json_data=False):
        self.value = None
        self.count = 0
        self._json = json_data
        self.sub = runtime.node.create_subscription(msg_type, topic, self._on, qos)

    def _on(self, msg):
        self.value = json.loads(msg.data) if self._json else msg
        self.count += 1

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.value is not None and predicate(self.value):
                return self.value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last value: {self.value}")


class WaistCommander:
    """Answers every /clock tick (100 Hz of sim time) with a one-point trajectory swaying the waist,
    stamped with that tick, so every camera sees motion and the commands sit on the sim's timeline."""

    def __init__(self, runtime):
        from rosgraph_msgs.msg import Clock
        from trajectory_msgs.msg import JointTrajectory
        from collector.robot import load_robot
        from collector.ros.qos import qos_for

        robot = load_robot("humanoid")
        self.names = robot.command_joints
        self.home = robot.home_vector()
        self.waist = self.names.index("waist_yaw")
        self.sent = 0
        self.active = True
        self.pub = runtime.node.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                                 qos_for("command"))
        self.sub = runtime.node.create_subscription(Clock, "/clock", self._on_clock, qos_for("sensor"))

    def _on_clock(self, msg):
        if not self.active:
            return
        t = msg.clock.sec + msg.clock.nanosec * 1e-9
        q = self.home.copy()
        q[self.waist] = 0.25 * np.sin(2 * np.pi * 0.4 * t)
        self.pub.publish(joint_trajectory_msg(self.names, q, stamp=msg.clock))
        self.sent += 1


# ------------------------------------------------------------------------------------------------

def test_every_published_message_is_recorded_with_its_stamp(tmp_path, ros_env, test_node, processes):
    """Sim hardware in one process, recorder in another: 500 Hz joint states and three 30 Hz cameras,
    reliable QoS; what the recorder wrote equals what the sim published, stamps unchanged."""
    out = tmp_path / "episodes"
    recorder = start(processes, ["ros", "recorder", "-o", out, "--camera-qos", "reliable", "--illuminance", "on",
                                 "--no-discover-poses"], ros_env, tmp_path, "recorder")
    episode_id = call_trigger(test_node, "/recorder/start_episode")
    stats_file = tmp_path / "sim_stats.json"
    # The commander is there before the sim steps (--wait-for-commands), so the waist sways from the
    # first tick and no camera records a still scene (the episode QA would call it frozen).
    commander = WaistCommander(test_node)
    sim = start(processes, ["ros", "sim-hw", "--camera-qos", "reliable", "--cameras", ",".join(CAMERAS),
                            "--duration", SECONDS, "--wait-for-subscribers", START_TIMEOUT_S,
                            "--wait-for-commands", START_TIMEOUT_S, "--stats-file", stats_file],
                  ros_env, tmp_path, "sim")
    try:
        assert sim.wait(timeout=START_TIMEOUT_S + 40 * SECONDS) == 0, sim.log()[-3000:]
    finally:
        commander.active = False
    path = Path(call_trigger(test_node, "/recorder/stop_success"))
    assert recorder.stop() == 0, recorder.log()[-3000:]

    published = json.loads(stats_file.read_text())["published"]
    assert path.name == f"{episode_id}.hdf5" and path.exists()
    assert published["joint_states"] == round(SECONDS * 500)
    with EpisodeReader(path) as episode:
        why = f"published {published}; recorder saw {episode.metadata['ros_stream_counts']}"
        assert episode.count("joints") == published["joint_states"], why
        assert episode.count("illuminance") == published["illuminance"] > 0, why
        for cam in CAMERAS:
            assert episode.count(f"camera_{cam}") == published[f"camera_{cam}"] >= int(SECONDS * 30), why
            assert episode.count(f"camera_{cam}_receive") == published[f"camera_{cam}"], why
        # Stamps are the publisher's header stamps: sim time, one physics step (2 ms) apart.
        t = episode.stamps("joints")
        np.testing.assert_allclose(np.diff(t), 0.002, atol=1e-9)
        assert t[0] == pytest.approx(0.002, abs=1e-9)
        frames = episode.stamps("camera_head")
        np.testing.assert_allclose(np.diff(frames), 1 / 30, atol=0.0021)  # on the physics grid
        receive = episode.raw("joints", "receive_t")[:]
        assert np.all(np.diff(receive) >= 0) and abs(receive[-1] - time.time()) < 600
        commands = episode.count("command")
        assert commands > 10 * SECONDS  # the waist commands, stamped on the robot's clock
        md = episode.metadata
        assert md["sim"] is True and md["outcome"] == "success"
        assert md["conditions"]["lighting"] and md["conditions"]["weights"]["masses_kg"]
        assert sorted(md["camera_calibration"]) == sorted(CAMERAS)
        assert md["camera_calibration"]["head"]["k"][0] > 0
        assert md["instruction"].startswith("Put the")
        # The aligned view covers the span every stream has (the commands start last), at 30 Hz.
        streams = ["joints", "command", *(f"camera_{c}" for c in CAMERAS)]
        span = min(episode.stamps(s)[-1] for s in streams) - max(episode.stamps(s)[0] for s in streams)
        assert abs(episode.timestamps.shape[0] - span * 30) <= 2
    assert validate_episode(path) == []


def test_killing_the_recorder_mid_episode_leaves_a_recoverable_file(tmp_path, ros_env, test_node, processes):
    from std_msgs.msg import String
    from collector.ros.qos import qos_for

    out = tmp_path / "episodes"
    recorder = start(processes, ["ros", "recorder", "-o", out, "--cameras", "head", "--no-discover-poses"],
                     ros_env, tmp_path, "recorder")
    status = Latest(test_node, String, "/recorder/status", qos_for("control"), json_data=True)
    call_trigger(test_node, "/recorder/start_episode")
    sim = start(processes, ["ros", "sim-hw", "--cameras", "head", "--duration", 600], ros_env, tmp_path, "sim")
    recorded = lambda s: s["streams"].get("joints", {}).get("recorded", 0)  # noqa: E731
    before = status.wait(lambda s: recorded(s) > 1000, START_TIMEOUT_S, "joint states being recorded")
    time.sleep(1.5)  # > the writer's flush interval (0.5 s) after that status
    recorder.proc.send_signal(signal.SIGKILL)
    assert recorder.wait(10) == -signal.SIGKILL
    assert sim.stop() == 0, sim.log()[-3000:]

    partial = out / f"{before['episode_id']}.partial.h5"
    assert partial.exists() and not (out / f"{before['episode_id']}.hdf5").exists()
    final = recover_episode(partial)
    with EpisodeReader(final) as episode:
        assert episode.status == "recovered"
        n = episode.count("joints")
        assert n >= recorded(before)
        np.testing.assert_allclose(np.diff(episode.stamps("joints")), 0.002, atol=1e-9)  # nothing missing inside
        frames = episode.images("head")
        assert len(frames) >= 1 and frames[len(frames) - 1].shape == (240, 320, 3)
        assert episode.has_aligned_view


def test_a_pose_topic_that_appears_mid_episode_is_recorded_from_its_first_sample(tmp_path, ros_env, test_node,
                                                                                    processes):
    """A PoseStamped publisher that starts after the episode did (late DDS discovery, or a node
    started later) joins the open episode, every sample from the first one on (rosbag2 does the same)."""
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import String
    from collector.ros.conversions import pose_stamped_msg
    from collector.ros.qos import qos_for

    out = tmp_path / "episodes"
    # Its own node name: a recorder killed by an earlier test may linger in the DDS graph as /recorder.
    recorder = start(processes, ["ros", "recorder", "-o", out, "--no-cameras", "--illuminance", "off",
                                 "--node-name", "late_recorder"], ros_env, tmp_path, "recorder")
    status = Latest(test_node, String, "/late_recorder/status", qos_for("control"), json_data=True)
    episode_id = call_trigger(test_node, "/late_recorder/start_episode")
    status.wait(lambda s: s["state"] == "recording", START_TIMEOUT_S, "the episode to start")
    topic = f"/objects/late_cube_{os.getpid()}/pose"
    pub = test_node.node.create_publisher(PoseStamped, topic, qos_for("sensor"))
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the recorder polls the graph while recording
        assert pub.get_subscription_count() > 0, recorder.log()[-3000:]
        stream = f"pose_objects_late_cube_{os.getpid()}"
        status.wait(lambda s: stream in s["streams"], 30, f"{stream} in the recorder's status")
        sent = []
        for i in range(25):
            t = 100.0 + i / 30
            sec, nanosec = int(t), int(round((t - int(t)) * 1e9))
            pub.publish(pose_stamped_msg([0.1 * i, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0], Time(sec=sec, nanosec=nanosec),
                                         "world"))
            sent.append(sec + nanosec * 1e-9)
            time.sleep(0.02)
        status.wait(lambda s: s["streams"].get(stream, {}).get("recorded", 0) == len(sent), 30,
                    f"all {len(sent)} poses recorded")
        path = Path(call_trigger(test_node, "/late_recorder/stop_success"))
    finally:
        test_node.node.destroy_publisher(pub)
    assert recorder.stop() == 0, recorder.log()[-3000:]
    assert path.name == f"{episode_id}.hdf5"
    with EpisodeReader(path) as episode:
        np.testing.assert_allclose(episode.stamps(stream), sent, atol=1e-9)
        np.testing.assert_allclose(episode.raw(stream, "pose")[:, 0], [0.1 * i for i in range(25)])
        assert episode.streams[stream].attrs["topic"] == topic
        assert episode.metadata["streams_discovered_late"] == [stream]


def test_teleop_over_ros_completes_pick_and_place(tmp_path, ros_env):
    """`collector launch sim_session`: sim hardware + scripted teleop + recorder, three processes."""
    out = tmp_path / "episodes"
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "launch", "sim_session", f"output:={out}", "cameras:=none",
         "episodes:=1", "max_duration:=40", "--domain-id", str(DOMAIN)],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("[launch] teleop") and "exited" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()  # its nodes get SIGTERM from the kernel (the launcher sets PR_SET_PDEATHSIG)
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output[-4000:]
    summaries = [json.loads(x.split("] ", 1)[1]) for x in lines if x.startswith("[teleop] {")]
    assert len(summaries) == 1, output[-4000:]
    result = summaries[0]
    assert result["success"] and result["outcome"] == "success", result
    assert result["metrics"]["in_tray"] and result["metrics"]["released"]
    assert "sim_hardware (pid" in rest and "recorder (pid" in rest and "died" not in output
    path = Path(result["recorded"])
    with EpisodeReader(path) as episode:
        assert episode.metadata["outcome"] == "success"
        assert episode.count("command") > 100 and episode.count("joints") > 1000
        # The object pose topics are discovered when the episode starts or, under load (late DDS
        # discovery), while it records: either way they are in the file, with samples.
        poses = [name for name in episode.streams if name.startswith("pose_objects_")]
        assert poses and all(episode.count(name) > 0 for name in poses), episode.metadata.get("ros_stream_counts")
        # who commanded, published by the teleop per tick: the operator, on every tick
        codes = episode.streams["control"].attrs["sources"]
        assert episode.count("control") > 100 and set(episode.raw("control", "source")[:]) == {codes["operator"]}
    # The teleop loop paces itself on the wall clock: on a busy machine it ticks slower than its
    # 100 Hz, and QA rightly reports the gaps of the streams it ticks (command, control).
    # Everything else must be clean.
    problems = [p for p in validate_episode(path) if "'command'" not in p and "'control'" not in p]
    assert problems == []


def test_lost_joint_states_stop_commanding_and_bad_commands_are_rejected(tmp_path, ros_env, test_node, processes):
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory
    from collector.ros.backend import RosBackend
    from collector.ros.qos import qos_for

    from collector.ros.config import RosConfig

    sim = start(processes, ["ros", "sim-hw", "--no-cameras", "--duration", 600], ros_env, tmp_path, "sim")
    # Commands as forward_command_controller messages: one Float64MultiArray per joint group.
    backend = RosBackend("humanoid", config=RosConfig(command_interface="forward"), domain_id=DOMAIN,
                         node_name="lost_test", connect_timeout_s=START_TIMEOUT_S)
    try:
        state = backend.read_state()
        assert state.position.shape == (len(backend.robot.command_joints),)
        pan = backend.robot.command_joints.index("head_pan")
        target = backend.robot.home_vector()
        target[pan] = 0.3
        deadline = time.monotonic() + 30
        while abs(backend.read_state().position[pan] - 0.3) > 0.02 and time.monotonic() < deadline:
            backend.send_command(backend.now(), target)
            time.sleep(0.05)
        assert backend.read_state().position[pan] == pytest.approx(0.3, abs=0.02)  # the sim's head turned

        stats = Latest(test_node, String, "/sim_hardware/stats", qos_for("control"), json_data=True)
        pub = test_node.node.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                              qos_for("command"))
        bad_nan = joint_trajectory_msg(["waist_yaw"], [float("nan")])
        bad_name = joint_trajectory_msg(["no_such_joint"], [0.1])
        # A new publisher's first messages are lost until DDS discovery matches it with the sim's
        # subscription, so wait for the match and keep sending until the rejections are counted.
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pub.get_subscription_count() >= 1, "the sim never subscribed to the trajectory topic"
        latest = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pub.publish(bad_nan)
            pub.publish(bad_name)
            time.sleep(0.2)
            if stats.value is not None and stats.value["commands_rejected"] >= 2:
                latest = stats.value
                break
        assert latest is not None, f"the sim never rejected the bad commands; last stats: {stats.value}"
        assert "NaN" in latest["last_command_error"] or "unknown joint" in latest["last_command_error"]

        os.kill(sim.proc.pid, signal.SIGSTOP)  # the robot's driver hangs: no more joint states
        try:
            time.sleep(backend.config.joint_state_timeout_s + 0.5)
            sent = backend.commands_sent
            with pytest.raises(DeviceError, match="lost /joint_states"):
                backend.send_command(backend.now(), backend.robot.home_vector())
            with pytest.raises(DeviceError, match="stopped commanding"):
                backend.read_state()
            assert backend.commands_sent == sent and not backend.connected
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while not backend.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        backend.send_command(backend.now(), backend.robot.home_vector())  # back once the robot is
        assert sim.proc.poll() is None
    finally:
        backend.close()
    assert sim.stop() == 0, sim.log()[-3000:]


def test_commands_are_stamped_from_when_the_joint_state_arrived_not_from_its_late_callback(test_node):
    """A joint state that waits for a busy executor: the backend's estimate of robot time (which stamps the
    teleop's commands) counts from when DDS received it. Counted from the callback, a command was stamped
    before the robot states recorded after the take started (a clean-clone CI run of the policy-over-ROS test)."""
    import threading

    from sensor_msgs.msg import JointState
    from std_msgs.msg import Empty
    from collector.robot import load_robot
    from collector.ros.backend import RosBackend
    from collector.ros.config import RosConfig
    from collector.ros.conversions import joint_state_msg, stamp_from_seconds
    from collector.ros.qos import qos_for

    robot = load_robot("humanoid")
    config = RosConfig.for_robot(robot, joint_states_topic="/clock_test/joint_states")
    names = config.hardware_joint_names(robot.command_joints)
    joints = test_node.node.create_publisher(JointState, config.joint_states_topic, qos_for("state"))

    def publish(stamp_s):
        joints.publish(joint_state_msg(names, robot.home_vector(), stamp=stamp_from_seconds(stamp_s)))

    streaming = threading.Event()
    streaming.set()

    def robot_driver():  # 100 Hz of joint states until the backend is connected
        k = 0
        while streaming.is_set():
            publish(100.0 + 0.01 * k)
            k += 1
            time.sleep(0.01)

    driver = threading.Thread(target=robot_driver, daemon=True)
    driver.start()
    backend = RosBackend(robot, config=config, domain_id=DOMAIN, node_name="clock_test", sim_node="/clock_test_sim",
                         connect_timeout_s=START_TIMEOUT_S)
    try:
        streaming.clear()
        driver.join(5)
        # Something else on the backend's stream executor takes 0.6 s (a GIL-bound stall, a slow callback).
        busy = threading.Event()

        def stall(_msg):
            busy.set()
            time.sleep(0.6)

        backend.runtime.stream_node.create_subscription(Empty, "/clock_test/stall", stall, qos_for("command"))
        staller = test_node.node.create_publisher(Empty, "/clock_test/stall", qos_for("command"))
        deadline = time.monotonic() + 30
        while staller.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        staller.publish(Empty())
        assert busy.wait(30), "the stall never started"
        publish(500.0)
        published = time.monotonic()
        deadline = time.monotonic() + 30
        while backend.clock.now() < 500.0 and time.monotonic() < deadline:
            time.sleep(0.005)
        estimate, elapsed = backend.clock.now() - 500.0, time.monotonic() - published
        assert estimate > 0.0, "the sample published after the stall began was never taken"
        # Robot time went on from the publication; the sample's callback ran about 0.6 s after it arrived.
        assert elapsed > 0.4 and estimate > elapsed - 0.1, (estimate, elapsed)
    finally:
        streaming.clear()
        backend.close()
        test_node.node.destroy_publisher(joints)


def start_episode_in_background(test_node, recorder_name: str, publisher, recorder):
    """Once `publisher` is matched with the recorder, call its start_episode on a thread: (thread, result),
    the result {"id": episode id} once answered."""
    import threading

    deadline = time.monotonic() + START_TIMEOUT_S
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert publisher.get_subscription_count() > 0, recorder.log()[-3000:]
    started = {}
    starter = threading.Thread(target=lambda: started.update(id=call_trigger(
        test_node, f"{recorder_name}/start_episode")))
    starter.start()
    return starter, started


def test_a_teleop_announcing_its_sources_just_after_start_episode_still_gets_control_declared_at_start(
        tmp_path, ros_env, test_node, processes):
    """The control stream is declared from the teleop's announcement of its sources (transient local, so it
    arrives right after the match). A start_episode that came first declared it late, mid-episode (a
    clean-clone CI run of the policy-over-ROS test under load); now the recorder waits for the announcement
    of a matched control publisher."""
    from std_msgs.msg import String
    from collector.ros.config import RosConfig
    from collector.ros.control_topic import control_message, control_qos

    out = tmp_path / "episodes"
    recorder = start(processes, ["ros", "recorder", "-o", out, "--no-cameras", "--illuminance", "off",
                                 "--node-name", "control_recorder"], ros_env, tmp_path, "recorder")
    control = test_node.node.create_publisher(String, RosConfig().control_topic, control_qos())
    try:
        starter, started = start_episode_in_background(test_node, "/control_recorder", control, recorder)
        time.sleep(0.5)  # start_episode is being answered while the sources are not announced yet
        sources = {"operator": 0, "policy": 1}
        control.publish(String(data=control_message(sources)))
        starter.join(30)
        assert started.get("id"), "start_episode did not answer"
        for i in range(20):
            control.publish(String(data=control_message(sources, 50.0 + 0.01 * i, "policy")))
            time.sleep(0.01)
        time.sleep(0.5)
        path = Path(call_trigger(test_node, "/control_recorder/stop_episode"))
    finally:
        test_node.node.destroy_publisher(control)
    assert recorder.stop() == 0, recorder.log()[-3000:]
    with EpisodeReader(path) as episode:
        assert "control" not in (episode.metadata.get("streams_discovered_late") or [])
        assert episode.streams["control"].attrs["sources"] == sources
        assert episode.count("control") == 20


@pytest.mark.parametrize("known_first", ["robot", "teleop"])
def test_start_episode_waits_for_the_robots_first_joint_state(known_first, tmp_path, ros_env, test_node, processes):
    """A recorder that had just come up matched the teleop before the robot: start_episode answered, the
    teleop commanded, and the episode had commands and no robot state for its first 0.3 s (a clean-clone
    CI run of the policy-over-ROS test). start_episode now answers once the robot's first joint state has
    arrived: when the graph knows a joint state publisher ("robot"), and when it knows only a publisher
    commanding the robot, the robot not discovered yet ("teleop": a later CI run, 0.6 s without state)."""
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory
    from collector.robot import load_robot
    from collector.ros.config import RosConfig
    from collector.ros.conversions import joint_state_msg, stamp_from_seconds
    from collector.ros.qos import qos_for

    robot = load_robot("humanoid")
    config = RosConfig.for_robot(robot)
    names = config.hardware_joint_names(robot.command_joints)
    out = tmp_path / "episodes"
    recorder = start(processes, ["ros", "recorder", "-o", out, "--no-cameras", "--illuminance", "off",
                                 "--node-name", "joints_recorder"], ros_env, tmp_path, "recorder")
    publishers = {"robot": lambda: test_node.node.create_publisher(JointState, config.joint_states_topic,
                                                                   qos_for("state")),
                  "teleop": lambda: test_node.node.create_publisher(JointTrajectory, config.trajectory_topic,
                                                                    qos_for("command"))}
    first_known = publishers[known_first]()
    joints = first_known if known_first == "robot" else None
    ticks = itertools.count()

    def publish_state():
        joints.publish(joint_state_msg(names, robot.home_vector(), stamp=stamp_from_seconds(20.0 + 0.01 * next(ticks))))
        time.sleep(0.01)

    try:
        starter, started = start_episode_in_background(test_node, "/joints_recorder", first_known, recorder)
        time.sleep(1.0)  # matched, but the robot has not published (or not even appeared) yet
        assert not started, "start_episode answered before the robot's first joint state"
        joints = joints or publishers["robot"]()
        first = time.monotonic()
        while starter.is_alive() and time.monotonic() - first < 30:
            publish_state()
        assert started.get("id"), "start_episode did not answer"
        for _ in range(30):
            publish_state()
        path = Path(call_trigger(test_node, "/joints_recorder/stop_episode"))
    finally:
        for publisher in {id(p): p for p in (first_known, joints) if p is not None}.values():
            test_node.node.destroy_publisher(publisher)
    assert recorder.stop() == 0, recorder.log()[-3000:]
    with EpisodeReader(path) as episode:
        assert episode.count("joints") >= 25


STUCK_TEARDOWN = """
import sys, time
from collector.cli import main
from collector.ros import runtime

real_close = runtime.RosRuntime.close


def close_with_a_stuck_teardown(self):
    # Stands in for what a clean-clone CI run met: the recorder's ROS teardown still running 10 s after
    # SIGINT on a loaded machine, until the launcher's SIGKILL.
    for executor in self._executors:
        real_shutdown = executor.shutdown
        executor.shutdown = lambda timeout_sec=None, real=real_shutdown: (time.sleep(60), real(timeout_sec))[1]
    print("tearing ROS down", flush=True)
    real_close(self)


runtime.RosRuntime.close = close_with_a_stuck_teardown
sys.exit(main(sys.argv[1:]))
"""


def test_a_recorder_whose_ros_teardown_hangs_has_finalized_its_take_and_exits_on_the_launchers_sigterm(
        tmp_path, ros_env):
    """The launcher's escalation (SIGINT, then SIGTERM after its timeout) against a recorder recording a
    take whose DDS teardown hangs: the take is finalized before the teardown starts, and the SIGTERM
    ends the process at once (a clean stop to the launcher), not the launcher's SIGKILL."""
    import threading

    from collector.ros.launch_file import ProcessSpec
    from collector.ros.process_group import ProcessGroup

    out_dir = tmp_path / "episodes"
    lines = []

    class Out:
        def write(self, text):
            lines.extend(t for t in text.splitlines() if t)

        def flush(self):
            pass

    spec = ProcessSpec(name="recorder", argv=[sys.executable, "-c", STUCK_TEARDOWN, "ros", "recorder", "--robot",
                                              "humanoid", "--output", str(out_dir), "--no-cameras", "--start",
                                              "--start-delay", "0.2", "--node-name", "stuck_recorder"])
    group = ProcessGroup([spec], base_env=ros_env, sigterm_timeout=3.0, sigkill_timeout=30.0, out=Out())

    def stop_once_recording():
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not any("recording" in line for line in lines):
            time.sleep(0.05)
        time.sleep(0.5)
        group.request_stop()

    threading.Thread(target=stop_once_recording, daemon=True).start()
    started = time.monotonic()
    assert group.run() == 0, "\n".join(lines[-30:])
    text = "\n".join(lines)
    assert "tearing ROS down" in text and "sending SIGTERM to recorder" in text, text[-3000:]
    # SIGTERM during the teardown is the kernel's: it ends the process even inside a C call.
    assert "exited cleanly (killed by SIGTERM)" in text, text[-3000:]
    assert "sending SIGKILL" not in text and time.monotonic() - started < START_TIMEOUT_S + 20
    finalized = [json.loads(line.split("] ", 1)[1]) for line in lines if line.startswith("[recorder] {\"recorder\"")]
    path = Path(finalized[0]["recorder"]["finalized"])
    assert path.is_file() and path.parent == out_dir
    with EpisodeReader(path) as episode:
        assert episode.metadata["status"] == "complete" and episode.metadata["outcome"] == "unknown"


STALLED_LISTENER = """
import rclpy
from sensor_msgs.msg import JointState
from collector.ros.qos import qos_for

rclpy.init()
node = rclpy.create_node("stalled_listener")
heard = []
node.create_subscription(JointState, "/joint_states", heard.append, qos_for("state"))
while not heard:
    rclpy.spin_once(node, timeout_sec=0.1)
print("listening", flush=True)
while True:
    rclpy.spin_once(node, timeout_sec=0.1)
"""


@pytest.mark.parametrize("second, status", [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_sim_hardware_stopping_on_a_stalled_subscriber_exits_at_the_second_signal(
        tmp_path, ros_env, processes, second, status):
    """A reliable subscriber that stops acknowledging (a frozen process: SIGSTOP) makes the sim hardware's
    final flush block in rclpy's C code. A second signal (a supervisor's SIGTERM, a second Ctrl-C) must
    end the process at once: before the fix it was held 2 s behind the flush and then ignored."""
    sim = start(processes, ["ros", "sim-hw", "--no-cameras", "--duration", 600], ros_env, tmp_path, "sim")
    listener = subprocess.Popen([sys.executable, "-c", STALLED_LISTENER], env=ros_env, stdout=subprocess.PIPE,
                                text=True, start_new_session=True)
    try:
        assert listener.stdout.readline().strip() == "listening"
        time.sleep(0.5)
        os.kill(listener.pid, signal.SIGSTOP)
        time.sleep(0.5)  # the sim keeps publishing: messages the frozen listener will never acknowledge
        sim.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        sent = time.monotonic()
        sim.proc.send_signal(second)
        code = sim.wait(timeout=30)
        waited = time.monotonic() - sent
    finally:
        listener.kill()  # SIGKILL ends a stopped process too
        listener.wait()
    assert code == status, sim.log()[-2000:]
    assert waited < 1.0, f"exited {waited:.2f} s after the second signal; log:\n{sim.log()[-2000:]}"
