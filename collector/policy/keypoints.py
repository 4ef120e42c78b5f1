"""Image features as keypoints: where in the frame each learned feature is strongest (spatial softmax).

Why: the flattened feature map of collector.policy.image_encoder gives an MLP one weight per pixel
position, so a policy trained on ~60 takes learns the positions it saw and little between them (on
pick-and-place it reproduced 5 of 6 training scenes and 17 % of new layouts). A spatial softmax
(Levine et al. 2016, "End-to-end training of deep visuomotor policies"; robomimic and Diffusion
Policy use it on their image encoders) turns each feature channel into the expected (x, y) of its
activation: a coordinate that moves smoothly when an object moves, which is what the arm's targets
need. Colour still decides *which* channel fires, so the policy can tell the named object apart.

The map is kept fine (two stride-2 stages: 12x16 cells on a 48x64 frame) because a keypoint on a
3x4 map cannot locate a 4 cm object on a table.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from collector.policy.image_encoder import _groups


class KeypointEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 2 * keypoints): the expected (x, y) in [-1, 1] of each feature."""

    def __init__(self, channels: Sequence[int] = (32, 64, 64), strides: Sequence[int] = (2, 2, 1),
                 keypoints: int = 32):
        super().__init__()
        if len(channels) != len(strides):
            raise TypeError(f"keypoint encoder: {len(channels)} channel widths but {len(strides)} strides")
        layers, previous = [], 3
        for width, stride in zip(channels, strides):
            layers += [nn.Conv2d(previous, width, 3, stride=stride, padding=1), nn.GroupNorm(_groups(width), width),
                       nn.ReLU(inplace=True)]
            previous = width
        layers.append(nn.Conv2d(previous, keypoints, 1))
        self.net = nn.Sequential(*layers)
        self.keypoints = keypoints
        # learned sharpness: starts soft (gradients reach every cell) and sharpens as features settle
        self.log_temperature = nn.Parameter(torch.zeros(1))
        self.register_buffer("pixel_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    @property
    def output_dim(self) -> int:
        return 2 * self.keypoints

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.net((images - self.pixel_mean) * 2.0)
        return spatial_expectation(features, self.log_temperature.exp()).flatten(1)


def spatial_expectation(features: torch.Tensor, temperature) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, 2): per channel, the softmax-weighted mean (x, y) over the map, with
    x from -1 (left edge cell) to 1 (right) and y from -1 (top) to 1 (bottom)."""
    b, k, h, w = features.shape
    attention = F.softmax(features.flatten(2) / temperature, dim=-1).view(b, k, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=features.device, dtype=features.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=features.device, dtype=features.dtype)
    x = (attention.sum(dim=2) * xs).sum(dim=-1)
    y = (attention.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def encode_keypoints(encoder: KeypointEncoder, images: torch.Tensor) -> torch.Tensor:
    """(B, cameras, 3, H, W) -> (B, cameras * 2 * keypoints), one shared encoder for every camera."""
    b, n = images.shape[:2]
    return encoder(images.flatten(0, 1)).view(b, n * encoder.output_dim)
