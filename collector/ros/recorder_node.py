"""The recorder node: ROS 2 topics in, crash-safe HDF5 episodes out (collector.recorder.EpisodeWriter).

Recorded streams (all stamped with the message's header stamp; `receive_t` is the host wall-clock
time the message arrived, so transport latency stays measurable):
  joints               /joint_states (position, velocity, effort in the robot YAML's joint order)
  command              the joint command topic (JointTrajectory, or the per-group Float64MultiArrays,
                       which have no header: stamped with the robot clock estimated from /joint_states)
  camera_<name>        Image or CompressedImage per camera (frames are JPEG-encoded by the recorder);
                       receive times in camera_<name>_receive (a camera stream holds only its image)
  illuminance          sensor_msgs/Illuminance
  hand_touch,          robots with hands: touch sensors and finger actuator forces, from /hand_touch and
  grasp_force          /grasp_force (sensor_msgs/JointState effort; collector/ros/hand_topics.py), the
                       streams the simulator backend records; declared when their topic has a publisher
  control              who commanded each tick (operator, policy...), from the teleop's control topic
                       (control_topic.py); declared at the start once the teleop announced its sources,
                       else from its first message
  pose_<topic>         every geometry_msgs/PoseStamped topic in the graph (and any named in the robot
                       YAML's ros.pose_topics), as x y z qw qx qy qz. The graph is polled every
                       DISCOVERY_PERIOD_S while recording: a topic discovered after the episode
                       started (late DDS discovery under load, a node started later) joins the open
                       episode from its first sample, as rosbag2 does; so does illuminance in "auto".
Names and specs come from collector/recorder/vocabulary.py, as the teleop loop's do.
Camera intrinsics from CameraInfo, the scene's conditions (from the sim-hardware node, or the
operator-applied presets on a real robot) and joint limits go into the episode metadata.

Control (reliable services, std_srvs/Trigger): ~/start_episode, ~/stop_episode (outcome "unknown"),
~/stop_success, ~/stop_failure, ~/discard_episode. ~/status (std_msgs/String JSON, latched,
1 Hz and on every change) tells the state, the episode and the per-stream counts.

All callbacks run on one executor thread, so a service never races a sample; the writer itself
never blocks on disk. On SIGINT/SIGTERM an episode in progress is finalised with outcome
"unknown"; after SIGKILL its partial file is recovered with `collector recover`.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from collector.errors import CollectorError, ConfigError, DataError
from collector.recorder import EpisodeWriter, StreamSpec, schema
from collector.recorder.vocabulary import (COMMAND, CONTROL, GRASP_FORCE, HAND_TOUCH, ILLUMINANCE, JOINT_FIELDS,
                                           JOINTS, RECEIVE_FIELD, camera_receive_spec, camera_receive_stream_name,
                                           camera_spec, camera_stream_name, command_spec, control_spec,
                                           illuminance_spec, joints_spec, named_pose_stream_name, pose_spec,
                                           topic_pose_stream_name)
from collector.ros.config import RosConfig
from collector.ros.control_topic import control_qos, parse_control_message
from collector.ros.hand_topics import HandTopics
from collector.ros.conversions import (JointStateReader, camera_info_dict, compressed_image_array, image_array,
                                       illuminance_value, multiarray_values, pose_vector, seconds_from_stamp,
                                       trajectory_target)
from collector.ros.qos import qos_for
from collector.ros.robot_clock import RobotClock
from collector.ros.runtime import subscribe_batched

log = logging.getLogger(__name__)

POSE_TYPE = "geometry_msgs/msg/PoseStamped"
# Stopping waits for samples stamped before the stop to arrive: at most STOP_GRACE_S, or until no
# sample came for STOP_QUIET_S (the robot stopped publishing).
STOP_GRACE_S = 2.0
STOP_QUIET_S = 0.5
# How long start_episode waits for the command and control publishers the graph knows to be matched.
COMMAND_MATCH_WAIT_S = 3.0
# How often the graph is polled for new topics while an episode records (rosbag2 polls every 0.1 s).
DISCOVERY_PERIOD_S = 0.2


@dataclass
class RecorderOptions:
    output_dir: Path
    session_id: str = ""
    episode_prefix: str = "episode"
    task: str = ""
    instruction: str = ""
    operator: str = ""
    station: str = ""
    cameras: Optional[List[str]] = None  # None: every camera of the robot YAML
    camera_size: Optional[tuple] = None  # (width, height) of every camera; default: as last seen, else the YAML
    jpeg_quality: int = 90
    discover_poses: bool = True
    conditions_topic: str = "/sim_hardware/conditions"
    task_state_topic: str = "/sim_hardware/task_state"
    lighting: str = ""  # operator-applied presets, recorded when no simulator reports conditions
    weight: str = ""
    aligned_rate_hz: Optional[float] = None
    # Nominal rates: the recorder's gap checks and the aligned view's tolerances follow from them.
    joint_rate_hz: float = 500.0
    command_rate_hz: float = 100.0
    record_illuminance: Optional[bool] = None  # None: when the topic has a publisher at episode start
    hand_rate_hz: float = 100.0  # touch and grasp force (robots with hands)


@dataclass
class _StreamCounts:
    received: int = 0
    recorded: int = 0
    not_recorded: int = 0  # rejected by the writer or dropped on a full queue
    bad: int = 0  # messages that could not be converted (wrong size, NaN...)


class RecorderNode:
    def __init__(self, runtime, robot, config: RosConfig, options: RecorderOptions):
        from sensor_msgs.msg import CameraInfo, CompressedImage, Illuminance, Image, JointState
        from std_msgs.msg import Float64MultiArray, String
        from std_srvs.srv import Trigger
        from trajectory_msgs.msg import JointTrajectory

        self.runtime = runtime
        self.node = node = runtime.node
        self.robot = robot
        self.config = config
        self.options = options
        self._String = String
        self.output_dir = Path(options.output_dir)
        self.session_id = options.session_id or time.strftime("ros_%Y%m%dT%H%M%S")
        self.joint_names = list(robot.command_joints)
        self.hw_names = config.hardware_joint_names(self.joint_names)
        self.clock = RobotClock()
        self.writer: Optional[EpisodeWriter] = None
        self.counts: Dict[str, _StreamCounts] = {}
        self.episodes: List[str] = []
        self.last_error: Optional[str] = None
        self.last_path: Optional[str] = None

        # Latest values seen, used to declare streams and metadata at episode start.
        self._joint_fields_seen: Optional[tuple] = None
        self._image_sizes: Dict[str, tuple] = {}
        self._camera_info: Dict[str, dict] = {}
        self._conditions: Optional[dict] = None
        self._task_state: Optional[dict] = None
        self._command = np.full(len(self.joint_names), np.nan)
        self._start_metadata: dict = {}
        self._cutoff: Optional[float] = None  # robot time of a stop in progress
        self._past_cutoff: set = set()
        self._last_sample: Dict[str, float] = {}  # stream -> time.monotonic() of its newest sample
        self._late_streams: List[str] = []  # streams added to the open episode after it started
        self._control_sources: Optional[Dict[str, int]] = None  # the teleop's source codes, once announced

        # -- subscriptions (created once; samples are only kept while an episode records) --
        # Samples arrive on the runtime's stream lane (its own executor thread); services, status
        # and the sim's latched topics stay here, so a stop can wait for samples still in flight.
        streams = self._streams_node = runtime.stream_node or node
        self._lock = threading.Lock()  # guards writer/counts between the two executor threads
        self._joint_reader = JointStateReader(self.hw_names)
        self._joint_subscription = subscribe_batched(streams, JointState, config.joint_states_topic,
                                                     self._on_joint_state, qos_for("state"))
        self._command_subscriptions = []  # what start_episode waits to be matched with their publishers
        if config.command_interface == "trajectory":
            self._command_subscriptions.append(subscribe_batched(
                streams, JointTrajectory, config.trajectory_topic, self._on_trajectory, qos_for("command")))
        else:
            self._groups = {g: [self.joint_names.index(j) for j in joints]
                            for g, joints in config.commanded_groups(robot.groups).items()}
            for group in self._groups:
                self._command_subscriptions.append(streams.create_subscription(
                    Float64MultiArray, config.forward_topic_for(group),
                    lambda msg, g=group: self._on_group_command(g, msg), qos_for("command")))
        compressed = config.camera_transport == "compressed"
        self.camera_names = list(robot.cameras) if options.cameras is None else list(options.cameras)
        for name in self.camera_names:
            if name not in robot.cameras:
                raise ConfigError(f"camera {name!r} is not in robot {robot.name!r} (has {sorted(robot.cameras)})")
            # 3 s of frames: DDS keeps receiving while Python is busy, and an overflowing reader
            # history would lose frames even under reliable QoS (see collector.ros.qos).
            camera_qos = qos_for("camera", config.camera_reliability, depth=max(30, int(3 * robot.cameras[name].fps)))
            subscribe_batched(streams, CompressedImage if compressed else Image, config.image_topic(name),
                              lambda msg, n=name: self._on_image(n, msg, compressed), camera_qos)
            streams.create_subscription(CameraInfo, config.info_topic(name),
                                        lambda msg, n=name: self._on_camera_info(n, msg), camera_qos)
        streams.create_subscription(Illuminance, config.illuminance_topic, self._on_illuminance, qos_for("sensor"))
        self.hand_topics = HandTopics(robot, config)
        self._hand_model = None  # the robot's MjModel, loaded for grasp force units at the first declaration
        if self.hand_topics:
            if self.hand_topics.touch_sensors:
                subscribe_batched(streams, JointState, config.hand_touch_topic, self._on_hand_touch, qos_for("state"))
            subscribe_batched(streams, JointState, config.grasp_force_topic, self._on_grasp_force, qos_for("state"))
        self._control_subscription = subscribe_batched(streams, String, config.control_topic, self._on_control,
                                                       control_qos())
        self._command_subscriptions.append(self._control_subscription)
        self._pose_topics: Dict[str, str] = {}  # topic -> stream name
        for name, topic in config.pose_topics.items():
            self._subscribe_pose(topic, named_pose_stream_name(name))
        node.create_subscription(String, options.conditions_topic, self._on_conditions, qos_for("control"))
        node.create_subscription(String, options.task_state_topic, self._on_task_state, qos_for("control"))

        # -- control --
        self.status_pub = node.create_publisher(String, "~/status", qos_for("control"))
        node.create_service(Trigger, "~/start_episode", self._srv(self.start_episode))
        node.create_service(Trigger, "~/stop_episode", self._srv(lambda: self.stop_episode("unknown")))
        node.create_service(Trigger, "~/stop_success", self._srv(lambda: self.stop_episode("success")))
        node.create_service(Trigger, "~/stop_failure", self._srv(lambda: self.stop_episode("failure")))
        node.create_service(Trigger, "~/discard_episode", self._srv(self.discard_episode))
        node.create_timer(1.0, self.publish_status)
        node.create_timer(DISCOVERY_PERIOD_S, self._discover_while_recording)

    # -- stream declarations ------------------------------------------------------------------
    def _subscribe_pose(self, topic: str, stream: str) -> None:
        from geometry_msgs.msg import PoseStamped

        if topic in self._pose_topics:
            return
        self._pose_topics[topic] = stream
        # While recording the stream joins the episode before the subscription exists: no sample
        # can arrive for a stream the writer does not know yet.
        self._add_to_open_episode(self._pose_spec(topic, stream))
        self._streams_node.create_subscription(PoseStamped, topic, lambda msg, s=stream: self._on_pose(s, msg),
                                               qos_for("sensor"))

    def _discover_poses(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            if POSE_TYPE in types and topic not in self._pose_topics:
                self._subscribe_pose(topic, topic_pose_stream_name(topic))

    def _discover_while_recording(self) -> None:
        if self.writer is None:
            return
        if self.options.discover_poses:
            self._discover_poses()
        if self.options.record_illuminance is None and ILLUMINANCE not in self.counts \
                and self.node.count_publishers(self.config.illuminance_topic) > 0:
            self._add_to_open_episode(self._illuminance_spec())
        for spec in self._hand_specs(lambda name: name not in self.counts):
            self._add_to_open_episode(spec)

    def _add_to_open_episode(self, spec: StreamSpec) -> None:
        """Record a stream discovered after the episode started, from its next sample on."""
        with self._lock:
            writer = self.writer
            if writer is None or spec.name in self.counts:
                return
            try:
                writer.add_stream(spec)
            except CollectorError as exc:  # the episode is stopping: the next one declares it at start
                log.warning("could not add %s to %s: %s", spec.name, writer.episode_id, exc)
                return
            self.counts[spec.name] = _StreamCounts()
            self._late_streams.append(spec.name)
        log.info("%s discovered during %s: recording it from now on", spec.name, writer.episode_id)

    def _pose_spec(self, topic: str, stream: str) -> StreamSpec:
        return pose_spec(stream, 30.0, receive_t=True, attrs={"topic": topic})

    def _illuminance_spec(self) -> StreamSpec:
        return illuminance_spec(10.0, receive_t=True, attrs={"topic": self.config.illuminance_topic})

    def _hand_specs(self, wanted: Callable[[str], bool] = lambda name: True) -> List[StreamSpec]:
        """hand_touch and grasp_force for a robot with hands, each once its topic has a publisher (a real
        hand may have no touch sensors to publish: an empty stream would fail QA)."""
        topics = self.hand_topics
        specs = []
        if topics.touch_sensors and wanted(HAND_TOUCH) and self.node.count_publishers(topics.touch_topic) > 0:
            specs.append(topics.touch_spec(self.options.hand_rate_hz))
        if topics and wanted(GRASP_FORCE) and self.node.count_publishers(topics.force_topic) > 0:
            if self._hand_model is None:
                self._hand_model = self.robot.load_model()
            specs.append(topics.force_spec(self.options.hand_rate_hz, self._hand_model))
        return specs

    def _control_spec(self, sources: Dict[str, int]) -> StreamSpec:
        spec = control_spec(sources, self.options.command_rate_hz)
        spec.attrs["topic"] = self.config.control_topic
        return spec

    def stream_specs(self) -> List[StreamSpec]:
        hardware = {"hardware_joint_names": self.hw_names}
        specs = [
            joints_spec(self.joint_names, self.options.joint_rate_hz, fields=self._joint_fields_seen or JOINT_FIELDS,
                        receive_t=True, attrs={**hardware, "topic": self.config.joint_states_topic}),
            command_spec(self.joint_names, self.options.command_rate_hz, receive_t=True,
                         attrs={**hardware, "interface": self.config.command_interface}),
        ]
        # A robot without a light sensor publishes no illuminance: an empty stream would fail QA.
        illuminance = self.options.record_illuminance
        if illuminance is None:
            illuminance = self.node.count_publishers(self.config.illuminance_topic) > 0
        if illuminance:
            specs.append(self._illuminance_spec())
        if self._control_sources:
            specs.append(self._control_spec(self._control_sources))
        specs += self._hand_specs()
        for name in self.camera_names:
            cam = self.robot.cameras[name]
            width, height = self.options.camera_size or self._image_sizes.get(name, (cam.width, cam.height))
            topic = self.config.image_topic(name)
            specs.append(camera_spec(name, width, height, cam.fps, codec="jpeg",
                                     jpeg_quality=self.options.jpeg_quality, attrs={"topic": topic}))
            specs.append(camera_receive_spec(name, cam.fps, topic))
        for topic, stream in self._pose_topics.items():
            specs.append(self._pose_spec(topic, stream))
        return specs

    def _metadata(self) -> dict:
        sim = self._conditions is not None
        if sim:
            conditions = dict(self._conditions)
        else:
            conditions = {"lighting": {"preset": self.options.lighting or "unspecified", "applied_by": "operator"},
                          "weights": {"preset": self.options.weight or "unspecified", "applied_by": "operator"}}
        task_state = self._task_state or {}
        metadata = {
            "session_id": self.session_id,
            "robot": self.robot.name,
            "task": self.options.task or task_state.get("task") or conditions.get("task", ""),
            "instruction": self.options.instruction or task_state.get("instruction")
            or conditions.get("instruction", ""),
            "operator": self.options.operator,
            "station": self.options.station,
            "conditions": conditions,
            "sim": sim,
            "robot_model_hash": self.robot.model_hash,
            "camera_calibration": {name: info for name, info in self._camera_info.items()},
            "recorded_by": "collector.ros.recorder_node",
            "ros": {"joint_states_topic": self.config.joint_states_topic,
                    "command_interface": self.config.command_interface,
                    "camera_transport": self.config.camera_transport,
                    "camera_reliability": self.config.camera_reliability,
                    "stamps": "message header stamps; receive_t = host receive time"},
        }
        if self.robot.joint_ranges and all(j in self.robot.joint_ranges for j in self.joint_names):
            from collector.sim.limits import joint_limit_metadata

            # Simulated hardware (sim_hardware.py) has MuJoCo's soft limits: allow their deflection.
            metadata["joint_limits"] = joint_limit_metadata(self.robot, self.robot.load_model() if sim else None)
        return metadata

    # -- episode control (services) --------------------------------------------------------------
    def _srv(self, action: Callable[[], str]):
        def callback(request, response):
            try:
                response.message = action()
                response.success = True
            except CollectorError as exc:
                response.success, response.message = False, str(exc)
                self.last_error = str(exc)
                log.error("%s", exc)
            self.publish_status()
            return response

        return callback

    def _next_episode_id(self) -> str:
        prefix = self.options.episode_prefix
        pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
        names = (schema.episode_id_from_name(p.name) for p in schema.episode_files_under(self.output_dir, recursive=False))
        taken = [int(m.group(1)) for name in names if (m := pattern.match(name))]
        return f"{prefix}_{max(taken, default=0) + 1:06d}"

    def start_episode(self) -> str:
        if self.writer is not None:
            raise DataError(f"episode {self.writer.episode_id} is already recording; stop or discard it first")
        if self.options.discover_poses:
            self._discover_poses()
        self._command[:] = np.nan
        # Before the streams are declared: the control stream is declared from the teleop's announcement.
        self._wait_for_command_publishers()
        self._start_metadata = self._metadata()
        writer = EpisodeWriter(self.output_dir, self._next_episode_id(), self.stream_specs(),
                               metadata=self._start_metadata, aligned_rate_hz=self.options.aligned_rate_hz)
        writer.start()
        with self._lock:
            self.counts = {spec: _StreamCounts() for spec in writer.specs}
            self._past_cutoff = set()
            self._late_streams = []
            self.writer = writer
        log.info("recording %s", writer.partial_path)
        return writer.episode_id

    def _wait_for_command_publishers(self) -> None:
        """Answer start_episode only once every command publisher the graph knows is matched with this
        recorder: a teleop node calls start_episode and then commands at once, and DDS does not deliver
        what a publisher sent before the match (reliable but volatile), so on a loaded machine an episode
        began with its first commands missing while the robot already moved. A matched control publisher
        is waited for until its announcement of the sources arrived (transient local, so right after the
        match), or the episode would declare its control stream late. So is the robot's first joint state
        when the graph knows a joint state publisher, or a publisher commanding the robot is matched (a robot
        is about to move, so one exists even if discovery has not shown it to this recorder yet): a recorder
        that had just come up matched the teleop before the robot, and its episode began with commands and
        no robot state for 0.3 s, then 0.6 s (clean-clone CI runs). Bounded: a publisher that never
        matches (incompatible QoS) or never publishes costs COMMAND_MATCH_WAIT_S and a warning, not the
        episode."""
        deadline = time.monotonic() + COMMAND_MATCH_WAIT_S
        joints = self._joint_subscription
        while True:
            unmatched = [s.topic_name for s in self._command_subscriptions
                         if s.get_publisher_count() < self.node.count_publishers(s.topic_name)]
            robot_commanded = any(s.get_publisher_count() > 0 for s in self._command_subscriptions
                                  if s is not self._control_subscription)
            robot_known = robot_commanded or self.node.count_publishers(joints.topic_name) > 0
            if self._joint_fields_seen is None and robot_known:
                unmatched.append(f"{joints.topic_name} (no joint state received yet)")
            if self._control_sources is None and self._control_subscription.get_publisher_count() > 0:
                unmatched.append(f"{self._control_subscription.topic_name} (sources not announced yet)")
            if not unmatched:
                return
            if time.monotonic() >= deadline:
                log.warning("start_episode: %s not matched with every publisher after %.0f s; recording anyway",
                            ", ".join(unmatched), COMMAND_MATCH_WAIT_S)
                return
            time.sleep(0.01)

    def _settle(self) -> None:
        """Let samples stamped before the stop instant, still queued in DDS or the executor, arrive.

        Waits until each stream that delivered during the episode has either delivered a sample
        stamped after the cutoff or been silent for STOP_QUIET_S (its publisher stopped, like a
        teleop that stopped commanding), at most STOP_GRACE_S. Samples stamped after the cutoff
        are not recorded, so all streams end at the same instant.
        """
        cutoff = self.clock.now()
        if cutoff is None or self.runtime.stream_node is None:
            return
        with self._lock:
            self._cutoff = cutoff
            waiting = {name for name, c in self.counts.items() if c.received}
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            now = time.monotonic()
            with self._lock:
                pending = [name for name in waiting if name not in self._past_cutoff
                           and now - self._last_sample.get(name, 0.0) < STOP_QUIET_S]
            if not pending:
                return
            time.sleep(0.01)

    def _take_writer(self) -> EpisodeWriter:
        """Detach the recording writer: samples arriving from now on belong to no episode."""
        with self._lock:
            writer, self.writer = self.writer, None
            self._cutoff = None
        if writer is None:
            raise DataError("no episode is recording")
        return writer

    def _late_metadata(self) -> dict:
        """What became known only while recording: an episode started before the robot came up
        learns the simulator's conditions and task, and every camera's intrinsics, from its messages."""
        start, now = self._start_metadata, self._metadata()
        late = {}
        if now["sim"] and not start["sim"]:
            late.update(conditions=now["conditions"], sim=True)
        for key in ("task", "instruction"):
            if now[key] and not start[key]:
                late[key] = now[key]
        if len(now["camera_calibration"]) > len(start["camera_calibration"]):
            late["camera_calibration"] = now["camera_calibration"]
        if self._late_streams:
            late["streams_discovered_late"] = list(self._late_streams)
        return late

    def stop_episode(self, outcome: str, settle: bool = True) -> str:
        if self.writer is None:
            raise DataError("no episode is recording")
        if settle:
            self._settle()
        writer = self._take_writer()
        updates = {"ros_stream_counts": {k: vars(v) for k, v in self.counts.items()}, **self._late_metadata()}
        path = writer.stop(outcome=outcome, metadata_updates=updates)
        self.episodes.append(str(path))
        self.last_path = str(path)
        log.info("episode %s finished (%s): %s", writer.episode_id, outcome, path)
        return str(path)

    def discard_episode(self) -> str:
        writer = self._take_writer()
        writer.discard()
        return f"discarded {writer.episode_id}"

    def status(self) -> dict:
        writer = self.writer
        return {
            "state": "recording" if writer is not None else "idle",
            "episode_id": writer.episode_id if writer is not None else None,
            "path": str(writer.partial_path) if writer is not None else self.last_path,
            "episodes": len(self.episodes),
            "streams": {k: vars(v) for k, v in self.counts.items()},
            "writer_error": str(writer.error) if writer is not None and writer.error else None,
            "last_error": self.last_error,
        }

    def publish_status(self) -> None:
        self.status_pub.publish(self._String(data=json.dumps(self.status())))

    def shutdown(self) -> Optional[str]:
        """Finalise an episode still recording (outcome unknown): stopping the node loses no data."""
        if self.writer is None:
            return None
        try:
            return self.stop_episode("unknown", settle=False)  # stopping: no wait for the streams to catch up
        except CollectorError as exc:
            log.error("could not finalise the episode at shutdown (%s); run `collector recover` on it", exc)
            return None

    # -- samples ---------------------------------------------------------------------------------
    def _push(self, stream: str, t: float, **fields) -> bool:
        """Hand one sample to the writer; True if it was recorded."""
        with self._lock:
            writer = self.writer
            counts = self.counts.get(stream)
            if writer is None or counts is None:  # not recording (or a stream of the previous episode)
                return False
            self._last_sample[stream] = time.monotonic()
            if self._cutoff is not None and t > self._cutoff:
                self._past_cutoff.add(stream)  # stopping: this stream has delivered up to the stop instant
                return False
        counts.received += 1
        if writer.push(stream, t, **fields):
            counts.recorded += 1
            return True
        counts.not_recorded += 1
        return False

    def _bad(self, stream: str, exc: Exception) -> None:
        with self._lock:
            counts = self.counts.get(stream) if self.writer is not None else None
        if counts is not None:
            counts.received += 1
            counts.bad += 1
        self.last_error = f"{stream}: {exc}"
        log.warning("%s: message not recorded: %s", stream, exc)

    def _on_joint_state(self, msg) -> None:
        received = time.time()
        stamp = seconds_from_stamp(msg.header.stamp)
        self.clock.observe(stamp)
        try:
            values = self._joint_reader.read(msg)
        except DataError as exc:
            self._bad(JOINTS, exc)
            return
        self._joint_fields_seen = tuple(f for f in JOINT_FIELDS if np.all(np.isfinite(values[f])))
        if self.writer is not None:
            fields = {f: values[f] for f in self.writer.specs[JOINTS].fields if f != RECEIVE_FIELD}
            self._push(JOINTS, stamp, receive_t=received, **fields)

    def _command_stamp(self, header_stamp: Optional[float]) -> Optional[float]:
        if header_stamp:  # a zero stamp means "now" in the JointTrajectory convention
            return header_stamp
        return self.clock.now()

    def _record_command(self, header_stamp: Optional[float], received: float) -> None:
        if self.writer is None or not np.all(np.isfinite(self._command)):
            return  # not recording, or some joints have never been commanded yet
        t = self._command_stamp(header_stamp)
        if t is None:
            self._bad(COMMAND, DataError("no joint states yet to stamp a header-less command with"))
            return
        self._push(COMMAND, t, position=self._command.copy(), receive_t=received)

    def _on_trajectory(self, msg) -> None:
        received = time.time()
        try:
            names, positions = trajectory_target(msg)
            index = {n: i for i, n in enumerate(self.hw_names)}
            unknown = [n for n in names if n not in index]
            if unknown:
                raise DataError(f"JointTrajectory names unknown joints {unknown[:5]}")
        except DataError as exc:
            self._bad(COMMAND, exc)
            return
        self._command[[index[n] for n in names]] = positions
        self._record_command(seconds_from_stamp(msg.header.stamp), received)

    def _on_group_command(self, group: str, msg) -> None:
        received = time.time()
        indices = self._groups[group]
        try:
            self._command[indices] = multiarray_values(msg, len(indices), f"{group} command")
        except DataError as exc:
            self._bad(COMMAND, exc)
            return
        self._record_command(None, received)

    def _on_image(self, name: str, msg, compressed: bool) -> None:
        received = time.time()
        stream = camera_stream_name(name)
        try:
            rgb = compressed_image_array(msg) if compressed else image_array(msg)
        except DataError as exc:
            self._bad(stream, exc)
            return
        self._image_sizes[name] = (rgb.shape[1], rgb.shape[0])
        stamp = seconds_from_stamp(msg.header.stamp)
        if self._push(stream, stamp, image=rgb):  # the receive times describe the recorded frames
            self._push(camera_receive_stream_name(name), stamp, receive_t=received)

    def _on_camera_info(self, name: str, msg) -> None:
        self._camera_info[name] = camera_info_dict(msg)

    def _on_illuminance(self, msg) -> None:
        received = time.time()
        try:
            value = illuminance_value(msg)
        except DataError as exc:
            self._bad(ILLUMINANCE, exc)
            return
        self._push(ILLUMINANCE, seconds_from_stamp(msg.header.stamp), value=value, receive_t=received)

    def _on_hand_touch(self, msg) -> None:
        self._on_hand_reading(HAND_TOUCH, self.hand_topics.read_touch, msg)

    def _on_grasp_force(self, msg) -> None:
        self._on_hand_reading(GRASP_FORCE, self.hand_topics.read_force, msg)

    def _on_hand_reading(self, stream: str, read, msg) -> None:
        received = time.time()
        try:
            per_side = read(msg)
        except DataError as exc:
            self._bad(stream, exc)
            return
        self._push(stream, seconds_from_stamp(msg.header.stamp), receive_t=received, **per_side)

    def _on_pose(self, stream: str, msg) -> None:
        received = time.time()
        try:
            vec = pose_vector(msg)
        except DataError as exc:
            self._bad(stream, exc)
            return
        self._push(stream, seconds_from_stamp(msg.header.stamp), pose=vec, receive_t=received)

    def _on_control(self, msg) -> None:
        try:
            t, source, sources = parse_control_message(msg.data)
        except DataError as exc:
            self._bad(CONTROL, exc)
            return
        if self._control_sources is None or source is None:
            self._control_sources = sources  # the codes the next episode declares
        if self.writer is not None and CONTROL not in self.counts:
            self._add_to_open_episode(self._control_spec(sources))
        if t is None:
            return
        with self._lock:
            declared = self.writer.specs[CONTROL].attrs["sources"] if self.writer is not None \
                and CONTROL in self.writer.specs else None
        if declared is None:
            return
        if source not in declared:  # another teleop, other sources, mid-episode
            self._bad(CONTROL, DataError(f"source {source!r} is not one of the episode's {sorted(declared)}"))
            return
        self._push(CONTROL, t, source=np.uint8(declared[source]))

    def _on_conditions(self, msg) -> None:
        try:
            conditions = json.loads(msg.data)
        except ValueError as exc:
            self.last_error = f"conditions: not JSON ({exc})"
            return
        if isinstance(conditions, dict):
            self._conditions = conditions

    def _on_task_state(self, msg) -> None:
        try:
            state = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(state, dict):
            self._task_state = state
