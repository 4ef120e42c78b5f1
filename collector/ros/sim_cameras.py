"""Render the simulated cameras in their own thread and publish them as a camera driver would.

Rendering (Mesa llvmpipe here) costs far more than a physics step, so it runs beside the physics
loop on its own GL context. The physics loop hands over a snapshot of the state at each frame's
due time (positions, mocap bodies, sim time); this thread recomputes the kinematics on its own
MjData, renders every due camera, and publishes `sensor_msgs/Image` (rgb8) or `CompressedImage`
(JPEG) plus `CameraInfo` with the snapshot's stamp, so a frame shows exactly the state it is
stamped with.

When a snapshot arrives while the previous one is still rendering, `sync="wait"` makes the physics
wait (the sim then runs slower than real time but every frame is produced on schedule) and
`sync="drop"` skips the frame (counted), as a real camera drops frames under load.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from collector.ros.conversions import (camera_info_msg, compressed_image_msg, image_msg, pinhole_intrinsics,
                                       stamp_from_nanoseconds, stamp_from_seconds)

log = logging.getLogger(__name__)
SYNC_MODES = ("wait", "drop")


@dataclass
class CameraOutput:
    """One camera as published: the robot camera, its size and rate, and its ROS publishers."""

    name: str
    mjcf_camera: str
    width: int
    height: int
    fps: float
    image_pub: object
    info_pub: object
    k: Optional[np.ndarray] = None
    next_due: float = 0.0
    published: int = 0
    dropped: int = 0


class SimCameraPublisher(threading.Thread):
    def __init__(self, model, render_quality: str, cameras: List[CameraOutput], compressed: bool,
                 jpeg_quality: int = 90, sync: str = "wait"):
        super().__init__(name="sim-camera-render", daemon=True)
        import mujoco

        self._mujoco = mujoco
        self.model = model
        self.render_quality = render_quality
        self.cameras = {c.name: c for c in cameras}
        self.compressed = compressed
        self.jpeg_quality = int(jpeg_quality)
        self.sync = sync
        for cam in cameras:
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.mjcf_camera)
            fovy = float(model.cam_fovy[cam_id]) if cam_id >= 0 else 45.0
            cam.k = pinhole_intrinsics(cam.width, cam.height, fovy)
        self._snapshot = mujoco.MjData(model)
        self._pending: Optional[tuple] = None
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self.error: Optional[BaseException] = None
        self.render_s: List[float] = []

    # -- called by the physics loop ----------------------------------------------------------------
    def due(self, sim_t: float) -> List[str]:
        """Cameras whose next frame is due at sim time `sim_t`; advances their schedules."""
        names = []
        for cam in self.cameras.values():
            if sim_t + 1e-9 >= cam.next_due:
                names.append(cam.name)
                period = 1.0 / cam.fps
                # From the due time (exact average rate); restart if a whole period was missed.
                cam.next_due = cam.next_due + period if cam.next_due + period > sim_t else sim_t + period
        return names

    def restart_schedule(self, sim_t: float) -> None:
        for cam in self.cameras.values():
            cam.next_due = sim_t

    def submit(self, data, stamp_s: Optional[float], names: List[str]) -> bool:
        """Hand over the state for the due cameras; False if the frame was dropped (sync="drop").

        stamp_s: the frame's stamp (sim time), or None to stamp each frame with the host clock when it
        is published, as a camera driver stamps a frame when it reads it out."""
        with self._cond:
            if self._busy or self._pending is not None:
                if self.sync == "drop":
                    for name in names:
                        self.cameras[name].dropped += 1
                    return False
                while (self._busy or self._pending is not None) and not self._stopping:
                    self._cond.wait(0.1)
            state = (data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy())
            self._pending = (state, stamp_s, names)
            self._cond.notify_all()
        return True

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while (self._busy or self._pending is not None) and time.monotonic() < deadline:
                self._cond.wait(0.05)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.join(timeout=10.0)

    # -- render thread -----------------------------------------------------------------------------
    def run(self) -> None:
        from collector.sim.render import CameraRenderer

        renderer = CameraRenderer(self.model, self.render_quality)  # GL context of this thread
        try:
            while True:
                with self._cond:
                    while self._pending is None and not self._stopping:
                        self._cond.wait(0.1)
                    if self._pending is None:  # stopping and nothing left to render
                        return
                    job, self._pending, self._busy = self._pending, None, True
                try:
                    self._render(renderer, *job)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        except BaseException as exc:  # reported by the node, which then stops
            self.error = exc
            log.exception("camera rendering failed")
        finally:
            renderer.close()

    def _render(self, renderer, state, stamp_s: Optional[float], names: List[str]) -> None:
        mujoco = self._mujoco
        snap = self._snapshot
        snap.qpos[:], snap.mocap_pos[:], snap.mocap_quat[:] = state
        mujoco.mj_kinematics(self.model, snap)
        mujoco.mj_camlight(self.model, snap)
        for name in names:
            cam = self.cameras[name]
            t0 = time.perf_counter()
            rgb = renderer.render(snap, cam.mjcf_camera, cam.width, cam.height)
            self.render_s.append(time.perf_counter() - t0)
            stamp = stamp_from_seconds(stamp_s) if stamp_s is not None else stamp_from_nanoseconds(time.time_ns())
            if self.compressed:
                msg = compressed_image_msg(rgb, stamp, cam.mjcf_camera, self.jpeg_quality)
            else:
                msg = image_msg(rgb, stamp, cam.mjcf_camera)
            cam.image_pub.publish(msg)
            cam.info_pub.publish(camera_info_msg(cam.width, cam.height, cam.k, stamp, cam.mjcf_camera))
            cam.published += 1

    def counts(self) -> Dict[str, Dict[str, int]]:
        return {name: {"published": c.published, "dropped": c.dropped} for name, c in self.cameras.items()}
