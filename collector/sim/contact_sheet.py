"""Compose camera images into one labelled PNG: one row per condition, one column per camera."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from collector.errors import DataError

LABEL_HEIGHT = 22
ROW_LABEL_WIDTH = 170
BACKGROUND = (32, 32, 36)
TEXT = (235, 235, 235)


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize into width x height keeping the aspect ratio, letterboxed on the background colour."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    resized = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    tile = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    y0 = (height - resized.shape[0]) // 2
    x0 = (width - resized.shape[1]) // 2
    tile[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
    return tile


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float = 0.45) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, cv2.LINE_AA)


def compose(rows: Sequence[Tuple[List[str], Dict[str, np.ndarray]]], columns: Sequence[str],
            tile_size: Tuple[int, int] = (320, 240), title: str = "") -> np.ndarray:
    """rows: (label lines, {camera: RGB image}). Returns the RGB sheet."""
    tile_w, tile_h = tile_size
    top = LABEL_HEIGHT * (2 if title else 1)
    width = ROW_LABEL_WIDTH + tile_w * len(columns)
    height = top + tile_h * len(rows)
    sheet = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    if title:
        _text(sheet, title, 6, 16, 0.5)
    for col, name in enumerate(columns):
        _text(sheet, name, ROW_LABEL_WIDTH + col * tile_w + 6, top - 6)
    for row, (label_lines, images) in enumerate(rows):
        y = top + row * tile_h
        for k, line in enumerate(label_lines):
            _text(sheet, line, 6, y + 20 + 18 * k)
        for col, name in enumerate(columns):
            if name in images:
                x = ROW_LABEL_WIDTH + col * tile_w
                sheet[y:y + tile_h, x:x + tile_w] = _fit(images[name], tile_w, tile_h)
    return sheet


def write_png(path, sheet: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise DataError(f"could not write the contact sheet to {path}")
    return path
