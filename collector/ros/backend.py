"""RosBackend: the robot contract (collector.backends.RobotBackend) for a robot driven over ROS 2.

The same TeleopLoop that drives the in-process sim drives a robot through this class: it reads
/joint_states, sends joint commands (JointTrajectory, or Float64MultiArray per joint group), takes
camera frames and illuminance from their topics, all named in the robot YAML's ros section
(collector.ros.config). It is not lockstep: the loop runs on the wall clock and `now()` is the
robot's own clock, estimated from the joint-state stamps, so everything the loop records is on the
same timeline as the robot's samples.

Safety: if no joint state arrived for longer than `joint_state_timeout_s`, `read_state` and
`send_command` raise DeviceError ("lost /joint_states ...") and nothing more is published, which
ends the take and tells the operator; the robot's controller keeps its last setpoint.

Against the sim-hardware node it also offers what the scripted operator and run_episode need
from a simulation (`task`, `task_success`, `task_metrics`, `conditions`, `reset`), read from the
node's ~/task_state and ~/conditions topics and its ~/reset service. On a real robot those topics
do not exist: `task` is None and success is the operator's call.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Dict, Optional, Tuple

import numpy as np

from collector.backends.base import Frame, JointSample, RobotBackend
from collector.errors import DataError, DeviceError
from collector.ros.config import RosConfig
from collector.ros.conversions import (JointStateReader, compressed_image_array, float64_multiarray_msg,
                                       illuminance_value, image_array, joint_trajectory_msg, seconds_from_stamp,
                                       stamp_from_seconds)
from collector.ros.qos import qos_for
from collector.ros.robot_clock import RobotClock, delivery_delay
from collector.ros.services import NoAnswer, ServiceNotAvailable, call_trigger

log = logging.getLogger(__name__)

# A streamed setpoint asks the trajectory controller to arrive this far ahead (one teleop period or two).
TRAJECTORY_HORIZON_S = 0.02


class RemoteTask:
    """The sim-hardware node's task, as its ~/task_state topic describes it."""

    def __init__(self, state: dict):
        self.state = state
        self.name = state.get("task", "")
        self.instruction = state.get("instruction", "")

    def grasp_targets(self) -> dict:
        return self.state.get("grasp_targets") or {}

    def success(self) -> bool:
        return bool(self.state.get("success"))

    def metrics(self) -> dict:
        return dict(self.state.get("metrics") or {})


class RosBackend(RobotBackend):
    lockstep = False

    def __init__(self, robot="humanoid", config: Optional[RosConfig] = None, node_name: str = "collector_teleop",
                 domain_id: Optional[int] = None, sim_node: str = "/sim_hardware", connect_timeout_s: float = 10.0,
                 runtime=None):
        from collector.robot import RobotSpec, load_robot
        from collector.ros.runtime import RosRuntime

        self.robot = robot if isinstance(robot, RobotSpec) else load_robot(robot)
        self.config = config or RosConfig.for_robot(self.robot)
        self.hw_names = self.config.hardware_joint_names(self.robot.command_joints)
        self.sim_node = sim_node
        self._own_runtime = runtime is None
        self.runtime = runtime or RosRuntime(node_name, domain_id=domain_id, handle_signals=False, stream_lane=True)
        node = self.runtime.node
        streams = self.runtime.stream_node or node
        self.clock = RobotClock()
        self._lock = threading.Lock()
        self._state: Optional[JointSample] = None
        self._reader = JointStateReader(self.hw_names)
        self._frames: Dict[str, Tuple[object, bool]] = {}  # camera -> (latest message, compressed)
        self._frame_taken: Dict[str, int] = {}
        self._frame_seq: Dict[str, int] = {}
        self._illuminance: Optional[float] = None
        self._light_sensor = True  # until _wait_for_robot finds no illuminance publisher
        self._task_state: Optional[dict] = None
        self._task_episode_seen = -1
        self._conditions: dict = {}
        self.bad_messages = 0
        self.commands_sent = 0
        self._lost_reported = False
        self._closed = False

        from sensor_msgs.msg import CompressedImage, Illuminance, Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        # Only the newest state and frame matter to a controller: best-effort depth-1 readers (they
        # match reliable and best-effort publishers alike) never build up a backlog of stale data.
        streams.create_subscription(JointState, self.config.joint_states_topic, self._on_joint_state,
                                    qos_for("latest"))
        compressed = self.config.camera_transport == "compressed"
        for name in self.robot.cameras:
            self._frame_seq[name] = self._frame_taken[name] = 0
            streams.create_subscription(CompressedImage if compressed else Image, self.config.image_topic(name),
                                        lambda msg, n=name: self._on_image(n, msg, compressed), qos_for("latest"))
        node.create_subscription(Illuminance, self.config.illuminance_topic, self._on_illuminance, qos_for("sensor"))
        node.create_subscription(String, f"{sim_node}/task_state", self._on_task_state, qos_for("control"))
        node.create_subscription(String, f"{sim_node}/conditions", self._on_conditions, qos_for("control"))
        if self.config.command_interface == "trajectory":
            self._trajectory_pub = node.create_publisher(JointTrajectory, self.config.trajectory_topic,
                                                         qos_for("command"))
            self._group_pubs = {}
        else:
            self._trajectory_pub = None
            self._group_pubs = {
                g: (node.create_publisher(Float64MultiArray, self.config.forward_topic_for(g), qos_for("command")),
                    self.robot.group_slice(g))
                for g in self.config.commanded_groups(self.robot.groups)}
        self._reset_client = node.create_client(Trigger, f"{sim_node}/reset")
        if self._own_runtime:
            self.runtime.start()
        self._wait_for_robot(connect_timeout_s)

    # -- subscriptions (executor thread) ---------------------------------------------------------
    def _on_joint_state(self, msg, info) -> None:
        # Two parameters: rclpy passes the MessageInfo, whose reception time the robot clock counts from.
        received = time.monotonic() - delivery_delay(info)
        try:
            values = self._reader.read(msg)
        except DataError as exc:
            self.bad_messages += 1
            log.warning("ignoring a joint state: %s", exc)
            return
        stamp = seconds_from_stamp(msg.header.stamp)
        velocity = np.nan_to_num(values["velocity"])  # a driver may not report velocity/effort
        effort = np.nan_to_num(values["effort"])
        sample = JointSample(t=stamp, position=values["position"].copy(), velocity=velocity.copy(),
                             effort=effort.copy())
        with self._lock:
            self._state = sample
        self.clock.observe(stamp, received)

    def _on_image(self, name: str, msg, compressed: bool) -> None:
        with self._lock:
            self._frames[name] = (msg, compressed)
            self._frame_seq[name] += 1

    def _on_illuminance(self, msg) -> None:
        try:
            self._illuminance = illuminance_value(msg)
        except DataError:
            self.bad_messages += 1

    def _on_task_state(self, msg) -> None:
        try:
            state = json.loads(msg.data)
        except ValueError:
            self.bad_messages += 1
            return
        if isinstance(state, dict):
            self._task_state = state

    def _on_conditions(self, msg) -> None:
        try:
            conditions = json.loads(msg.data)
        except ValueError:
            self.bad_messages += 1
            return
        if isinstance(conditions, dict):
            self._conditions = conditions

    # -- connection ------------------------------------------------------------------------------
    def _wait_for_robot(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self._state is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._state is None:
            self.close()
            raise DeviceError(f"no joint states on {self.config.joint_states_topic} within {timeout_s:g} s: "
                              "is the robot driver (or `collector ros sim-hw`) running, in the same "
                              "ROS_DOMAIN_ID, on this machine?")
        if self.runtime.node.count_publishers(self.config.illuminance_topic) == 0:
            # No light sensor on this robot: declare no illuminance stream (an always-empty
            # stream would fail the episode's QA).
            self._light_sensor = False

    def _check_alive(self) -> None:
        age = self.clock.age()
        timeout = float(self.config.joint_state_timeout_s)
        if age > timeout:
            message = (f"lost {self.config.joint_states_topic}: nothing for {age:.2f} s (timeout {timeout:g} s); "
                       "stopped commanding the robot")
            if not self._lost_reported:
                log.error(message)
                self._lost_reported = True
            raise DeviceError(message)
        self._lost_reported = False

    def wait_for_frames(self, cameras, timeout_s: float) -> None:
        """Block until each camera has delivered a frame of the robot YAML's size (without taking it
        from `capture`); a DeviceError names the cameras that did not, and their topics."""
        cameras = list(cameras)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                missing = [c for c in cameras if self._frame_seq.get(c, 0) == 0]
            if not missing or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if missing:
            topics = ", ".join(self.config.image_topic(c) for c in missing)
            raise DeviceError(f"no frames from camera(s) {', '.join(missing)} on {topics} within {timeout_s:g} s: "
                              "the robot (or `collector ros sim-hw --cameras ...`) must publish them")
        for name in cameras:
            with self._lock:
                msg, compressed = self._frames[name]
            rgb = compressed_image_array(msg) if compressed else image_array(msg)
            cam = self.robot.cameras[name]
            if rgb.shape != (cam.height, cam.width, 3):
                raise DeviceError(f"camera {name} on {self.config.image_topic(name)} sends {rgb.shape[1]}x"
                                  f"{rgb.shape[0]} frames; the robot YAML says {cam.width}x{cam.height}")

    def wait_for_conditions(self, timeout_s: float) -> dict:
        """The sim-hardware node's scene conditions, once its latched topic delivered them; {} when no
        node publishes them (a real robot) or none arrived within timeout_s."""
        topic = f"{self.sim_node}/conditions"
        deadline = time.monotonic() + timeout_s
        while not self._conditions and time.monotonic() < deadline:
            if self.runtime.node.count_publishers(topic) == 0 and time.monotonic() > deadline - timeout_s / 2:
                break  # nobody publishes it (given half the time for discovery)
            time.sleep(0.02)
        return self.conditions

    @property
    def connected(self) -> bool:
        return self.clock.age() <= float(self.config.joint_state_timeout_s)

    # -- RobotBackend ----------------------------------------------------------------------------
    def now(self) -> float:
        t = self.clock.now()
        if t is None:
            raise DeviceError(f"no joint states received on {self.config.joint_states_topic} yet")
        return t

    def read_state(self) -> JointSample:
        self._check_alive()
        with self._lock:
            return self._state

    def send_command(self, t: float, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(self.hw_names),) or not np.all(np.isfinite(q)):
            raise DataError(f"ROS command: expected {len(self.hw_names)} finite joint positions, got shape {q.shape}")
        self._check_alive()
        if self._trajectory_pub is not None:
            self._trajectory_pub.publish(joint_trajectory_msg(self.hw_names, q, TRAJECTORY_HORIZON_S,
                                                              stamp_from_seconds(max(t, 0.0))))
        else:
            for pub, part in self._group_pubs.values():
                pub.publish(float64_multiarray_msg(q[part]))
        self.commands_sent += 1

    def cameras(self):
        return dict(self.robot.cameras)

    def capture(self, name: str) -> Optional[Frame]:
        """The newest frame of a camera if one arrived since the last capture, else None."""
        with self._lock:
            if name not in self._frame_seq:
                raise DataError(f"ROS backend: no camera named {name!r} (have {sorted(self._frame_seq)})")
            if self._frame_seq[name] == self._frame_taken[name] or name not in self._frames:
                return None
            self._frame_taken[name] = self._frame_seq[name]
            msg, compressed = self._frames[name]
        try:
            rgb = compressed_image_array(msg) if compressed else image_array(msg)
        except DataError as exc:
            self.bad_messages += 1
            log.warning("camera %s: %s", name, exc)
            return None
        cam = self.robot.cameras[name]
        if rgb.shape != (cam.height, cam.width, 3):
            self.bad_messages += 1
            log.warning("camera %s: frame is %s, the robot YAML says %dx%d", name, rgb.shape, cam.width, cam.height)
            return None
        return seconds_from_stamp(msg.header.stamp), rgb.copy()

    @property
    def has_illuminance(self) -> bool:
        return self._light_sensor

    def illuminance(self) -> Optional[float]:
        return self._illuminance

    # -- what a simulated robot also offers ------------------------------------------------------
    @property
    def task(self) -> Optional[RemoteTask]:
        return RemoteTask(self._task_state) if self._task_state else None

    def task_success(self) -> bool:
        return bool(self._task_state and self._task_state.get("success"))

    def task_metrics(self) -> dict:
        return dict((self._task_state or {}).get("metrics") or {})

    @property
    def conditions(self) -> dict:
        return dict(self._conditions)

    def reset(self, timeout_s: float = 30.0, **ignored) -> dict:
        """Ask the sim-hardware node for the next episode's scene; returns its conditions.

        Conditions other than the seed sequence (lighting, weight presets) are chosen when the node
        starts; keyword arguments are accepted for SimBackend compatibility and ignored.
        """
        if ignored:
            log.info("RosBackend.reset: %s are set on the sim-hardware node, not per reset", sorted(ignored))
        before = (self._task_state or {}).get("episode", -1)
        try:
            response = call_trigger(self._reset_client, timeout_s, appear_s=min(timeout_s, 5.0))
        except ServiceNotAvailable:
            raise DeviceError("no reset service: resetting the scene needs the sim-hardware node "
                              "(on a real robot the operator resets the scene)") from None
        except NoAnswer:
            raise DeviceError(f"the sim-hardware node did not reset within {timeout_s:g} s") from None
        deadline = time.monotonic() + timeout_s
        if not response.success:
            raise DeviceError(f"sim reset failed: {response.message}")
        # Wait until the task state of the new scene has arrived, so the operator plans on it.
        while (self._task_state or {}).get("episode", -1) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        conditions = json.loads(response.message)
        self._conditions = conditions
        return conditions

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_runtime:
            self.runtime.close()
