"""Sites and cameras a robot YAML adds to an MJCF it does not own (e.g. a Menagerie model on disk).

    extra_sites:
      grasp_site: {body: hand, pos: [0, 0, 0.1034], quat: [1, 0, 0, 0]}
    extra_cameras:
      wrist_cam: {body: hand, pos: [0.05, 0, 0.02], xyaxes: [0, -1, 0, 1, 0, 0], fovy: 70}

The MJCF file stays untouched; the loader applies these to an MjSpec every time the model is built.
"""
from __future__ import annotations

import math

import numpy as np

from collector.errors import ConfigError

SITE_KEYS = {"body", "pos", "quat", "size"}
CAMERA_KEYS = {"body", "pos", "quat", "xyaxes", "fovy"}


def _numbers(value, size: int, key: str) -> list:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be {size} numbers, got {value!r}") from exc
    if len(out) != size or not all(math.isfinite(v) for v in out):
        raise ConfigError(f"{key} must be {size} finite numbers, got {value!r}")
    return out


def _body(mjspec, name, key: str):
    body = mjspec.body(str(name)) if name else None
    if body is None:
        raise ConfigError(f"{key}.body: unknown body {name!r} (not in the MJCF model)")
    return body


def _xyaxes_quat(xyaxes) -> list:
    """Quaternion of a frame whose x and y axes are given (MJCF's xyaxes)."""
    import mujoco

    x = np.asarray(xyaxes[:3], float)
    y = np.asarray(xyaxes[3:], float)
    x /= np.linalg.norm(x)
    y -= x * (x @ y)
    y /= np.linalg.norm(y)
    mat = np.column_stack([x, y, np.cross(x, y)])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat.tolist()


def apply_additions(mjspec, extra_sites: dict, extra_cameras: dict, where: str) -> None:
    for name, site in (extra_sites or {}).items():
        key = f"{where}: extra_sites.{name}"
        if not isinstance(site, dict) or set(site) - SITE_KEYS:
            raise ConfigError(f"{key} must be a mapping with keys from {sorted(SITE_KEYS)}")
        body = _body(mjspec, site.get("body"), key)
        body.add_site(name=str(name), pos=_numbers(site.get("pos", [0, 0, 0]), 3, f"{key}.pos"),
                      quat=_numbers(site.get("quat", [1, 0, 0, 0]), 4, f"{key}.quat"),
                      size=[float(site.get("size", 0.005))] * 3, group=4)
    for name, camera in (extra_cameras or {}).items():
        key = f"{where}: extra_cameras.{name}"
        if not isinstance(camera, dict) or set(camera) - CAMERA_KEYS:
            raise ConfigError(f"{key} must be a mapping with keys from {sorted(CAMERA_KEYS)}")
        body = _body(mjspec, camera.get("body"), key)
        if "xyaxes" in camera:
            quat = _xyaxes_quat(_numbers(camera["xyaxes"], 6, f"{key}.xyaxes"))
        else:
            quat = _numbers(camera.get("quat", [1, 0, 0, 0]), 4, f"{key}.quat")
        body.add_camera(name=str(name), pos=_numbers(camera.get("pos", [0, 0, 0]), 3, f"{key}.pos"), quat=quat,
                        fovy=float(camera.get("fovy", 60.0)))
