"""Camera and status feeds from the teleop loop / session to the VR server (and on to the headset).

Both publishers are called from the control loop, so `publish` only hands the data to a
worker thread and returns: JPEG encoding and socket I/O never run on the control path. A
camera that produces frames faster than they can be encoded keeps only its newest frame
(the headset wants the latest view, not a backlog); the drops are counted.

Wire form (FEED_VERSION 1), ZMQ PUB (producers, connect) -> SUB (VR server, bind):
  camera: [CAMERA_TOPIC, msgpack header, JPEG bytes]
          header = {"v":1,"name":str,"eye":"left"|"right"|"mono","t":float (session clock),
                    "seq":int,"w":int,"h":int,"published_at":float,"encoded_at":float}
          published_at / encoded_at are time.monotonic() on the producer host (latency accounting).
  status: [STATUS_TOPIC, msgpack map], re-sent every STATUS_REPEAT_S so a server that starts
          later, or a ZMQ connection still being set up, still gets the current state. Keys the
          page shows: recording (bool), episode (int), task (str), instruction (str),
          next_condition ({"lighting": str, "weight": str}), warnings ([str]); others are listed as is.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import cv2
import msgpack
import numpy as np
import zmq

from collector.errors import DataError, DeviceError
from collector.recorder.streams import Sink
from collector.recorder.vocabulary import camera_of_stream
from collector.teleop.vr.endpoints import CAMERA_ENDPOINT, STATUS_ENDPOINT

log = logging.getLogger(__name__)

FEED_VERSION = 1
CAMERA_TOPIC = b"collector/vr/camera"
STATUS_TOPIC = b"collector/vr/status"
DEFAULT_JPEG_QUALITY = 80
STATUS_REPEAT_S = 0.5
MAX_STATUS_BYTES = 16 * 1024
MAX_CAMERA_SIDE = 4096


def eye_for(name: str) -> str:
    """Which eye a camera feeds by its name: '*left*' -> left, '*right*' -> right, else both (mono)."""
    lowered = name.lower()
    if lowered.endswith(("left", "_l")) or "left" in lowered.split("_"):
        return "left"
    if lowered.endswith(("right", "_r")) or "right" in lowered.split("_"):
        return "right"
    return "mono"


def _socket(kind: int, endpoint: str, bind: bool, context: Optional[zmq.Context], what: str) -> zmq.Socket:
    sock = (context or zmq.Context.instance()).socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(endpoint) if bind else sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise DeviceError(f"cannot {'bind' if bind else 'connect'} {what} to {endpoint}: {exc}") from None
    return sock


def encode_jpeg(image_rgb: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    # OpenCV encodes BGR; the sim and ROS bridge hand over RGB.
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("JPEG encoding failed")
    return buf.tobytes()


def check_image(name: str, image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"camera {name!r}: expected an HxWx3 uint8 RGB image, got {desc}")
    if not (0 < image.shape[0] <= MAX_CAMERA_SIDE and 0 < image.shape[1] <= MAX_CAMERA_SIDE):
        raise DataError(f"camera {name!r}: image size {image.shape[1]}x{image.shape[0]} out of range")
    return image


@dataclass
class _PendingFrame:
    t: float
    image: np.ndarray
    eye: str
    published_at: float


class CameraFeedPublisher:
    """`publish(name, t, image)` from the control loop; a worker thread JPEG-encodes and sends."""

    def __init__(self, endpoint: str = CAMERA_ENDPOINT, bind: bool = False, quality: int = DEFAULT_JPEG_QUALITY,
                 context: Optional[zmq.Context] = None):
        if not 1 <= int(quality) <= 100:
            raise DataError(f"JPEG quality {quality!r} must be in 1..100")
        self.endpoint = endpoint
        self.quality = int(quality)
        self._socket = _socket(zmq.PUB, endpoint, bind, context, "camera feed")
        self._socket.setsockopt(zmq.SNDHWM, 8)  # a stalled server must not buffer seconds of video
        self._pending: Dict[str, _PendingFrame] = {}
        self._seq: Dict[str, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.published = 0
        self.sent = 0
        self.dropped = 0
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vr-jpeg")
        self._worker = threading.Thread(target=self._run, name="vr-camera-feed", daemon=True)
        self._worker.start()

    def publish(self, name: str, t: float, image: np.ndarray, eye: Optional[str] = None) -> None:
        """Queue one RGB frame of camera `name` taken at session time t; returns at once."""
        image = check_image(name, image)
        frame = _PendingFrame(float(t), image.copy(), eye or eye_for(name), time.monotonic())
        with self._cond:
            if self._closed:
                raise DeviceError("camera feed publisher is closed")
            if name in self._pending:
                self.dropped += 1
            self._pending[name] = frame
            self.published += 1
            self._cond.notify()

    def _encode(self, name: str, frame: _PendingFrame) -> Optional[bytes]:
        try:
            return encode_jpeg(frame.image, self.quality)
        except (DataError, cv2.error) as exc:
            log.warning("camera %s: frame dropped: %s", name, exc)
            return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._pending = self._pending, {}
            # The eyes of a stereo pair are encoded in parallel: OpenCV releases the GIL while encoding.
            names = list(batch)
            if len(names) > 1:
                jpegs = list(self._pool.map(self._encode, names, [batch[n] for n in names]))
            else:
                jpegs = [self._encode(names[0], batch[names[0]])]
            for name, jpeg in zip(names, jpegs):
                if jpeg is None:
                    continue
                frame = batch[name]
                seq = self._seq.get(name, 0)
                self._seq[name] = seq + 1
                header = {
                    "v": FEED_VERSION, "name": name, "eye": frame.eye, "t": frame.t, "seq": seq,
                    "w": int(frame.image.shape[1]), "h": int(frame.image.shape[0]),
                    "published_at": frame.published_at, "encoded_at": time.monotonic(),
                }
                try:
                    self._socket.send_multipart([CAMERA_TOPIC, msgpack.packb(header), jpeg], flags=zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    self.dropped += 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join(timeout=2.0)
        self._pool.shutdown(wait=True)
        self._socket.close(linger=0)


class StatusPublisher:
    """`publish(dict)` from the teleop loop or session; the latest status is re-sent periodically."""

    def __init__(self, endpoint: str = STATUS_ENDPOINT, bind: bool = False, repeat_s: float = STATUS_REPEAT_S,
                 context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self.repeat_s = float(repeat_s)
        self._socket = _socket(zmq.PUB, endpoint, bind, context, "status feed")
        self._payload: Optional[bytes] = None
        self._dirty = False
        self._cond = threading.Condition()
        self._closed = False
        self.sent = 0
        self._worker = threading.Thread(target=self._run, name="vr-status-feed", daemon=True)
        self._worker.start()

    def publish(self, status: dict) -> None:
        if not isinstance(status, dict) or not all(isinstance(k, str) for k in status):
            raise DataError("status: expected a dict with string keys")
        try:
            payload = msgpack.packb({"v": FEED_VERSION, **status}, use_bin_type=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"status: not serialisable ({exc}); use plain str/int/float/bool/list/dict") from None
        if len(payload) > MAX_STATUS_BYTES:
            raise DataError(f"status of {len(payload)} bytes exceeds {MAX_STATUS_BYTES}")
        with self._cond:
            self._payload, self._dirty = payload, True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._dirty and not self._closed:
                    self._cond.wait(timeout=self.repeat_s)
                if self._closed:
                    return
                payload, self._dirty = self._payload, False
            if payload is not None:
                try:
                    self._socket.send_multipart([STATUS_TOPIC, payload], flags=zmq.NOBLOCK)
                    self.sent += 1
                except zmq.Again:
                    pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join(timeout=2.0)
        self._socket.close(linger=0)


def decode_camera(frames) -> Tuple[dict, bytes]:
    """[topic, header, jpeg] -> (header, jpeg), checked; DataError on anything else."""
    if len(frames) != 3 or frames[0] != CAMERA_TOPIC:
        raise DataError(f"camera feed: unexpected frame layout ({len(frames)} frames)")
    try:
        header = msgpack.unpackb(frames[1], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DataError(f"camera feed: header not msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get("v") != FEED_VERSION:
        raise DataError("camera feed: header is not a version-1 map")
    for key, kind in (("name", str), ("eye", str), ("seq", int), ("w", int), ("h", int)):
        if not isinstance(header.get(key), kind):
            raise DataError(f"camera feed: header field {key!r} missing or not {kind.__name__}")
    for key in ("t", "published_at"):
        if isinstance(header.get(key), bool) or not isinstance(header.get(key), (int, float)):
            raise DataError(f"camera feed: header field {key!r} missing or not a number")
    if header["eye"] not in ("left", "right", "mono"):
        raise DataError(f"camera feed: eye {header['eye']!r} not left/right/mono")
    jpeg = bytes(frames[2])
    if not jpeg.startswith(b"\xff\xd8"):
        raise DataError("camera feed: payload is not a JPEG")
    return header, jpeg


def decode_status(frames) -> dict:
    if len(frames) != 2 or frames[0] != STATUS_TOPIC:
        raise DataError(f"status feed: unexpected frame layout ({len(frames)} frames)")
    if len(frames[1]) > MAX_STATUS_BYTES:
        raise DataError("status feed: message too large")
    try:
        status = msgpack.unpackb(frames[1], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise DataError(f"status feed: not msgpack ({type(exc).__name__})") from None
    if not isinstance(status, dict) or status.pop("v", None) != FEED_VERSION:
        raise DataError("status feed: not a version-1 map")
    return status


def is_headset_camera(name: str) -> bool:
    """Cameras shown in the headset by default: the robot's head camera(s), not wrist cameras."""
    return name.lower().startswith("head")


class CameraFeedSink(Sink):
    """Wraps a recorder Sink: camera samples the teleop loop pushes also go to the headset.

    The teleop loop already pushes every camera frame it captures to its sink, so passing
    `CameraFeedSink(publisher, inner=recorder_sink)` as the loop's sink is all it takes to
    stream the head camera to the VR server without touching the loop.
    """

    def __init__(self, publisher: CameraFeedPublisher, inner=None, cameras=None):
        self.publisher = publisher
        self.inner = inner
        self.cameras = set(cameras) if cameras is not None else None

    def _wanted(self, name: str) -> bool:
        return name in self.cameras if self.cameras is not None else is_headset_camera(name)

    def set_lockstep(self, lockstep: bool) -> None:
        if self.inner is not None:
            self.inner.set_lockstep(lockstep)

    def push(self, stream: str, t: float, **fields) -> bool:
        camera = camera_of_stream(stream)
        if camera is not None and "image" in fields and self._wanted(camera):
            self.publisher.publish(camera, t, fields["image"])
        return self.inner.push(stream, t, **fields) if self.inner is not None else True
