"""collector.ros pieces that need no running graph: conversions, config, launch files, process supervision."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from collector.errors import ConfigError, DataError, DeviceError
from collector.paths import launch_dir
from collector.ros import conversions as conv
from collector.ros.command_intake import CommandIntake
from collector.ros.config import RosConfig
from collector.ros.environment import FASTDDS_PROFILE, domain_id_for_pid, ros_environment
from collector.ros.launch_file import ProcessSpec, read_launch_file, split_command
from collector.ros.process_group import ProcessGroup
from collector.ros.robot_clock import RobotClock, delivery_delay


# -- environment -----------------------------------------------------------------------------------

def test_domain_ids_stay_in_the_portable_range_and_follow_the_pid():
    ids = {domain_id_for_pid(pid) for pid in range(1, 5000)}
    assert min(ids) == 1 and max(ids) == 101
    assert domain_id_for_pid(1234) != domain_id_for_pid(1235)


def test_environment_defaults_to_localhost_and_the_shipped_profile_but_keeps_user_choices():
    env = ros_environment(base={}, domain_id=7)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["ROS_DOMAIN_ID"] == "7"
    assert Path(env["FASTDDS_DEFAULT_PROFILES_FILE"]) == FASTDDS_PROFILE and FASTDDS_PROFILE.is_file()
    mine = ros_environment(base={"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my.xml",
                                 "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_DOMAIN_ID": "3"})
    assert mine["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/my.xml"
    assert mine["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and mine["ROS_DOMAIN_ID"] == "3"
    with pytest.raises(DeviceError, match="outside"):
        ros_environment(base={}, domain_id=500)


def test_shipped_fastdds_profile_has_a_large_shm_segment_and_loopback_udp():
    import xml.etree.ElementTree as ET

    root = ET.parse(FASTDDS_PROFILE).getroot()
    ns = {"d": "http://www.eprosima.com"}
    sizes = [int(e.text) for e in root.iterfind(".//d:segment_size", ns)]
    assert sizes and min(sizes) >= 640 * 480 * 3 * 4
    assert [e.text for e in root.iterfind(".//d:interfaceWhiteList/d:address", ns)] == ["127.0.0.1"]


# -- conversions -----------------------------------------------------------------------------------

def test_stamps_convert_exactly():
    stamp = conv.stamp_from_seconds(12.345678901)
    assert (stamp.sec, stamp.nanosec) == (12, 345678901)
    assert conv.seconds_from_stamp(stamp) == pytest.approx(12.345678901, abs=1e-9)
    assert conv.stamp_from_nanoseconds(3_000_000_001).nanosec == 1
    with pytest.raises(DataError):
        conv.stamp_from_seconds(float("nan"))


def test_joint_states_are_read_by_name_in_the_wanted_order():
    msg = conv.joint_state_msg(["b", "extra", "a"], [2.0, 9.0, 1.0], [0.2, 0.9, 0.1], None)
    values = conv.JointStateReader(["a", "b"]).read(msg)
    np.testing.assert_array_equal(values["position"], [1.0, 2.0])
    np.testing.assert_array_equal(values["velocity"], [0.1, 0.2])
    assert np.all(np.isnan(values["effort"]))  # not sent
    with pytest.raises(DataError, match="missing joints"):
        conv.JointStateReader(["a", "c"]).read(msg)
    bad = conv.joint_state_msg(["a", "b"], [np.nan, 1.0])
    with pytest.raises(DataError, match="NaN"):
        conv.JointStateReader(["a", "b"]).read(bad)
    short = conv.joint_state_msg(["a", "b"], [1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="velocity has 1 values for 2 names"):
        conv.JointStateReader(["a", "b"]).read(short)


def test_images_round_trip_in_every_supported_encoding_with_row_padding():
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(conv.image_array(conv.image_msg(rgb)), rgb)
    msg = conv.image_msg(rgb)
    padded = np.zeros((5, 7 * 3 + 3), np.uint8)
    padded[:, :21] = rgb[:, :, ::-1].reshape(5, 21)
    msg.encoding, msg.step, msg.data = "bgr8", 24, padded.tobytes()
    np.testing.assert_array_equal(conv.image_array(msg), rgb)
    msg.encoding = "yuv422"
    with pytest.raises(DataError, match="unsupported encoding"):
        conv.image_array(msg)
    msg.encoding, msg.data = "rgb8", b"\x00" * 10
    with pytest.raises(DataError, match="do not hold"):
        conv.image_array(msg)


def test_compressed_images_decode_close_to_the_original():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 30)
    rgb[:, 24:] = (20, 40, 220)
    out = conv.compressed_image_array(conv.compressed_image_msg(rgb, quality=95))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4
    empty = conv.compressed_image_msg(rgb)
    empty.data = b""
    with pytest.raises(DataError, match="empty"):
        conv.compressed_bytes(empty)


def test_camera_info_and_pose_conversions():
    k = conv.pinhole_intrinsics(320, 240, 60.0)
    assert k[0, 0] == pytest.approx(120 / np.tan(np.radians(30)))
    info = conv.camera_info_dict(conv.camera_info_msg(320, 240, k, frame_id="head_left"))
    assert info["width"] == 320 and info["k"][2] == 160.0 and info["frame_id"] == "head_left"
    q = np.array([np.cos(0.3), 0.0, 0.0, np.sin(0.3)])
    msg = conv.pose_stamped_msg([1, 2, 3], q)
    assert (msg.pose.orientation.w, msg.pose.orientation.z) == pytest.approx((q[0], q[3]))
    np.testing.assert_allclose(conv.pose_vector(msg), [1, 2, 3, *q])
    msg.pose.orientation.w = 3.0
    with pytest.raises(DataError, match="unit quaternion"):
        conv.pose_vector(msg)
    with pytest.raises(DataError, match="non-negative"):
        conv.illuminance_value(conv.illuminance_msg(-5.0))


def test_command_intake_applies_partial_trajectories_and_rejects_bad_commands():
    intake = CommandIntake(["a", "b", "c"], np.zeros(3), groups={"arm": [1, 2]})
    assert intake.take() is None
    assert intake.on_trajectory(conv.joint_trajectory_msg(["c", "a"], [3.0, 1.0]))
    np.testing.assert_array_equal(intake.take(), [1.0, 0.0, 3.0])
    assert intake.take() is None  # nothing new since
    assert not intake.on_trajectory(conv.joint_trajectory_msg(["a", "zz"], [1.0, 2.0]))
    assert not intake.on_trajectory(conv.joint_trajectory_msg(["a"], [np.nan]))
    assert not intake.on_group("arm", conv.float64_multiarray_msg([1.0, 2.0, 3.0]))
    assert intake.on_group("arm", conv.float64_multiarray_msg([5.0, 6.0]))
    np.testing.assert_array_equal(intake.take(), [1.0, 5.0, 6.0])
    assert (intake.accepted, intake.rejected) == (2, 3)
    assert "expected 2 values" in intake.last_error


def test_robot_clock_extrapolates_and_never_goes_back():
    clock = RobotClock()
    assert clock.now() is None and clock.age() == float("inf")
    clock.observe(10.0, received_monotonic=time.monotonic() - 0.5)
    first = clock.now()
    assert 10.49 < first < 10.7
    clock.observe(10.2)  # a newer stamp that arrived "late" relative to the estimate
    assert clock.now() >= first


def test_delivery_delay_is_believed_only_from_a_plausible_reception_time():
    now_ns = time.time_ns()
    assert 0.19 < delivery_delay({"received_timestamp": now_ns - 200_000_000}) < 0.5
    # no info, no reception time, one from the future or from another clock: the callback's own time
    for info in (None, {}, {"received_timestamp": 0}, {"received_timestamp": now_ns + 10**9},
                 {"received_timestamp": now_ns - 3600 * 10**9}):
        assert delivery_delay(info) == 0.0, info


# -- config ----------------------------------------------------------------------------------------

def test_ros_config_defaults_follow_ros2_control_conventions(tmp_path):
    config = RosConfig()
    assert config.forward_topic_for("left_arm") == "/left_arm_controller/commands"
    assert config.image_topic("head") == "/head/image_raw"
    config.camera_transport = "compressed"
    assert config.image_topic("head") == "/head/image_raw/compressed"
    robot_yaml = tmp_path / "robot.yaml"
    robot_yaml.write_text(textwrap.dedent("""
        name: r
        ros:
          joint_names: {waist_yaw: torso_joint_1}
          command_interface: forward
          camera_topics: {head: /cams/front/color}
    """))
    config = RosConfig.from_robot_yaml(robot_yaml)
    assert config.hardware_joint_names(["waist_yaw", "head_pan"]) == ["torso_joint_1", "head_pan"]
    assert config.image_topic("head") == "/cams/front/color" and config.command_interface == "forward"
    assert config.commanded_groups({"arm": ["a"], "head": ["h"]}) == {"arm": ["a"], "head": ["h"]}
    robot_yaml.write_text("name: r\n")
    (tmp_path / "ros.yaml").write_text("joint_states_topic: /robot/joint_states\nstamp_source: host\n")
    config = RosConfig.from_robot_yaml(robot_yaml)  # the sidecar beside a YAML without a ros: section
    assert (config.joint_states_topic, config.stamp_source) == ("/robot/joint_states", "host")
    robot_yaml.write_text("ros:\n  command_interface: velocity\n")
    with pytest.raises(ConfigError, match="command_interface 'velocity'"):
        RosConfig.from_robot_yaml(robot_yaml)
    robot_yaml.write_text("ros:\n  joint_state_topic: /js\n")
    with pytest.raises(ConfigError, match="unknown key"):
        RosConfig.from_robot_yaml(robot_yaml)
    with pytest.raises(ConfigError, match="forward_groups"):
        RosConfig(forward_groups=["legs"]).commanded_groups({"arm": ["a"]})


# -- launch files ----------------------------------------------------------------------------------

def test_shipped_launch_files_read_into_collector_commands():
    sim = read_launch_file(launch_dir() / "sim_session.launch.yaml", {"output": "/data/x", "cameras": "none"})
    assert [p.name for p in sim.processes] == ["sim_hardware", "recorder", "teleop"]
    recorder = sim.processes[1].argv
    assert recorder[:3] == ["collector", "ros", "recorder"]
    assert recorder[recorder.index("--output") + 1] == "/data/x"
    assert "--record" in sim.processes[2].argv and "--reset" in sim.processes[2].argv
    hw = read_launch_file(launch_dir() / "hardware_session.launch.yaml", {"operator": "Ann Lee"})
    assert [p.name for p in hw.processes] == ["recorder", "teleop"]
    argv = hw.processes[0].argv
    assert argv[argv.index("--operator") + 1] == "Ann Lee"  # a substitution never splits into words


def write_launch(tmp_path, text: str) -> Path:
    path = tmp_path / "t.launch.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_launch_substitutions_conditions_groups_and_environment(tmp_path):
    path = write_launch(tmp_path, """
        launch:
        - arg: {name: mode, default: a}
        - arg: {name: home, default: "$(env COLLECTOR_TEST_HOME /fallback)"}
        - let: {name: tag, value: "$(var mode)-x"}
        - set_env: {name: SESSION, value: "$(var tag)"}
        - executable: {cmd: "echo $(var tag) $(var home) $(dirname)", name: first}
        - executable: {cmd: "echo b", name: only_b, if: "false"}
        - group:
            scoped: true
            children:
            - let: {name: tag, value: inner}
            - executable:
                cmd: "echo $(var tag)"
                name: grouped
                unless: "$(var skip)"
                env: [{name: EXTRA, value: "1"}]
        - executable: {cmd: "echo $(var tag)", name: after}
    """)
    plan = read_launch_file(path, {"skip": "0"}, base_env={"COLLECTOR_TEST_HOME": "/h"})
    by_name = {p.name: p for p in plan.processes}
    assert by_name["first"].argv == ["echo", "a-x", "/h", str(tmp_path.resolve())]
    assert "only_b" not in by_name
    assert by_name["grouped"].argv == ["echo", "inner"] and by_name["grouped"].env["EXTRA"] == "1"
    assert by_name["after"].argv == ["echo", "a-x"]  # the scoped group's let did not leak
    assert all(p.env["SESSION"] == "a-x" for p in plan.processes)
    assert plan.undeclared == ["skip"]
    plan = read_launch_file(path, {"skip": "true"}, base_env={})
    assert "grouped" not in {p.name for p in plan.processes}
    assert plan.processes[0].argv[2] == "/fallback"


@pytest.mark.parametrize("body, message", [
    ("- node_container: {name: x}", "not supported"),
    ("- executable: {cmd: \"echo $(eval 1+1)\"}", "unsupported substitution"),
    ("- arg: {name: needed}", "required argument 'needed'"),
    ("- executable: {cmd: \"echo $(var nope)\"}", "not a declared argument"),
    ("- executable: {cmd: \"echo hi\", colour: red}", "unknown attribute"),
    ("- arg: {name: m, default: c, choice: [{value: a}, {value: b}]}", "not one of"),
    ("- executable: {cmd: \"echo 'open\"}", "unbalanced quote"),
    ("- executable: {cmd: \"echo\", name: x}\n- executable: {cmd: \"echo\", name: x}", "two processes"),
    ("- executable: {cmd: \"echo\", if: maybe}", "not true/false"),
])
def test_bad_launch_files_are_refused_with_the_reason(tmp_path, body, message):
    path = write_launch(tmp_path, "launch:\n" + body + "\n")
    with pytest.raises(ConfigError, match=message):
        read_launch_file(path, {}, base_env={})


def test_launch_file_that_is_not_yaml_or_not_a_launch_list(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("launch: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_launch_file(path)
    path.write_text("nodes: []\n")
    with pytest.raises(ConfigError, match="top-level 'launch:'"):
        read_launch_file(path)


def test_split_command_keeps_substitutions_and_quotes_whole():
    assert split_command('a "b c" $(env X d e)/f \'g\'', "w") == ["a", "b c", "$(env X d e)/f", "g"]
    with pytest.raises(ConfigError, match=r"unbalanced \$\("):
        split_command("a $(var b", "w")


def test_collector_launch_prints_the_plan_and_rejects_unknown_files(capsys):
    from collector.cli import main

    assert main(["launch", "sim_session", "output:=/tmp/eps", "--print"]) == 0
    out = capsys.readouterr().out
    assert "output:=/tmp/eps" in out and "[recorder] collector ros recorder" in out
    assert main(["launch", "no_such_session"]) == 2
    assert "not found (shipped: hardware_session.launch.yaml, sim_session.launch.yaml)" in capsys.readouterr().err


# -- process supervision (real subprocesses) --------------------------------------------------------

PY = sys.executable


def py(code: str, name: str, **kw) -> ProcessSpec:
    return ProcessSpec(name=name, argv=[PY, "-c", textwrap.dedent(code)], **kw)


GRACEFUL = """
    import signal, sys, time
    signal.signal(signal.SIGINT, lambda *a: (print("bye", flush=True), sys.exit(0)))
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""


class Lines:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.extend(t for t in text.splitlines() if t)

    def flush(self):
        pass

    def has(self, fragment):
        return any(fragment in line for line in self.lines)


def test_a_dying_process_is_reported_and_the_session_is_stopped():
    out = Lines()
    group = ProcessGroup([py(GRACEFUL, "steady"), py("import time, sys; time.sleep(0.5); sys.exit(3)", "crasher")],
                         sigterm_timeout=3, out=out)
    t0 = time.monotonic()
    assert group.run() == 1
    assert time.monotonic() - t0 < 8
    assert group.failures == [f"crasher (pid {group._procs[1].popen.pid}) died: exit code 3"]
    assert out.has("[steady] ready") and out.has("[steady] bye")
    assert group.returncodes["steady"] == 0


def test_keep_going_leaves_the_others_running_until_stopped():
    out = Lines()
    group = ProcessGroup([py(GRACEFUL, "steady"), py("import os; os.kill(os.getpid(), 9)", "killed")],
                         stop_on_failure=False, sigterm_timeout=3, out=out)
    import threading

    threading.Timer(2.0, group.request_stop).start()
    assert group.run() == 1
    assert out.has("killed") and out.has("died: killed by SIGKILL")
    assert group.returncodes["steady"] == 0 and out.has("[steady] bye")


def test_stop_escalates_to_sigterm_for_a_process_that_ignores_sigint():
    stubborn = """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(0.05)
    """
    out = Lines()
    group = ProcessGroup([py(stubborn, "stubborn")], sigterm_timeout=0.5, sigkill_timeout=1, out=out)
    import threading

    threading.Timer(1.5, group.request_stop).start()
    group.run()
    assert group.returncodes["stubborn"] == -signal.SIGTERM
    assert out.has("did not stop within 0.5 s, escalating") and out.has("sending SIGTERM to stubborn")
    assert group.failures == []  # asked to stop, and it stopped


def test_respawn_restarts_a_process(tmp_path):
    counter = tmp_path / "starts"
    code = f"""
        from pathlib import Path
        p = Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1))
        raise SystemExit(0 if n >= 2 else 1)
    """
    out = Lines()
    group = ProcessGroup([py(code, "flaky", respawn=True, respawn_delay=0.1)], out=out)
    import threading

    def stop_after_three_starts():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (counter.exists() and int(counter.read_text() or 0) >= 3):
            time.sleep(0.05)
        group.request_stop()

    threading.Thread(target=stop_after_three_starts, daemon=True).start()
    group.run()
    assert int(counter.read_text()) >= 3 and out.has("respawning flaky")


def test_collector_launch_runs_and_stops_a_session_on_ctrl_c(tmp_path):
    path = tmp_path / "two.launch.yaml"
    path.write_text(textwrap.dedent(f"""
        launch:
        - arg: {{name: word, default: hello}}
        - executable: {{name: a, cmd: "{PY} -c \\"import time; print('$(var word) from a', flush=True); time.sleep(60)\\""}}
        - executable: {{name: b, cmd: "{PY} -c \\"import time, os; print(os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'], flush=True); time.sleep(60)\\""}}
    """))
    proc = subprocess.Popen([PY, "-m", "collector", "launch", str(path), "word:=hi"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (any(x.startswith("[a] hi from a") for x in lines)
                                               and any(x.startswith("[b] LOCALHOST") for x in lines)):
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "[a] hi from a" in "".join(lines) and "[b] LOCALHOST" in "".join(lines)
    assert "sending SIGINT to a, b" in rest and "a (pid" in rest and "exited cleanly" in rest


def test_processes_of_a_killed_launcher_do_not_outlive_it(tmp_path):
    path = tmp_path / "one.launch.yaml"
    path.write_text(textwrap.dedent(f"""
        launch:
        - executable: {{name: child, cmd: "{PY} -c \\"import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)\\""}}
    """))
    proc = subprocess.Popen([PY, "-m", "collector", "launch", str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    child = None
    deadline = time.monotonic() + 30
    while child is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("[child] pid "):
            child = int(line.split()[-1])
    assert child is not None
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
            Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] != "Z":
        time.sleep(0.05)
    alive = Path(f"/proc/{child}").exists() and Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] != "Z"
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the child kept running after its launcher was killed"
