"""Pick MuJoCo's offscreen GL backend before mujoco is imported: EGL, or OSMesa where EGL is missing.

MuJoCo reads MUJOCO_GL once, when it is first imported, so this must run first; `import collector`
calls `ensure_backend()` first thing, and collector.sim calls it again before importing mujoco.
"""
import ctypes.util
import os
import sys


def ensure_backend() -> str:
    backend = os.environ.get("MUJOCO_GL", "egl")
    if "mujoco" in sys.modules:
        return backend  # too late to change; whatever mujoco picked stands
    if backend == "egl" and ctypes.util.find_library("EGL") is None and ctypes.util.find_library("OSMesa"):
        backend = "osmesa"
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ["PYOPENGL_PLATFORM"] = backend
    return backend
