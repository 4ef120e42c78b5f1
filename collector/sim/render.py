"""Offscreen camera rendering at each camera's own resolution, at a chosen quality.

"fast" (the default) turns off shadows and reflections: on a CPU renderer (Mesa llvmpipe) they cost
most of the frame time (640x480: ~19 fps with them, ~135 without). "high" keeps them.
One mujoco.Renderer (GL context + framebuffer) is kept per resolution and reused for every camera of
that size. GL contexts belong to the thread that made them: render from one thread.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np

from collector.errors import ConfigError, DeviceError

RENDER_QUALITIES = ("fast", "high")


class CameraRenderer:
    def __init__(self, model, quality: str = "fast"):
        if quality not in RENDER_QUALITIES:
            raise ConfigError(f"render_quality must be one of {RENDER_QUALITIES}, got {quality!r}")
        self.model = model
        self.quality = quality
        self._renderers: dict = {}
        self._option = mujoco.MjvOption()

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (int(width), int(height))
        renderer = self._renderers.get(key)
        if renderer is None:
            if width > self.model.vis.global_.offwidth or height > self.model.vis.global_.offheight:
                raise ConfigError(
                    f"camera resolution {width}x{height} exceeds the offscreen buffer "
                    f"{self.model.vis.global_.offwidth}x{self.model.vis.global_.offheight}"
                )
            try:
                renderer = mujoco.Renderer(self.model, height=key[1], width=key[0])
            except Exception as exc:  # MuJoCo raises FatalError/RuntimeError/ImportError for a missing GL
                raise DeviceError(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {exc}. "
                    "Set MUJOCO_GL=egl (or osmesa) before mujoco is first imported "
                    "(import collector before mujoco), and check `collector doctor`."
                ) from exc
            high = self.quality == "high"
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = high
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = high
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self._renderers[key] = renderer
        return renderer

    def render(self, data, camera: str, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 image from the named MJCF camera."""
        renderer = self._renderer(width, height)
        renderer.update_scene(data, camera=camera, scene_option=self._option)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
