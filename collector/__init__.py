"""collector: humanoid teleoperation data collection for imitation learning."""
from collector.gl_backend import ensure_backend

# MuJoCo picks its GL backend when it is first imported, so the choice (EGL on Mesa's
# llvmpipe without a GPU, OSMesa where EGL is missing) must be made before any submodule
# imports mujoco. A MUJOCO_GL the user set is kept.
ensure_backend()

__version__ = "0.1.0"
