"""A moving test pattern and a demo status, for checking a headset without a robot or sim.

`collector vr serve --test-pattern` runs it: each eye gets colour bars, a sweeping bar (judder
and latency are easy to see) and its own label, so a swapped or missing eye is obvious.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from collector.teleop.vr.feeds import CameraFeedPublisher, StatusPublisher

_BARS = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0],
                  [0, 0, 255]], dtype=np.uint8)


def pattern_frame(width: int, height: int, t: float, label: str) -> np.ndarray:
    """An RGB test frame for time t: colour bars, a bar sweeping once a second, the label and time."""
    columns = (np.arange(width) * len(_BARS) // width)
    image = np.repeat(_BARS[columns][None, :, :], height, axis=0)
    x = int((t % 1.0) * width)
    image[:, max(0, x - 4):x + 4] = 0
    cv2.putText(image, f"{label} {t:8.2f}", (16, height - 24), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 3)
    return image


class DemoFeed:
    def __init__(self, camera: CameraFeedPublisher, status: StatusPublisher, width: int = 640, height: int = 480,
                 fps: float = 30.0, stereo: bool = True):
        self.camera, self.status = camera, status
        self.width, self.height, self.fps, self.stereo = width, height, fps, stereo
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vr-demo-feed", daemon=True)

    def start(self) -> "DemoFeed":
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        frame = 0
        while not self._stop.is_set():
            t = time.monotonic() - t0
            eyes = (("head_left", "LEFT"), ("head_right", "RIGHT")) if self.stereo else (("head", "MONO"),)
            for name, label in eyes:
                self.camera.publish(name, t, pattern_frame(self.width, self.height, t, label))
            if frame % int(self.fps) == 0:
                self.status.publish({
                    "recording": False, "episode": 0, "task": "test pattern",
                    "next_condition": {"lighting": "bright", "weight": "light"},
                    "warnings": ["demo feed: no robot connected"],
                })
            frame += 1
            self._stop.wait(max(0.0, t0 + frame / self.fps - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
