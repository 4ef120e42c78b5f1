"""What every policy is: a torch module that declares its inputs and outputs and predicts action chunks.

A policy sees one batch layout, whatever its architecture (keys of `PolicyBatch`):
  images        (B, cameras, 3, H, W) float32 in [0, 1], cameras in `spec.cameras` order, already
                downscaled to `spec.image_size` (collector.policy.images does it, for training and
                inference alike)
  state         (B, state_dim) normalized joint positions
  conditioning  (B, tokens) int64 ids of the conditioning vocabulary (task, target object)
  action        (B, chunk, action_dim) normalized targets (training only)
  action_is_pad (B, chunk) bool: steps past the episode end, left out of the loss (training only)
  objects       (B, spec.object_targets) normalized recorded object positions, and objects_mask
                (training only, when the spec asks for them: collector.policy.object_targets)
  ee            (B, spec.end_effectors) the end effectors' positions in metres, from forward
                kinematics of the joint state (when the spec asks for them: collector.policy.end_effectors)
Normalization and the vocabulary live outside the module (in the checkpoint), so a policy is pure
tensor maths and the same module serves training, evaluation and the control loop.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import torch
from torch import nn

PolicyBatch = Dict[str, torch.Tensor]


@dataclass
class PolicySpec:
    """The contract between a policy, its data and the robot: what goes in and what comes out."""

    cameras: List[str]
    image_size: Tuple[int, int]  # (height, width) the frames are downscaled to
    state_dim: int
    action_dim: int
    chunk: int  # actions predicted per call, at the dataset's frame rate
    vocabulary_size: int  # conditioning tokens known (ids 0..size-1)
    conditioning_tokens: int = 2  # tokens per sample: task and target object
    object_targets: int = 0  # width of the auxiliary object-position target (training only; 0: none)
    end_effectors: int = 0  # width of the hand positions input (3 per end effector; 0: none)
    robot: str = ""  # the robot whose model computes them, and that model's hash (checked where it runs)
    robot_model_hash: str = ""

    def to_state(self) -> dict:
        state = asdict(self)
        state["image_size"] = list(self.image_size)
        return state

    @classmethod
    def from_state(cls, state: dict) -> "PolicySpec":
        state = dict(state)
        state["image_size"] = tuple(state["image_size"])
        return cls(**state)


class Policy(nn.Module, ABC):
    """Base of every policy: `predict_chunk` for inference, `loss` for training.

    Subclasses take (spec, **hyperparameters) and keep their hyperparameters in `self.hyperparameters`
    so a checkpoint can rebuild the same module (`name` selects the class in collector.policy.registry).
    """

    name: str = ""

    def __init__(self, spec: PolicySpec, **hyperparameters):
        super().__init__()
        self.spec = spec
        self.hyperparameters = dict(hyperparameters)

    @abstractmethod
    def predict_chunk(self, batch: PolicyBatch) -> torch.Tensor:
        """(B, chunk, action_dim) normalized actions for the observations in `batch`."""

    @abstractmethod
    def loss(self, batch: PolicyBatch) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Training loss (a scalar tensor) and its parts as plain floats for logging."""

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def masked_l1(predicted: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the chunk steps that exist (padding past the episode end is ignored,
    as in ACT: the edge-padded copies would otherwise teach the policy to stop early)."""
    keep = (~is_pad).unsqueeze(-1).to(predicted.dtype)
    return ((predicted - target).abs() * keep).sum() / (keep.sum() * predicted.shape[-1]).clamp_min(1.0)
