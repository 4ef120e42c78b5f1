"""EpisodeDataset: (observation at t with optional history, action chunk t..t+k-1) samples for
imitation learning, read straight from episode files. No torch dependency; it is a map-style dataset
(`len`, `[i]`) returning numpy arrays, so a torch DataLoader with any number of workers batches it
(default_collate turns the arrays into tensors and the task strings into lists).

Sample i (episode e, frame t), with LeRobot-style keys:
  observation.state             (D,) or (history, D) when history > 1: qpos at t-history+1..t
  observation.state_is_pad      (history,) bool: frames before the episode start (edge-padded)
  observation.velocity, ...     extra low-dim observations (extra_keys, e.g. "observations/qvel"),
                                same shape rules
  observation.images.<camera>   (3, H, W) float32 in [0, 1] ("chw_float") or (H, W, 3) uint8 ("hwc_uint8"),
                                with a leading history axis when image_history is on
  action                        (chunk, A): actions t..t+chunk-1, edge-padded past the end (ACT)
  action_is_pad                 (chunk,) bool
  episode_index, frame_index, timestamp, task
  instruction                   the language instruction: the episode's recorded one, else the reviewers' first
  instructions                  every phrasing (recorded first, then the reviewers'), one per line: a single
                                string so a DataLoader batches it (split("\n"); episode_instructions(e) lists them)
  subtask                       the reviewers' subtask at this row's timestamp ("" outside every segment)
  control_source                who commanded row t: its code in `control_sources` (operator 0, policy 1, ...)
  control_source_name           the same as the source's id ("operator", "policy", ...)
Corrections (HG-DAgger style): control="operator" keeps only the rows the operator commanded, and a
kept row's action chunk is cut (action_is_pad) where another source took over, so a policy learns only
the operator's actions; operator_weight=w weights operator rows w (sample_weights(), for a weighted
sampler), so corrections can be oversampled while everything is kept.
State and action are normalized with the statistics of the *training* episodes of the selection
((x - mean) / std) unless normalize=False; the statistics are computed once and cached.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import h5py
import numpy as np

from collector.dataset.control import OPERATOR, check_source_names, source_vocabulary, source_weights
from collector.dataset.episode import ACTION_KEY, STATE_KEY, AlignedEpisode
from collector.dataset.normalization import cached_feature_stats, feature_name
from collector.dataset.selection import EpisodeRef, Filters, select_episodes
from collector.dataset.split import SPLITS, split_episodes
from collector.review.annotations import Review, read_review
from collector.dataset.statistics import FeatureStats
from collector.errors import ConfigError, DataError
from collector.recorder import schema
from collector.recorder.vocabulary import camera_of_stream, camera_stream_name

IMAGE_FORMATS = ("chw_float", "hwc_uint8")
# Floor on std so a joint that never moved (std 0) does not blow up to inf after normalization.
STD_EPS = 1e-6


class EpisodeDataset:
    """Training samples read straight from episode files: a map-style dataset of numpy arrays.

        ds = EpisodeDataset("data/demo", cameras=["head"], history=2, chunk=20, task="pour", verdict="accepted")
        ds                        # EpisodeDataset('data/demo': <n> episodes, <n> samples, cameras [head], ...)
        ds.cameras, ds.features   # camera names; every sample key with its shape, dtype and names
        sample = ds[0]            # observation.state, observation.images.head, action (20, A), instruction, ...
        DataLoader(ds, batch_size=64, shuffle=True, num_workers=2)   # torch batches it as is

    source: a dataset folder (its catalogue), a folder of episode files, one file or a list of files.
    Keyword filters (task, lighting, weight, outcome, qa, operator, station, session_id, robot, verdict)
    accept a value or a list; verdict="accepted" keeps the takes the reviewers accepted.
    cameras: which cameras (default all); history / chunk: observation frames and action steps per sample;
    image_history: images for every history frame; extra_keys: more low-dim observations
    ("observations/qvel"); split "train"/"val"/"all" with val_fraction and seed (by episode);
    normalize: state and action standardised with the training episodes' statistics;
    image_format "chw_float" (3, H, W) in [0, 1] or "hwc_uint8"; control / operator_weight: see the
    module docstring (corrections). Each sample carries the task, the language instruction(s) and the
    subtask the reviewers marked at its timestamp (collector/review).
    """

    def __init__(self, source: Union[str, Path, Sequence], *, cameras: Optional[Sequence[str]] = None,
                 history: int = 1, chunk: int = 1, image_history: bool = False,
                 extra_keys: Sequence[str] = (), state_key: str = STATE_KEY, action_key: str = ACTION_KEY,
                 split: str = "all", val_fraction: float = 0.1, seed: int = 0,
                 normalize: bool = True, image_format: str = "chw_float",
                 filters: Optional[Filters] = None, stats_engine=None, cache_dir: Optional[Path] = None,
                 control: Union[None, str, Sequence[str]] = None, operator_weight: float = 1.0,
                 **filter_kwargs):
        if history < 1 or chunk < 1:
            raise ConfigError(f"history and chunk must be at least 1, got {history} and {chunk}")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        operator_weight = _positive_weight(operator_weight)
        if filters is None:
            filters = Filters.from_kwargs(**filter_kwargs)
        elif filter_kwargs:
            raise ConfigError("give filters either as a Filters object or as keywords, not both")
        self.history, self.chunk, self.image_history = int(history), int(chunk), bool(image_history)
        self.state_key, self.action_key = state_key, action_key
        self.extra_keys = list(extra_keys)
        self.image_format = image_format
        self.normalize = normalize

        selected = select_episodes(source, filters)
        train, val = split_episodes(selected, [r.episode_id for r in selected], val_fraction if split != "all" else 0.0,
                                    seed)
        self.train_refs: List[EpisodeRef] = train
        self.refs: List[EpisodeRef] = {"train": train, "val": val, "all": selected}[split]
        if not self.refs:
            raise DataError(f"the {split!r} split of {len(selected)} episode(s) is empty; lower val_fraction "
                            "or add episodes")
        self.episodes = [AlignedEpisode(r.path) for r in self.refs]
        self._check_episodes(cameras)

        lengths = np.array([e.length for e in self.episodes], dtype=np.int64)
        # sample index of each episode's first frame, then the total: episode e is starts[e]..starts[e+1]-1
        self.starts = np.concatenate(([0], np.cumsum(lengths)))
        self.lengths = lengths
        self._read_control([control] if isinstance(control, str) else control, operator_weight)
        self._read_language()
        for episode in self.episodes:  # the constructor's handles stay in this process; workers reopen
            episode.close()

        self.stats: Dict[str, FeatureStats] = {}
        if normalize:
            keys = [self.state_key, self.action_key, *self.extra_keys]
            self.stats = cached_feature_stats([r.path for r in self.train_refs], keys, engine=stats_engine,
                                              cache_dir=cache_dir)
        self._norm = {name: (s.mean.astype(np.float32), np.maximum(s.std, STD_EPS).astype(np.float32))
                      for name, s in self.stats.items()}

    def _check_episodes(self, cameras: Optional[Sequence[str]]) -> None:
        """Every episode must carry the same keys with the same widths, or batches would not stack."""
        first = self.episodes[0]
        requested = list(first.cameras if cameras is None else cameras)
        self.cameras = [view_camera_name(c, first.cameras) for c in requested]
        wanted = [self.state_key, self.action_key, *self.extra_keys]
        widths = None
        for episode in self.episodes:
            _require_keys(episode, wanted, self.cameras)
            shapes = [episode.shape(k)[1:] for k in wanted]
            if widths is None:
                widths = shapes
            elif shapes != widths:
                raise DataError(f"{episode.path}: feature shapes {shapes} differ from {first.path}'s {widths}")
            if episode.length < 1:
                raise DataError(f"{episode.path}: the aligned view is empty")
        self.state_dim = widths[0][0] if widths[0] else 1
        self.action_dim = widths[1][0] if widths[1] else 1

    def _read_control(self, control: Optional[Sequence[str]], operator_weight: float) -> None:
        """Who commanded every row, as codes of one vocabulary over the episodes; the rows `control` keeps."""
        per_episode = [episode.control() for episode in self.episodes]
        self.control_sources: List[str] = source_vocabulary(n for c in per_episode for n in c.names)
        self._control = [c.recoded(self.control_sources) for c in per_episode]
        self.operator_weight = operator_weight
        self.control_filter: Optional[List[str]] = None
        self._rows: Optional[np.ndarray] = None  # sample -> row of all episodes; None: every row
        if control is None:
            return
        self.control_filter = check_source_names(control, self.control_sources)
        wanted = [self.control_sources.index(name) for name in self.control_filter]
        self._rows = np.flatnonzero(np.isin(np.concatenate(self._control), wanted))
        if self._rows.size == 0:
            counts = self.control_counts()
            raise DataError(f"no rows of the {len(self.refs)} selected episode(s) were commanded by "
                            f"{' or '.join(self.control_filter)} (rows per source: "
                            f"{', '.join(f'{k} {v}' for k, v in counts.items())})")

    def _read_language(self) -> None:
        """Each episode's recorded instruction and its reviewers' labels (phrasings, subtasks)."""
        self._recorded_instructions: List[str] = []
        self._reviews: List[Review] = []
        for ref, episode in zip(self.refs, self.episodes):
            self._recorded_instructions.append(str(episode.metadata.get("instruction") or "").strip())
            self._reviews.append(read_review(ref.path))
        self._phrasings = [self.episode_instructions(e) for e in range(len(self.refs))]
        # Segments by start time, as Review.subtask_at orders them (a later one wins an overlap), kept as
        # tuples: a sample's lookup is then a few comparisons instead of numpy on a 1-element array.
        self._segments = [[(seg.start_t, seg.end_t, seg.name)
                           for seg in sorted(review.subtasks, key=lambda seg: seg.start_t)] for review in self._reviews]

    def episode_instructions(self, e: int) -> List[str]:
        """Every phrasing of episode e's instruction: the recorded one first, then the reviewers'."""
        recorded = self._recorded_instructions[e]
        return list(dict.fromkeys(([recorded] if recorded else []) + self._reviews[e].instructions))

    def episode_review(self, e: int) -> Review:
        """Episode e's review labels (collector.review.annotations.Review; empty when nobody reviewed it)."""
        return self._reviews[e]

    # -- introspection --------------------------------------------------------------------------
    @property
    def cameras(self) -> List[str]:
        """Camera names, in sample key order: sample["observation.images.<name>"] (LeRobot's camera_keys)."""
        return list(self._cameras)

    @cameras.setter
    def cameras(self, names: Sequence[str]) -> None:
        self._cameras = list(names)

    @property
    def features(self) -> Dict[str, Dict[str, object]]:
        """Every key of a sample with its dtype, shape and names (as LeRobot's `features`, per sample)."""
        if getattr(self, "_features", None) is None:
            self._features = self._describe_features()
        return {name: dict(spec) for name, spec in self._features.items()}

    def _describe_features(self) -> Dict[str, Dict[str, object]]:
        lead = (self.history,) if self.history > 1 else ()
        first = self.episodes[0]
        features: Dict[str, Dict[str, object]] = {}
        try:
            features["observation.state"] = {"dtype": "float32", "shape": lead + (self.state_dim,),
                                             "names": _joint_names(first, self.state_key, self.state_dim)}
            features["observation.state_is_pad"] = {"dtype": "bool", "shape": (self.history,), "names": None}
            for key in self.extra_keys:
                width = int(np.prod(first.shape(key)[1:], dtype=np.int64))
                features[feature_name(key)] = {"dtype": "float32", "shape": lead + (width,), "names": None}
            image_lead = (self.history,) if self.image_history else ()
            for camera in self.cameras:
                height, width, channels = first.image_shape(camera)
                chw = self.image_format == "chw_float"
                features[f"observation.images.{camera}"] = {
                    "dtype": "float32" if chw else "uint8",
                    "shape": image_lead + ((channels, height, width) if chw else (height, width, channels)),
                    "names": ["channels", "height", "width"] if chw else ["height", "width", "channels"]}
            features["action"] = {"dtype": "float32", "shape": (self.chunk, self.action_dim),
                                  "names": _joint_names(first, self.action_key, self.action_dim)}
        finally:
            first.close()
        features["action_is_pad"] = {"dtype": "bool", "shape": (self.chunk,), "names": None}
        for name, dtype in (("episode_index", "int64"), ("frame_index", "int64"), ("timestamp", "float64"),
                            ("control_source", "int64")):
            features[name] = {"dtype": dtype, "shape": (), "names": None}
        for name in ("task", "instruction", "instructions", "subtask", "control_source_name"):
            features[name] = {"dtype": "string", "shape": (), "names": None}
        return features

    def __repr__(self) -> str:
        roots = {str(r.dataset_root or r.path.parent) for r in self.refs}
        where = roots.pop() if len(roots) == 1 else f"{len(roots)} folders"
        features = ", ".join(f"{name} {tuple(spec['shape'])}" for name, spec in self.features.items()
                             if name.startswith("observation.") and not name.endswith("_is_pad") or name == "action")
        episodes = f"{len(self.refs)} episode" + ("" if len(self.refs) == 1 else "s")
        return (f"EpisodeDataset({where!r}: {episodes}, {len(self)} samples, "
                f"cameras [{', '.join(self.cameras)}], features: {features})")

    # -- map-style dataset ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.starts[-1] if self._rows is None else self._rows.size)

    def locate(self, index: int):
        """(episode position, frame) of a sample index."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range 0..{len(self) - 1}")
        row = index if self._rows is None else int(self._rows[index])
        episode = int(np.searchsorted(self.starts, row, side="right") - 1)
        return episode, int(row - self.starts[episode])

    def control_counts(self) -> Dict[str, int]:
        """Rows of the selected episodes per source that commanded any (all rows, whatever `control` keeps)."""
        counts = np.bincount(np.concatenate(self._control), minlength=len(self.control_sources))
        return {name: int(n) for name, n in zip(self.control_sources, counts) if n}

    def sample_weights(self, operator_weight: Optional[float] = None) -> np.ndarray:
        """(len(self),) float64: operator_weight (default: the constructor's) for a sample whose row the
        operator commanded, 1 otherwise; ready for torch's WeightedRandomSampler(weights, len(weights))."""
        weight = self.operator_weight if operator_weight is None else _positive_weight(operator_weight)
        weights = source_weights(np.concatenate(self._control), self.control_sources, {OPERATOR: weight})
        return weights if self._rows is None else weights[self._rows]

    def __getitem__(self, index) -> Dict[str, object]:
        index = int(index)
        if index < 0:
            index += len(self)
        e, t = self.locate(index)
        episode, length = self.episodes[e], int(self.lengths[e])

        past = np.arange(t - self.history + 1, t + 1)
        past_rows = np.clip(past, 0, length - 1)
        future = np.arange(t, t + self.chunk)
        future_rows = np.clip(future, 0, length - 1)

        sample: Dict[str, object] = {}
        sample["observation.state"] = self._lowdim(episode, self.state_key, past_rows)
        sample["observation.state_is_pad"] = past < 0
        for key in self.extra_keys:
            sample[feature_name(key)] = self._lowdim(episode, key, past_rows)
        image_rows = past_rows if self.image_history else past_rows[-1:]
        for camera in self.cameras:
            frames = episode.images(camera, image_rows)
            if self.image_format == "chw_float":
                frames = frames.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1.0 / 255.0)
            sample[f"observation.images.{camera}"] = frames if self.image_history else frames[0]
        action = episode.read(self.action_key, future_rows).astype(np.float32, copy=False)
        sample["action"] = self._normalized("action", action.reshape(self.chunk, -1))
        sample["action_is_pad"] = (future >= length) | self._foreign_actions(e, future_rows)
        sample["episode_index"] = np.int64(e)
        sample["frame_index"] = np.int64(t)
        has_stamps = episode.has("timestamps")
        sample["timestamp"] = np.float64(episode.read("timestamps", [t])[0] if has_stamps else t)
        sample["task"] = self.refs[e].task
        phrasings = self._phrasings[e]
        sample["instruction"] = phrasings[0] if phrasings else ""
        sample["instructions"] = "\n".join(phrasings)
        sample["subtask"] = _subtask_at(self._segments[e], float(sample["timestamp"]))
        code = int(self._control[e][t])
        sample["control_source"] = np.int64(code)
        sample["control_source_name"] = self.control_sources[code]
        return sample

    def _foreign_actions(self, e: int, rows: np.ndarray) -> np.ndarray:
        """With a control filter: chunk steps from the first one another source commanded on (the
        operator's chunk ends where the policy takes back over), so they are left out of the loss."""
        if self.control_filter is None:
            return np.zeros(rows.size, dtype=bool)
        wanted = [self.control_sources.index(name) for name in self.control_filter]
        foreign = ~np.isin(self._control[e][rows], wanted)
        return np.logical_or.accumulate(foreign)

    def _lowdim(self, episode: AlignedEpisode, key: str, rows: np.ndarray) -> np.ndarray:
        values = episode.read(key, rows).astype(np.float32, copy=False).reshape(len(rows), -1)
        values = self._normalized(feature_name(key), values)
        return values if self.history > 1 else values[0]

    def _normalized(self, name: str, values: np.ndarray) -> np.ndarray:
        if name not in self._norm:
            return values
        mean, std = self._norm[name]
        return (values - mean) / std

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        """Back to joint units: what a policy's normalized output means on the robot."""
        if "action" not in self._norm:
            return np.asarray(action)
        mean, std = self._norm["action"]
        return np.asarray(action) * std + mean

    def describe(self) -> str:
        text = (f"{len(self.refs)} episode(s), {len(self)} samples, state {self.state_dim}, action {self.action_dim}, "
                f"cameras {self.cameras or 'none'}, history {self.history}, chunk {self.chunk}")
        if self.control_filter is not None:
            text += f", rows commanded by {'/'.join(self.control_filter)}"
        if self.operator_weight != 1.0:
            text += f", operator rows weighted {self.operator_weight:g}"
        return text


def _subtask_at(segments, t: float) -> str:
    for start, end, name in reversed(segments):
        if start <= t <= end:
            return name
    return ""


def _joint_names(episode: AlignedEpisode, key: str, width: int) -> Optional[List[str]]:
    """The joint names a dataset's source stream declared, when they fit its width."""
    from collector.dataset.exports.common import joint_names
    from collector.recorder.vocabulary import COMMAND, JOINTS

    stream = {STATE_KEY: JOINTS, ACTION_KEY: COMMAND}.get(key)
    return joint_names(episode, stream, width) if stream else None


def _positive_weight(value) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not (np.isfinite(weight) and weight > 0):
        raise ConfigError(f"operator_weight must be a positive number, got {value!r}")
    return weight


def view_camera_name(camera: str, available: Sequence[str]) -> str:
    """The aligned view's name of a camera asked for by its view name ("head") or its raw stream
    name ("camera_head", as inspect and the dashboard show it)."""
    if camera not in available and camera_of_stream(camera) in available:
        return camera_of_stream(camera)
    return camera


def _require_keys(episode: AlignedEpisode, keys: Sequence[str], cameras: Sequence[str]) -> None:
    """DataError naming every missing key and camera, and what the episode has instead."""
    missing = [k for k in keys if not episode.has(k)]
    missing_cameras = [c for c in cameras if c not in episode.cameras]
    if not missing and not missing_cameras:
        return
    problems = []
    if missing:
        have = ", ".join("/" + k for k in aligned_keys(episode)) or "none"
        problems.append(f"missing {', '.join('/' + k for k in missing)} (keys: {have})")
    if missing_cameras:
        have = ", ".join(episode.cameras) or "none"
        if episode.cameras:
            have += f" (or {', '.join(camera_stream_name(c) for c in episode.cameras)})"
        problems.append(f"missing {', '.join(f'/{schema.IMAGES}/{c}' for c in missing_cameras)} (cameras: {have})")
    raise DataError(f"{episode.path}: {'; '.join(problems)}")


def aligned_keys(episode: AlignedEpisode) -> List[str]:
    """The aligned view's per-row datasets other than images: what state_key, action_key and
    extra_keys can name."""
    h5 = episode.file()
    if schema.TIMESTAMPS not in h5:
        return []
    rows = h5[schema.TIMESTAMPS].shape[0]
    skip = (schema.RAW_GROUP, schema.SYNC_GROUP, schema.IMAGES, schema.COMPRESS_LEN, schema.TIMESTAMPS, "recorder")
    found: List[str] = []

    def visit(name, node):
        if isinstance(node, h5py.Dataset) and node.ndim >= 1 and node.shape[0] == rows \
                and not any(name == s or name.startswith(s + "/") for s in skip):
            found.append(name)

    for top in h5:
        if top in skip:
            continue
        node = h5[top]
        if isinstance(node, h5py.Group):
            node.visititems(lambda name, child, top=top: visit(f"{top}/{name}", child))
        else:
            visit(top, node)
    return sorted(found)
