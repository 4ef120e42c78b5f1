"""Multi-finger hands in a robot YAML: joint group, fingertip and palm sites, touch sensors, couplings, synergies.

    hands:
      right:
        group: right_hand                       # the joint group of the hand's actuated joints
        actuated: [right_thumb_rotation, ...]   # optional: the group's joints in another order (synergy order)
        fingertips: {thumb: right_thumb_tip, index: right_index_tip, ...}   # sites; thumb + >= 1 finger
        palm: right_palm_centre                 # site
        touch: {thumb: right_thumb_touch, palm: right_palm_touch, ...}      # touch sensors (optional)
        coupling:                               # passive joints: q_joint = ratio * q_follows
          right_index_pip: {follows: right_index_flexion, ratio: 1.0}
        synergies:                              # joint targets at amount 1 (unlisted joints: their home)
          open: {right_index_flexion: 0.0, ...}
          power: {...}
          pinch: {...}
          tripod: {...}
      left:
        group: left_hand
        ...
        mirror_of: right                        # instead of synergies: the right hand's, joint for joint
        mirror_signs: [1, 1, 1, 1, 1, 1]        # optional, per actuated joint (-1 where the axes are not mirrored)

Every name is checked against the compiled model at load time, and every coupling against the MJCF's joint
equality, so a retargeter or controller can trust the description without looking at the MJCF.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from collector.errors import ConfigError

FINGERS = ("thumb", "index", "middle", "ring", "little")
TOUCH_PLACES = FINGERS + ("palm",)
SYNERGIES = ("open", "power", "pinch", "tripod")  # every hand has these; a YAML may add more
HAND_KEYS = {"group", "actuated", "fingertips", "palm", "touch", "coupling", "synergies", "mirror_of", "mirror_signs"}
COUPLING_KEYS = {"follows", "ratio"}
RATIO_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Coupling:
    """A passive joint driven by an actuated one: q_joint = ratio * q_follows (an MJCF joint equality)."""

    joint: str
    follows: str
    ratio: float


@dataclass(frozen=True)
class HandSpec:
    """One hand as the robot YAML describes it, checked against the model."""

    side: str
    group: str
    joints: Tuple[str, ...]                  # actuated joints, in synergy order
    fingertips: Dict[str, str]               # finger -> site
    palm: str                                # site
    touch: Dict[str, str]                    # finger or "palm" -> touch sensor
    coupling: Tuple[Coupling, ...]
    synergies: Dict[str, Tuple[float, ...]]  # name -> targets at amount 1, in `joints` order
    mirror_of: str = ""
    mirror_signs: Tuple[float, ...] = field(default_factory=tuple)

    def passive_joints(self) -> List[str]:
        return [c.joint for c in self.coupling]

    def joint_positions(self, actuated) -> Dict[str, float]:
        """Every joint of the hand for actuated values (in `joints` order), the passive ones from the couplings:
        what a retargeter's forward kinematics must set, since the MJCF only enforces the couplings in physics."""
        values = [float(v) for v in actuated]
        if len(values) != len(self.joints):
            raise ValueError(f"hand {self.side!r} has {len(self.joints)} actuated joints, got {len(values)} values")
        positions = dict(zip(self.joints, values))
        for coupling in self.coupling:
            positions[coupling.joint] = coupling.ratio * positions[coupling.follows]
        return positions


def parse_hands(raw, names, groups: Dict[str, List[str]], joint_ranges, home: Dict[str, float],
                where: str) -> Dict[str, HandSpec]:
    """The `hands:` section -> side -> HandSpec. `names` is the loader's model-name checker."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: hands must be a mapping of side -> hand")
    drafts = {str(side): _draft(str(side), hand, names, groups, where) for side, hand in raw.items()}
    hands = {}
    for side, draft in drafts.items():
        synergies = _synergies(side, draft, drafts, home, where)
        mirrored = draft["mirror_of"]
        source = f"hands.{side} (mirror_of {mirrored})" if mirrored else f"hands.{side}.synergies"
        for name, targets in synergies.items():
            _check_in_range(f"{source}.{name}", draft["joints"], targets, joint_ranges, where)
        hands[side] = HandSpec(side=side, group=draft["group"], joints=tuple(draft["joints"]),
                               fingertips=draft["fingertips"], palm=draft["palm"], touch=draft["touch"],
                               coupling=draft["coupling"], synergies=synergies, mirror_of=draft["mirror_of"],
                               mirror_signs=draft["mirror_signs"])
    return hands


def _draft(side: str, hand, names, groups, where: str) -> dict:
    key = f"hands.{side}"
    if not isinstance(hand, dict):
        raise ConfigError(f"{where}: {key} must be a mapping with keys from {sorted(HAND_KEYS)}")
    unknown = set(hand) - HAND_KEYS
    if unknown:
        raise ConfigError(f"{where}: {key}: unknown key(s) {sorted(unknown)} (known: {sorted(HAND_KEYS)})")
    group = hand.get("group")
    if not isinstance(group, str) or group not in groups:
        raise ConfigError(f"{where}: {key}.group: {group!r} is not a joint group (have {sorted(groups)})")
    joints = _actuated(hand.get("actuated"), groups[group], f"{key}.actuated", where)
    fingertips = _named_map(hand.get("fingertips"), FINGERS, f"{key}.fingertips", where)
    if "thumb" not in fingertips or len(fingertips) < 2:
        raise ConfigError(f"{where}: {key}.fingertips must name the thumb and at least one finger")
    for finger, site in fingertips.items():
        names.require("site", site, f"{key}.fingertips.{finger}")
    palm = hand.get("palm")
    names.require("site", palm, f"{key}.palm")
    touch = _named_map(hand.get("touch") or {}, TOUCH_PLACES, f"{key}.touch", where)
    for place, sensor in touch.items():
        names.require_touch_sensor(sensor, f"{key}.touch.{place}")
    coupling = _coupling(hand.get("coupling") or {}, joints, names, f"{key}.coupling", where)
    has_own, mirror_of = "synergies" in hand, hand.get("mirror_of")
    if has_own == (mirror_of is not None):
        raise ConfigError(f"{where}: {key} needs exactly one of synergies or mirror_of")
    if has_own and "mirror_signs" in hand:
        raise ConfigError(f"{where}: {key}.mirror_signs only applies to a hand with mirror_of")
    return {"group": str(group), "joints": joints, "fingertips": fingertips, "palm": str(palm), "touch": touch,
            "coupling": coupling, "raw_synergies": hand.get("synergies"), "mirror_of": str(mirror_of or ""),
            "mirror_signs": _signs(hand.get("mirror_signs"), len(joints), f"{key}.mirror_signs", where)}


def _actuated(raw, group_joints: List[str], key: str, where: str) -> List[str]:
    if raw is None:
        return list(group_joints)
    if not isinstance(raw, list) or not all(isinstance(j, str) for j in raw):
        raise ConfigError(f"{where}: {key} must be a list of joint names")
    for joint in raw:
        if joint not in group_joints:
            raise ConfigError(f"{where}: {key}: joint {joint!r} is not in the hand's group {group_joints}")
    missing = [j for j in group_joints if j not in raw]
    if missing or len(set(raw)) != len(raw):
        raise ConfigError(f"{where}: {key} must list each of the group's joints once (missing {missing})")
    return list(raw)


def _named_map(raw, allowed, key: str, where: str) -> Dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {key} must be a mapping")
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: {key}: unknown name(s) {unknown} (allowed: {list(allowed)})")
    return {str(k): v for k, v in raw.items()}


def _number(value, key: str, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {key} must be finite, got {value!r}")
    return number


def _coupling(raw, actuated: List[str], names, key: str, where: str) -> Tuple[Coupling, ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {key} must be a mapping of joint -> {{follows, ratio}}")
    couplings = []
    for joint, entry in raw.items():
        entry_key = f"{key}.{joint}"
        names.require("joint", joint, entry_key)
        if not isinstance(entry, dict) or set(entry) != COUPLING_KEYS:
            raise ConfigError(f"{where}: {entry_key} must be a mapping with keys {sorted(COUPLING_KEYS)}")
        follows = entry["follows"]
        if follows not in actuated:
            raise ConfigError(f"{where}: {entry_key}.follows: {follows!r} is not one of the hand's actuated joints")
        ratio = _number(entry["ratio"], f"{entry_key}.ratio", where)
        model_ratio = names.joint_coupling_ratio(str(joint), follows)
        if model_ratio is None:
            raise ConfigError(f"{where}: {entry_key}: the MJCF has no joint equality making {joint!r} "
                              f"follow {follows!r} (joint1={joint}, joint2={follows})")
        if abs(model_ratio - ratio) > RATIO_TOLERANCE:
            raise ConfigError(f"{where}: {entry_key}.ratio is {ratio} but the MJCF couples it with {model_ratio}")
        couplings.append(Coupling(str(joint), str(follows), ratio))
    return tuple(couplings)


def _signs(raw, count: int, key: str, where: str) -> Tuple[float, ...]:
    if raw is None:
        return (1.0,) * count
    if not isinstance(raw, list) or len(raw) != count:
        raise ConfigError(f"{where}: {key} must be a list of {count} signs (1 or -1)")
    signs = tuple(_number(v, key, where) for v in raw)
    if any(s not in (1.0, -1.0) for s in signs):
        raise ConfigError(f"{where}: {key} must hold only 1 or -1, got {raw}")
    return signs


def _synergies(side: str, draft: dict, drafts: dict, home: Dict[str, float],
               where: str) -> Dict[str, Tuple[float, ...]]:
    key = f"hands.{side}"
    if draft["mirror_of"]:
        other = drafts.get(draft["mirror_of"])
        if other is None or other["mirror_of"]:
            raise ConfigError(f"{where}: {key}.mirror_of: {draft['mirror_of']!r} is not a hand with its own synergies")
        if len(other["joints"]) != len(draft["joints"]):
            raise ConfigError(f"{where}: {key}.mirror_of: {draft['mirror_of']!r} has {len(other['joints'])} "
                              f"actuated joints, this hand {len(draft['joints'])}")
        source = _own_synergies(draft["mirror_of"], other, home, where)
        signs = draft["mirror_signs"]
        return {name: tuple(s * v for s, v in zip(signs, targets)) for name, targets in source.items()}
    return _own_synergies(side, draft, home, where)


def _own_synergies(side: str, draft: dict, home: Dict[str, float], where: str) -> Dict[str, Tuple[float, ...]]:
    key = f"hands.{side}.synergies"
    raw = draft["raw_synergies"]
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {key} must be a mapping of synergy name -> {{joint: target}}")
    missing = [name for name in SYNERGIES if name not in raw]
    if missing:
        raise ConfigError(f"{where}: {key} is missing {missing} (every hand has {list(SYNERGIES)})")
    synergies = {}
    for name, targets in raw.items():
        if not isinstance(targets, dict):
            raise ConfigError(f"{where}: {key}.{name} must be a mapping of joint -> target")
        for joint in targets:
            if joint not in draft["joints"]:
                raise ConfigError(f"{where}: {key}.{name}: {joint!r} is not one of the hand's actuated joints")
        synergies[str(name)] = tuple(
            _number(targets[j], f"{key}.{name}.{j}", where) if j in targets else float(home.get(j, 0.0))
            for j in draft["joints"])
    return synergies


def _check_in_range(key: str, joints, targets, joint_ranges, where: str) -> None:
    for joint, value in zip(joints, targets):
        low, high = joint_ranges[joint]
        if not (low - 1e-9 <= value <= high + 1e-9):
            raise ConfigError(f"{where}: {key}.{joint}={value} is outside the joint range [{low}, {high}]")
