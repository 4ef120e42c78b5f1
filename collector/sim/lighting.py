"""Put an applied lighting condition into a compiled scene, and estimate the light level it gives.

The scene is compiled with MAX_LIGHTS light slots (scene.py); switching lighting only rewrites the
model's light arrays, so env.model stays the same object and nothing is recompiled.
"""
from __future__ import annotations

import math

import mujoco
import numpy as np

from collector.sim.conditions import MAX_LIGHTS

LIGHT_SLOT_PREFIX = "condition_light_"
# MuJoCo light values are unitless; collector reports 1.0 of diffuse at normal incidence as 1000 lx,
# which puts the "bright" preset near a well-lit office (~1000 lx) and "low_light" near 50 lx.
LUX_PER_UNIT = 1000.0
_TYPE = {
    "spot": mujoco.mjtLightType.mjLIGHT_SPOT,
    "directional": mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
    "point": mujoco.mjtLightType.mjLIGHT_POINT,
}


def light_slot_ids(model) -> list:
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_LIGHT, f"{LIGHT_SLOT_PREFIX}{i}") for i in range(MAX_LIGHTS)]
    if min(ids) < 0:
        raise RuntimeError("scene was compiled without collector's light slots")
    return ids


def apply_lighting(model, lighting: dict, origin) -> None:
    """Write `lighting` (from conditions.sample_lighting) into the model; positions are offset by `origin`."""
    origin = np.asarray(origin, dtype=float)
    model.vis.headlight.ambient[:] = lighting["ambient"]
    model.vis.headlight.diffuse[:] = lighting["headlight"]
    model.vis.headlight.specular[:] = 0.0
    model.vis.headlight.active = 1
    for slot, light_id in enumerate(light_slot_ids(model)):
        if slot >= len(lighting["lights"]):
            model.light_active[light_id] = 0
            model.light_diffuse[light_id] = 0.0
            model.light_specular[light_id] = 0.0
            continue
        light = lighting["lights"][slot]
        diffuse = np.clip(np.multiply(light["color"], light["intensity"]), 0.0, 1.0)
        model.light_active[light_id] = 1
        model.light_type[light_id] = int(_TYPE[light["type"]])
        model.light_pos[light_id] = origin + np.asarray(light["pos"])
        model.light_dir[light_id] = light["dir"]
        model.light_diffuse[light_id] = diffuse
        model.light_specular[light_id] = 0.3 * diffuse
        model.light_ambient[light_id] = 0.0
        model.light_castshadow[light_id] = 1 if light["castshadow"] else 0
        model.light_cutoff[light_id] = light["cutoff"]
        model.light_exponent[light_id] = light["exponent"]
        model.light_attenuation[light_id] = [1.0, 0.0, 0.0]


def illuminance(model, point, normal=(0.0, 0.0, 1.0)) -> float:
    """Lux-like light level on a surface at `point` facing `normal`, from the model's current lights.

    Follows MuJoCo's fixed-function lighting: ambient terms plus, per active light, diffuse colour x
    cos(incidence) x spot falloff x attenuation. Luminance weights are Rec. 709.
    """
    point = np.asarray(point, dtype=float)
    normal = np.asarray(normal, dtype=float) / np.linalg.norm(normal)
    weights = np.array([0.2126, 0.7152, 0.0722])
    level = float(weights @ model.vis.headlight.ambient) + 0.5 * float(weights @ model.vis.headlight.diffuse)
    for light_id in range(model.nlight):
        if not model.light_active[light_id]:
            continue
        level += float(weights @ model.light_ambient[light_id])
        diffuse = float(weights @ model.light_diffuse[light_id])
        kind = int(model.light_type[light_id])
        direction = model.light_dir[light_id] / max(np.linalg.norm(model.light_dir[light_id]), 1e-9)
        if kind == int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL):
            level += diffuse * max(0.0, float(-direction @ normal))
            continue
        to_point = point - model.light_pos[light_id]
        distance = float(np.linalg.norm(to_point))
        if distance < 1e-9:
            continue
        to_point /= distance
        incidence = max(0.0, float(-to_point @ normal))
        a0, a1, a2 = model.light_attenuation[light_id]
        attenuation = 1.0 / max(a0 + a1 * distance + a2 * distance**2, 1e-9)
        spot = 1.0
        if kind == int(mujoco.mjtLightType.mjLIGHT_SPOT):
            cos_angle = float(direction @ to_point)
            if cos_angle < math.cos(math.radians(float(model.light_cutoff[light_id]))):
                spot = 0.0
            else:
                spot = max(cos_angle, 0.0) ** float(model.light_exponent[light_id])
        level += diffuse * incidence * attenuation * spot
    return float(LUX_PER_UNIT * level)
