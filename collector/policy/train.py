"""Training a policy on episodes: `train(TrainConfig(...))`, what `collector train` runs.

The data path is `EpisodeDataset` (catalogue filters, per-episode split, action chunks edge-padded
past the end as ACT uses them) wrapped by `PolicySamples` (frames downscaled to the policy's size and
kept in memory, conditioning ids, normalization with the training episodes' cached statistics and
ACT's std floor: collector.policy.normalization).

Scene views (`TrainConfig.scene_views`, collector.policy.scene_views): each step also fits the object
head to a batch of simulator-labelled views of new layouts, drawn in an order of their own.

Reproducibility: one seed fixes the weights' initialization, the data order and every random draw
(dropout, the CVAE's noise). The data order is a function of (seed, step) — epoch e is the
permutation drawn from seed [seed, e] — and the torch RNG state is saved with every checkpoint, so
a run resumed from step S continues exactly as the uninterrupted run would have (on the same device
and torch build). Batches are assembled in this process (no DataLoader unless num_workers > 0,
whose iterator would draw from the global RNG).
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from collector.dataset.episode import ACTION_KEY, STATE_KEY
from collector.dataset.episode_dataset import EpisodeDataset
from collector.dataset.normalization import cached_feature_stats
from collector.dataset.exports.common import episode_rate, joint_names
from collector.dataset.selection import Filters
from collector.errors import ConfigError, DataError
from collector.policy.augmentation import Augmentation
from collector.policy.base import PolicySpec, masked_l1
from collector.policy.checkpoint import Checkpoint
from collector.policy.conditioning import ConditioningVocabulary, episode_conditioning
from collector.policy.end_effectors import EndEffectorKinematics
from collector.policy.hand_chain import HandChain
from collector.recorder.vocabulary import COMMAND, JOINTS
from collector.policy.loss_curve import plot_loss_curve
from collector.policy.normalization import ACTION, Normalizer
from collector.policy.object_targets import episode_object_targets, object_names, target_statistics, target_width
from collector.policy.provenance import training_provenance
from collector.policy.registry import POLICIES, build_policy
from collector.policy.samples import PolicySamples
from collector.policy.scene_views import SceneViewSamples, SceneViews
from collector.policy.weight_average import WeightAverage, check_decay

DEVICES = ("auto", "cpu", "cuda")
SCENE_ORDER_STREAM = 7_919  # the scene views' order is drawn from seed + this: apart from the demonstrations'
VALIDATION_SAMPLES = 256


@dataclass
class TrainConfig:
    sources: List[str]
    out: str
    policy: str = "act"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    ema_decay: float = 0.0  # > 0: ship an exponential moving average of the weights (collector.policy.weight_average)
    chunk: int = 30  # one second at the aligned view's 30 Hz
    cameras: Optional[List[str]] = None  # None: every camera of the first episode
    image_size: Tuple[int, int] = (60, 80)  # (height, width): 320x240 frames downscaled 4x
    hyperparameters: Dict = field(default_factory=dict)
    augment: Dict = field(default_factory=dict)  # collector.policy.augmentation: shift, brightness, contrast
    filters: Dict[str, List[str]] = field(default_factory=dict)
    control: Optional[List[str]] = None  # train on the rows these sources commanded, e.g. ["operator"] (HG-DAgger)
    operator_weight: float = 1.0  # draw rows the operator commanded this much more often than the policy's
    val_fraction: float = 0.0
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    cache_mb: float = 1024.0
    num_workers: int = 0
    time_limit_s: Optional[float] = None  # stop (and save) after this much training wall time, even before `steps`
    # collector.policy.scene_views files: each step also trains the object head on scene_batch of them
    scene_views: List[str] = field(default_factory=list)
    scene_batch: int = 16
    resume: Optional[str] = None
    progress: Optional[bool] = None  # None: a bar when stderr is a terminal
    plot: bool = True

    def to_state(self) -> dict:
        state = asdict(self)
        state["image_size"] = list(self.image_size)
        return state


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    start_step: int
    losses: List[float]  # per step of this run
    parts: List[Dict[str, float]]  # the loss's parts per step of this run (l1, kl)
    samples_per_s: float
    wall_s: float
    parameters: int
    device: str
    plot: Optional[Path]
    validation: List[List[float]]

    def summary(self) -> dict:
        recent = self.losses[-min(len(self.losses), 20):] or [math.nan]
        recent_parts = self.parts[-min(len(self.parts), 20):]
        parts = {f"final_{k}": round(float(np.mean([p[k] for p in recent_parts])), 6)
                 for k in (recent_parts[0] if recent_parts else {})}
        return {"checkpoint": str(self.checkpoint), "steps": self.steps, "start_step": self.start_step,
                "final_loss": round(float(np.mean(recent)), 6), **parts,
                "samples_per_s": round(self.samples_per_s, 1),
                "wall_s": round(self.wall_s, 2), "parameters": self.parameters, "device": self.device,
                "loss_curve": str(self.plot) if self.plot else None,
                "validation_l1": self.validation[-1][1] if self.validation else None}


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device here (this torch build: "
                          f"{torch.__version__}); use --device cpu or auto")
    return device


@dataclass
class TrainingData:
    """Everything the loop and the checkpoint need to know about the data."""

    episodes: EpisodeDataset
    samples: PolicySamples
    spec: PolicySpec
    normalizer: Normalizer
    vocabulary: ConditioningVocabulary
    state_names: List[str]
    action_names: List[str]
    rate_hz: float
    validation: Optional[list]  # held-out samples, or None
    provenance: dict
    scene_views: Optional[SceneViewSamples] = None
    hand_statistics: Optional[dict] = None  # ee_mean/ee_std (and the target's scale) for an ee_to_head policy


def train(config: TrainConfig) -> TrainResult:
    if config.policy not in POLICIES:
        raise ConfigError(f"unknown policy {config.policy!r} (known: {', '.join(POLICIES)})")
    if config.steps < 1 or config.batch_size < 1:
        raise ConfigError(f"steps and batch size must be at least 1, got {config.steps} and {config.batch_size}")
    check_decay(config.ema_decay)
    device = resolve_device(config.device)
    resumed = Checkpoint.load(config.resume) if config.resume else None
    if resumed is not None:
        config = _config_for_resume(config, resumed)
    augmentation = Augmentation.from_state(config.augment)  # a bad setting fails before any data is read
    data = prepare_data(config, resumed)

    torch.manual_seed(config.seed)
    policy = build_policy(config.policy, data.spec, config.hyperparameters).to(device)
    if data.hand_statistics is not None:  # a resumed run puts the saved ones back with the weights
        policy.set_hand_statistics(**data.hand_statistics)
    if getattr(policy, "steer_recorded", False) and resumed is None:
        policy.set_object_scale(data.samples.object_statistics["std"])
    # the action's forward kinematics (collector.policy.hand_chain), for the losses measured at the hands
    if getattr(policy, "hand_loss", 0) > 0 or getattr(policy, "hand_offsets", 0) > 0:
        robot, model_hash = _one_robot(data.episodes, "hand_loss" if policy.hand_loss > 0 else "hand_offsets")
        policy.set_hand_chain(HandChain(robot, data.action_names, model_hash), data.normalizer.mean(ACTION),
                              data.normalizer.std(ACTION))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_step, history, val_history = _restore(resumed, policy, optimizer, device)
    average = None
    if config.ema_decay > 0:  # a resumed average goes on from the saved one; it has seen every step so far
        saved = resumed.weights if resumed is not None and resumed.training_weights is not None else None
        average = WeightAverage(policy, config.ema_decay, averaged=saved, updates=start_step)
    if start_step >= config.steps:
        raise ConfigError(f"{config.resume}: the checkpoint is already at step {start_step}; ask for more "
                          f"--steps than that to continue")
    out = Path(config.out)

    def checkpoint(step: int) -> Checkpoint:
        training = {**config.to_state(), "resume": None, "validation": val_history,
                    "episodes_total": len(data.episodes.refs), "samples": len(data.episodes)}
        rng = {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if device == "cuda" else None}
        live = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
        return Checkpoint(policy=config.policy, spec=data.spec, hyperparameters=policy.hyperparameters,
                          weights=average.state_dict() if average is not None else live,
                          training_weights=live if average is not None else None,
                          normalizer=data.normalizer, joint_names=data.state_names, action_names=data.action_names,
                          rate_hz=data.rate_hz, vocabulary=data.vocabulary, training=training,
                          provenance=data.provenance, step=step, optimizer=optimizer.state_dict(), rng=rng,
                          history=history)

    losses: List[float] = []
    loss_parts: List[Dict[str, float]] = []
    progress = _progress_bar(config, start_step)
    policy.train()
    started = time.perf_counter()
    done = start_step
    views = _scene_batches(data.scene_views, config, start_step, device)
    try:
        for step, batch in zip(range(start_step, config.steps), _batches(data.samples, config, start_step, device)):
            batch["images"] = augmentation(batch["images"])
            view_batch = next(views) if views is not None else None
            if view_batch is not None:
                view_batch["images"] = augmentation(view_batch["images"])
            value, parts = _optimizer_step(policy, optimizer, batch, config.grad_clip, view_batch)
            if average is not None:
                average.update(policy)
            done = step + 1
            if not math.isfinite(value):
                raise DataError(f"training diverged at step {done} (loss {value}); lower --lr")
            losses.append(value)
            loss_parts.append(parts)
            history.append([done, value])
            if progress is not None:
                rate_now = (done - start_step) * config.batch_size / (time.perf_counter() - started)
                progress.set_postfix({"loss": f"{value:.4f}", **{k: f"{v:.4f}" for k, v in parts.items()},
                                      "samples/s": f"{rate_now:.0f}"}, refresh=False)
                progress.update(1)
            out_of_time = config.time_limit_s is not None and time.perf_counter() - started >= config.time_limit_s
            if done % config.checkpoint_every == 0 or done == config.steps or out_of_time:
                if data.validation is not None:  # of the weights the checkpoint ships
                    with average.applied(policy) if average is not None else nullcontext():
                        val_history.append([done, validation_l1(policy, data.validation, device)])
                    policy.train()
                checkpoint(done).save(out)
            if out_of_time:  # a time-boxed run: what it learned so far is the result
                break
    except KeyboardInterrupt:
        if done > start_step:  # keep the work: --resume continues exactly from here
            checkpoint(done).save(out)
            print(f"train: interrupted; saved step {done} to {out} (--resume {out} continues)", file=sys.stderr)
        raise
    finally:
        if progress is not None:
            progress.close()
    wall = time.perf_counter() - started
    plot = None
    if config.plot:
        plot = plot_loss_curve(history, out.with_suffix(".loss.png"),
                               f"{config.policy} on {len(data.episodes.refs)} episode(s), batch {config.batch_size}",
                               val_history)
    return TrainResult(checkpoint=out, steps=done, start_step=start_step, losses=losses,
                       parts=loss_parts, samples_per_s=len(losses) * config.batch_size / max(wall, 1e-9), wall_s=wall,
                       parameters=policy.parameter_count(), device=device, plot=plot, validation=val_history)


def _optimizer_step(policy, optimizer, batch, grad_clip: float, view_batch=None) -> Tuple[float, Dict[str, float]]:
    loss, parts = policy.loss(batch)
    if view_batch is not None:  # the object head on scene views, weighted as on the demonstrations' frames
        views = policy.object_loss_on(view_batch)
        loss = loss + policy.object_loss * views
        parts["scene_objects"] = float(views.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return float(loss.detach()), parts


def prepare_data(config: TrainConfig, resumed: Optional[Checkpoint] = None) -> TrainingData:
    """Select the episodes, compute (or take the resumed run's) normalization and vocabulary, and wrap
    the samples the way the policy reads them."""
    filters = Filters.from_kwargs(**config.filters)
    split = "train" if config.val_fraction > 0 else "all"
    source = config.sources[0] if len(config.sources) == 1 else config.sources
    episodes = EpisodeDataset(source, cameras=[], chunk=config.chunk, split=split, val_fraction=config.val_fraction,
                              seed=config.seed, filters=filters, normalize=False, control=config.control,
                              operator_weight=config.operator_weight)
    normalizer = resumed.normalizer if resumed else Normalizer(
        cached_feature_stats([r.path for r in episodes.train_refs], [STATE_KEY, ACTION_KEY]))
    cameras = list(config.cameras) if config.cameras is not None else list(episodes.episodes[0].cameras)
    examples = [(*episode_conditioning(e.metadata), str(e.metadata.get("instruction") or ""))
                for e in episodes.episodes]
    vocabulary = resumed.vocabulary if resumed else ConditioningVocabulary.build(examples)
    conditioning = [vocabulary.encode(task, target) for task, target, _ in examples]
    objects = _object_targets(config, episodes)
    state_names, action_names = _layouts(episodes)
    kinematics = _hand_kinematics(config, episodes, state_names)
    samples = PolicySamples(episodes, cameras, config.image_size, conditioning, normalizer, cache_mb=config.cache_mb,
                            object_targets=objects[0] if objects else None,
                            object_statistics=objects[1] if objects else None, kinematics=kinematics)
    spec = PolicySpec(cameras=samples.cameras, image_size=tuple(config.image_size), state_dim=episodes.state_dim,
                      action_dim=episodes.action_dim, chunk=config.chunk, vocabulary_size=len(vocabulary),
                      object_targets=objects[2] if objects else 0,
                      end_effectors=kinematics.width if kinematics else 0,
                      robot=kinematics.robot if kinematics else "",
                      robot_model_hash=kinematics.model_hash if kinematics else "")
    if resumed is not None:
        _check_resume_fits(resumed, spec, state_names, action_names)
    hands = None
    if kinematics is not None and resumed is None:
        hands = _hand_statistics(kinematics, episodes, objects[1] if objects else None)
    validation, validation_refs = _validation_samples(config, source, filters, cameras, vocabulary, normalizer,
                                                      kinematics)
    views = _scene_view_samples(config, samples.cameras, vocabulary, objects)
    if resumed is not None and views is not None:
        _check_views_unchanged(resumed, views.views)
    provenance = resumed.provenance if resumed else training_provenance(
        episodes.refs, [str(s) for s in config.sources], filters.describe(), held_out=validation_refs,
        scene_views=views.views if views is not None else None)
    return TrainingData(episodes, samples, spec, normalizer, vocabulary, state_names, action_names,
                        _rate(episodes), validation, provenance, views, hands)


def _hand_kinematics(config: TrainConfig, episodes: EpisodeDataset, state_names) -> Optional[EndEffectorKinematics]:
    """The robot model that turns joint states into hand positions, for a policy trained with ee_to_head."""
    if not (config.hyperparameters or {}).get("ee_to_head"):
        return None
    robot, model_hash = _one_robot(episodes, "ee_to_head")
    return EndEffectorKinematics(robot, state_names, model_hash)


def _one_robot(episodes: EpisodeDataset, why: str) -> Tuple[str, str]:
    """(robot, model hash) that every episode was recorded with: hand positions need one robot model."""
    robots = {_robot_model(e.metadata) for e in episodes.episodes}
    if len(robots) != 1 or not next(iter(robots))[0]:
        named = ", ".join(sorted(f"{r or '?'} ({h[:12] or 'no hash'})" for r, h in robots))
        raise ConfigError(f"{why} needs episodes of one named robot model to compute hand positions; these "
                          f"come from {named}")
    return next(iter(robots))


def _robot_model(metadata: dict) -> Tuple[str, str]:
    """(robot name, model hash) of an episode: simulated takes keep the hash in their conditions, the ROS 2
    recorder and the corrected and evaluation takes at the top level."""
    conditions = metadata.get("conditions") if isinstance(metadata.get("conditions"), dict) else {}
    return (str(metadata.get("robot") or conditions.get("robot") or ""),
            str(metadata.get("robot_model_hash") or conditions.get("robot_model_hash") or ""))


def _hand_statistics(kinematics: EndEffectorKinematics, episodes: EpisodeDataset, objects) -> dict:
    """Mean and std of the hand positions over every training frame (std floored at 1 cm, as the object
    targets'), and the target estimate's scale from the object statistics."""
    positions = np.concatenate([kinematics.positions(e.read(STATE_KEY)) for e in episodes.episodes])
    out = {"ee_mean": positions.mean(0), "ee_std": np.maximum(positions.std(0), 0.01)}
    if objects is not None:
        out.update(target_mean=objects["mean"][:3], target_std=objects["std"][:3])
    return out


def _scene_view_samples(config: TrainConfig, cameras, vocabulary: ConditioningVocabulary,
                        objects) -> Optional[SceneViewSamples]:
    """The scene views as object-head training items, or None without --scene-views. Their targets are
    normalized with the demonstrations' statistics: one head, one scale."""
    if not config.scene_views:
        return None
    if objects is None or config.policy != "baseline":
        raise ConfigError("scene views train the object head: they need --policy baseline with --hp object_loss=1 "
                          "(or another weight above 0)")
    if config.scene_batch < 1:
        raise ConfigError(f"scene batch must be at least 1, got {config.scene_batch}")
    views = SceneViews.load(config.scene_views)
    views.check_fits(cameras, config.image_size)
    unknown = sorted({t for t in views.targets if t not in vocabulary.targets} |
                     ({views.task} - set(vocabulary.tasks)))
    if unknown:
        raise ConfigError(f"scene views name {', '.join(unknown)}, which no training episode does: the policy "
                          f"could not be told about them")
    conditioning = [vocabulary.encode(views.task, target) for target in views.targets]
    return SceneViewSamples(views, cameras, conditioning, names=objects[3], statistics=objects[1])


def _check_views_unchanged(resumed: Checkpoint, views: SceneViews) -> None:
    saved = [f["sha256"] for f in (resumed.provenance.get("scene_views") or {}).get("files") or []]
    if saved != [f["sha256"] for f in views.files]:
        raise ConfigError(f"{resumed.path}: the scene view files changed since this run began (SHA-256 differs); "
                          f"resume needs the same views")


def _object_targets(config: TrainConfig, episodes: EpisodeDataset):
    """(per-episode targets, statistics, width, object names) for a policy trained with an auxiliary
    object-position loss, else None. The statistics are recomputed from the same episodes on resume
    (deterministic)."""
    if float((config.hyperparameters or {}).get("object_loss", 0) or 0) <= 0:
        return None
    names = object_names(episodes.episodes)
    if not names:
        raise ConfigError("object_loss needs episodes with recorded object poses (pose_objects_* streams: "
                          "simulated takes); these have none")
    targets = [episode_object_targets(e, names) for e in episodes.episodes]
    return targets, target_statistics(targets), target_width(names), names


def _restore(resumed: Optional[Checkpoint], policy, optimizer, device: str):
    """(start step, loss history, validation history), with the weights, optimizer and RNG state of
    the resumed run put back (after the policy's own initialization drew from the RNG)."""
    if resumed is None:
        return 0, [], []
    policy.load_state_dict(resumed.training_weights if resumed.training_weights is not None else resumed.weights)
    if resumed.optimizer:
        optimizer.load_state_dict(resumed.optimizer)
    if resumed.rng:
        torch.set_rng_state(resumed.rng["torch"])
        if device == "cuda" and resumed.rng.get("cuda") is not None:
            torch.cuda.set_rng_state(resumed.rng["cuda"])
    return resumed.step, [list(r) for r in resumed.history], list(resumed.training.get("validation") or [])


# -- data ------------------------------------------------------------------------------------------

def sample_order(n: int, seed: int, start_step: int, batch_size: int,
                 weights: Optional[np.ndarray] = None) -> Iterator[np.ndarray]:
    """Index batches from step `start_step` on: epoch after epoch, each a permutation drawn from
    seed [seed, epoch], so the order depends only on (seed, step) and resuming picks it up. With
    `weights`, each epoch is n draws with replacement in proportion to them (same determinism)."""
    position = start_step * batch_size
    epoch, offset = divmod(position, n)
    order = _epoch_order(n, seed, epoch, weights)
    while True:
        batch = []
        while len(batch) < batch_size:
            if offset == n:
                epoch, offset = epoch + 1, 0
                order = _epoch_order(n, seed, epoch, weights)
            take = min(batch_size - len(batch), n - offset)
            batch.extend(order[offset:offset + take].tolist())
            offset += take
        yield np.asarray(batch)


def _epoch_order(n: int, seed: int, epoch: int, weights: Optional[np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return rng.permutation(n)
    return rng.choice(n, size=n, replace=True, p=weights / weights.sum())


def collate(items: Sequence[Dict[str, np.ndarray]], device: str = "cpu") -> Dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([item[key] for item in items])).to(device) for key in items[0]}


def _scene_batches(views: Optional[SceneViewSamples], config: TrainConfig, start_step: int, device: str):
    """Scene view batches in an order of their own, a function of (seed, step) as the demonstrations'
    (a resumed run draws the same views), or None without scene views."""
    if views is None:
        return None
    order = sample_order(len(views), config.seed + SCENE_ORDER_STREAM, start_step, config.scene_batch)
    return (collate([views[int(i)] for i in indices], device) for indices in order)


def _batches(samples: PolicySamples, config: TrainConfig, start_step: int, device: str):
    weights = samples.episodes.sample_weights() if config.operator_weight != 1.0 else None
    order = sample_order(len(samples), config.seed, start_step, config.batch_size, weights)
    if config.num_workers <= 0:
        for indices in order:
            yield collate([samples[int(i)] for i in indices], device)
        return
    loader = torch.utils.data.DataLoader(samples, batch_sampler=order, num_workers=config.num_workers,
                                         collate_fn=collate, generator=torch.Generator().manual_seed(config.seed),
                                         persistent_workers=True)
    for batch in loader:
        yield {k: v.to(device) for k, v in batch.items()}


def _validation_samples(config, source, filters, cameras, vocabulary, normalizer, kinematics=None):
    """(up to VALIDATION_SAMPLES evenly spaced samples of the held-out episodes, normalized with the
    training statistics; their refs), or (None, []) without a validation split."""
    if config.val_fraction <= 0:
        return None, []
    val = EpisodeDataset(source, cameras=[], chunk=config.chunk, split="val", val_fraction=config.val_fraction,
                         seed=config.seed, filters=filters, normalize=False, control=config.control)
    ids = []
    for episode in val.episodes:
        task, target = episode_conditioning(episode.metadata)
        if task not in vocabulary.tasks or target not in vocabulary.targets:
            # a held-out take of a task or object no training take had: the policy cannot be told
            # about it; measure it with the first known tokens rather than refuse the whole run
            task, target = task if task in vocabulary.tasks else vocabulary.tasks[0], vocabulary.targets[0]
        ids.append(vocabulary.encode(task, target))
    samples = PolicySamples(val, cameras, config.image_size, ids, normalizer, cache_mb=config.cache_mb,
                            kinematics=kinematics)
    picks = np.unique(np.linspace(0, len(samples) - 1, min(len(samples), VALIDATION_SAMPLES)).astype(int))
    return [samples[int(i)] for i in picks], val.refs


@torch.no_grad()
def validation_l1(policy, items, device: str, batch_size: int = 32) -> float:
    """L1 of the chunk predicted as at inference (CVAE prior, no dropout) on held-out samples."""
    policy.eval()
    total, weight = 0.0, 0
    for start in range(0, len(items), batch_size):
        batch = collate(items[start:start + batch_size], device)
        total += float(masked_l1(policy.predict_chunk(batch), batch["action"], batch["action_is_pad"])) * len(
            batch["state"])
        weight += len(batch["state"])
    return round(total / max(weight, 1), 6)


def _layouts(data: EpisodeDataset) -> Tuple[List[str], List[str]]:
    """Joint names of the state (the joints stream) and of the action (the command stream), the same
    in every episode; positional names when an episode did not record them. (Handles stay open: an
    episode's reader costs ~0.2 s to open, and training reads from it next.)"""
    layouts = None
    for episode in data.episodes:
        state = joint_names(episode, JOINTS, data.state_dim) or [f"joint_{i}" for i in range(data.state_dim)]
        action = joint_names(episode, COMMAND, data.action_dim) or [f"joint_{i}" for i in range(data.action_dim)]
        if layouts is None:
            layouts = (state, action, episode.path)
        elif (state, action) != layouts[:2]:
            raise DataError(f"{episode.path}: joint names differ from {layouts[2]}'s; train on one robot at a time")
    return layouts[0], layouts[1]


def _rate(data: EpisodeDataset) -> float:
    try:
        return float(episode_rate(data.episodes[0]))
    except DataError:
        return 30.0


# -- resume ----------------------------------------------------------------------------------------

def _config_for_resume(config: TrainConfig, resumed: Checkpoint) -> TrainConfig:
    """The resumed run's model, data and seed; this run may only change how long it goes and where
    it writes."""
    saved = dict(resumed.training)
    keep = {k: saved[k] for k in ("policy", "batch_size", "lr", "weight_decay", "grad_clip", "ema_decay", "chunk", "cameras",
                                  "hyperparameters", "augment", "filters", "control", "operator_weight", "val_fraction", "seed",
                                  "cache_mb", "scene_views", "scene_batch") if k in saved}
    keep["image_size"] = tuple(saved.get("image_size", config.image_size))
    return TrainConfig(**{**config.to_state(), **keep, "image_size": keep["image_size"]})


def _check_resume_fits(resumed: Checkpoint, spec: PolicySpec, state_names, action_names) -> None:
    where = resumed.path
    if resumed.spec.to_state() != spec.to_state():
        raise ConfigError(f"{where}: the dataset no longer fits this checkpoint (checkpoint {resumed.spec.to_state()}, "
                          f"data {spec.to_state()})")
    if resumed.joint_names != state_names or resumed.action_names != action_names:
        raise ConfigError(f"{where}: the dataset's joint names differ from the checkpoint's")


def _progress_bar(config: TrainConfig, start_step: int):
    show = sys.stderr.isatty() if config.progress is None else config.progress
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=config.steps, initial=start_step, desc=f"train {config.policy}", unit="step",
                dynamic_ncols=True, file=sys.stderr)
