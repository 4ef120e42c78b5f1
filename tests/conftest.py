import os

# Rendering must pick its backend before mujoco is imported anywhere in the test session.
os.environ.setdefault("MUJOCO_GL", "egl")
