"""Which ROS 2 topic and message type each recorded stream goes out on (ROS 2 replay and MCAP export).

Topic names come from the robot's `ros:` section (collector.ros.config.RosConfig), so a replay lands
on the topics the robot's own nodes use:

| stream kind          | message                     | topic                                                   |
|----------------------|-----------------------------|---------------------------------------------------------|
| joints               | sensor_msgs/JointState      | joint_states_topic (/joint_states)                      |
| command              | sensor_msgs/JointState      | /collector/command (no controller listens there) (*)    |
| camera               | sensor_msgs/CompressedImage | camera_topic + /compressed (/<cam>/image_raw/compressed) |
| sensor "illuminance" | sensor_msgs/Illuminance     | illuminance_topic (/illuminance)                        |
| pose                 | geometry_msgs/PoseStamped   | pose_topics[stream] or /collector/<stream>/<field>      |
| anything else        | std_msgs/Float64MultiArray  | /collector/<stream>/<field>, one topic per field        |
(*) with `drive_robot`: trajectory_msgs/JointTrajectory on trajectory_topic, to move the robot.

Camera frames are re-encoded as standard JPEG (BGR inside, as every viewer expects): the episode's
JPEGs follow ALOHA's convention (RGB bytes handed to the encoder) and would show swapped colours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from collector.errors import DataError
from collector.recorder.streams import StreamSpec
from collector.recorder.vocabulary import ILLUMINANCE

COMMAND_TOPIC = "/collector/command"
METADATA_TOPIC = "/collector/episode"
NANOS = 1_000_000_000


@dataclass
class Route:
    """One topic fed by one stream (and, for per-field topics, one field of it)."""

    stream: str
    topic: str
    ros_type: str  # "sensor_msgs/msg/JointState"
    qos_kind: str  # collector.ros.qos kind
    fields: List[str]
    names: List[str] = field(default_factory=list)  # joint names for JointState / JointTrajectory
    frame_id: str = ""

    @property
    def is_camera(self) -> bool:
        return self.ros_type == "sensor_msgs/msg/CompressedImage"


def routes_for(specs: Dict[str, StreamSpec], ros_config=None, drive_robot: bool = False,
               streams: Optional[Sequence[str]] = None) -> List[Route]:
    """Routes of every recorded stream (or only `streams`), in stream order."""
    from collector.ros.config import RosConfig

    cfg = ros_config or RosConfig()
    if streams:
        unknown = sorted(set(streams) - set(specs))
        if unknown:
            raise DataError(f"no recorded stream(s) {unknown} (recorded: {sorted(specs)})")
    routes: List[Route] = []
    for name, spec in specs.items():
        if streams and name not in streams:
            continue
        model_names = list((spec.attrs or {}).get("joint_names") or [])
        if spec.is_camera:
            routes.append(Route(name, cfg.camera_topics.get(spec.camera_name, cfg.camera_topic.format(
                camera=spec.camera_name)) + "/compressed", "sensor_msgs/msg/CompressedImage", "camera", ["image"],
                frame_id=spec.camera_name))
        elif spec.kind == "joints" and "position" in spec.fields:
            routes.append(Route(name, cfg.joint_states_topic, "sensor_msgs/msg/JointState", "state",
                                [f for f in ("position", "velocity", "effort") if f in spec.fields],
                                names=_joint_names(cfg, model_names, spec)))
        elif spec.kind == "command" and "position" in spec.fields:
            if drive_robot:
                routes.append(Route(name, cfg.trajectory_topic, "trajectory_msgs/msg/JointTrajectory", "command",
                                    ["position"], names=_joint_names(cfg, model_names, spec)))
            else:
                routes.append(Route(name, COMMAND_TOPIC, "sensor_msgs/msg/JointState", "state", ["position"],
                                    names=_joint_names(cfg, model_names, spec)))
        elif spec.kind == "sensor" and name == ILLUMINANCE and "value" in spec.fields:
            routes.append(Route(name, cfg.illuminance_topic, "sensor_msgs/msg/Illuminance", "sensor", ["value"]))
        else:
            for field_name, field_spec in spec.fields.items():
                if spec.kind == "pose" and field_spec.shape == (7,):
                    topic = cfg.pose_topics.get(name) if len(spec.fields) == 1 else None
                    routes.append(Route(name, topic or f"/collector/{name}/{field_name}",
                                        "geometry_msgs/msg/PoseStamped", "sensor", [field_name], frame_id="world"))
                else:
                    routes.append(Route(name, f"/collector/{name}/{field_name}", "std_msgs/msg/Float64MultiArray",
                                        "sensor", [field_name]))
    return routes


def _joint_names(cfg, model_names: List[str], spec: StreamSpec) -> List[str]:
    width = spec.fields["position"].shape[0] if spec.fields["position"].shape else 1
    if len(model_names) != width:
        model_names = [f"joint_{i}" for i in range(width)]
    return cfg.hardware_joint_names(model_names)


def viewer_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Standard JPEG of an RGB frame (cv2 expects BGR, so flip the channels first)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("JPEG encoding failed")
    return buf.tobytes()


# -- plain-dict messages (MCAP) ------------------------------------------------------------------

def _header(stamp_ns: int, frame_id: str) -> Dict:
    sec, nanosec = divmod(int(stamp_ns), NANOS)
    return {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}


def message_dict(route: Route, stamp_ns: int, sample: Dict[str, np.ndarray], jpeg_quality: int = 90) -> Dict:
    """The message for one sample as the dict mcap_ros2's encoder takes."""
    header = _header(stamp_ns, route.frame_id)
    if route.ros_type == "sensor_msgs/msg/JointState":
        values = {f: np.asarray(sample[f], np.float64).reshape(-1).tolist() for f in route.fields}
        return {"header": header, "name": route.names, "position": values.get("position", []),
                "velocity": values.get("velocity", []), "effort": values.get("effort", [])}
    if route.ros_type == "trajectory_msgs/msg/JointTrajectory":
        return {"header": header, "joint_names": route.names, "points": [{
            "positions": np.asarray(sample["position"], np.float64).reshape(-1).tolist(), "velocities": [],
            "accelerations": [], "effort": [], "time_from_start": {"sec": 0, "nanosec": 0}}]}
    if route.is_camera:
        return {"header": header, "format": "jpeg", "data": viewer_jpeg(sample["image"], jpeg_quality)}
    if route.ros_type == "sensor_msgs/msg/Illuminance":
        return {"header": header, "illuminance": float(np.asarray(sample["value"]).reshape(-1)[0]), "variance": 0.0}
    if route.ros_type == "geometry_msgs/msg/PoseStamped":
        p = np.asarray(sample[route.fields[0]], np.float64).reshape(-1)
        return {"header": header, "pose": {"position": {"x": p[0], "y": p[1], "z": p[2]},
                                           "orientation": {"w": p[3], "x": p[4], "y": p[5], "z": p[6]}}}
    values = np.asarray(sample[route.fields[0]], np.float64)
    dims = [{"label": f"dim{i}", "size": int(s), "stride": int(np.prod(values.shape[i:]))}
            for i, s in enumerate(values.shape)]
    return {"layout": {"dim": dims, "data_offset": 0}, "data": values.reshape(-1).tolist()}


# -- rclpy messages (ROS 2 replay), built with collector.ros.conversions ---------------------------

def message_builder(route: Route, jpeg_quality: int = 90) -> Callable:
    """fn(stamp, sample) -> rclpy message for this route (stamp: builtin_interfaces/Time)."""
    from collector.ros import conversions as conv

    if route.ros_type == "sensor_msgs/msg/JointState":
        def joint_state(stamp, sample):
            return conv.joint_state_msg(route.names, sample.get("position"), sample.get("velocity"),
                                        sample.get("effort"), stamp=stamp)
        return joint_state
    if route.ros_type == "trajectory_msgs/msg/JointTrajectory":
        return lambda stamp, sample: conv.joint_trajectory_msg(route.names, sample["position"], stamp=stamp)
    if route.is_camera:
        return lambda stamp, sample: conv.compressed_image_msg(sample["image"], stamp=stamp, frame_id=route.frame_id,
                                                               quality=jpeg_quality)
    if route.ros_type == "sensor_msgs/msg/Illuminance":
        return lambda stamp, sample: conv.illuminance_msg(float(np.asarray(sample["value"]).reshape(-1)[0]),
                                                          stamp=stamp)
    if route.ros_type == "geometry_msgs/msg/PoseStamped":
        def pose(stamp, sample):
            p = np.asarray(sample[route.fields[0]], np.float64).reshape(-1)
            return conv.pose_stamped_msg(p[:3], p[3:7], stamp=stamp, frame_id=route.frame_id)
        return pose
    return lambda stamp, sample: conv.float64_multiarray_msg(np.asarray(sample[route.fields[0]]).reshape(-1))


def message_class(ros_type: str):
    """The rclpy class of "pkg/msg/Type"."""
    import importlib

    package, _, name = ros_type.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)
