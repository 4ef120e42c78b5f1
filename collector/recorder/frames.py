"""Camera frame encoding, decoding and fingerprints.

JPEG channel convention (same as ALOHA): the RGB array is handed to cv2.imencode unchanged, so
cv2.imdecode(buf, 1) — what ALOHA/ACT loaders call — returns the RGB array again. Generic JPEG
viewers therefore show red and blue swapped; use decode_jpeg (or cv2) to read frames.
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np

from collector.errors import DataError


def encode_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 -> 1-D uint8 JPEG bytes (libjpeg-turbo inside OpenCV; releases the GIL)."""
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise DataError(f"JPEG encoding failed for a {image.shape} {image.dtype} frame")
    return buf.reshape(-1)


def decode_jpeg(buf) -> np.ndarray:
    """JPEG bytes (trailing zero padding allowed, as in the ALOHA view) -> (H, W, 3) uint8."""
    data = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.reshape(-1)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{data.size} bytes do not decode as a JPEG frame")
    return image


def frame_crc32(stored: np.ndarray) -> int:
    """CRC32 of a frame as stored (pixels, or JPEG bytes), recorded per frame: QA finds frozen cameras
    (runs of equal CRCs) without decoding, and stored bytes can be checked for corruption.
    zlib releases the GIL on large buffers."""
    return zlib.crc32(memoryview(np.ascontiguousarray(stored)).cast("B")) & 0xFFFFFFFF
