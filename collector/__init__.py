"""collector: humanoid teleoperation data collection for imitation learning."""
import os

# MuJoCo picks its GL backend when it is first imported, so the default has to be
# in place before any submodule imports mujoco. EGL runs on Mesa's llvmpipe on a
# machine without a GPU; users can still choose osmesa or glfw themselves.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

__version__ = "0.1.0"
