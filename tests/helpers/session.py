"""Helpers for the tests that drive real `collector collect` / `session` processes."""
from pathlib import Path

import h5py


def recorded_seconds(partial: Path) -> float:
    """Session time flushed so far into a file being written (0 while it cannot be read yet)."""
    try:
        with h5py.File(partial, "r", locking=False) as handle:
            stamps = handle["raw/joints/t"]
            return float(stamps[-1] - stamps[0]) if stamps.shape[0] > 1 else 0.0
    except (OSError, KeyError, ValueError):
        return 0.0
