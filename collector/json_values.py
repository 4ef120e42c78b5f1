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
