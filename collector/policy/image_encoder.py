"""A small convolutional image encoder, trained from scratch with the policy.

ACT uses an ImageNet ResNet-18 (11 M parameters, pretrained weights downloaded at start). On this
project's CPU-only stations that backbone alone would take most of a training step, and the default
path must not download anything; a few strided 3x3 convolutions on downscaled frames train in
minutes and see enough of a table-top scene (objects are tens of pixels wide at 80x60).
GroupNorm rather than BatchNorm: its output does not depend on the other samples of a batch, so a
policy behaves the same in training, evaluation and the control loop (batch of one).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn


class ConvEncoder(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, out_channels, H / 2**stages, W / 2**stages) feature map."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), out_channels: int = 128):
        super().__init__()
        layers = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.GroupNorm(_groups(width), width),
                       nn.ReLU(inplace=True)]
            previous = width
        layers.append(nn.Conv2d(previous, out_channels, 1))
        self.net = nn.Sequential(*layers)
        self.stages = len(channels)
        # Pixels arrive in [0, 1]; centring them helps the first layer more than a learned bias does.
        self.register_buffer("pixel_mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, film: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """`film`: per stage a (B, 2 * width) tensor of (scale, shift) applied to that stage's
        normalized features (FiLM, as RT-1 conditions its EfficientNet on the instruction): the
        instruction can then decide which object the features respond to."""
        x = (images - self.pixel_mean) * 2.0
        if film is None:
            return self.net(x)
        layers = list(self.net)
        for stage, modulation in enumerate(film):
            conv, norm, relu = layers[3 * stage:3 * stage + 3]
            scale, shift = modulation.chunk(2, dim=1)
            x = relu(norm(conv(x)) * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None])
        for layer in layers[3 * len(film):]:
            x = layer(x)
        return x

    @property
    def stage_widths(self) -> List[int]:
        return [m.out_channels for m in self.net if isinstance(m, nn.Conv2d)][:self.stages]

    def output_size(self, image_size: Tuple[int, int]) -> Tuple[int, int]:
        h, w = image_size
        for _ in range(self.stages):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w


def _groups(width: int) -> int:
    for groups in (8, 4, 2):
        if width % groups == 0:
            return groups
    return 1


def encode_cameras(encoder: ConvEncoder, images: torch.Tensor,
                   film: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """(B, cameras, 3, H, W) -> (B, cameras, C, h, w): one shared encoder for every camera (the
    cameras differ in viewpoint, not in what an edge or a colour blob looks like; the policies add a
    per-camera position embedding instead of per-camera weights)."""
    b, n = images.shape[:2]
    if film is not None:  # the same modulation for every camera of a sample
        film = [m.repeat_interleave(n, dim=0) for m in film]
    features = encoder(images.flatten(0, 1), film)
    return features.view(b, n, *features.shape[1:])
