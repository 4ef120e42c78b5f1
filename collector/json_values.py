"""numpy values and paths in metadata, status and wire messages serialise as their plain equivalents."""
from pathlib import Path

import numpy as np


def json_default(value):
    """`default=` for json.dumps: numpy scalars/arrays and paths become plain values; anything else is an error."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def tolerant_json_bytes(payload) -> bytes:
    """JSON for a live page that must keep going whatever a driver or a station reports: unknown objects
    become text, NaN and infinities null (a browser's JSON.parse refuses them, and one refused
    snapshot stops a page)."""
    import json

    try:
        return json.dumps(payload, default=json_text_default, allow_nan=False).encode()
    except ValueError:
        plain = json.loads(json.dumps(payload, default=json_text_default))
        return json.dumps(_finite(plain), allow_nan=False).encode()


def json_text_default(value):
    try:
        return json_default(value)
    except TypeError:
        return str(value)


def _finite(value):
    """`value` (plain JSON data) with every NaN and infinity replaced by None."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
