"""Load a robot YAML, check it against its MJCF, and return a RobotSpec.

Every check runs at load time so a wrong file fails before anything moves: a missing MJCF, a joint,
site, camera, actuator or geom the YAML names but the model lacks, a home value outside its joint
range, a hand's site, touch sensor or coupling the model does not have (collector/robot/hands.py).
Each error names the YAML file, the key and the offending name.
"""
from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

from collector.errors import ConfigError
from collector.yaml_files import load_yaml_mapping
from collector.paths import robots_dir
from collector.robot.additions import apply_additions
from collector.robot.hands import parse_hands
from collector.robot.spec import CameraSpec, RobotSpec

ROBOT_YAML = "robot.yaml"
KNOWN_KEYS = {
    "name", "mjcf", "fixed_base", "base_body", "groups", "actuators", "end_effectors", "ee_approach_axis",
    "grippers", "head", "cameras", "home", "ik_collision_pairs", "scene", "physics", "description",
    "extra_sites", "extra_cameras", "velocity_limits", "ros", "hands",
}
GRIPPER_KEYS = {"actuator", "open", "closed", "joints"}
CAMERA_KEYS = {"mjcf_camera", "width", "height", "fps"}


def resolve_robot_yaml(robot) -> Path:
    """A robot name under robots/, a robot directory, or a YAML path -> the YAML file."""
    candidate = Path(robot).expanduser()
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_dir():
            raise ConfigError(f"robot YAML {candidate}: is a directory, not a YAML file")
        if not candidate.is_file():
            raise ConfigError(f"robot YAML {str(candidate)!r} does not exist")
        return candidate.resolve()
    if candidate.is_dir():
        path = candidate / ROBOT_YAML
        if not path.is_file():
            raise ConfigError(f"robot directory {str(candidate)!r} has no {ROBOT_YAML}")
        return path.resolve()
    named = robots_dir() / str(robot) / ROBOT_YAML
    if named.is_file():
        return named.resolve()
    if named.exists():
        raise ConfigError(f"robot YAML {named}: is not a regular file")
    known = sorted(p.parent.name for p in robots_dir().glob(f"*/{ROBOT_YAML}"))
    raise ConfigError(f"unknown robot {str(robot)!r}: not a YAML path, a directory, or one of {known}")


def load_robot(robot="humanoid") -> RobotSpec:
    """Load and validate a robot description (see robots/humanoid/robot.yaml for the format)."""
    import mujoco

    yaml_path = resolve_robot_yaml(robot)
    raw = load_yaml_mapping(yaml_path)
    where = str(yaml_path)

    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: {sorted(KNOWN_KEYS)})")
    for key in ("name", "mjcf", "groups"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key {key!r}")

    mjcf_path = (yaml_path.parent / str(raw["mjcf"])).resolve()
    if not mjcf_path.is_file():
        raise ConfigError(f"{where}: mjcf {raw['mjcf']!r} not found (looked at {mjcf_path})")
    extra_sites = _str_map(raw.get("extra_sites") or {}, "extra_sites", where)
    extra_cameras = _str_map(raw.get("extra_cameras") or {}, "extra_cameras", where)
    try:
        mjspec = mujoco.MjSpec.from_file(str(mjcf_path))
    except ValueError as exc:
        raise ConfigError(f"{where}: MuJoCo cannot load {mjcf_path.name}: {exc}") from exc
    apply_additions(mjspec, extra_sites, extra_cameras, where)
    try:
        model = mjspec.compile()
    except ValueError as exc:
        raise ConfigError(f"{where}: MuJoCo cannot load {mjcf_path.name}: {exc}") from exc

    names = _ModelNames(model, where)
    groups = _groups(raw["groups"], names, where)
    command_joints = [joint for joints in groups.values() for joint in joints]
    actuators = _actuators(raw.get("actuators") or {}, command_joints, model, names, where)
    joint_ranges = {joint: names.joint_range(joint) for joint in command_joints}

    end_effectors = _str_map(raw.get("end_effectors") or {}, "end_effectors", where)
    for side, site in end_effectors.items():
        names.require("site", site, f"end_effectors.{side}")
    approach = str(raw.get("ee_approach_axis", "z"))
    if approach not in ("x", "y", "z", "-x", "-y", "-z"):
        raise ConfigError(f"{where}: ee_approach_axis must be one of x y z -x -y -z, got {approach!r}")

    grippers = _grippers(raw.get("grippers") or {}, names, where)
    head = _str_map(raw.get("head") or {}, "head", where)
    for role, joint in head.items():
        names.require("joint", joint, f"head.{role}")
    cameras = _cameras(raw.get("cameras") or {}, names, where)
    home = _home(raw.get("home") or {}, joint_ranges, names, where)
    hands = parse_hands(raw.get("hands") or {}, names, groups, joint_ranges, home, where)
    velocity_limits = _velocity_limits(raw.get("velocity_limits") or {}, joint_ranges, names, where)
    pairs = _collision_pairs(raw.get("ik_collision_pairs") or [], names, where)
    base_body = str(raw.get("base_body", ""))
    if base_body:
        names.require("body", base_body, "base_body")

    return RobotSpec(
        name=str(raw["name"]),
        yaml_path=yaml_path,
        mjcf_path=mjcf_path,
        fixed_base=bool(raw.get("fixed_base", True)),
        groups=groups,
        command_joints=command_joints,
        actuators=actuators,
        end_effectors=end_effectors,
        grippers=grippers,
        hands=hands,
        head=head,
        cameras=cameras,
        home=home,
        velocity_limits=velocity_limits,
        ik_collision_pairs=pairs,
        model_hash=model_hash(yaml_path, mjcf_path, mjspec),
        joint_ranges=joint_ranges,
        ee_approach_axis=approach,
        base_body=base_body,
        scene=dict(raw.get("scene") or {}),
        physics=dict(raw.get("physics") or {}),
        extra_sites=extra_sites,
        extra_cameras=extra_cameras,
    )


def model_hash(yaml_path: Path, mjcf_path: Path, mjspec) -> str:
    """sha256 over the YAML, the MJCF, every file it includes and every asset file it loads."""
    digest = hashlib.sha256()
    files = [yaml_path] + _mjcf_files(mjcf_path) + _asset_files(mjcf_path, mjspec)
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- pieces of the YAML --------------------------------------------------------------------------

class _ModelNames:
    """Name lookups in the compiled model that raise a ConfigError naming the YAML key."""

    def __init__(self, model, where: str):
        import mujoco

        self.mujoco = mujoco
        self.model = model
        self.where = where
        self.kinds = {
            "joint": mujoco.mjtObj.mjOBJ_JOINT,
            "site": mujoco.mjtObj.mjOBJ_SITE,
            "camera": mujoco.mjtObj.mjOBJ_CAMERA,
            "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
            "geom": mujoco.mjtObj.mjOBJ_GEOM,
            "body": mujoco.mjtObj.mjOBJ_BODY,
            "sensor": mujoco.mjtObj.mjOBJ_SENSOR,
        }

    def require(self, kind: str, name, key: str) -> int:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{self.where}: {key} must be a {kind} name, got {name!r}")
        index = self.mujoco.mj_name2id(self.model, self.kinds[kind], name)
        if index < 0:
            raise ConfigError(f"{self.where}: {key}: unknown {kind} {name!r} (not in the MJCF model)")
        return index

    def require_touch_sensor(self, name, key: str) -> int:
        index = self.require("sensor", name, key)
        if int(self.model.sensor_type[index]) != int(self.mujoco.mjtSensor.mjSENS_TOUCH):
            raise ConfigError(f"{self.where}: {key}: sensor {name!r} is not a touch sensor")
        return index

    def joint_coupling_ratio(self, joint: str, follows: str):
        """The ratio of a linear MJCF joint equality q_joint = ratio * q_follows, or None if there is none."""
        joint_id = self.require("joint", joint, "coupling")
        follows_id = self.require("joint", follows, "coupling")
        for eq in range(self.model.neq):
            if (int(self.model.eq_type[eq]) == int(self.mujoco.mjtEq.mjEQ_JOINT)
                    and int(self.model.eq_obj1id[eq]) == joint_id and int(self.model.eq_obj2id[eq]) == follows_id):
                offset, ratio, *higher = (float(c) for c in self.model.eq_data[eq][:5])
                if offset == 0.0 and not any(higher):
                    return ratio
        return None

    def joint_range(self, joint: str) -> Tuple[float, float]:
        index = self.require("joint", joint, "groups")
        if self.model.jnt_limited[index]:
            low, high = self.model.jnt_range[index]
            return float(low), float(high)
        return -math.pi, math.pi


def _str_map(value, key: str, where: str) -> Dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping")
    return {str(k): v for k, v in value.items()}


def _groups(raw, names: _ModelNames, where: str) -> Dict[str, List[str]]:
    import mujoco

    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: groups must be a non-empty mapping of group name -> joint list")
    seen: Dict[str, str] = {}
    groups: Dict[str, List[str]] = {}
    for group, joints in raw.items():
        if not isinstance(joints, list) or not joints:
            raise ConfigError(f"{where}: groups.{group} must be a non-empty list of joint names")
        for joint in joints:
            index = names.require("joint", joint, f"groups.{group}")
            if int(names.model.jnt_type[index]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise ConfigError(f"{where}: groups.{group}: joint {joint!r} is not a hinge or slide joint")
            if joint in seen:
                raise ConfigError(f"{where}: joint {joint!r} is in both groups.{seen[joint]} and groups.{group}")
            seen[joint] = group
        groups[str(group)] = [str(j) for j in joints]
    return groups


def _actuators(overrides, joints, model, names: _ModelNames, where: str) -> Dict[str, str]:
    """joint -> the position actuator driving it (named in the YAML, else the actuator on that joint)."""
    import mujoco

    overrides = _str_map(overrides, "actuators", where)
    for joint, actuator in overrides.items():
        if joint not in joints:
            raise ConfigError(f"{where}: actuators.{joint}: {joint!r} is not in any joint group")
        names.require("actuator", actuator, f"actuators.{joint}")
    on_joint = {}
    for actuator_id in range(model.nu):
        if int(model.actuator_trntype[actuator_id]) == int(mujoco.mjtTrn.mjTRN_JOINT):
            joint = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[actuator_id, 0])
            on_joint.setdefault(joint, mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, actuator_id))
    result = {}
    for joint in joints:
        actuator = overrides.get(joint) or on_joint.get(joint)
        if not actuator:
            raise ConfigError(
                f"{where}: joint {joint!r} has no actuator (add a position actuator on it, "
                f"or name one under actuators.{joint})"
            )
        actuator_id = names.require("actuator", actuator, f"actuators.{joint}")
        # A position servo has an affine bias (-kp*q [-kv*qdot]); anything else cannot take a joint target.
        if int(model.actuator_biastype[actuator_id]) != int(mujoco.mjtBias.mjBIAS_AFFINE):
            raise ConfigError(f"{where}: actuator {actuator!r} on joint {joint!r} is not a position actuator")
        result[joint] = actuator
    return result


def _grippers(raw, names: _ModelNames, where: str) -> Dict[str, dict]:
    grippers = {}
    for side, gripper in _str_map(raw, "grippers", where).items():
        key = f"grippers.{side}"
        if not isinstance(gripper, dict):
            raise ConfigError(f"{where}: {key} must be a mapping with keys {sorted(GRIPPER_KEYS)}")
        missing = GRIPPER_KEYS - set(gripper)
        if missing:
            raise ConfigError(f"{where}: {key} is missing {sorted(missing)}")
        names.require("actuator", gripper["actuator"], f"{key}.actuator")
        joints = gripper["joints"]
        if not isinstance(joints, list) or not joints:
            raise ConfigError(f"{where}: {key}.joints must be a non-empty list")
        for joint in joints:
            names.require("joint", joint, f"{key}.joints")
        try:
            opened, closed = float(gripper["open"]), float(gripper["closed"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key}.open/closed must be numbers") from exc
        grippers[side] = {"actuator": gripper["actuator"], "open": opened, "closed": closed, "joints": list(joints)}
    return grippers


def _cameras(raw, names: _ModelNames, where: str) -> Dict[str, CameraSpec]:
    cameras = {}
    for name, camera in _str_map(raw, "cameras", where).items():
        key = f"cameras.{name}"
        if not isinstance(camera, dict) or not CAMERA_KEYS <= set(camera):
            raise ConfigError(f"{where}: {key} needs keys {sorted(CAMERA_KEYS)}")
        names.require("camera", camera["mjcf_camera"], f"{key}.mjcf_camera")
        try:
            width, height, fps = int(camera["width"]), int(camera["height"]), float(camera["fps"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key}: width/height/fps must be numbers") from exc
        if width <= 0 or height <= 0 or not (fps > 0 and math.isfinite(fps)):
            raise ConfigError(f"{where}: {key}: width, height and fps must be positive")
        cameras[name] = CameraSpec(name, camera["mjcf_camera"], width, height, fps)
    return cameras


def _joint_numbers(raw, key: str, joint_ranges, names: _ModelNames, where: str) -> Dict[str, float]:
    """A {joint: number} section whose joints must exist and be in a joint group."""
    values = {}
    for joint, value in _str_map(raw, key, where).items():
        names.require("joint", joint, key)
        if joint not in joint_ranges:
            raise ConfigError(f"{where}: {key}.{joint}: joint is not in any joint group")
        try:
            values[joint] = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {key}.{joint} must be a number, got {value!r}") from exc
    return values


def _home(raw, joint_ranges, names: _ModelNames, where: str) -> Dict[str, float]:
    home = _joint_numbers(raw, "home", joint_ranges, names, where)
    for joint, value in home.items():
        low, high = joint_ranges[joint]
        if not (low - 1e-9 <= value <= high + 1e-9):
            raise ConfigError(f"{where}: home.{joint}={value} is outside the joint range [{low}, {high}]")
    return home


def _velocity_limits(raw, joint_ranges, names: _ModelNames, where: str) -> Dict[str, float]:
    limits = _joint_numbers(raw, "velocity_limits", joint_ranges, names, where)
    for joint, value in limits.items():
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{where}: velocity_limits.{joint}={value} must be a positive rad/s (or m/s) value")
    return limits


def _collision_pairs(raw, names: _ModelNames, where: str) -> List[Tuple[List[str], List[str]]]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: ik_collision_pairs must be a list of [geoms, geoms] pairs")
    pairs = []
    for index, pair in enumerate(raw):
        key = f"ik_collision_pairs[{index}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(side, list) for side in pair)):
            raise ConfigError(f"{where}: {key} must be a pair of geom-name lists")
        for side in pair:
            for geom in side:
                names.require("geom", geom, key)
        pairs.append(([str(g) for g in pair[0]], [str(g) for g in pair[1]]))
    return pairs


def _mjcf_files(mjcf_path: Path) -> List[Path]:
    """The MJCF and, recursively, every file it pulls in with <include file=...>.

    MuJoCo resolves every include, nested ones too, against the directory of the top-level file (which is
    how robots/humanoid_dex fills the hand slots of robots/humanoid/humanoid.xml), so the hash does as well.
    """
    files, pending = [], [mjcf_path]
    while pending:
        path = pending.pop(0)
        if path in files or not path.is_file():
            continue
        files.append(path)
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue  # MuJoCo already accepted the file; an unparsable include simply is not followed
        for include in root.iter("include"):
            if include.get("file"):
                pending.append((mjcf_path.parent / include.get("file")).resolve())
    return files


def _asset_files(mjcf_path: Path, mjspec) -> List[Path]:
    """Mesh, texture and height-field files the model loads (so a changed mesh changes the hash)."""
    base = mjcf_path.parent
    meshdir = base / (getattr(mjspec, "meshdir", "") or "")
    texturedir = base / (getattr(mjspec, "texturedir", "") or "")
    found = set()
    for mesh in mjspec.meshes:
        if mesh.file:
            found.add((meshdir / mesh.file).resolve())
    for texture in mjspec.textures:
        if texture.file:
            found.add((texturedir / texture.file).resolve())
    for hfield in mjspec.hfields:
        if hfield.file:
            found.add((base / hfield.file).resolve())
    return sorted(path for path in found if path.is_file())
