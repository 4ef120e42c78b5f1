"""ROS 2 message definitions (ros2msg text, dependencies appended) for the MCAP schemas.

The MCAP export must work on a machine without ROS 2, so the few definitions it uses are written
out here. They are the interface definitions of the ROS 2 packages with comments and constants
stripped; tests compare them field by field with the installed .msg files when ROS 2 is present.
"""
from __future__ import annotations

from typing import Dict, List

SEPARATOR = "=" * 80

# Field lists of each type, as in its .msg file (comments removed).
DEFINITIONS: Dict[str, str] = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
    "builtin_interfaces/Duration": "int32 sec\nuint32 nanosec",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "std_msgs/String": "string data",
    "std_msgs/MultiArrayDimension": "string label\nuint32 size\nuint32 stride",
    "std_msgs/MultiArrayLayout": "MultiArrayDimension[] dim\nuint32 data_offset",
    "std_msgs/Float64MultiArray": "MultiArrayLayout layout\nfloat64[] data",
    "sensor_msgs/JointState": "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\n"
                              "float64[] effort",
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data",
    "sensor_msgs/Illuminance": "std_msgs/Header header\nfloat64 illuminance\nfloat64 variance",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1",
    "geometry_msgs/Pose": "Point position\nQuaternion orientation",
    "geometry_msgs/PoseStamped": "std_msgs/Header header\nPose pose",
    "trajectory_msgs/JointTrajectoryPoint": "float64[] positions\nfloat64[] velocities\nfloat64[] accelerations\n"
                                            "float64[] effort\nbuiltin_interfaces/Duration time_from_start",
    "trajectory_msgs/JointTrajectory": "std_msgs/Header header\nstring[] joint_names\n"
                                       "JointTrajectoryPoint[] points",
}

_PRIMITIVES = {"bool", "byte", "char", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
               "float32", "float64", "string", "wstring"}


def short_name(ros_type: str) -> str:
    """"sensor_msgs/msg/JointState" -> "sensor_msgs/JointState"."""
    parts = ros_type.split("/")
    return f"{parts[0]}/{parts[-1]}"


def _dependencies(name: str) -> List[str]:
    package = name.split("/")[0]
    deps = []
    for line in DEFINITIONS[name].splitlines():
        field_type = line.split()[0].split("[")[0]
        if field_type in _PRIMITIVES:
            continue
        deps.append(field_type if "/" in field_type else f"{package}/{field_type}")
    return deps


def msgdef(ros_type: str) -> str:
    """The full definition MCAP's ros2msg schema encoding wants: the type, then each dependency once."""
    root = short_name(ros_type)
    if root not in DEFINITIONS:
        raise KeyError(f"no message definition for {ros_type}")
    order: List[str] = []
    stack = [root]
    while stack:
        name = stack.pop(0)
        if name in order:
            continue
        order.append(name)
        stack.extend(_dependencies(name))
    text = DEFINITIONS[root]
    for dep in order[1:]:
        text += f"\n{SEPARATOR}\nMSG: {dep}\n{DEFINITIONS[dep]}"
    return text
