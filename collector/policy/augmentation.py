"""Image augmentation for training: small random shifts and brightness/contrast changes.

Why these two: a from-scratch CNN trained on ~100 takes memorises where things are to the pixel and
how bright the room was. A shift of a few pixels (DrQ's pad-and-crop, replicate padding) makes the
features tolerate the small camera and object displacements a new seed brings; a brightness and
contrast change per frame is the cheapest stand-in for lighting presets the training set lacks.
No hue change: the instruction names an object by its colour ("the red cube"), so colour is signal.

Applied to the batch on the training device after collation, never at validation or inference.
The random draws come from torch's global RNG, which the training seed fixes and every checkpoint
saves, so an augmented run is as reproducible (and resumable) as a plain one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from collector.errors import ConfigError

# What the learning study trains with (docs/learning.md) and `collector train --augment` means alone.
STUDY_AUGMENTATION = {"shift": 3, "brightness": 0.2, "contrast": 0.2}


@dataclass(frozen=True)
class Augmentation:
    shift: int = 0  # pixels, at the policy's image size
    brightness: float = 0.0  # frames scaled by a factor in [1 - b, 1 + b]
    contrast: float = 0.0  # deviation from the frame's mean scaled by [1 - c, 1 + c]

    @classmethod
    def from_state(cls, state: Optional[Dict]) -> "Augmentation":
        state = dict(state or {})
        unknown = set(state) - {"shift", "brightness", "contrast"}
        if unknown:
            raise ConfigError(f"augment: unknown key(s) {', '.join(sorted(unknown))} "
                              "(known: brightness, contrast, shift)")
        augmentation = cls(shift=int(state.get("shift", 0)), brightness=float(state.get("brightness", 0.0)),
                           contrast=float(state.get("contrast", 0.0)))
        if augmentation.shift < 0 or not 0 <= augmentation.brightness < 1 or not 0 <= augmentation.contrast < 1:
            raise ConfigError(f"augment: shift must be >= 0 and brightness, contrast in [0, 1), got {state}")
        return augmentation

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.brightness > 0 or self.contrast > 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, cameras, 3, H, W) in [0, 1] -> the same shape, each frame changed independently."""
        if not self.active or images.numel() == 0:
            return images
        b, n, c, h, w = images.shape
        frames = images.reshape(b * n, c, h, w)
        if self.shift > 0:
            frames = random_shift(frames, self.shift)
        if self.brightness > 0 or self.contrast > 0:
            frames = random_photometric(frames, self.brightness, self.contrast)
        return frames.reshape(b, n, c, h, w)


def random_shift(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad by `pad` pixels (edge pixels repeated) and crop back at a random offset per frame."""
    count, _, h, w = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (count, 2))
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


def random_photometric(frames: torch.Tensor, brightness: float, contrast: float) -> torch.Tensor:
    count = frames.shape[0]
    scale = 1.0 + (torch.rand(count, 1, 1, 1, device=frames.device) * 2 - 1) * brightness
    spread = 1.0 + (torch.rand(count, 1, 1, 1, device=frames.device) * 2 - 1) * contrast
    mean = frames.mean(dim=(1, 2, 3), keepdim=True)
    return ((frames - mean) * spread + mean * scale).clamp(0.0, 1.0)
