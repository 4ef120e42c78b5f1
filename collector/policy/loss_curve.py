"""The loss-curve PNG written beside a checkpoint (matplotlib, Agg: no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def plot_loss_curve(history: Sequence[Sequence[float]], out: Path, title: str,
                    validation: Sequence[Sequence[float]] = ()) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray(history, dtype=np.float64).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if len(rows):
        ax.plot(rows[:, 0], rows[:, 1], color="0.75", linewidth=0.8, label="training loss (per step)")
        window = max(1, len(rows) // 50)
        if window > 1:  # the per-step loss is noisy; a running mean shows the trend
            smooth = np.convolve(rows[:, 1], np.ones(window) / window, mode="valid")
            ax.plot(rows[window - 1:, 0], smooth, color="C0", label=f"running mean of {window} steps")
    val = np.asarray(validation, dtype=np.float64).reshape(-1, 2)
    if len(val):
        ax.plot(val[:, 0], val[:, 1], "o-", color="C3", label="validation L1 (prior z)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
