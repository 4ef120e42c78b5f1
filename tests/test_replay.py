"""Replay in MuJoCo (kinematic and physics) of a real simulated episode, and over ROS 2 (rclpy)."""
import collections
import json
import shutil
import threading
import time

import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.dataset.synthetic import write_sim_episode, write_synthetic_episode
from collector.episodes.video import VideoFrameReader, probe
from collector.errors import ConfigError, DataError
from collector.recorder.reader import EpisodeReader
from collector.replay.sim_replay import action_replay, kinematic_replay


@pytest.fixture(scope="module")
def sim_episode(tmp_path_factory):
    """1.5 s of the humanoid at the pick-and-place table, commanded around its home pose."""
    return write_sim_episode(tmp_path_factory.mktemp("sim"), "episode_sim", cameras=("head", "right_wrist"))


@pytest.fixture(scope="module")
def synthetic_episode(tmp_path_factory):
    """A 7-joint arm's episode (not the humanoid), with two cameras."""
    return write_synthetic_episode(tmp_path_factory.mktemp("syn"), "episode_syn", duration_s=2.0,
                                   camera_size=(48, 64), n_joints=7)


def test_kinematic_replay_reproduces_the_recorded_views(sim_episode, tmp_path):
    video = tmp_path / "replay.mp4"
    report = kinematic_replay(sim_episode, video=video, height=120)
    with EpisodeReader(sim_episode) as reader:
        rows = reader.timestamps.size
        recorded = reader.aligned_images("right_wrist")[rows // 2]
    assert report.frames == rows and report.condition_notes == []
    # same scene, conditions and joint positions: the renders match the recording almost exactly
    assert set(report.image_difference) == {"head", "right_wrist"}
    assert max(report.image_difference.values()) < 4.0
    info = probe(video)
    assert info["frames"] == rows and info["fps"] == pytest.approx(15.0)
    frame = VideoFrameReader(video).frames_at([(rows // 2) / 15.0])[0]
    assert frame.shape[0] == 2 * (120 + 18) and frame.shape[1] == 2 * 160  # 2 cameras x (recorded | replay)
    # the left half of the right-wrist row is the recorded frame (scaled to 120 px)
    import cv2

    left = frame[138 + 18: 276, :160].astype(int)
    assert np.abs(left - cv2.resize(recorded, (160, 120), interpolation=cv2.INTER_AREA).astype(int)).mean() < 8


def test_kinematic_replay_notices_joints_that_do_not_match(sim_episode, tmp_path):
    altered = tmp_path / "altered.h5"
    shutil.copy(sim_episode, altered)
    with h5py.File(altered, "r+") as f:
        f["observations/qpos"][:, 2:9] += 0.4  # swing the left arm away from where the frames show it
    report = kinematic_replay(altered, video=None, cameras=["head"], max_frames=8)
    baseline = kinematic_replay(sim_episode, video=None, cameras=["head"], max_frames=8)
    assert report.image_difference["head"] > 3 * baseline.image_difference["head"]


def test_action_replay_reexecutes_commands_without_drift(sim_episode):
    report = action_replay(sim_episode)
    with EpisodeReader(sim_episode) as reader:
        assert report.steps == reader.count("command")
    assert len(report.drift) == 20 and report.max_drift < 1e-6  # same physics, same commands
    assert report.recorded_outcome == "failure" and report.replayed_success is False


def test_action_replay_reports_drift_when_commands_change(sim_episode, tmp_path):
    altered = tmp_path / "pushed.h5"
    shutil.copy(sim_episode, altered)
    with EpisodeReader(sim_episode) as reader:
        elbow = reader.streams["command"].attrs["joint_names"].index("left_elbow")
    with h5py.File(altered, "r+") as f:
        commands = f["raw/command/position"]
        commands[50:, elbow] = commands[50:, elbow] - 0.3  # the left elbow is told something else
    report = action_replay(altered)
    by_joint = {d.joint: d for d in report.drift}
    assert by_joint["left_elbow"].max > 0.1
    assert by_joint["right_elbow"].max < 0.02


def test_replay_refuses_an_episode_of_another_robot(synthetic_episode):
    with pytest.raises(DataError, match="replay with --robot"):
        kinematic_replay(synthetic_episode, video=None)


def test_replay_command_prints_a_report(sim_episode, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main(["replay", str(sim_episode), "--sim", "--actions", "--out", str(out), "--json",
                 "--cameras", "head"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "actions" and report["max_drift"] < 1e-6 and out.is_file()
    assert main(["replay", str(sim_episode), "--ros2", "--actions"]) == 2
    assert "not both" in capsys.readouterr().err


def test_replay_of_an_episode_without_world_state_says_so(sim_episode, capsys):
    """An episode recorded without sim_state (as before issue 13) replays the robot only, and says so."""
    assert main(["replay", str(sim_episode), "--no-video", "--cameras", "head", "--max-frames", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["world_state"].startswith("not restored: the episode has no world state")
    head = report["cameras"]["head"]
    assert head["frames"] == 4 and len(head["worst_frames"]) == 4 and "max_share_differing" in head
    assert main(["replay", str(sim_episode), "--no-video", "--cameras", "head", "--max-frames", "4"]) == 0
    text = capsys.readouterr().out
    assert "world state: not restored" in text and "head: matches: worst frame" in text


# -- ROS 2 ------------------------------------------------------------------------------------------

class _Recorder:
    """A subscriber node in its own rclpy context: the bag player's audience."""

    def __init__(self, domain_id, topics):
        from collector.ros.qos import qos_for
        from collector.ros.runtime import RosRuntime
        from collector.episodes.topics import message_class

        self.runtime = RosRuntime("replay_audience", domain_id=domain_id, handle_signals=False).start()
        self.messages = collections.defaultdict(list)
        self.lock = threading.Lock()
        for topic, (ros_type, kind) in topics.items():
            self.runtime.node.create_subscription(message_class(ros_type), topic, self._keep(topic),
                                                  qos_for(kind, "reliable" if kind == "camera" else ""))

    def _keep(self, topic):
        def callback(message):
            with self.lock:
                self.messages[topic].append((time.monotonic(), message))
        return callback

    def wait_for(self, counts, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(len(self.messages[t]) >= n for t, n in counts.items()):
                    return
            time.sleep(0.02)

    def close(self):
        self.runtime.close()


def test_ros2_replay_publishes_every_sample_with_scaled_timing(synthetic_episode):
    from collector.ros.environment import domain_id_for_pid
    from collector.replay.ros2_player import Ros2Player

    domain = domain_id_for_pid()
    audience = _Recorder(domain, {"/joint_states": ("sensor_msgs/msg/JointState", "state"),
                                  "/head/image_raw/compressed": ("sensor_msgs/msg/CompressedImage", "camera")})
    try:
        with EpisodeReader(synthetic_episode) as reader:
            positions = reader.raw("joints", "position")[()]
            stamps = reader.stamps("joints")
            frames = reader.count("camera_head")
        with Ros2Player(synthetic_episode, rate=2.0, streams=["joints", "camera_head"], domain_id=domain,
                        camera_reliability="reliable", stamps="recorded", wait_for_subscribers_s=15) as player:
            report = player.run()
        audience.wait_for({"/joint_states": len(stamps), "/head/image_raw/compressed": frames})
        joints = audience.messages["/joint_states"]
        assert report.published == {"/joint_states": len(stamps), "/head/image_raw/compressed": frames}
        assert len(joints) == len(stamps) and len(audience.messages["/head/image_raw/compressed"]) == frames
        np.testing.assert_array_equal(np.asarray([list(m.position) for _, m in joints]), positions)
        recorded = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in joints]
        np.testing.assert_allclose(recorded, stamps, atol=1e-6)
        # played at twice the speed: about half the recorded span (generous bounds; exact timing is benchmarked)
        span = joints[-1][0] - joints[0][0]
        assert 0.35 * (stamps[-1] - stamps[0]) < span < 0.8 * (stamps[-1] - stamps[0])
    finally:
        audience.close()


def test_ros2_replay_start_offset_and_duration(synthetic_episode):
    from collector.replay.ros2_player import Ros2Player

    with EpisodeReader(synthetic_episode) as reader:
        t = reader.stamps("joints")
    with Ros2Player(synthetic_episode, streams=["joints"], start_offset_s=1.0, duration_s=0.5, rate=50.0) as player:
        assert len(player.schedule) == int(np.count_nonzero((t >= t[0] + 1.0) & (t <= t[0] + 1.5)))
        assert player.topics()["/joint_states"] == "sensor_msgs/msg/JointState"
        assert "/collector/command" not in player.topics()  # only the streams asked for
    with pytest.raises(ConfigError, match="past the end"):
        Ros2Player(synthetic_episode, start_offset_s=60.0)
    with pytest.raises(DataError, match="no recorded stream"):
        Ros2Player(synthetic_episode, streams=["lidar"])
    with pytest.raises(ConfigError, match="rate"):
        Ros2Player(synthetic_episode, rate=0.0)


def test_commands_reach_the_controller_topic_only_when_asked(synthetic_episode):
    from collector.replay.ros2_player import Ros2Player

    with Ros2Player(synthetic_episode) as player:
        assert player.topics()["/collector/command"] == "sensor_msgs/msg/JointState"
    with Ros2Player(synthetic_episode, drive_robot=True) as player:
        topics = player.topics()
        assert topics["/joint_trajectory_controller/joint_trajectory"] == "trajectory_msgs/msg/JointTrajectory"
        assert "/collector/command" not in topics
