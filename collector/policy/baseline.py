"""The simple baseline: CNN features of every camera, joint state and conditioning through an MLP that
outputs the whole action chunk at once. No latent variable, no attention: what ACT's extra machinery
must beat (a behaviour-cloning MLP with action chunking, as in ACT's own ablations)."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from collector.policy.base import Policy, PolicyBatch, PolicySpec, masked_l1
from collector.policy.image_encoder import ConvEncoder, encode_cameras
from collector.policy.keypoints import KeypointEncoder, encode_keypoints

# image_features: "flatten" (the coarse feature map, flattened: where things are, by cell) or
# "keypoints" (a spatial softmax per feature: collector.policy.keypoints). Checkpoints written before
# the key existed were "flatten", so that stays the key's default.
DEFAULTS = {"cnn_channels": [16, 32, 64, 128], "feature_channels": 16, "conditioning_dim": 32, "hidden": 512,
            "dropout": 0.0, "image_features": "flatten", "keypoint_channels": [32, 64, 64],
            "keypoint_strides": [2, 2, 1], "keypoints": 32}
IMAGE_FEATURES = ("flatten", "keypoints")


class BaselinePolicy(Policy):
    name = "baseline"

    def __init__(self, spec: PolicySpec, **hyperparameters):
        unknown = set(hyperparameters) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown baseline hyperparameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        hp = {**DEFAULTS, **hyperparameters}
        if hp["image_features"] not in IMAGE_FEATURES:
            raise TypeError(f"image_features must be one of {', '.join(IMAGE_FEATURES)}, got {hp['image_features']!r}")
        super().__init__(spec, **hp)
        self.keypoint_features = hp["image_features"] == "keypoints"
        image_features = 0
        if spec.cameras and self.keypoint_features:
            self.backbone = KeypointEncoder(hp["keypoint_channels"], hp["keypoint_strides"], hp["keypoints"])
            image_features = len(spec.cameras) * self.backbone.output_dim
        elif spec.cameras:
            # a narrow 1x1 output keeps the flattened map (where things are) small enough for an MLP
            self.backbone = ConvEncoder(hp["cnn_channels"], hp["feature_channels"])
            fh, fw = self.backbone.output_size(spec.image_size)
            image_features = len(spec.cameras) * hp["feature_channels"] * fh * fw
        self.conditioning = nn.Embedding(spec.vocabulary_size, hp["conditioning_dim"])
        width = image_features + spec.state_dim + hp["conditioning_dim"]
        hidden = hp["hidden"]
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(hp["dropout"]),
                                  nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, spec.chunk * spec.action_dim))

    def predict_chunk(self, batch: PolicyBatch) -> torch.Tensor:
        parts = [batch["state"], self.conditioning(batch["conditioning"]).sum(dim=1)]
        if self.spec.cameras and self.keypoint_features:
            parts.insert(0, encode_keypoints(self.backbone, batch["images"]))
        elif self.spec.cameras:
            parts.insert(0, encode_cameras(self.backbone, batch["images"]).flatten(1))
        out = self.head(torch.cat(parts, dim=1))
        return out.view(-1, self.spec.chunk, self.spec.action_dim)

    def loss(self, batch: PolicyBatch) -> Tuple[torch.Tensor, Dict[str, float]]:
        l1 = masked_l1(self.predict_chunk(batch), batch["action"], batch["action_is_pad"])
        return l1, {"l1": float(l1.detach())}
