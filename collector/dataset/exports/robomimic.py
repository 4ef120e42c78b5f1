"""Export to robomimic's single-file HDF5 layout.

    /data                       attrs: total (samples), env_args (JSON), collector (export header, JSON),
                                action_scale, action_offset (A,) float64, action_normalization, action_formula
    /data/demo_N                attrs: num_samples, collector (provenance JSON: episode id, source file,
                                conditions, lighting, weight, outcome, operator, review_verdict, review:
                                the reviewers' labels, ...), instructions (JSON list: the recorded
                                instruction, then the reviewers' phrasings)
        actions (T, A)          the recorded /action (joint position commands), scaled to [-1, 1]:
                                actions = (raw - action_offset) / action_scale, so raw = actions *
                                action_scale + action_offset (raw_actions=True: unscaled, scale 1, offset 0)
        states (T, N) float64   simulated episodes: the full simulator state at each step (mj_getState with
                                env_args.env_kwargs.state.state_spec; mj_setState + mj_forward restores it)
        rewards (T,), dones (T,)  sparse: 1 at the last step (reward only when the outcome was success)
        control_source (T,) int64  who commanded each step: a position in /data attr control_sources
                                (JSON list: operator, policy, ...); load it with dataset_keys like rewards
        obs/qpos, obs/qvel, obs/effort (T, n) float32; obs/<camera>_image (T, H, W, 3) uint8
        obs/hand_touch_<side>, obs/grasp_force_<side>, obs/hand_tracking_{tracked,lost},
        obs/retarget_residual_<side> (T, k) float32   robots with hands (attr names: JSON list of the entries)
        next_obs/<key>          obs shifted by one step (last step repeated); HDF5 virtual datasets
                                pointing into obs/, so they cost no space and read like real data
    /mask/<filter key>          demo names (bytes): train / valid (split by episode), and one key per
                                task_<name>, lighting_<name>, weight_<name>, outcome_<name>, and
                                control_<source> (demos in which that source commanded a step); the
                                reviewers' verdicts: accepted, rejected (always written, possibly empty)
                                and disputed (when some demo is)

robomimic has no environment type for collector; env_args names the robot and uses type 2 (the gym
wrapper), which only matters for robomimic's rollouts, never for training from the file.

Actions are scaled per dimension because robomimic requires them in [-1, 1]. The range is the
robot's joint limits (the episodes' joint_limits metadata): the same for every export of the robot,
so a policy's output maps back to joint positions without this dataset's statistics, and a recorded
command (the safety gate keeps it inside the limits) always lands in [-1, 1]. Where an action lies
outside the limits, or an episode has no joint_limits, the range is widened to the data's own
min/max for that dimension (action_normalization says which).
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

from collector.dataset.control import source_vocabulary
from collector.dataset.episode import AlignedEpisode
from collector.dataset.exports.common import (atomic_output, dumps, episode_rate, export_header, hand_observations,
                                              instructions_of, provenance)
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
        for key, name, names in hand_observations(episode):
            ds = obs.create_dataset(name, data=episode.read(key).astype(np.float32).reshape(length, -1))
            if names:
                ds.attrs["names"] = json.dumps(names)
        if not episode.has("action"):
            raise DataError(f"{ref.path}: no /action; nothing to imitate")
        actions = episode.read("action").astype(np.float32)
        demo.create_dataset("actions", data=actions)
        state_info = _write_states(demo, episode)
        success = record.get("outcome") == "success"
        rewards = np.zeros(length, np.float32)
        dones = np.zeros(length, np.int64)
        dones[-1] = 1
        rewards[-1] = 1.0 if success else 0.0
        demo.create_dataset("rewards", data=rewards)
        demo.create_dataset("dones", data=dones)
        control = episode.control()
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
    limits = episode.reader().metadata.get("joint_limits")
    return {"part": str(part), "length": length, "provenance": record, "shapes": shapes, "fps": fps,
            "action_min": actions.min(axis=0).tolist() if length else None,
            "action_max": actions.max(axis=0).tolist() if length else None,
            "joint_limits": limits if isinstance(limits, dict) else None, "state": state_info, "control": control}


def _write_states(demo: h5py.Group, episode: AlignedEpisode) -> Optional[Dict]:
    """demo/states: the recorded simulator state at each row (taken with the camera frame the row shows)."""
    from collector.sim import world_state

    reader = episode.reader()
    spec = reader.streams.get(world_state.SIM_STATE)
    if spec is None or reader.count(world_state.SIM_STATE) == 0:
        return None
    stamps = reader.timestamps
    cameras = [s for s in reader.streams.values() if s.is_camera and s.name in reader.synced_streams]
    if cameras:  # the state taken with the fastest camera's frame (the same tick when recorded live)
        stamps = world_state.frame_stamps(reader, max(cameras, key=lambda s: s.rate_hz).name)
    rows = world_state.states_at(reader, stamps)
    states = reader.raw(world_state.SIM_STATE, "state")[: reader.count(world_state.SIM_STATE)]
    demo.create_dataset("states", data=np.asarray(states[...], dtype=np.float64)[rows])
    demo.attrs["state"] = dumps(dict(spec.attrs))  # sizes differ per task: each demo says its own
    return dict(spec.attrs)


def action_normalization(parts: Sequence[Dict], raw: bool = False):
    """(scale, offset, method): actions = (raw - offset) / scale lands in [-1, 1] per dimension."""
    width = len(parts[0]["action_min"])
    if raw:
        return np.ones(width), np.zeros(width), "none (raw actions)"
    data_lo = np.min([p["action_min"] for p in parts], axis=0).astype(np.float64)
    data_hi = np.max([p["action_max"] for p in parts], axis=0).astype(np.float64)
    limits = [p["joint_limits"] for p in parts]
    method = "joint_limits"
    try:
        lowers = {tuple(np.asarray(l["lower"], dtype=np.float64)) for l in limits}
        uppers = {tuple(np.asarray(l["upper"], dtype=np.float64)) for l in limits}
        # In float32 like the actions, so a command exactly at a limit is not taken for one past it.
        lo = np.array(lowers.pop(), dtype=np.float32).astype(np.float64)
        hi = np.array(uppers.pop(), dtype=np.float32).astype(np.float64)
        if lowers or uppers or lo.shape != (width,) or hi.shape != (width,):
            raise ValueError("episodes disagree on the joint limits")
    except (TypeError, KeyError, ValueError, AttributeError, IndexError):
        lo, hi, method = data_lo, data_hi, "dataset_min_max"
    if np.any(data_lo < lo) or np.any(data_hi > hi):
        method += " widened to the data's min/max"
        lo, hi = np.minimum(lo, data_lo), np.maximum(hi, data_hi)
    scale = (hi - lo) / 2.0
    scale[scale <= 0] = 1.0  # a constant dimension: scaled to 0
    return scale, (hi + lo) / 2.0, method


def export_robomimic(refs: Sequence[EpisodeRef], out_path, engine, *, cameras: Optional[Sequence[str]] = None,
                     val_fraction: float = 0.1, seed: int = 0, overwrite: bool = False, source="",
                     filters: str = "", raw_actions: bool = False) -> Dict[str, object]:
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
        scale, offset, method = action_normalization(parts, raw_actions)
        control_sources = source_vocabulary(name for part in parts for name in part["control"].names)
        with h5py.File(tmp_file, "w") as out:
            data = out.create_group("data")
            total = 0
            for name, part in zip(names, parts):
                with h5py.File(part["part"], "r") as src:
                    src.copy(src["demo"], data, name=name)
                demo = data[name]
                if not raw_actions:
                    scaled = (demo["actions"][...].astype(np.float64) - offset) / scale
                    demo["actions"][...] = np.clip(scaled, -1.0, 1.0).astype(np.float32)  # clip: float32 rounding
                demo.attrs["collector"] = dumps(part["provenance"])
                demo.attrs["instructions"] = json.dumps(instructions_of(part["provenance"]))
                demo.create_dataset("control_source", data=part["control"].recoded(control_sources))
                _link_next_obs(demo, part["length"])
                total += part["length"]
                Path(part["part"]).unlink()
            first = parts[0]["provenance"]
            data.attrs["total"] = total
            data.attrs["action_scale"] = scale
            data.attrs["action_offset"] = offset
            data.attrs["action_normalization"] = method
            data.attrs["action_formula"] = "raw = actions * action_scale + action_offset"
            data.attrs["control_sources"] = json.dumps(control_sources)
            state = next((p["state"] for p in parts if p["state"]), None)
            data.attrs["env_args"] = json.dumps({
                "env_name": f"collector/{first.get('robot') or 'robot'}",
                "type": ROBOMIMIC_GYM_TYPE,
                "env_kwargs": {"robot": first.get("robot"), "sim": first.get("sim"), "control_freq": parts[0]["fps"],
                               "obs_keys": sorted(first_shapes),
                               "action_scale": scale.tolist(), "action_offset": offset.tolist(),
                               "state": state, "states": "per demo: data/demo_N/states, attrs 'state'",
                               "conditions": "per demo: data/demo_N attrs 'collector'"},
            })
            data.attrs["collector"] = dumps({**export_header(source, filters, "robomimic"),
                                             "episode_ids": [p["provenance"].get("episode_id") for p in parts]})
            _write_masks(out, names, parts, val_fraction, seed)
    return {"demos": len(parts), "samples": total, "path": str(out_path), "action_normalization": method,
            "states": sum(1 for p in parts if p["state"])}


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
    masks["accepted"], masks["rejected"] = [], []  # filter keys a config may name even when nobody reviewed yet
    for name, part in zip(names, parts):
        record = part["provenance"]
        for key in ("task", "lighting", "weight", "outcome"):
            if record.get(key) not in (None, ""):
                masks.setdefault(f"{key}_{_slug(record[key])}", []).append(name)
        for source in part["control"].counts():
            masks.setdefault(f"control_{_slug(source)}", []).append(name)
        verdict = record.get("review_verdict")
        if verdict in ("accepted", "rejected", "disputed"):
            masks.setdefault(verdict, []).append(name)
    group = out.create_group("mask")
    for key, members in masks.items():
        group.create_dataset(key, data=np.array([m.encode() for m in members], dtype="S"))
