"""Camera frames as a policy sees them: downscaled with area averaging, CHW float in [0, 1].

Training and the control loop both go through `policy_frame`, so a policy never meets pixels
prepared differently from the ones it learned on."""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np


def downscale(frame: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8; INTER_AREA averages the pixels a target pixel covers, so
    small objects fade rather than flicker in and out as a nearest-neighbour pick would."""
    height, width = image_size
    if frame.shape[:2] == (height, width):
        return np.ascontiguousarray(frame)
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def to_chw_float(frame: np.ndarray) -> np.ndarray:
    return frame.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)


def policy_frame(frame: np.ndarray, image_size: Tuple[int, int]) -> np.ndarray:
    """(3, h, w) float32 in [0, 1] from an (H, W, 3) uint8 RGB frame."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    return to_chw_float(downscale(frame, image_size))
