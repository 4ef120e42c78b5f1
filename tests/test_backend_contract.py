"""The robot contract (collector/backends): one abstract base class that declares what a backend offers,
implemented by the MuJoCo and ROS 2 backends, and the only thing the control loop relies on."""
import re
from pathlib import Path

import numpy as np
import pytest

from collector.backends import JointSample, RobotBackend
from collector.backends.sim import SimBackend
from collector.errors import DeviceError
from collector.teleop.arbiter import JointTargetSource
from collector.teleop.loop import TeleopLoop, run_episode
from helpers.teleop import ListSink

PACKAGE = Path(__file__).resolve().parent.parent / "collector"


class Minimal(RobotBackend):
    """Only what every backend must implement: commands become the measured state one tick later."""

    lockstep = True

    def __init__(self, robot, q0, dt=0.01):
        self.robot, self.q, self.t, self.dt = robot, np.asarray(q0, float).copy(), 0.0, dt
        self.sent = []
        self.closed = False

    def now(self):
        return self.t

    def read_state(self):
        n = len(self.q)
        return JointSample(self.t, self.q.copy(), np.zeros(n), np.zeros(n))

    def send_command(self, t, q):
        self.sent.append(np.array(q))

    def advance(self):
        self.q = self.sent[-1].copy()
        self.t += self.dt

    def close(self):
        self.closed = True


def test_the_contract_is_an_abstract_base_class():
    class Incomplete(RobotBackend):
        def now(self):
            return 0.0

    with pytest.raises(TypeError, match="read_state"):
        Incomplete()
    assert {"now", "read_state", "send_command", "close"} == RobotBackend.__abstractmethods__


def test_optional_capabilities_default_to_absent(toy_env):
    backend = Minimal(toy_env.robot, toy_env.joint_positions())
    assert backend.cameras() == {} and backend.capture("head") is None and backend.finish_frames() == []
    assert backend.sensor_streams() == [] and not backend.has_illuminance and backend.illuminance() is None
    assert backend.world_sample() is None and backend.control_dt is None
    assert backend.task is None and backend.task_success() is False
    assert backend.task_metrics() == {} and backend.conditions == {}
    with pytest.raises(DeviceError, match="cannot reset the scene"):
        backend.reset(seed=1)
    assert backend.recording_metadata()["joint_limits"]["tolerance_source"].startswith("hardware limits")
    with pytest.raises(DeviceError, match="cannot be stepped"):
        RobotBackend.advance(backend)


def test_sim_backend_declares_its_sensor_streams(toy_env):
    rendering = SimBackend(toy_env, render=True)
    blind = SimBackend(toy_env, render=False)
    try:
        streams = {s.name: s for s in rendering.sensor_streams()}
        objects = list(toy_env.task.object_poses())
        assert set(streams) == {"camera_eyes", "illuminance", "sim_state", *(f"pose_objects_{o}" for o in objects)}
        assert streams["camera_eyes"].kind == "camera" and streams["illuminance"].rate_hz == 10.0
        assert "camera_eyes" not in {s.name for s in blind.sensor_streams()}  # no rendering, no camera stream
        assert isinstance(rendering, RobotBackend) and rendering.has_illuminance
        assert rendering.recording_metadata()["joint_limits"]["tolerance_source"].startswith("allowed excess")
    finally:
        rendering.close(close_env=False)
        blind.close(close_env=False)


def test_ros_backend_implements_the_contract():
    from collector.ros.backend import RosBackend

    assert issubclass(RosBackend, RobotBackend)
    assert not RosBackend.__abstractmethods__


def test_the_loop_needs_nothing_beyond_the_contract(toy_env):
    """A backend with only the required methods: the loop records no sensor stream and runs an episode."""
    toy_env.reset(seed=1)
    backend = Minimal(toy_env.robot, toy_env.joint_positions())
    goal = backend.q + 0.05
    sink = ListSink()
    loop = TeleopLoop(backend, endpoint="inproc://contract-minimal", bind=True, sink=sink,
                      sources=[JointTargetSource(lambda tick: goal)], choose=lambda tick: "joint_targets")
    try:
        result = run_episode(backend, loop=loop, max_duration_s=0.5)
    finally:
        loop.close()
    names = {s.name for s in loop.stream_specs()}
    assert names == {"joints", "command", "input", "ik_target", "safety", "control"}
    assert set(sink.samples) == {"joints", "command", "ik_target", "safety", "control"}
    assert result.ticks == 50 and result.success is False and result.metrics == {} and result.conditions == {}
    np.testing.assert_allclose(backend.q, np.clip(goal, loop.limits.lower, loop.limits.upper))


def test_no_backend_capability_is_probed_and_ros_does_not_import_teleop():
    probing = re.compile(r"\b(getattr|hasattr)\(\s*(self\.|rig\.|context\.)?_?backend\b")
    offenders = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if probing.search(line)]
    assert offenders == []
    teleop_imports = [f"{p.name}: {line.strip()}" for p in (PACKAGE / "ros").glob("*.py")
                      for line in p.read_text().splitlines()
                      if re.match(r"\s*(from collector\.teleop\b|import collector\.teleop\b)", line)]
    assert teleop_imports == []
