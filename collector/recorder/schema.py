"""The episode file format: names, version, metadata encoding, and the checks every reader runs first.

docs/recorder.md describes the layout in full; this module is its single source of truth in code.
Everything is plain HDF5 that h5py reads without collector installed: strings are UTF-8 attributes,
structured metadata (conditions, calibration, statistics) is a JSON string attribute.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
from pathlib import Path
from typing import Any, Dict, Mapping

import h5py
import numpy as np

from collector.errors import ConfigError, DataError
from collector.recorder.vocabulary import COMMAND, JOINTS

SCHEMA_NAME = "collector.episode"
# Bump when a reader of the previous version would misread a new file; readers refuse newer versions.
SCHEMA_VERSION = 1

# Finished episodes end in ".hdf5": ALOHA/ACT-family loaders (act-plus-plus find_all_hdf5) collect
# exactly "*.hdf5". A partial file must never match that pattern, or such a loader would train on a
# half-written take, so it keeps ".partial.h5". Datasets written before the change hold ".h5" files:
# every reader accepts both (FINAL_SUFFIXES); only new files get FINAL_SUFFIX.
PARTIAL_SUFFIX = ".partial.h5"
FINAL_SUFFIX = ".hdf5"
LEGACY_FINAL_SUFFIX = ".h5"
FINAL_SUFFIXES = (FINAL_SUFFIX, LEGACY_FINAL_SUFFIX)

OUTCOMES = ("success", "failure", "unknown")
STATUS_RECORDING = "recording"  # being written, or its writer died: run `collector recover`
STATUS_COMPLETE = "complete"  # finalized by the writer
STATUS_RECOVERED = "recovered"  # finalized by recover_episode after the writer died

RAW_GROUP = "raw"
COUNTERS_PATH = "recorder/counters"
# Columns of /recorder/counters, one row per stream, rewritten in place at every flush so that a
# killed recording still tells how many samples were pushed, dropped and rejected.
COUNTER_COLUMNS = ("pushed", "written", "dropped", "rejected")

# The ALOHA/ACT-compatible aligned view.
TIMESTAMPS = "timestamps"
OBSERVATIONS = "observations"
IMAGES = "observations/images"
ACTION = "action"
COMPRESS_LEN = "compress_len"
SYNC_GROUP = "sync"

# Producer convention (see docs/recorder.md): which stream/field lands where in the aligned view.
STANDARD_VIEW = {
    (JOINTS, "position"): "observations/qpos",
    (JOINTS, "velocity"): "observations/qvel",
    (JOINTS, "effort"): "observations/effort",
    (COMMAND, "position"): "action",
}

# Root attributes every finished episode carries (DESIGN.md, refined).
STANDARD_METADATA = (
    "episode_id", "session_id", "robot", "task", "instruction", "operator", "station",
    "started_at", "duration_s", "outcome", "conditions", "sim", "software_version",
    "robot_model_hash", "camera_calibration",
)
REQUIRED_METADATA = ("schema", "schema_version", "status", "episode_id", "started_at", "duration_s",
                     "outcome", "conditions", "sim")
# Attributes that hold JSON text; the reader decodes them back into Python objects.
JSON_ATTRS_KEY = "json_attrs"

_EPISODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_episode_id(episode_id: str) -> str:
    if not isinstance(episode_id, str) or not _EPISODE_ID.match(episode_id) or episode_id.endswith(".partial"):
        raise ConfigError(f"episode id {episode_id!r} must be 1-128 letters, digits, '_', '.' or '-' "
                          "(it becomes the file name)")
    return episode_id


def partial_path(directory: Path, episode_id: str) -> Path:
    return Path(directory) / f"{episode_id}{PARTIAL_SUFFIX}"


def final_path(directory: Path, episode_id: str, legacy: bool = False) -> Path:
    """Where a finished episode goes (legacy=True: where one written before ".hdf5" would be)."""
    return Path(directory) / f"{episode_id}{LEGACY_FINAL_SUFFIX if legacy else FINAL_SUFFIX}"


def final_path_for_partial(path: Path) -> Path:
    path = Path(path)
    if not path.name.endswith(PARTIAL_SUFFIX):
        raise DataError(f"{path} is not a partial episode (name does not end in {PARTIAL_SUFFIX})")
    return path.with_name(path.name[: -len(PARTIAL_SUFFIX)] + FINAL_SUFFIX)


def is_final_name(name: str) -> bool:
    """A finished episode's file name (new ".hdf5" or legacy ".h5", never a partial one)."""
    return name.endswith(FINAL_SUFFIXES) and not name.endswith(PARTIAL_SUFFIX)


def is_episode_name(name: str) -> bool:
    """A finished or partial episode's file name."""
    return name.endswith(FINAL_SUFFIXES)


def episode_id_from_name(name: str) -> str:
    """The episode id a file name carries, for every suffix an episode file can have."""
    for suffix in (PARTIAL_SUFFIX,) + FINAL_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def episode_files_under(directory: Path, final_only: bool = False, recursive: bool = True) -> list:
    """Episode files in a folder (sorted; partial ones too unless final_only), of every suffix."""
    directory = Path(directory)
    search = directory.rglob if recursive else directory.glob
    wanted = is_final_name if final_only else is_episode_name
    found = {p for suffix in FINAL_SUFFIXES for p in search(f"*{suffix}")}
    return sorted(p for p in found if wanted(p.name) and p.is_file())


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def json_default(value):
    """JSON fallback for numpy values and datetimes inside metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(value) -> str:
    return json.dumps(value, sort_keys=True, default=json_default)


def check_metadata(metadata: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate user metadata before anything is written, so a typo fails at start, not at stop."""
    clean: Dict[str, Any] = {}
    for key, value in dict(metadata or {}).items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ConfigError(f"metadata key {key!r} must be a non-empty string without '/'")
        if key in ("schema", "schema_version", "status", "recovered", JSON_ATTRS_KEY):
            raise ConfigError(f"metadata key {key!r} is reserved for the recorder")
        if value is None:
            continue
        if key == "outcome" and value not in OUTCOMES:
            raise ConfigError(f"metadata 'outcome' must be one of {OUTCOMES}, got {value!r}")
        if key == "sim" and not isinstance(value, (bool, np.bool_)):
            raise ConfigError(f"metadata 'sim' must be true or false, got {value!r}")
        if key == "conditions" and not isinstance(value, Mapping):
            raise ConfigError(f"metadata 'conditions' must be a mapping (lighting, weights, ...), got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"metadata {key!r} is {value!r}; numbers must be finite")
        if isinstance(value, (Mapping, list, tuple)):
            try:
                to_json(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"metadata {key!r} cannot be stored as JSON: {exc}") from exc
        elif not isinstance(value, (str, bool, int, float, np.generic, np.ndarray, _dt.datetime, _dt.date)):
            raise ConfigError(f"metadata {key!r} has unsupported type {type(value).__name__}")
        clean[key] = value
    return clean


def write_metadata(node: h5py.HLObject, metadata: Mapping[str, Any]) -> None:
    """Store metadata as attributes; dicts and lists become JSON text listed in `json_attrs`."""
    json_keys = set(json.loads(node.attrs.get(JSON_ATTRS_KEY, "[]")))
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, (Mapping, list, tuple)):
            node.attrs[key] = to_json(value)
            json_keys.add(key)
            continue
        json_keys.discard(key)
        if isinstance(value, (_dt.datetime, _dt.date)):
            value = value.isoformat()
        if isinstance(value, bool):
            value = np.bool_(value)
        node.attrs[key] = value
    node.attrs[JSON_ATTRS_KEY] = json.dumps(sorted(json_keys))


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value
    return value


def read_metadata(node: h5py.HLObject) -> Dict[str, Any]:
    """All attributes of a node as Python values, JSON ones decoded. A damaged file (attributes HDF5
    cannot read, JSON that does not parse) raises DataError naming the file."""
    try:
        return _read_metadata(node)
    except DataError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{node.file.filename}: damaged file, HDF5 cannot read the attributes of {node.name} "
                        f"({type(exc).__name__}: {exc})") from exc


def _read_metadata(node: h5py.HLObject) -> Dict[str, Any]:
    try:
        json_keys = set(json.loads(_plain(node.attrs.get(JSON_ATTRS_KEY, "[]"))))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{node.file.filename}: attribute {JSON_ATTRS_KEY!r} of {node.name} is not a JSON list: "
                        f"{exc}") from exc
    out: Dict[str, Any] = {}
    for key, value in node.attrs.items():
        if key == JSON_ATTRS_KEY:
            continue
        value = _plain(value)
        if key in json_keys and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise DataError(f"{node.file.filename}: attribute {key!r} of {node.name} is not valid JSON: "
                                f"{exc}") from exc
        out[key] = value
    return out


def open_episode(path, mode: str = "r") -> h5py.File:
    """Open an episode file, refusing with a clear error anything that is not one we can read."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not an episode file")
    try:
        is_hdf5 = h5py.is_hdf5(str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not is_hdf5:
        raise DataError(f"{path} is not an HDF5 file, so not a collector episode")
    try:
        # Read-only opens skip HDF5's file lock so a file still being recorded can be inspected
        # (it reads as of the writer's last flush); writers keep the lock.
        h5 = h5py.File(str(path), mode, locking=False) if mode == "r" else h5py.File(str(path), mode)
    except OSError as exc:
        raise DataError(f"{path}: HDF5 cannot open it ({exc}); if it is a partial episode whose writer died, "
                        "run `collector recover` on it") from exc
    try:
        check_schema(h5, path)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        h5.close()
        raise DataError(f"{path}: damaged file, HDF5 cannot read its root attributes ({type(exc).__name__}: "
                        f"{exc})") from exc
    except BaseException:
        h5.close()
        raise
    return h5


def check_schema(h5: h5py.File, path) -> int:
    name = _plain(h5.attrs.get("schema"))
    if name != SCHEMA_NAME:
        raise DataError(f"{path} is not a collector episode (root attribute 'schema' is {name!r}, "
                        f"expected {SCHEMA_NAME!r})")
    try:
        version = int(_plain(h5.attrs.get("schema_version")))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: root attribute 'schema_version' is missing or not a number") from exc
    if version > SCHEMA_VERSION:
        raise DataError(f"{path} uses episode schema version {version}, newer than this collector reads "
                        f"({SCHEMA_VERSION}); upgrade collector")
    if version < 1:
        raise DataError(f"{path}: schema_version {version} is not valid")
    return version
