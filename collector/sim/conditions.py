"""Lighting, weight and theme presets from configs/, checked, and sampled into applied conditions.

An *applied* condition is a plain dict (preset name, every parameter after seeded variation, seed) that
the simulator sets and the recorder stores with the episode.
"""
from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path
from typing import Dict

import numpy as np

from collector.errors import ConfigError
from collector.yaml_files import load_yaml_mapping
from collector.paths import configs_dir

MAX_LIGHTS = 4
LIGHT_TYPES = ("spot", "directional", "point")
TABLE_STYLES = ("counter", "desk", "bench")
PROP_TYPES = ("box", "cylinder", "sphere", "capsule")


def _load(name: str) -> dict:
    path = configs_dir() / name
    if path.is_dir():
        raise ConfigError(f"condition file {path} is a directory, not a YAML file")
    if not path.is_file():
        raise ConfigError(f"condition file {path} is missing")
    return load_yaml_mapping(path)


def _vector(value, size: int, where: str, low=-math.inf, high=math.inf) -> list:
    try:
        vec = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} must be a list of {size} numbers, got {value!r}") from exc
    if len(vec) != size or not all(math.isfinite(v) and low <= v <= high for v in vec):
        raise ConfigError(f"{where} must be {size} finite numbers in [{low}, {high}], got {value!r}")
    return vec


def _number(value, where: str, low=-math.inf, high=math.inf) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} must be a number, got {value!r}") from exc
    if not (math.isfinite(number) and low <= number <= high):
        raise ConfigError(f"{where} must be in [{low}, {high}], got {value!r}")
    return number


# --- lighting ------------------------------------------------------------------------------------

def _check_lighting(name: str, preset: dict, where: str) -> dict:
    where = f"{where}: presets.{name}"
    if not isinstance(preset, dict):
        raise ConfigError(f"{where} must be a mapping")
    out = {
        "description": str(preset.get("description", "")),
        "ambient": _vector(preset.get("ambient", [0.1, 0.1, 0.1]), 3, f"{where}.ambient", 0, 1),
        "headlight": _vector(preset.get("headlight", [0.0, 0.0, 0.0]), 3, f"{where}.headlight", 0, 1),
        "lights": [],
        "variation": {},
    }
    lights = preset.get("lights") or []
    if not isinstance(lights, list) or len(lights) > MAX_LIGHTS:
        raise ConfigError(f"{where}.lights must be a list of at most {MAX_LIGHTS} lights")
    for index, light in enumerate(lights):
        key = f"{where}.lights[{index}]"
        if not isinstance(light, dict):
            raise ConfigError(f"{key} must be a mapping")
        kind = light.get("type", "spot")
        if kind not in LIGHT_TYPES:
            raise ConfigError(f"{key}.type must be one of {LIGHT_TYPES}, got {kind!r}")
        pos = _vector(light.get("pos"), 3, f"{key}.pos")
        target = _vector(light.get("target", [0, 0, 0]), 3, f"{key}.target")
        if np.linalg.norm(np.subtract(target, pos)) < 1e-6:
            raise ConfigError(f"{key}: pos and target coincide, the light has no direction")
        out["lights"].append({
            "name": str(light.get("name", f"light{index}")),
            "type": kind,
            "pos": pos,
            "target": target,
            "color": _vector(light.get("color", [1, 1, 1]), 3, f"{key}.color", 0, 1),
            "intensity": _number(light.get("intensity", 0.5), f"{key}.intensity", 0, 10),
            "cutoff": _number(light.get("cutoff", 60), f"{key}.cutoff", 1, 90),
            "exponent": _number(light.get("exponent", 1), f"{key}.exponent", 0, 128),
            "castshadow": bool(light.get("castshadow", False)),
        })
    variation = preset.get("variation") or {}
    for field in ("intensity", "position", "color", "ambient"):
        out["variation"][field] = _number(variation.get(field, 0.0), f"{where}.variation.{field}", 0, 1)
    return out


def lighting_presets() -> Dict[str, dict]:
    """Lighting presets from configs/lighting.yaml, checked (a fresh copy each call)."""
    return _config_section("lighting.yaml", "presets", _check_lighting)


def sample_lighting(name: str, seed: int) -> dict:
    """The lighting a preset gives for this seed: every value as applied, plus preset name and seed."""
    presets = lighting_presets()
    if name not in presets:
        raise ConfigError(f"unknown lighting preset {name!r} (configs/lighting.yaml has {sorted(presets)})")
    preset = presets[name]
    rng = np.random.default_rng([int(seed), 1])
    var = preset["variation"]
    ambient_scale = 1.0 + rng.uniform(-var["ambient"], var["ambient"])
    lights = []
    for light in preset["lights"]:
        pos = np.add(light["pos"], rng.uniform(-var["position"], var["position"], 3))
        color = np.clip(np.add(light["color"], rng.uniform(-var["color"], var["color"], 3)), 0.0, 1.0)
        intensity = light["intensity"] * (1.0 + rng.uniform(-var["intensity"], var["intensity"]))
        direction = np.subtract(light["target"], pos)
        direction /= np.linalg.norm(direction)
        lights.append({
            **light,
            "pos": _rounded(pos),
            "color": _rounded(color),
            "intensity": round(float(intensity), 6),
            "dir": _rounded(direction),
        })
    return {
        "preset": name,
        "description": preset["description"],
        "seed": int(seed),
        "ambient": _rounded(np.clip(np.multiply(preset["ambient"], ambient_scale), 0, 1)),
        "headlight": list(preset["headlight"]),
        "lights": lights,
        "variation": dict(var),
        "frame": "task area centre on the table top",
    }


# --- weights -------------------------------------------------------------------------------------

def _check_weight(name: str, preset, source: str) -> dict:
    where = f"{source}: presets.{name}"
    if not isinstance(preset, dict):
        raise ConfigError(f"{where} must be a mapping")
    return {
        "description": str(preset.get("description", "")),
        "mass_kg": _number(preset.get("mass_kg"), f"{where}.mass_kg", 0.001, 50),
        "variation": _number(preset.get("variation", 0.0), f"{where}.variation", 0, 0.9),
    }


def weight_presets() -> Dict[str, dict]:
    """Object-mass presets from configs/weights.yaml, checked (a fresh copy each call)."""
    return _config_section("weights.yaml", "presets", _check_weight)


def sample_weight(name: str, objects, seed: int) -> dict:
    """Masses (kg) a weight preset gives each named object for this seed."""
    presets = weight_presets()
    if name not in presets:
        raise ConfigError(f"unknown weight preset {name!r} (configs/weights.yaml has {sorted(presets)})")
    preset = presets[name]
    rng = np.random.default_rng([int(seed), 2])
    masses = {}
    for obj in objects:
        scale = 1.0 + rng.uniform(-preset["variation"], preset["variation"])
        masses[obj] = round(preset["mass_kg"] * scale, 6)
    return {"preset": name, "description": preset["description"], "seed": int(seed),
            "nominal_kg": preset["mass_kg"], "variation": preset["variation"], "masses_kg": masses}


# --- themes --------------------------------------------------------------------------------------

def _check_theme(name: str, theme: dict, where: str) -> dict:
    where = f"{where}: themes.{name}"
    if not isinstance(theme, dict):
        raise ConfigError(f"{where} must be a mapping")
    floor = theme.get("floor") or {}
    table = theme.get("table") or {}
    style = table.get("style", "desk")
    if style not in TABLE_STYLES:
        raise ConfigError(f"{where}.table.style must be one of {TABLE_STYLES}, got {style!r}")
    out = {
        "description": str(theme.get("description", "")),
        "floor": {
            "pattern": str(floor.get("pattern", "checker")),
            "rgb1": _vector(floor.get("rgb1", [0.6, 0.6, 0.6]), 3, f"{where}.floor.rgb1", 0, 1),
            "rgb2": _vector(floor.get("rgb2", [0.5, 0.5, 0.5]), 3, f"{where}.floor.rgb2", 0, 1),
            "square": _number(floor.get("square", 0.3), f"{where}.floor.square", 0.01, 10),
            "reflectance": _number(floor.get("reflectance", 0.0), f"{where}.floor.reflectance", 0, 1),
        },
        "walls": {"rgb": _vector((theme.get("walls") or {}).get("rgb", [0.8, 0.8, 0.8]), 3, f"{where}.walls.rgb", 0, 1)},
        "table": {
            "style": style,
            "depth": _number(table.get("depth", 0.7), f"{where}.table.depth", 0.3, 3),
            "width": _number(table.get("width", 1.4), f"{where}.table.width", 0.5, 5),
            "thickness": _number(table.get("thickness", 0.04), f"{where}.table.thickness", 0.01, 0.2),
            "top_rgb": _vector(table.get("top_rgb", [0.7, 0.7, 0.7]), 3, f"{where}.table.top_rgb", 0, 1),
            "base_rgb": _vector(table.get("base_rgb", [0.3, 0.3, 0.3]), 3, f"{where}.table.base_rgb", 0, 1),
            "reflectance": _number(table.get("reflectance", 0.0), f"{where}.table.reflectance", 0, 1),
        },
        "backsplash": None,
        "props": [],
    }
    if floor.get("pattern", "checker") not in ("checker", "flat"):
        raise ConfigError(f"{where}.floor.pattern must be checker or flat")
    if theme.get("backsplash"):
        splash = theme["backsplash"]
        out["backsplash"] = {
            "rgb1": _vector(splash.get("rgb1", [0.8, 0.8, 0.8]), 3, f"{where}.backsplash.rgb1", 0, 1),
            "rgb2": _vector(splash.get("rgb2", [0.7, 0.7, 0.7]), 3, f"{where}.backsplash.rgb2", 0, 1),
            "height": _number(splash.get("height", 0.5), f"{where}.backsplash.height", 0.05, 3),
        }
    for index, prop in enumerate(theme.get("props") or []):
        key = f"{where}.props[{index}]"
        if not isinstance(prop, dict) or prop.get("type") not in PROP_TYPES:
            raise ConfigError(f"{key} needs a type in {PROP_TYPES}")
        size = [float(s) for s in prop.get("size", [])]
        if not 1 <= len(size) <= 3 or min(size) <= 0:
            raise ConfigError(f"{key}.size must be 1-3 positive numbers")
        out["props"].append({
            "name": str(prop.get("name", f"prop{index}")),
            "type": prop["type"],
            "size": size,
            "pos": _vector(prop.get("pos"), 3, f"{key}.pos"),
            "rgb": _vector(prop.get("rgb", [0.5, 0.5, 0.5]), 3, f"{key}.rgb", 0, 1),
        })
    return out


def themes() -> Dict[str, dict]:
    """Environment themes from configs/themes.yaml, checked (a fresh copy each call)."""
    return _config_section("themes.yaml", "themes", _check_theme)


def theme(name: str) -> dict:
    found = themes()
    if name not in found:
        raise ConfigError(f"unknown theme {name!r} (configs/themes.yaml has {sorted(found)})")
    return found[name]


def _config_section(file_name: str, section: str, check) -> Dict[str, dict]:
    """The checked entries of one named mapping in a condition file, as a fresh copy."""
    path = configs_dir() / file_name
    return copy.deepcopy(_checked_section(path, _mtime(path), section, check))


@lru_cache(maxsize=None)
def _checked_section(path: Path, mtime: float, section: str, check) -> Dict[str, dict]:
    found = _load(path.name).get(section)
    if not isinstance(found, dict) or not found:
        raise ConfigError(f"{path}: needs a non-empty {section!r} mapping")
    return {str(name): check(str(name), entry, str(path)) for name, entry in found.items()}


def _mtime(path: Path) -> float:
    # Part of the cache key so an edited config is re-read (a long session picks up changes).
    try:
        return path.stat().st_mtime
    except OSError:
        raise ConfigError(f"condition file {path} is missing") from None


def _rounded(values) -> list:
    return [round(float(v), 6) for v in values]
