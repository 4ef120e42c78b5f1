"""The simulated humanoid exposed the way a ros2_control robot is (the "sim hardware" node).

Published (topic names from the robot YAML's ros section, see collector.ros.config):
  /joint_states                 sensor_msgs/JointState, every physics step (500 Hz for the humanoid)
  /<camera>/image_raw[/compressed], /<camera>/camera_info   at each camera's fps
  /illuminance                  sensor_msgs/Illuminance (the scene's light level at the task area), 10 Hz
  /objects/<name>/pose          geometry_msgs/PoseStamped of every task object, 30 Hz
  /clock                        rosgraph_msgs/Clock, 100 Hz, when stamps are sim time
  /hand_touch, /grasp_force     sensor_msgs/JointState, 100 Hz, robots with hands: touch sensors (N) and
                                finger actuator forces in `effort` (collector/ros/hand_topics.py)
  ~/task_state                  std_msgs/String JSON: task, instruction, grasp targets, success, metrics (10 Hz)
  ~/conditions                  std_msgs/String JSON: lighting, weights, seed... (latched, on every reset)
  ~/stats                       std_msgs/String JSON: counts of everything published (1 Hz)
Subscribed:
  /joint_trajectory_controller/joint_trajectory   trajectory_msgs/JointTrajectory
  /<group>_controller/commands                    std_msgs/Float64MultiArray, one per joint group
Service:
  ~/reset                       std_srvs/Trigger: next episode's scene (seed + 1), like an operator resetting the table

Stamps are sim time (monotonic over the node's life: each reset continues where the last episode
ended) or host time (`stamp_source: host`). Physics runs paced to real time; when the machine
cannot keep up the sim runs slower and stamps stay true to the simulated state.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder.vocabulary import GRASP_FORCE, HAND_TOUCH, ILLUMINANCE, camera_stream_name
from collector.ros.command_intake import CommandIntake
from collector.ros.config import RosConfig
from collector.ros.hand_topics import HandTopics
from collector.ros.conversions import (float64_array, joint_state_msg, pose_stamped_msg, illuminance_msg,
                                       stamp_from_nanoseconds, stamp_from_seconds)
from collector.ros.qos import qos_for
from collector.ros.runtime import wait_for_subscribers
from collector.ros.sim_cameras import SYNC_MODES, CameraOutput, SimCameraPublisher
from collector.json_values import json_default
from collector.sim.hand_readings import SimHandReadings

log = logging.getLogger(__name__)

ILLUMINANCE_HZ = 10.0
POSE_HZ = 30.0
TASK_STATE_HZ = 10.0
CLOCK_HZ = 100.0
HANDS_HZ = 100.0  # touch and grasp force: the control rate the simulator backend records them at
STATS_HZ = 1.0
# Falling further behind real time than this re-bases the pacing instead of bursting to catch up.
MAX_LAG_S = 0.1
# How long, in all, the stop waits for reliable subscribers to acknowledge the last messages.
FLUSH_BUDGET_S = 2.0
FLUSH_SLICE_S = 0.05


@dataclass
class SimHardwareOptions:
    cameras: Optional[List[str]] = None  # None: every camera of the robot YAML; []: none
    camera_size: Optional[tuple] = None  # (width, height) override for every camera
    camera_fps: Optional[float] = None
    camera_sync: str = "wait"
    jpeg_quality: int = 90
    real_time_factor: float = 1.0  # 0 or less: run as fast as possible
    duration_s: Optional[float] = None  # sim seconds to run, then exit (tests, benchmarks)
    wait_for_subscribers_s: float = 0.0  # before the first step, wait this long for every stream to be matched
    wait_for_commands_s: float = 0.0  # ... and this long for a publisher on a command topic (a connected teleop)
    stats_file: Optional[str] = None

    def __post_init__(self):
        if self.camera_sync not in SYNC_MODES:
            raise ConfigError(f"camera sync {self.camera_sync!r} not in {SYNC_MODES}")


@dataclass
class _Periodic:
    """Something published every `period` seconds of sim time."""

    period: float
    next_t: float = 0.0

    def due(self, t: float) -> bool:
        if t + 1e-9 < self.next_t:
            return False
        self.next_t = max(self.next_t + self.period, t)
        return True


class SimHardwareNode:
    def __init__(self, runtime, env, config: RosConfig, options: SimHardwareOptions):
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CameraInfo, CompressedImage, Illuminance, Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from std_srvs.srv import Trigger
        from geometry_msgs.msg import PoseStamped
        from trajectory_msgs.msg import JointTrajectory

        self.runtime = runtime
        self.node = node = runtime.node
        self.env = env
        self.config = config
        self.options = options
        self._String = String
        robot = env.robot
        self.joint_names = config.hardware_joint_names(robot.command_joints)
        self.sim_stamps = config.stamp_source == "sim"
        self.published: Dict[str, int] = {}

        # -- state out --
        self.joint_pub = node.create_publisher(JointState, config.joint_states_topic, qos_for("state"))
        self.illuminance_pub = node.create_publisher(Illuminance, config.illuminance_topic, qos_for("sensor"))
        self.pose_pubs = {name: node.create_publisher(PoseStamped, config.object_topic(name), qos_for("sensor"))
                          for name in env.task.object_poses()}
        self.clock_pub = node.create_publisher(Clock, "/clock", qos_for("sensor")) if self.sim_stamps else None
        self.task_pub = node.create_publisher(String, "~/task_state", qos_for("control"))
        self.conditions_pub = node.create_publisher(String, "~/conditions", qos_for("control"))
        self.stats_pub = node.create_publisher(String, "~/stats", qos_for("control"))
        self.hand_topics = HandTopics(robot, config)
        self.touch_pub = self.force_pub = None
        if self.hand_topics:
            self.hand_readings = SimHandReadings(robot)
            self.touch_pub = node.create_publisher(JointState, config.hand_touch_topic, qos_for("state")) \
                if self.hand_topics.touch_sensors else None
            self.force_pub = node.create_publisher(JointState, config.grasp_force_topic, qos_for("state"))

        # -- cameras --
        compressed = config.camera_transport == "compressed"
        camera_qos = qos_for("camera", config.camera_reliability)
        outputs = []
        names = list(robot.cameras) if options.cameras is None else list(options.cameras)
        for name in names:
            if name not in robot.cameras:
                raise ConfigError(f"camera {name!r} is not in robot {robot.name!r} (has {sorted(robot.cameras)})")
            spec = robot.cameras[name]
            width, height = options.camera_size or (spec.width, spec.height)
            outputs.append(CameraOutput(
                name=name, mjcf_camera=spec.mjcf_camera, width=int(width), height=int(height),
                fps=float(options.camera_fps or spec.fps),
                image_pub=node.create_publisher(CompressedImage if compressed else Image,
                                                config.image_topic(name), camera_qos),
                info_pub=node.create_publisher(CameraInfo, config.info_topic(name), camera_qos),
            ))
        self.cameras = SimCameraPublisher(env.model, env.render_quality, outputs, compressed,
                                          options.jpeg_quality, options.camera_sync) if outputs else None

        # -- commands in --
        groups = {g: [robot.command_joints.index(j) for j in joints] for g, joints in robot.groups.items()}
        self.intake = CommandIntake(self.joint_names, env.command(), groups)
        self.command_subs = [node.create_subscription(JointTrajectory, config.trajectory_topic,
                                                      self.intake.on_trajectory, qos_for("command"))]
        for group in config.commanded_groups(robot.groups):
            self.command_subs.append(node.create_subscription(
                Float64MultiArray, config.forward_topic_for(group), lambda msg, g=group: self.intake.on_group(g, msg),
                qos_for("command")))
        self._resets: "queue.Queue" = queue.Queue()
        node.create_service(Trigger, "~/reset", self._on_reset)

        self._clock_offset = 0.0  # sim time of the previous episodes, so stamps never go backwards
        self._schedules = {"illuminance": _Periodic(1 / ILLUMINANCE_HZ), "poses": _Periodic(1 / POSE_HZ),
                           "task": _Periodic(1 / TASK_STATE_HZ), "clock": _Periodic(1 / CLOCK_HZ),
                           "stats": _Periodic(1 / STATS_HZ),
                           "hands": _Periodic(1 / HANDS_HZ)}
        self._joint_msg = joint_state_msg(self.joint_names, np.zeros(len(self.joint_names)))
        self.episode_index = 0
        self.lag_resets = 0
        self.wall_s = 0.0
        self.cpu_s = None
        self.sim_s = 0.0

    # -- time ------------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return self._clock_offset + self.env.time

    def _stamp(self, sim_t: float):
        return stamp_from_seconds(sim_t) if self.sim_stamps else stamp_from_nanoseconds(time.time_ns())

    def _count(self, key: str, n: int = 1) -> None:
        self.published[key] = self.published.get(key, 0) + n

    # -- publishing ------------------------------------------------------------------------------
    def _publish_joints(self, stamp) -> None:
        msg = self._joint_msg
        msg.header.stamp = stamp
        msg.position = float64_array(self.env.joint_positions())
        msg.velocity = float64_array(self.env.joint_velocities())
        msg.effort = float64_array(self.env.joint_efforts())
        self.joint_pub.publish(msg)
        self._count("joint_states")

    def _publish_periodic(self, sim_t: float, stamp) -> None:
        s = self._schedules
        if s["illuminance"].due(sim_t):
            self.illuminance_pub.publish(illuminance_msg(self.env.illuminance(), stamp, "task_area"))
            self._count(ILLUMINANCE)
        if s["poses"].due(sim_t):
            for name, (pos, quat) in self.env.task.object_poses().items():
                self.pose_pubs[name].publish(pose_stamped_msg(pos, quat, stamp, "world"))
                self._count(f"pose_{name}")
        if self.clock_pub is not None and s["clock"].due(sim_t):
            from rosgraph_msgs.msg import Clock

            self.clock_pub.publish(Clock(clock=stamp))
        if s["task"].due(sim_t):
            self._publish_task_state(sim_t)
        if self.hand_topics and s["hands"].due(sim_t):
            self._publish_hands(stamp)
        if s["stats"].due(sim_t):
            self.stats_pub.publish(self._String(data=json.dumps(self.stats())))

    def _publish_hands(self, stamp) -> None:
        touch, force = self.hand_readings.read(self.env.model, self.env.data)
        if self.touch_pub is not None:
            self.touch_pub.publish(self.hand_topics.touch_msg(touch, stamp))
            self._count(HAND_TOUCH)
        self.force_pub.publish(self.hand_topics.force_msg(force, stamp))
        self._count(GRASP_FORCE)

    def _publish_task_state(self, sim_t: float) -> None:
        task = self.env.task
        state = {
            "t": sim_t,
            "task": task.name,
            "instruction": getattr(task, "instruction", ""),
            "grasp_targets": task.grasp_targets(),
            "success": bool(task.success()),
            "metrics": task.metrics(),
            "episode": self.episode_index,
        }
        self.task_pub.publish(self._String(data=json.dumps(state, default=json_default)))

    def _publish_conditions(self) -> None:
        self.conditions_pub.publish(self._String(data=json.dumps(self.env.conditions, default=json_default)))

    # -- reset service ---------------------------------------------------------------------------
    def _on_reset(self, request, response):
        """Runs in the executor thread; the physics loop does the reset between two steps."""
        done: "queue.Queue" = queue.Queue()
        self._resets.put(done)
        try:
            response.success, response.message = done.get(timeout=30.0)
        except queue.Empty:
            response.success, response.message = False, "the simulation did not reset within 30 s"
        return response

    def _do_reset(self) -> tuple:
        try:
            if self.cameras is not None:
                self.cameras.wait_idle()
            self._clock_offset += self.env.time + self.env.physics_dt
            conditions = self.env.reset()
            self.intake.reset(self.env.command())
            self.episode_index += 1
            if self.cameras is not None:
                self.cameras.restart_schedule(self.sim_time)
            self._publish_conditions()
            self._publish_task_state(self.sim_time)
            return True, json.dumps(conditions, default=json_default)
        except Exception as exc:  # a reset that fails is reported to the caller, the node keeps running
            log.exception("reset failed")
            return False, f"reset failed: {exc}"

    # -- main loop -------------------------------------------------------------------------------
    def _stream_publishers(self):
        pubs = [self.joint_pub]
        if self.cameras is not None:
            pubs += [c.image_pub for c in self.cameras.cameras.values()]
        return pubs

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        return wait_for_subscribers(self._stream_publishers(), timeout_s, self.runtime.ok, period_s=0.05)

    def wait_for_commands(self, timeout_s: float) -> bool:
        """Wait until some command topic has a publisher (a teleop or controller is connected)."""
        deadline = time.monotonic() + timeout_s
        while self.runtime.ok() and time.monotonic() < deadline:
            if any(sub.get_publisher_count() > 0 for sub in self.command_subs):
                return True
            time.sleep(0.05)
        return False

    def run(self) -> dict:
        opts = self.options
        if self.cameras is not None:
            self.cameras.start()
        self._publish_conditions()
        if opts.wait_for_subscribers_s > 0 and not self.wait_for_subscribers(opts.wait_for_subscribers_s):
            lonely = [p.topic_name for p in self._stream_publishers() if p.get_subscription_count() == 0]
            log.warning("no subscriber on %s after %.1f s; starting anyway", ", ".join(lonely),
                        opts.wait_for_subscribers_s)
        if opts.wait_for_commands_s > 0 and not self.wait_for_commands(opts.wait_for_commands_s):
            log.warning("no publisher on any command topic (%s) after %.1f s; starting anyway",
                        ", ".join(sub.topic_name for sub in self.command_subs), opts.wait_for_commands_s)
        dt = self.env.control_dt
        start_sim = self.sim_time
        wall0 = time.monotonic()
        cpu0 = time.process_time()
        pace_wall, pace_sim = wall0, start_sim
        rtf = opts.real_time_factor
        try:
            while self.runtime.ok():
                command = self.intake.take()
                if command is not None:
                    try:
                        self.env.set_command(command)
                    except DataError as exc:  # outside what the sim accepts: reject, keep the last setpoint
                        self.intake.rejected += 1
                        self.intake.last_error = str(exc)
                self.env.step()
                sim_t = self.sim_time
                stamp = self._stamp(sim_t)
                self._publish_joints(stamp)
                self._publish_periodic(sim_t, stamp)
                if self.cameras is not None:
                    if self.cameras.error is not None:
                        raise DataError(f"camera rendering failed: {self.cameras.error}")
                    due = self.cameras.due(sim_t)
                    if due:
                        self.cameras.submit(self.env.data, sim_t if self.sim_stamps else None, due)
                while not self._resets.empty():
                    self._resets.get().put(self._do_reset())
                    pace_wall, pace_sim = time.monotonic(), self.sim_time
                if opts.duration_s is not None and sim_t - start_sim >= opts.duration_s - 1e-9:
                    break
                if rtf > 0:
                    target = pace_wall + (sim_t + dt - pace_sim) / rtf
                    lag = time.monotonic() - target
                    if lag > MAX_LAG_S:
                        self.lag_resets += 1
                        pace_wall, pace_sim = time.monotonic(), sim_t + dt
                    elif lag < 0:
                        time.sleep(-lag)
        finally:
            # Nothing is left to save: the flush below is best effort, and a supervisor escalating past
            # SIGINT must not wait for it (it blocks in C on a stalled subscriber's acknowledgements).
            self.runtime.exit_on_next_signal("the final flush")
            if self.cameras is not None:
                self.cameras.stop()
            self.wall_s = time.monotonic() - wall0
            self.sim_s = self.sim_time - start_sim
            self.cpu_s = time.process_time() - cpu0
            self._flush()
        return self.stats()

    def _flush(self, budget_s: float = FLUSH_BUDGET_S) -> None:
        """Let reliable subscribers acknowledge everything before the process goes away, within one
        budget for all publishers (a stalled subscriber would otherwise cost the budget per topic)."""
        from rclpy.duration import Duration

        hand_pubs = [p for p in (self.touch_pub, self.force_pub) if p is not None]
        deadline = time.monotonic() + budget_s
        # In short waits: the call holds the GIL, and a second Ctrl-C is handled only between two of them.
        slice_ = Duration(nanoseconds=int(FLUSH_SLICE_S * 1e9))
        for pub in self._stream_publishers() + hand_pubs:
            while not pub.wait_for_all_acked(slice_):
                if time.monotonic() >= deadline:
                    log.warning("%s: not every message acknowledged within %.1f s of stopping", pub.topic_name,
                                budget_s)
                    break
        stats = self.stats()
        self.stats_pub.publish(self._String(data=json.dumps(stats)))
        if self.options.stats_file:
            tmp = f"{self.options.stats_file}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(stats, fh, indent=1)
            os.replace(tmp, self.options.stats_file)

    def stats(self) -> dict:
        published = dict(self.published)
        dropped = {}
        render_ms = None
        if self.cameras is not None:
            for name, counts in self.cameras.counts().items():
                published[camera_stream_name(name)] = counts["published"]  # as the recorder names them
                dropped[camera_stream_name(name)] = counts["dropped"]
            if self.cameras.render_s:
                render_ms = float(np.percentile(self.cameras.render_s, 50) * 1e3)
        wall = self.wall_s or 0.0
        return {
            "published": published,
            "camera_frames_dropped": dropped,
            "commands_accepted": self.intake.accepted,
            "commands_rejected": self.intake.rejected,
            "last_command_error": self.intake.last_error,
            "sim_time_s": self.sim_time,
            "episode": self.episode_index,
            "run_sim_s": self.sim_s,
            "run_wall_s": wall,
            "real_time_factor": (self.sim_s / wall) if wall > 0 else None,
            "lag_resets": self.lag_resets,
            "render_ms_p50": render_ms,
            "cpu_s": self.cpu_s,
        }
