"""One file that carries everything needed to run a trained policy, and to know where it came from.

Contents (plain dicts, lists, numbers and tensors, so `torch.load(weights_only=True)` reads it and a
checkpoint can never run code when opened):
  format, format_version
  policy, spec, hyperparameters, weights       which class, its inputs/outputs, its state_dict
  normalization                                statistics of observation.state and action and the std
                                               floor (collector.policy.normalization)
  joint_names, action_names, rate_hz           the state and action layouts, and the frame rate the
                                               action chunk steps at
  vocabulary                                   the conditioning tokens and the instructions seen
  training                                     the training config (TrainConfig as a dict)
  provenance                                   episodes with file SHA-256, sources, collector version
  step, optimizer, rng, history                where training stopped, so it can resume exactly
  training_weights                             the optimizer's weights when `weights` are their moving
                                               average (ema_decay), which resume continues from; else None
Camera names and image size are in `spec`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from collector.errors import ConfigError, DataError
from collector.policy.base import Policy, PolicySpec
from collector.policy.conditioning import ConditioningVocabulary
from collector.recorder.vocabulary import camera_stream_name
from collector.policy.normalization import ACTION, STATE, Normalizer
from collector.policy.registry import build_policy

FORMAT = "collector.policy"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    policy: str
    spec: PolicySpec
    hyperparameters: dict
    weights: Dict[str, torch.Tensor]
    normalizer: Normalizer
    joint_names: List[str]
    action_names: List[str]
    rate_hz: float
    vocabulary: ConditioningVocabulary
    training: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    step: int = 0
    optimizer: Optional[dict] = None
    rng: Optional[dict] = None
    history: List[List[float]] = field(default_factory=list)  # [step, loss] rows of the loss curve
    # the optimizer's own weights when `weights` are their moving average (training with ema_decay)
    training_weights: Optional[Dict[str, torch.Tensor]] = None
    path: Optional[Path] = None

    # -- files ------------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Written under a temporary name and renamed: a crash never leaves half a checkpoint."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "policy": self.policy,
            "spec": self.spec.to_state(), "hyperparameters": self.hyperparameters, "weights": self.weights,
            "normalization": self.normalizer.to_state(),
            "joint_names": list(self.joint_names), "action_names": list(self.action_names),
            "rate_hz": float(self.rate_hz), "vocabulary": self.vocabulary.to_state(), "training": self.training,
            "provenance": self.provenance, "step": int(self.step), "optimizer": self.optimizer, "rng": self.rng,
            "history": self.history, "training_weights": self.training_weights,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        self.path = path
        return path

    @classmethod
    def load(cls, path) -> "Checkpoint":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such checkpoint file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a file that is not a checkpoint
            raise ConfigError(f"{path}: not a policy checkpoint ({' '.join(str(exc).split())[:160]})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ConfigError(f"{path}: not a collector policy checkpoint (no format {FORMAT!r})")
        if state.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{path}: checkpoint format version {state.get('format_version')} is not the "
                              f"supported {FORMAT_VERSION}")
        try:
            return cls(
                policy=state["policy"], spec=PolicySpec.from_state(state["spec"]),
                hyperparameters=state["hyperparameters"], weights=state["weights"],
                normalizer=Normalizer.from_state(state["normalization"]),
                joint_names=list(state["joint_names"]), action_names=list(state["action_names"]),
                rate_hz=float(state["rate_hz"]), vocabulary=ConditioningVocabulary.from_state(state["vocabulary"]),
                training=state.get("training") or {}, provenance=state.get("provenance") or {},
                step=int(state.get("step", 0)), optimizer=state.get("optimizer"), rng=state.get("rng"),
                history=list(state.get("history") or []), training_weights=state.get("training_weights"),
                path=path)
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise ConfigError(f"{path}: checkpoint is incomplete ({type(exc).__name__}: {exc})") from None

    def build_policy(self, device: str = "cpu") -> Policy:
        """The policy with its trained weights, in evaluation mode."""
        policy = build_policy(self.policy, self.spec, self.hyperparameters)
        try:
            policy.load_state_dict(self.weights)
        except RuntimeError as exc:
            where = self.path or "checkpoint"
            raise ConfigError(f"{where}: weights do not fit policy {self.policy!r} "
                              f"({' '.join(str(exc).split())[:200]})") from None
        return policy.to(device).eval()

    # -- normalization, as in training -------------------------------------------------------------
    def normalize_state(self, qpos: np.ndarray) -> np.ndarray:
        return self.normalizer.normalize(STATE, qpos)

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        return self.normalizer.unnormalize(ACTION, action)

    def describe(self) -> str:
        return (f"{self.policy} policy, step {self.step}, cameras {', '.join(self.spec.cameras) or 'none'} at "
                f"{self.spec.image_size[1]}x{self.spec.image_size[0]}, {len(self.joint_names)} joints, chunk "
                f"{self.spec.chunk} at {self.rate_hz:g} Hz, conditioned on {', '.join(self.vocabulary.tokens)}")


def check_compatible(checkpoint: Checkpoint, joint_names: Sequence[str], cameras: Sequence[str]) -> None:
    """ConfigError in one line naming what differs between the checkpoint and the robot it would drive.

    Joints must match in name and order (the action vector is indexed by position); the robot may
    have more cameras than the policy uses, not fewer."""
    where = checkpoint.path or "checkpoint"
    joint_names = list(joint_names)
    problems = []
    if joint_names != checkpoint.joint_names:
        missing = [j for j in checkpoint.joint_names if j not in joint_names]
        extra = [j for j in joint_names if j not in checkpoint.joint_names]
        if missing or extra:
            parts = [f"the robot lacks {', '.join(missing)}" if missing else "",
                     f"the robot also has {', '.join(extra)}" if extra else ""]
            problems.append(f"joints differ ({'; '.join(p for p in parts if p)})")
        else:
            first = next(i for i, (a, b) in enumerate(zip(joint_names, checkpoint.joint_names)) if a != b)
            problems.append(f"joint order differs (position {first}: checkpoint {checkpoint.joint_names[first]!r}, "
                            f"robot {joint_names[first]!r})")
    missing_cameras = [c for c in checkpoint.spec.cameras if c not in cameras and camera_stream_name(c) not in cameras]
    if missing_cameras:
        problems.append(f"camera(s) {', '.join(missing_cameras)} missing (the robot has "
                        f"{', '.join(cameras) or 'none'}; the policy needs {', '.join(checkpoint.spec.cameras)})")
    if problems:
        raise ConfigError(f"{where}: the checkpoint does not match the robot: {'; '.join(problems)}")
