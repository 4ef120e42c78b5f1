"""Export to robomimic's single-file HDF5 layout.

    /data                       attrs: total (samples), env_args (JSON), collector (export header, JSON)
    /data/demo_N                attrs: num_samples, collector (provenance JSON: episode id, source file,
                                conditions, lighting, weight, outcome, operator, ...)
        actions (T, A)          the recorded /action (joint position commands)
        rewards (T,), dones (T,)  sparse: 1 at the last step (reward only when the outcome was success)
        obs/qpos, obs/qvel, obs/effort (T, n) float32; obs/<camera>_image (T, H, W, 3) uint8
        next_obs/<key>          obs shifted by one step (last step repeated); HDF5 virtual datasets
                                pointing into obs/, so they cost no space and read like real data
    /mask/<filter key>          demo names (bytes): train / valid (split by episode), and one key per
                                task_<name>, lighting_<name>, weight_<name>, outcome_<name>

robomimic has no environment type for collector; env_args names the robot and uses type 2 (the gym
wrapper), which only matters for robomimic's rollouts, never for training from the file.
Workers write one part file per episode; the caller copies them, in selection order, into the output.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np

from collector.dataset.episode import AlignedEpisode
from collector.dataset.exports.common import atomic_output, dumps, episode_rate, export_header, provenance
from collector.dataset.selection import EpisodeRef
from collector.dataset.split import split_episodes
from collector.errors import DataError

ROBOMIMIC_GYM_TYPE = 2
LOWDIM = {"observations/qpos": "qpos", "observations/qvel": "qvel", "observations/effort": "effort"}
# Frames copied per read/write while decoding a camera: bounds memory for long episodes.
_IMAGE_BLOCK = 64


def write_part(item, workdir: str, cameras: Optional[Sequence[str]]) -> Dict[str, object]:
    """Worker task: one episode as a robomimic demo in its own small file."""
    position, ref = item
    part = Path(workdir) / f"part_{position:06d}.h5"
    if not part.parent.is_dir():
        raise DataError(f"{workdir}: the export's work folder is gone (export cancelled?)")
    with AlignedEpisode(ref.path) as episode, h5py.File(part, "w") as out:
        length = episode.length
        record = provenance(ref, episode)
        demo = out.create_group("demo")
        obs = demo.create_group("obs")
        for key, name in LOWDIM.items():
            if episode.has(key):
                obs.create_dataset(name, data=episode.read(key).astype(np.float32))
        if not episode.has("action"):
            raise DataError(f"{ref.path}: no /action; nothing to imitate")
        demo.create_dataset("actions", data=episode.read("action").astype(np.float32))
        success = record.get("outcome") == "success"
        rewards = np.zeros(length, np.float32)
        dones = np.zeros(length, np.int64)
        dones[-1] = 1
        rewards[-1] = 1.0 if success else 0.0
        demo.create_dataset("rewards", data=rewards)
        demo.create_dataset("dones", data=dones)
        cams = list(episode.cameras if cameras is None else cameras)
        for cam in cams:
            if cam not in episode.cameras:
                raise DataError(f"{ref.path}: no camera {cam!r} (has {episode.cameras})")
            first = episode.images(cam, [0])[0]
            ds = obs.create_dataset(f"{cam}_image", shape=(length, *first.shape), dtype=np.uint8,
                                    chunks=(1, *first.shape))
            for r0 in range(0, length, _IMAGE_BLOCK):
                rows = np.arange(r0, min(length, r0 + _IMAGE_BLOCK))
                ds[r0:r0 + rows.size] = episode.images(cam, rows)
        demo.attrs["num_samples"] = length
        fps = episode_rate(episode) if episode.has("timestamps") else None
        shapes = {name: list(obs[name].shape[1:]) for name in obs}
    return {"part": str(part), "length": length, "provenance": record, "shapes": shapes, "fps": fps}


def export_robomimic(refs: Sequence[EpisodeRef], out_path, engine, *, cameras: Optional[Sequence[str]] = None,
                     val_fraction: float = 0.1, seed: int = 0, overwrite: bool = False, source="",
                     filters: str = "") -> Dict[str, object]:
    out_path = Path(out_path)
    with atomic_output(out_path, overwrite=overwrite, is_dir=False) as tmp_file, _work_dir(out_path) as work:
        outcomes = engine.map(write_part, list(enumerate(refs)), desc="robomimic export", workdir=str(work),
                              cameras=cameras)
        bad = [o for o in outcomes if not o.ok]
        if bad:
            listed = "; ".join(f"{o.item[1].path.name}: {o.error}" for o in bad[:5])
            raise DataError(f"robomimic export failed for {len(bad)} episode(s): {listed}")
        parts = [o.value for o in outcomes]
        first_shapes = parts[0]["shapes"]
        for p in parts[1:]:
            if p["shapes"] != first_shapes:
                raise DataError(f"{p['provenance']['source_path']}: observations {p['shapes']} differ from the "
                                f"first episode's {first_shapes}")
        names = [f"demo_{i}" for i in range(len(parts))]
        with h5py.File(tmp_file, "w") as out:
            data = out.create_group("data")
            total = 0
            for name, part in zip(names, parts):
                with h5py.File(part["part"], "r") as src:
                    src.copy(src["demo"], data, name=name)
                demo = data[name]
                demo.attrs["collector"] = dumps(part["provenance"])
                _link_next_obs(demo, part["length"])
                total += part["length"]
                Path(part["part"]).unlink()
            first = parts[0]["provenance"]
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps({
                "env_name": f"collector/{first.get('robot') or 'robot'}",
                "type": ROBOMIMIC_GYM_TYPE,
                "env_kwargs": {"robot": first.get("robot"), "sim": first.get("sim"), "control_freq": parts[0]["fps"],
                               "obs_keys": sorted(first_shapes),
                               "conditions": "per demo: data/demo_N attrs 'collector'"},
            })
            data.attrs["collector"] = dumps({**export_header(source, filters, "robomimic"),
                                             "episode_ids": [p["provenance"].get("episode_id") for p in parts]})
            _write_masks(out, names, parts, val_fraction, seed)
    return {"demos": len(parts), "samples": total, "path": str(out_path)}


@contextmanager
def _work_dir(out_path: Path):
    """Part files live beside the output (same filesystem, visible to every worker of a cluster)."""
    work = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.parts-", dir=out_path.parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _link_next_obs(demo: h5py.Group, length: int) -> None:
    """next_obs/<key> as virtual datasets over obs/<key>: rows 1..T-1, then row T-1 again."""
    next_obs = demo.create_group("next_obs")
    for key, ds in demo["obs"].items():
        source = h5py.VirtualSource(".", ds.name, shape=ds.shape, dtype=ds.dtype)
        layout = h5py.VirtualLayout(shape=ds.shape, dtype=ds.dtype)
        if length > 1:
            layout[: length - 1] = source[1:length]
        layout[length - 1] = source[length - 1]
        next_obs.create_virtual_dataset(key, layout)


def _slug(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("_") or "none"


def _write_masks(out: h5py.File, names: List[str], parts: List[Dict], val_fraction: float, seed: int) -> None:
    masks: Dict[str, List[str]] = {}
    ids = [str(p["provenance"].get("episode_id")) for p in parts]
    train, valid = split_episodes(names, ids, val_fraction, seed) if len(names) > 1 else (names, [])
    masks["train"], masks["valid"] = train, valid
    for name, part in zip(names, parts):
        record = part["provenance"]
        for key in ("task", "lighting", "weight", "outcome"):
            if record.get(key) not in (None, ""):
                masks.setdefault(f"{key}_{_slug(record[key])}", []).append(name)
    group = out.create_group("mask")
    for key, members in masks.items():
        group.create_dataset(key, data=np.array([m.encode() for m in members], dtype="S"))
