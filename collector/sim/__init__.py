"""MuJoCo simulation: the robot at a table with a task, under lighting/weight/theme conditions.

    from collector.sim import SimEnv, list_tasks, lighting_presets, weight_presets, themes
"""
from collector.sim.conditions import lighting_presets, themes, weight_presets
from collector.sim.env import SimEnv
from collector.sim.render import RENDER_QUALITIES
from collector.sim.tasks import list_tasks

__all__ = ["SimEnv", "list_tasks", "lighting_presets", "weight_presets", "themes", "RENDER_QUALITIES"]
