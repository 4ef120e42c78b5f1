"""numpy <-> ROS 2 message conversions used by every node in collector.ros.

Speed matters at 500 Hz joint states and 30 Hz camera frames in Python: array fields are filled
from `array.array(code, ndarray.tobytes())` (the generated setters then take the array as is;
filling Image.data from a numpy array element by element took ~54 ms per 640x480 frame, from
bytes ~0.3 ms) and read back with `np.frombuffer` (no copy).

Quaternions: ROS messages store (x, y, z, w); collector's arrays (like MuJoCo) store (w, x, y, z).
Every conversion here checks what it reads and raises DataError naming the message and field.
"""
from __future__ import annotations

import array
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from collector.errors import DataError

NANOS = 1_000_000_000
# Encodings a recorder stream (H, W, 3) uint8 RGB can be filled from.
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

def stamp_from_seconds(seconds: float):
    """builtin_interfaces/Time for a time in seconds (sim time or host epoch time)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"stamp: {seconds!r} is not a finite non-negative time")
    return stamp_from_nanoseconds(int(round(seconds * NANOS)))


def stamp_from_nanoseconds(nanoseconds: int):
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(int(nanoseconds), NANOS)
    return Time(sec=sec, nanosec=nanosec)


def seconds_from_stamp(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


# ---------------------------------------------------------------------------------------------
# Arrays in and out of sequence fields
# ---------------------------------------------------------------------------------------------

def float64_array(values) -> array.array:
    """An array.array('d') the generated setters accept without a per-element check."""
    return array.array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())


def read_float64(values) -> np.ndarray:
    """A float64 view of a received sequence field (array.array('d') from rclpy, or a list)."""
    if isinstance(values, array.array):
        return np.frombuffer(values, dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# sensor_msgs/JointState
# ---------------------------------------------------------------------------------------------

def joint_state_msg(names: Sequence[str], position, velocity=None, effort=None, stamp=None, frame_id: str = ""):
    from sensor_msgs.msg import JointState

    msg = JointState()
    msg.name = list(names)
    msg.position = float64_array(position)
    msg.velocity = float64_array(velocity) if velocity is not None else array.array("d")
    msg.effort = float64_array(effort) if effort is not None else array.array("d")
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


class JointStateReader:
    """Reads JointState messages into arrays in a fixed joint order.

    `wanted` are the names in the order the caller needs (the robot's command_joints mapped to
    hardware names); a message may list them in any order and carry extra joints. The index map
    is cached per distinct name list, since a driver sends the same list every time.
    """

    def __init__(self, wanted: Sequence[str]):
        self.wanted = list(wanted)
        self._cache_key: Optional[Tuple[str, ...]] = None
        self._index: Optional[np.ndarray] = None

    def _indices(self, names) -> np.ndarray:
        key = tuple(names)
        if key != self._cache_key:
            where = {name: i for i, name in enumerate(key)}
            missing = [n for n in self.wanted if n not in where]
            if missing:
                raise DataError(f"JointState: missing joints {missing[:5]}{'...' if len(missing) > 5 else ''}")
            self._cache_key, self._index = key, np.array([where[n] for n in self.wanted], dtype=np.intp)
        return self._index

    def read(self, msg) -> Dict[str, np.ndarray]:
        """position, velocity, effort (each (n,) float64; velocity/effort NaN when not sent)."""
        index = self._indices(msg.name)
        n_names = len(msg.name)
        out = {}
        for field in ("position", "velocity", "effort"):
            values = read_float64(getattr(msg, field))
            if values.size == 0 and field != "position":
                out[field] = np.full(len(self.wanted), np.nan)
                continue
            if values.size != n_names:
                raise DataError(f"JointState: {field} has {values.size} values for {n_names} names")
            picked = values[index]
            if field == "position" and not np.all(np.isfinite(picked)):
                raise DataError("JointState: position contains NaN or inf")
            out[field] = picked
        return out

    def read_effort(self, msg) -> np.ndarray:
        """Only `effort`, in the wanted order, all finite (named readings that are not joint states:
        touch sensors, a hand's grasp force; collector/ros/hand_topics.py)."""
        index = self._indices(msg.name)
        values = read_float64(msg.effort)
        if values.size != len(msg.name):
            raise DataError(f"JointState: effort has {values.size} values for {len(msg.name)} names")
        picked = values[index]
        if not np.all(np.isfinite(picked)):
            raise DataError("JointState: effort contains NaN or inf")
        return picked


# ---------------------------------------------------------------------------------------------
# Commands: trajectory_msgs/JointTrajectory and std_msgs/Float64MultiArray (forward controllers)
# ---------------------------------------------------------------------------------------------

def joint_trajectory_msg(names: Sequence[str], positions, time_from_start_s: float = 0.0, stamp=None):
    """A one-point trajectory: the joint_trajectory_controller's way of taking a streamed setpoint."""
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory()
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    point.positions = float64_array(positions)
    nanos = int(round(time_from_start_s * NANOS))
    point.time_from_start.sec, point.time_from_start.nanosec = divmod(nanos, NANOS)
    msg.points = [point]
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def trajectory_target(msg) -> Tuple[List[str], np.ndarray]:
    """(joint names, positions of the last point): a streamed setpoint's target."""
    if not msg.points:
        raise DataError("JointTrajectory: no points")
    names = list(msg.joint_names)
    positions = read_float64(msg.points[-1].positions)
    if positions.size != len(names):
        raise DataError(f"JointTrajectory: {positions.size} positions for {len(names)} joint names")
    if not np.all(np.isfinite(positions)):
        raise DataError("JointTrajectory: positions contain NaN or inf")
    return names, positions.copy()


def float64_multiarray_msg(values):
    from std_msgs.msg import Float64MultiArray

    msg = Float64MultiArray()
    msg.data = float64_array(values)
    return msg


def multiarray_values(msg, expected: int, what: str) -> np.ndarray:
    values = read_float64(msg.data)
    if values.size != expected:
        raise DataError(f"{what}: expected {expected} values, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{what}: contains NaN or inf")
    return values.copy()


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def image_msg(rgb: np.ndarray, stamp=None, frame_id: str = ""):
    """sensor_msgs/Image (rgb8) from an (H, W, 3) uint8 array."""
    from sensor_msgs.msg import Image

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(f"image: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    msg = Image()
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(rgb.shape[1]) * 3
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def image_array(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a sensor_msgs/Image in any COLOR_ENCODINGS, honouring row padding."""
    encoding = msg.encoding.lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(encoding)
    if channels is None:
        raise DataError(f"Image: unsupported encoding {msg.encoding!r} (supported: {', '.join(COLOR_ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if step < width * channels or data.size < step * height:
        raise DataError(f"Image: {data.size} bytes do not hold {height}x{width} {encoding} with step {step}")
    rows = data[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if encoding == "rgb8":
        return rows
    if encoding == "bgr8":
        return np.ascontiguousarray(rows[:, :, ::-1])
    if encoding == "rgba8":
        return np.ascontiguousarray(rows[:, :, :3])
    if encoding == "bgra8":
        return np.ascontiguousarray(rows[:, :, 2::-1])
    return np.repeat(rows, 3, axis=2)


def compressed_image_msg(rgb: np.ndarray, stamp=None, frame_id: str = "", quality: int = 90):
    """sensor_msgs/CompressedImage (format "rgb8; jpeg compressed bgr8", the image_transport convention)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("CompressedImage: JPEG encoding failed")
    msg = CompressedImage()
    msg.format = "rgb8; jpeg compressed bgr8"
    msg.data = array.array("B", encoded.tobytes())
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def compressed_bytes(msg) -> np.ndarray:
    """The encoded bytes of a CompressedImage (what the recorder stores for a jpeg stream)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise DataError("CompressedImage: empty data")
    return data


def compressed_image_array(msg) -> np.ndarray:
    """Decode a JPEG/PNG CompressedImage to (H, W, 3) uint8 RGB."""
    import cv2

    decoded = cv2.imdecode(compressed_bytes(msg), cv2.IMREAD_COLOR)
    if decoded is None:
        raise DataError(f"CompressedImage: cannot decode data in format {msg.format!r}")
    return np.ascontiguousarray(decoded[:, :, ::-1])


# ---------------------------------------------------------------------------------------------
# sensor_msgs/CameraInfo
# ---------------------------------------------------------------------------------------------

def pinhole_intrinsics(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """3x3 K of an ideal pinhole camera with MuJoCo's convention: fovy is the vertical field of view."""
    fy = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])


def camera_info_msg(width: int, height: int, k: np.ndarray, stamp=None, frame_id: str = ""):
    from sensor_msgs.msg import CameraInfo

    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo()
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = float64_array(np.zeros(5))
    msg.k = k.ravel().copy()
    msg.r = np.eye(3).ravel()
    projection = np.zeros((3, 4))
    projection[:, :3] = k
    msg.p = projection.ravel()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def camera_info_dict(msg) -> dict:
    """The intrinsics of a CameraInfo as plain JSON-ready values (recorded in episode metadata)."""
    return {
        "width": int(msg.width),
        "height": int(msg.height),
        "distortion_model": msg.distortion_model,
        "d": [float(v) for v in msg.d],
        "k": [float(v) for v in msg.k],
        "frame_id": msg.header.frame_id,
    }


# ---------------------------------------------------------------------------------------------
# sensor_msgs/Illuminance, geometry_msgs/PoseStamped
# ---------------------------------------------------------------------------------------------

def illuminance_msg(lux: float, stamp=None, frame_id: str = "", variance: float = 0.0):
    from sensor_msgs.msg import Illuminance

    msg = Illuminance()
    msg.illuminance = float(lux)
    msg.variance = float(variance)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def illuminance_value(msg) -> float:
    value = float(msg.illuminance)
    if not math.isfinite(value) or value < 0:
        raise DataError(f"Illuminance: {value!r} lux is not a finite non-negative value")
    return value


def pose_stamped_msg(position, quaternion_wxyz, stamp=None, frame_id: str = "world"):
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    p = np.asarray(position, dtype=np.float64)
    q = np.asarray(quaternion_wxyz, dtype=np.float64)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in p)
    msg.pose.orientation.w, msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z = (
        float(v) for v in q)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def pose_vector(msg) -> np.ndarray:
    """(7,) position then quaternion (w, x, y, z), the layout collector records poses in."""
    p, q = msg.pose.position, msg.pose.orientation
    vec = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z], dtype=np.float64)
    if not np.all(np.isfinite(vec)):
        raise DataError("PoseStamped: contains NaN or inf")
    norm = float(np.linalg.norm(vec[3:]))
    if abs(norm - 1.0) > 0.05:
        raise DataError(f"PoseStamped: orientation is not a unit quaternion (norm {norm:.3g})")
    vec[3:] /= norm
    return vec
