"""Topic names, message types and joint-name mapping of a robot on ROS 2.

They come from an optional `ros:` section of the robot YAML (or, for a robot YAML without one, a
`ros.yaml` beside it holding the same keys at top level); every key has a default that follows the
ros2_control / image_transport conventions, so a robot without either works as is:

```yaml
ros:
  joint_states_topic: /joint_states
  joint_names: {}                      # model joint -> hardware joint name, where they differ
  command_interface: trajectory        # trajectory: JointTrajectory to one controller
                                       # forward: Float64MultiArray per joint group (forward_command_controller)
  trajectory_topic: /joint_trajectory_controller/joint_trajectory
  forward_topic: "/{group}_controller/commands"
  forward_groups: []                   # groups commanded in forward mode (default: every group)
  camera_topic: "/{camera}/image_raw"  # + "/compressed" for sensor_msgs/CompressedImage
  camera_info_topic: "/{camera}/camera_info"
  camera_topics: {}                    # per-camera override of camera_topic
  camera_transport: raw                # raw (sensor_msgs/Image) | compressed (CompressedImage, JPEG)
  camera_reliability: best_effort      # best_effort (sensor-data convention) | reliable
  illuminance_topic: /illuminance
  pose_topics: {}                      # recorder stream name -> geometry_msgs/PoseStamped topic
  object_pose_topic: "/objects/{object}/pose"
  stamp_source: sim                    # header stamps of the sim-hardware node: sim | host
  joint_state_timeout_s: 0.5           # no /joint_states for longer: the ROS backend stops commanding
  control_topic: /collector/control    # who commands each tick (operator, policy...): teleop -> recorder
  hand_touch_topic: /hand_touch        # robots with hands: touch sensors, sensor_msgs/JointState effort (N)
  grasp_force_topic: /grasp_force      # robots with hands: finger actuator force, JointState effort
```
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from collector.errors import ConfigError
from collector.yaml_files import load_yaml_mapping

SIDECAR = "ros.yaml"  # beside a robot YAML, for a robot whose YAML has no ros: section
COMMAND_INTERFACES = ("trajectory", "forward")
CAMERA_TRANSPORTS = ("raw", "compressed")
STAMP_SOURCES = ("sim", "host")


@dataclass
class RosConfig:
    joint_states_topic: str = "/joint_states"
    joint_names: Dict[str, str] = field(default_factory=dict)
    command_interface: str = "trajectory"
    trajectory_topic: str = "/joint_trajectory_controller/joint_trajectory"
    forward_topic: str = "/{group}_controller/commands"
    forward_groups: List[str] = field(default_factory=list)
    camera_topic: str = "/{camera}/image_raw"
    camera_info_topic: str = "/{camera}/camera_info"
    camera_topics: Dict[str, str] = field(default_factory=dict)
    camera_transport: str = "raw"
    camera_reliability: str = "best_effort"
    illuminance_topic: str = "/illuminance"
    pose_topics: Dict[str, str] = field(default_factory=dict)
    object_pose_topic: str = "/objects/{object}/pose"
    stamp_source: str = "sim"
    joint_state_timeout_s: float = 0.5
    control_topic: str = "/collector/control"
    hand_touch_topic: str = "/hand_touch"
    grasp_force_topic: str = "/grasp_force"
    source: str = "<defaults>"  # where the values came from, for error messages

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, section: Optional[Mapping], source: str = "<mapping>") -> "RosConfig":
        section = dict(section or {})
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{source}: ros: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        config = cls(**section, source=source)
        config.validate()
        return config

    @classmethod
    def from_robot_yaml(cls, path) -> "RosConfig":
        """The `ros:` section of a robot YAML, or else a `ros.yaml` beside it (the same keys at top level)."""
        path = Path(path)
        document = load_yaml_mapping(path, "robot YAML", empty_ok=True)
        if document.get("ros") is not None:
            return cls.from_mapping(document["ros"], source=str(path))
        sidecar = path.with_name(SIDECAR)
        if sidecar.is_file():
            return cls.from_mapping(load_yaml_mapping(sidecar, "ROS config"), source=str(sidecar))
        return cls.from_mapping({}, source=str(path))

    @classmethod
    def for_robot(cls, spec, **overrides) -> "RosConfig":
        """The robot's ros section with command-line overrides (None values are ignored) applied."""
        yaml_path = getattr(spec, "yaml_path", None)
        config = cls.from_robot_yaml(yaml_path) if yaml_path else cls()
        for key, value in overrides.items():
            if value is not None:
                if not hasattr(config, key):
                    raise ConfigError(f"ros config: no setting named {key!r}")
                setattr(config, key, value)
        config.validate()
        return config

    def validate(self) -> None:
        def choice(name, allowed):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{self.source}: ros: {name} {value!r} not in {allowed}")

        choice("command_interface", COMMAND_INTERFACES)
        choice("camera_transport", CAMERA_TRANSPORTS)
        choice("camera_reliability", ("best_effort", "reliable"))
        choice("stamp_source", STAMP_SOURCES)
        for name in ("joint_names", "camera_topics", "pose_topics"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                raise ConfigError(f"{self.source}: ros: {name} must map names to strings")
        if not isinstance(self.forward_groups, list):
            raise ConfigError(f"{self.source}: ros: forward_groups must be a list of group names")
        timeout = self.joint_state_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(f"{self.source}: ros: joint_state_timeout_s must be a positive number of seconds")
        for name in ("joint_states_topic", "trajectory_topic", "forward_topic", "camera_topic",
                     "camera_info_topic", "illuminance_topic", "object_pose_topic", "control_topic",
                     "hand_touch_topic", "grasp_force_topic"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{self.source}: ros: {name} must be a non-empty topic name")

    # -- names -------------------------------------------------------------------------------
    def hardware_joint_names(self, model_joints: Sequence[str]) -> List[str]:
        return [self.joint_names.get(name, name) for name in model_joints]

    def forward_topic_for(self, group: str) -> str:
        return self.forward_topic.format(group=group)

    def image_topic(self, camera: str) -> str:
        base = self.camera_topics.get(camera, self.camera_topic.format(camera=camera))
        return base + "/compressed" if self.camera_transport == "compressed" else base

    def info_topic(self, camera: str) -> str:
        return self.camera_info_topic.format(camera=camera)

    def object_topic(self, obj: str) -> str:
        return self.object_pose_topic.format(object=obj)

    def commanded_groups(self, groups: Mapping[str, Sequence[str]]) -> Dict[str, List[str]]:
        """Groups commanded in forward mode, each with its joints in the controller's order."""
        wanted = self.forward_groups or list(groups)
        missing = [g for g in wanted if g not in groups]
        if missing:
            raise ConfigError(f"{self.source}: ros: forward_groups {missing} are not joint groups "
                              f"of the robot (have {sorted(groups)})")
        return {g: list(groups[g]) for g in wanted}
