"""Teleop settings: configs/teleop.yaml, validated into dataclasses (ConfigError names file, key, problem)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from collector.errors import ConfigError
from collector.paths import configs_dir
from collector.policy.assists import Assists
from collector.yaml_files import load_yaml_mapping


@dataclass
class ControlConfig:
    rate_hz: float = 100.0
    input_endpoint: str = "tcp://127.0.0.1:5555"
    input_bind: bool = False
    phase_lock: bool = True
    phase_lock_lag_ms: float = 1.0
    # SCHED_FIFO priority of the realtime control thread and its input I/O thread; 50 is
    # ros2_control's default. Without permission a warning says so and scheduling stays normal.
    realtime_priority: int = 50


@dataclass
class InputConfig:
    hold_after_s: float = 0.1
    stop_after_s: float = 0.5
    deadman: str = "button"
    gesture: str = "hands_tracked"


@dataclass
class RetargetConfig:
    operator_frame: str = "webxr"
    scale: List[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    orientation: bool = True
    gripper_source: str = "auto"
    pinch_open_m: float = 0.08
    pinch_closed_m: float = 0.015
    head_gain: float = 1.0
    fist_radius_m: float = 0.07


@dataclass
class IKConfig:
    groups: List[str] = field(default_factory=lambda: ["left_arm", "right_arm"])
    solver: str = "daqp"
    position_cost: float = 1.0
    orientation_cost: float = 0.2
    posture_cost: float = 1e-3
    lm_damping: float = 0.01
    damping: float = 1e-3
    iterations: int = 1
    max_iteration_dt: float = 0.01
    collision_min_distance: float = 0.01
    collision_detection_distance: float = 0.08


@dataclass
class SafetyConfig:
    velocity_scale: float = 1.0
    default_velocity_limit: float = 2.0
    gripper_travel_s: float = 0.3
    workspace: Union[str, Dict[str, List[float]]] = "auto"
    workspace_margin: List[float] = field(default_factory=lambda: [0.45, 0.55, 0.55])


@dataclass
class GamepadConfig:
    path: str = "auto"
    linear_speed: float = 0.25
    angular_speed: float = 1.0
    deadzone: float = 0.12


@dataclass
class KeyboardConfig:
    step_m: float = 0.01
    step_rad: float = 0.05


@dataclass
class ScriptedConfig:
    speed: float = 0.35
    noise_m: float = 0.001
    reaction_s: List[float] = field(default_factory=lambda: [0.15, 0.35])
    # Recovery demonstrations (pick-and-place, grippers): this share of takes first lowers the open gripper
    # beside the object, `near_miss_m` [low, high] metres off the grasp point, then sees the miss, lifts,
    # re-aims and grasps: states a policy's short reach ends in, each followed by the operator's way out.
    near_miss_share: float = 0.0
    near_miss_m: List[float] = field(default_factory=lambda: [0.03, 0.06])


@dataclass
class CorrectorConfig(ScriptedConfig):
    """The scripted corrector (devices/corrector.py): when it takes over from a policy."""

    grasp_deadline_s: float = 8.0  # the object is not grasped by then
    drift_m: float = 0.15  # the gripper moved this far back from its closest approach to the object
    stall_s: float = 3.0  # no progress of at least progress_m for this long
    progress_m: float = 0.01


@dataclass
class DevicesConfig:
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    scripted: ScriptedConfig = field(default_factory=ScriptedConfig)
    corrector: CorrectorConfig = field(default_factory=CorrectorConfig)


@dataclass
class PolicyDriveConfig:
    """A trained policy driving the robot (collect --policy, ros teleop --policy)."""
    grasp_gate_mm: float = 0.0  # > 0: each gripper held open until its hand is this close above the target estimate
    steer_hands: bool = False  # each hand near the target sent to the estimate plus the policy's offset, by IK
    hold_estimate_mm: float = 0.0  # > 0: gate and steering use the estimate seen with both hands farther than this


@dataclass
class TeleopConfig:
    control: ControlConfig = field(default_factory=ControlConfig)
    input: InputConfig = field(default_factory=InputConfig)
    retarget: RetargetConfig = field(default_factory=RetargetConfig)
    ik: IKConfig = field(default_factory=IKConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    policy: PolicyDriveConfig = field(default_factory=PolicyDriveConfig)
    source: str = "<defaults>"

    @property
    def control_dt(self) -> float:
        return 1.0 / self.control.rate_hz

    @property
    def grasp_gate_m(self) -> Optional[float]:
        """The policy's grasp gate in metres (collector.policy.grasp_gate), None when off."""
        return self.policy.grasp_gate_mm / 1000.0 if self.policy.grasp_gate_mm > 0 else None

    @property
    def policy_assists(self) -> Assists:
        """What the policy section adds to a driving policy's action (collector.policy.assists)."""
        hold = self.policy.hold_estimate_mm
        return Assists(grasp_gate_m=self.grasp_gate_m, steer_hands=self.policy.steer_hands,
                       hold_estimate_m=hold / 1000.0 if hold > 0 else None)


def _fill(cls, raw: Any, where: str, source: str):
    """Build dataclass `cls` from mapping `raw`, recursing into nested dataclasses; strict on keys."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where or 'top level'} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} in {where or 'top level'} "
                          f"(known: {sorted(fields)})")
    values = {}
    default = cls()
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        current = getattr(default, name)
        if name not in raw:
            values[name] = current
        elif dataclasses.is_dataclass(current):
            values[name] = _fill(type(current), raw[name], key, source)
        else:
            values[name] = _coerce(raw[name], current, key, source)
    return cls(**values)


def _coerce(value, default, key: str, source: str):
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) != len(default) and default and isinstance(default[0], float):
            raise ConfigError(f"{source}: {key} must be a list like {default!r}, got {value!r}")
        if default and isinstance(default[0], float):
            return [_coerce(v, 0.0, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return [_coerce(v, default[0] if default else "", f"{key}[{i}]", source) for i, v in enumerate(value)]
    if isinstance(default, str):
        if key == "safety.workspace" and isinstance(value, dict):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
        return value
    return value


CHOICES = {
    ("input", "deadman"): ("button", "gesture"),
    ("input", "gesture"): ("hands_tracked", "left_fist", "right_fist"),
    ("retarget", "operator_frame"): ("webxr", "robot"),
    ("retarget", "gripper_source"): ("auto", "trigger", "pinch"),
}


def _validate(cfg: TeleopConfig) -> TeleopConfig:
    src = cfg.source
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{src}: {section}.{name} = {value!r}, expected one of {list(allowed)}")
    positive = [
        ("control.rate_hz", cfg.control.rate_hz), ("input.hold_after_s", cfg.input.hold_after_s),
        ("input.stop_after_s", cfg.input.stop_after_s), ("ik.max_iteration_dt", cfg.ik.max_iteration_dt),
        ("safety.velocity_scale", cfg.safety.velocity_scale),
        ("safety.default_velocity_limit", cfg.safety.default_velocity_limit),
        ("safety.gripper_travel_s", cfg.safety.gripper_travel_s),
        ("devices.scripted.speed", cfg.devices.scripted.speed), ("ik.iterations", cfg.ik.iterations),
        *((f"devices.corrector.{name}", getattr(cfg.devices.corrector, name))
          for name in ("speed", "grasp_deadline_s", "drift_m", "stall_s", "progress_m")),
    ]
    for key, value in positive + [(f"retarget.scale[{i}]", s) for i, s in enumerate(cfg.retarget.scale)]:
        if not value > 0:
            raise ConfigError(f"{src}: {key} must be positive, got {value!r}")
    if not cfg.policy.grasp_gate_mm >= 0:
        raise ConfigError(f"{src}: policy.grasp_gate_mm must be 0 (off) or a positive height in millimetres, "
                          f"got {cfg.policy.grasp_gate_mm!r}")
    if not cfg.policy.hold_estimate_mm >= 0:
        raise ConfigError(f"{src}: policy.hold_estimate_mm must be 0 (off) or a positive distance in millimetres, "
                          f"got {cfg.policy.hold_estimate_mm!r}")
    if cfg.policy.hold_estimate_mm > 0 and not (cfg.policy.grasp_gate_mm > 0 or cfg.policy.steer_hands):
        raise ConfigError(f"{src}: policy.hold_estimate_mm needs policy.grasp_gate_mm or policy.steer_hands, "
                          "which read the estimate")
    if not 0 <= cfg.control.realtime_priority <= 99:
        raise ConfigError(f"{src}: control.realtime_priority must be 0 (off) or a SCHED_FIFO priority 1..99")
    if cfg.input.hold_after_s > cfg.input.stop_after_s:
        raise ConfigError(f"{src}: input.hold_after_s must not exceed input.stop_after_s")
    if len(cfg.retarget.scale) != 3:
        raise ConfigError(f"{src}: retarget.scale needs 3 values (x, y, z)")
    if not cfg.retarget.pinch_open_m > cfg.retarget.pinch_closed_m >= 0:
        raise ConfigError(f"{src}: need retarget.pinch_open_m > retarget.pinch_closed_m >= 0")
    ws = cfg.safety.workspace
    if isinstance(ws, dict):
        if set(ws) != {"min", "max"}:
            raise ConfigError(f"{src}: safety.workspace must be 'auto' or {{min: [x,y,z], max: [x,y,z]}}")
        lo = _coerce(ws["min"], [0.0, 0.0, 0.0], "safety.workspace.min", src)
        hi = _coerce(ws["max"], [0.0, 0.0, 0.0], "safety.workspace.max", src)
        if not all(a < b for a, b in zip(lo, hi)):
            raise ConfigError(f"{src}: safety.workspace min must be below max on every axis")
        cfg.safety.workspace = {"min": lo, "max": hi}
    elif ws != "auto":
        raise ConfigError(f"{src}: safety.workspace must be 'auto' or a {{min, max}} box, got {ws!r}")
    for section in ("scripted", "corrector"):
        device = getattr(cfg.devices, section)
        lo, hi = device.reaction_s
        if not 0 <= lo <= hi:
            raise ConfigError(f"{src}: devices.{section}.reaction_s must be [low, high] with 0 <= low <= high")
        if not 0 <= device.near_miss_share <= 1:
            raise ConfigError(f"{src}: devices.{section}.near_miss_share must be between 0 and 1, "
                              f"got {device.near_miss_share!r}")
        lo, hi = device.near_miss_m
        if not 0 < lo <= hi <= 0.15:
            raise ConfigError(f"{src}: devices.{section}.near_miss_m must be [low, high] metres with "
                              f"0 < low <= high <= 0.15")
    return cfg


def default_config_path() -> Path:
    return configs_dir() / "teleop.yaml"


def load_teleop_config(path: Optional[Union[str, Path]] = None, overrides: Optional[dict] = None) -> TeleopConfig:
    """Read the teleop YAML (default configs/teleop.yaml; built-in defaults if it is absent)
    and apply `overrides`, a nested dict of the same shape."""
    raw: dict = {}
    source = "<defaults>"
    candidate = Path(path) if path is not None else default_config_path()
    if candidate.is_dir():
        raise ConfigError(f"teleop config {candidate}: is a directory, not a YAML file")
    if candidate.is_file():
        source = str(candidate)
        # An empty default file means "all defaults"; an empty file the user named is a mistake
        # (a truncated copy, the wrong path), so it is refused instead of silently ignored.
        raw = load_yaml_mapping(candidate, "teleop config", empty_ok=path is None)
    elif path is not None:
        raise ConfigError(f"teleop config {candidate} does not exist")
    if overrides:
        raw = _merge(raw, overrides)
    cfg = _fill(TeleopConfig, raw, "", source)
    cfg.source = source
    return _validate(cfg)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def as_dict(cfg: TeleopConfig) -> Dict[str, Any]:
    out = dataclasses.asdict(cfg)
    out.pop("source", None)
    return out


