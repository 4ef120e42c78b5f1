"""A trained policy drives the ROS 2 backend: `collector ros teleop --policy CHECKPOINT` against the
sim-hardware node, with the recorder node writing the episode, three processes over real DDS.

The checkpoint is a tiny ACT trained for a few steps on the session's `demo_take` (as in
test_policy_source.py): it need not succeed, only command. What is proved: its commands travel over
DDS and move the simulated robot, every step stays within the safety gate, the episode the recorder
node wrote says `policy` was in control on every tick, the policy's inference cost per tick is
reported, and a camera the policy needs that the robot does not publish is a one-line error.
Each run uses its own ROS_DOMAIN_ID (from the pid), as tests/test_ros_nodes.py does.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from collector.errors import DataError
from collector.policy.checkpoint import Checkpoint
from collector.recorder import EpisodeReader
from collector.ros.control_topic import control_message, parse_control_message
from collector.ros.environment import domain_id_for_pid, ros_environment
from helpers.ros_nodes import NodeProcess

torch.set_num_threads(1)
# rosidl's parser (lark) imports deprecated stdlib modules; not this project's concern.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = domain_id_for_pid()
START_TIMEOUT_S = 120.0  # a node imports mujoco (and torch), builds the scene and discovers its peers
TAKE_S = 4.0
@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def known_seed(checkpoint, start=1_000_000):
    """A held-out first scene seed whose next scenes' pick-and-place targets (each take resets the
    scene: seed + 1, + 2) are the object the tiny policy knows."""
    from collector.sim.tasks.pick_place import OBJECTS

    known = set(Checkpoint.load(checkpoint).vocabulary.targets)

    def target(seed):
        return str(np.random.default_rng([seed, 3]).choice(list(OBJECTS)))

    seed = start
    while not all(target(seed + k) in known for k in (1, 2)):
        seed += 1
    return seed


@pytest.fixture(scope="module")
def ros_env():
    env = ros_environment(domain_id=DOMAIN)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MUJOCO_GL", "egl")
    env["OMP_NUM_THREADS"] = "1"  # the policy's torch: one thread, as on a busy robot computer
    return env


@pytest.fixture(scope="module")
def sim_hardware(checkpoint, ros_env, tmp_path_factory):
    """The simulated robot publishing the head camera only, on a scene the policy knows."""
    log = tmp_path_factory.mktemp("ros_policy_sim") / "sim.log"
    node = NodeProcess(["ros", "sim-hw", "--cameras", "head", "--seed", known_seed(checkpoint), "--duration", 900],
                ros_env, log)
    yield node
    node.close()


def teleop(args, env, timeout=START_TIMEOUT_S + 60):
    args = ["ros", "teleop", "--node-name", "policy_teleop", "--connect-timeout", START_TIMEOUT_S, *args]
    return subprocess.run([sys.executable, "-m", "collector", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)


def gate_limits():
    from collector.robot import load_robot
    from collector.teleop.config import load_teleop_config
    from collector.teleop.ik import RobotKinematics
    from collector.teleop.robot_limits import joint_limits

    robot = load_robot("humanoid")
    config = load_teleop_config()
    return joint_limits(robot, RobotKinematics(robot), config.safety), config.control_dt


# alone: the policy commands on its own; with --takeover (as `collector collect --policy`): under the
# operator's deadman, here the scripted operator's, who never presses the takeover button
MODES = {"alone": [], "supervised": ["--takeover", "--device", "scripted"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_a_policy_drives_the_sim_hardware_over_dds_and_the_ros_episode_says_policy(
        mode, checkpoint, sim_hardware, ros_env, tmp_path):
    out = tmp_path / "episodes"
    recorder = NodeProcess(["ros", "recorder", "--cameras", "head", "-o", out], ros_env, tmp_path / "recorder.log")
    try:
        done = teleop(["--policy", checkpoint, *MODES[mode], "--reset", "--record", "--max-duration", TAKE_S], ros_env)
        assert done.returncode in (0, 1), (done.stderr[-3000:], sim_hardware.log()[-2000:])  # 1: task not done
        (summary,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert recorder.stop() == 0, recorder.log()[-3000:]
    finally:
        recorder.close()

    # The policy commanded every tick, from its own thread: the tick only read its newest action.
    assert set(summary["control"]) == {"policy"} and summary["control"]["policy"] == summary["ticks"] > 100
    timing = summary["timing"]["policy"]
    assert timing["inference_ms"]["count"] >= 10, timing
    assert timing["tick_ms"]["p99"] < timing["inference_ms"]["p50"], timing

    with EpisodeReader(Path(summary["recorded"])) as episode:
        codes = episode.streams["control"].attrs["sources"]
        control = episode.raw("control", "source")[:]
        control_t = np.asarray(episode.stamps("control"))
        command = episode.raw("command", "position")[:]
        command_t = np.asarray(episode.stamps("command"))
        joints = episode.raw("joints", "position")[:]
        joints_t = np.asarray(episode.stamps("joints"))
        assert "control" not in (episode.metadata.get("streams_discovered_late") or [])
    # The ROS-side episode: the recorder node learned who commanded from the control topic, one
    # sample per command with the command's very stamp (what the dataset labels rows by).
    assert len(control) > 100 and set(control.tolist()) == {codes["policy"]}
    n = min(len(control_t), len(command_t))
    assert np.array_equal(control_t[:n], command_t[:n]) and abs(len(command_t) - len(control_t)) <= 1

    # What went over DDS stayed within the safety gate: joint limits, and the per-tick step limit.
    limits, dt = gate_limits()
    assert np.all(command >= limits.lower - 1e-9) and np.all(command <= limits.upper + 1e-9)
    steps = np.abs(np.diff(command, axis=0))
    assert np.all(steps <= limits.velocity * dt + 1e-9), steps.max()
    assert np.abs(command[-1] - command[0]).max() > 0.1, "the policy moved its command"

    # ... and moved the simulated robot: it stood still before the first command, then followed.
    before = joints[joints_t < command_t[0]]
    assert len(joints), summary  # the recorder wrote the robot's joint states
    # (one CI run found none stamped before the first command; the stamps say whether it was the clocks)
    assert len(before) and joints_t[-1] > command_t[-10], (joints_t[:3], command_t[:3], len(joints_t), len(command_t))
    assert np.abs(before - before[0]).max() < 0.01
    moved = np.abs(joints[-1] - before[-1])
    assert moved.max() > 0.1, moved.max()
    tracking = np.abs(joints[-1] - command[-1])
    commanded = np.abs(command[-1] - command[0]) > 0.1
    assert np.all(tracking[commanded] < 0.5 * np.abs(command[-1] - command[0])[commanded]), tracking[commanded]


@pytest.mark.parametrize("takeover", [[], ["--takeover"]], ids=["alone", "supervised"])
def test_a_camera_the_policy_needs_but_the_robot_does_not_publish_is_one_line(takeover, checkpoint, sim_hardware,
                                                                               tmp_path, capsys):
    """In this process (the CLI's own entry point), so it pays no second start-up of torch and rclpy."""
    from collector.cli import main

    ckpt = Checkpoint.load(checkpoint)
    ckpt.spec.cameras = ["left_wrist"]  # a camera of the robot that this sim node does not publish
    wrist = ckpt.save(tmp_path / "wrist_policy.pt")
    code = main(["ros", "teleop", "--domain-id", str(DOMAIN), "--node-name", "wrist_policy_teleop",
                 "--connect-timeout", str(START_TIMEOUT_S), "--policy", str(wrist), *takeover, "--camera-timeout", "3",
                 "--max-duration", "1"])
    stderr = capsys.readouterr().err
    assert code == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("collector ros: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "left_wrist" in errors[0] and "/left_wrist/image_raw" in errors[0], errors[0]


def test_control_messages_round_trip_and_bad_ones_are_rejected():
    sources = {"operator": 0, "policy": 1}
    assert parse_control_message(control_message(sources, 1.5, "policy")) == (1.5, "policy", sources)
    assert parse_control_message(control_message(sources)) == (None, None, sources)
    for bad in ("not json", "{}", '{"sources": {"policy": 300}}', '{"sources": {"policy": 1}, "t": "x"}',
                '{"sources": {"policy": 1}, "t": 1.0, "source": "stranger"}',
                '{"sources": {"policy": 1}, "t": NaN, "source": "policy"}'):
        with pytest.raises(DataError):
            parse_control_message(bad)
