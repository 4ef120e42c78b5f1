"""Scene views: camera frames of many new object layouts, each labelled by the simulator with where
every object is, to teach a policy's object head to see rather than to remember.

Why: a from-scratch CNN trained on 100 demonstrations sees 100 layouts. Its object head then puts the
named object 6 mm from the truth on those layouts and 68 mm off on new ones, and the policy succeeds
almost only where that estimate is right (docs/learning.md, "Fourth run"). A demonstration costs a
take; a labelled view of a new layout costs a reset and a render (~35 ms here), so thousands of them
fit in a few minutes. The views train only the object head and the image encoder under it (the
action head learns from demonstrations alone): `collector train --scene-views FILE`.

What a view is, so it looks like a training frame: the task's own reset at a new seed (objects placed
and settled, one lighting and weight preset of the grid in turn), the robot at home (what the first
frame of a take shows) or in a joint pose drawn from recorded takes (so the arm hides objects as it
does mid-take; kinematics only, nothing moves); every robot camera rendered at its recorded size, put
through the recorder's JPEG at the camera's quality and downscaled as `collector.policy.images` does.
The labels are the bodies' positions in the world frame, the quantity the pose streams record.

File (HDF5, written whole to a temporary name, then renamed): `images/<camera>` (N, H, W, 3) uint8,
`positions` (N, objects, 3) float32 with attr `objects`, per view `target`, `seed`, `lighting`,
`weight`; attrs `task`, `image_size`, `collector_version`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from collector.errors import ConfigError, DataError
from collector.policy.conditioning import NO_TARGET
from collector.policy.object_targets import target_width

HOME = "home"


def render_scene_views(out, *, task: str, seeds: Sequence[int], lighting: Sequence[str], weights: Sequence[str],
                       image_size: Tuple[int, int], views_per_layout: int = 3, poses: Optional[np.ndarray] = None,
                       robot="humanoid", targets: Optional[Sequence[str]] = None,
                       progress: Optional[Callable[[int], None]] = None) -> Path:
    """One layout per seed (the lighting x weight grid in turn), `views_per_layout` views of each: the
    first with the robot at home, the others in poses drawn from `poses` ((n, joints) recorded joint
    positions; without them every view is at home, and one view a layout is enough). With `targets`, a
    seed whose layout names another object is skipped (a policy can only be told of objects it learned)."""
    import collector  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
    from collector.sim import SimEnv

    seeds = [int(s) for s in seeds]
    if not seeds or not lighting or not weights or views_per_layout < 1:
        raise ConfigError("scene views need at least one seed, lighting preset, weight preset and view a layout")
    height, width = image_size
    with SimEnv(robot=robot, task=task) as env:
        cameras = list(env.robot.cameras)
        if not cameras:
            raise ConfigError(f"robot {env.robot.name!r} has no cameras to render scene views with")
        joints = len(env.joint_positions())
        if poses is not None and (poses.ndim != 2 or poses.shape[1] != joints):
            raise ConfigError(f"arm poses have shape {poses.shape}; robot {env.robot.name!r} has {joints} joints")
        objects = list(env.task.object_poses())
        rng = np.random.default_rng([seeds[0], len(seeds)])
        per_layout = views_per_layout if poses is not None and len(poses) else 1
        count = len(seeds) * per_layout
        images = {c: np.zeros((count, height, width, 3), np.uint8) for c in cameras}
        positions = np.zeros((count, len(objects), 3), np.float32)
        labels: Dict[str, List] = {"target": [], "seed": [], "lighting": [], "weight": [], "pose": []}
        row = 0
        for i, seed in enumerate(seeds):
            light, weight = lighting[i % len(lighting)], weights[(i // len(lighting)) % len(weights)]
            conditions = env.reset(seed=seed, lighting=light, weight=weight)
            target = (conditions.get("object_layout") or {}).get("target") or NO_TARGET
            home = env.joint_positions()
            for view in range(per_layout if targets is None or target in targets else 0):
                pose = home if view == 0 else poses[int(rng.integers(len(poses)))]
                env.pose_robot(pose)
                for camera in cameras:
                    images[camera][row] = _as_recorded(env.render(camera), env.robot.cameras[camera], image_size)
                positions[row] = [env.data.body(name).xpos for name in objects]
                for key, value in (("target", target), ("seed", seed), ("lighting", light), ("weight", weight),
                                   ("pose", HOME if view == 0 else "recorded")):
                    labels[key].append(value)
                row += 1
            if progress is not None:
                progress(i + 1)
    if row == 0:
        raise ConfigError(f"no layout of seeds {seeds[0]}-{seeds[-1]} names {', '.join(targets or [])}")
    images = {c: frames[:row] for c, frames in images.items()}
    return _write(Path(out), task, image_size, images, positions[:row], objects, labels)


def recorded_poses(sources: Sequence, every: int = 5) -> np.ndarray:
    """(n, joints) joint positions from the recorded takes in `sources` (dataset folders or episode
    files), every `every`-th frame: poses an arm really takes during the task."""
    from collector.dataset.episode_dataset import EpisodeDataset

    episodes = EpisodeDataset(list(sources), cameras=[], normalize=False)
    poses = [e.read("observations/qpos")[::max(1, int(every))] for e in episodes.episodes]
    return np.concatenate(poses).astype(np.float64)


def _as_recorded(frame: np.ndarray, camera, image_size) -> np.ndarray:
    """The frame as a policy reads it back from an episode: the recorder's JPEG (at the quality its
    camera stream records with), then downscaled."""
    from collector.policy.images import downscale
    from collector.recorder.frames import decode_jpeg, encode_jpeg
    from collector.recorder.streams import camera_stream

    quality = camera_stream(camera.name, camera.width, camera.height, camera.fps).jpeg_quality
    return downscale(decode_jpeg(encode_jpeg(frame, quality)), image_size)


def _write(out: Path, task, image_size, images, positions, objects, labels) -> Path:
    import h5py

    import collector

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with h5py.File(partial, "w") as h5:
            h5.attrs.update({"task": task, "image_size": list(image_size), "collector_version": collector.__version__,
                             "kind": "scene_views"})
            for camera, frames in images.items():
                h5.create_dataset(f"images/{camera}", data=frames, chunks=(min(256, len(frames)), *frames.shape[1:]))
            h5.create_dataset("positions", data=positions).attrs["objects"] = json.dumps(objects)
            h5.create_dataset("seed", data=np.asarray(labels["seed"], np.int64))
            for key in ("target", "lighting", "weight", "pose"):
                h5.create_dataset(key, data=np.asarray(labels[key], dtype=h5py.string_dtype()))
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out


@dataclass
class SceneViews:
    """Scene view files loaded for training (every frame in memory: 9 KB per camera at 64x48)."""

    task: str
    image_size: Tuple[int, int]
    images: Dict[str, np.ndarray]  # camera -> (N, H, W, 3) uint8
    positions: np.ndarray  # (N, objects, 3)
    objects: List[str]
    targets: List[str]
    seeds: np.ndarray
    files: List[dict]  # {"path", "sha256", "views"} per file, for the checkpoint's provenance

    @classmethod
    def load(cls, paths: Sequence) -> "SceneViews":
        from collector.file_digest import file_sha256

        parts = [_read(Path(p)) for p in paths]
        if not parts:
            raise ConfigError("no scene view files given")
        first = parts[0]
        for path, part in zip(paths[1:], parts[1:]):
            if (part.task, part.image_size, sorted(part.images), part.objects) != \
                    (first.task, first.image_size, sorted(first.images), first.objects):
                raise ConfigError(f"{path}: scene views of another task, image size, camera set or object set "
                                  f"than {paths[0]}'s")
        return cls(task=first.task, image_size=first.image_size,
                   images={c: np.concatenate([p.images[c] for p in parts]) for c in first.images},
                   positions=np.concatenate([p.positions for p in parts]), objects=first.objects,
                   targets=[t for p in parts for t in p.targets], seeds=np.concatenate([p.seeds for p in parts]),
                   files=[{"path": str(Path(p).resolve()), "sha256": file_sha256(p), "views": len(part.targets)}
                          for p, part in zip(paths, parts)])

    def __len__(self) -> int:
        return len(self.targets)

    def check_fits(self, cameras: Sequence[str], image_size: Tuple[int, int]) -> None:
        missing = [c for c in cameras if c not in self.images]
        if missing:
            raise ConfigError(f"scene views have no camera {', '.join(missing)} (they have {', '.join(self.images)})")
        if tuple(image_size) != tuple(self.image_size):
            raise ConfigError(f"scene views are {self.image_size[1]}x{self.image_size[0]}, the policy sees "
                              f"{image_size[1]}x{image_size[0]}: render them at --image-size "
                              f"{image_size[1]}x{image_size[0]}")

    def object_targets(self, names: Sequence[str]) -> Dict[str, np.ndarray]:
        """{"value", "mask"} in collector.policy.object_targets' layout for the training data's object
        `names`: the named target first, then each object; objects these views lack are masked."""
        value = np.zeros((len(self), target_width(names)), np.float32)
        mask = np.zeros_like(value, dtype=bool)
        column = {name: k for k, name in enumerate(self.objects)}
        for k, name in enumerate(names, start=1):
            if name in column:
                value[:, 3 * k:3 * k + 3], mask[:, 3 * k:3 * k + 3] = self.positions[:, column[name]], True
        for i, target in enumerate(self.targets):
            if target in column:
                value[i, 0:3], mask[i, 0:3] = self.positions[i, column[target]], True
        return {"value": value, "mask": mask}


class SceneViewSamples:
    """Training items of the object head from scene views: images, conditioning ids and the normalized
    object targets (the keys of `PolicyBatch` the object loss reads; no state, no actions)."""

    def __init__(self, views: SceneViews, cameras: Sequence[str], conditioning: Sequence[Sequence[int]],
                 names: Sequence[str], statistics: Dict[str, np.ndarray]):
        self.views = views
        self.cameras = list(cameras)
        self.conditioning = np.asarray(conditioning, dtype=np.int64)
        targets = views.object_targets(names)
        self.objects = ((targets["value"] - statistics["mean"]) / statistics["std"]).astype(np.float32)
        self.mask = targets["mask"]

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index) -> Dict[str, np.ndarray]:
        from collector.policy.images import to_chw_float

        i = int(index)
        return {"images": np.stack([to_chw_float(self.views.images[c][i]) for c in self.cameras]),
                "conditioning": self.conditioning[i], "objects": self.objects[i], "objects_mask": self.mask[i]}


@dataclass
class _Part:
    task: str
    image_size: Tuple[int, int]
    images: Dict[str, np.ndarray]
    positions: np.ndarray
    objects: List[str]
    targets: List[str]
    seeds: np.ndarray


def _read(path: Path) -> _Part:
    import h5py

    if not path.is_file():
        raise ConfigError(f"{path}: no such scene view file")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("kind") != "scene_views":
                raise DataError(f"{path}: not a scene view file (collector.policy.scene_views)")
            images = {c: h5["images"][c][()] for c in h5["images"]}
            part = _Part(task=str(h5.attrs["task"]), image_size=tuple(int(v) for v in h5.attrs["image_size"]),
                         images=images, positions=h5["positions"][()].astype(np.float32),
                         objects=list(json.loads(h5["positions"].attrs["objects"])),
                         targets=[t.decode() if isinstance(t, bytes) else str(t) for t in h5["target"][()]],
                         seeds=h5["seed"][()].astype(np.int64))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: unreadable scene view file ({exc})") from None
    n = len(part.targets)
    if any(len(v) != n for v in images.values()) or len(part.positions) != n or len(part.seeds) != n:
        raise DataError(f"{path}: scene view datasets disagree on the number of views")
    return part
