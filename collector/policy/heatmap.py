"""The evaluation's heat map PNG: success over lighting x weight, one panel per task (matplotlib, Agg).

Each square is annotated k/n (successes of rollouts); several themes of one (lighting, weight) are
summed into its square. A cell that was not evaluated stays blank.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np


def _panels(results: dict) -> Dict[str, Dict[Tuple[str, str], List[int]]]:
    """task -> (lighting, weight) -> [successes, rollouts]."""
    panels: Dict[str, Dict[Tuple[str, str], List[int]]] = {}
    for cell in results.get("cells") or []:
        counts = panels.setdefault(cell["task"], {}).setdefault((cell["lighting"], cell["weight"]), [0, 0])
        counts[0] += int(cell["successes"])
        counts[1] += int(cell["rollouts"])
    return panels


def plot_success_heatmap(results: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(results)
    tasks = list(panels) or ["(no rollouts)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(1.5 + 3.2 * len(tasks), 3.8), dpi=100, squeeze=False,
                             layout="constrained")
    image = None
    for ax, task in zip(axes[0], tasks):
        cells = panels.get(task, {})
        lightings = list(dict.fromkeys(key[0] for key in cells))
        weights = list(dict.fromkeys(key[1] for key in cells))
        rate = np.full((len(lightings), len(weights)), np.nan)
        for (lighting, weight), (ok, n) in cells.items():
            i, j = lightings.index(lighting), weights.index(weight)
            rate[i, j] = ok / n if n else np.nan
            ax.text(j, i, f"{ok}/{n}", ha="center", va="center", fontsize=9,
                    color="white" if n and ok / n < 0.35 else "black")
        image = ax.imshow(rate, vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(weights)), weights, fontsize=8)
        ax.set_yticks(range(len(lightings)), lightings, fontsize=8)
        ax.set_xlabel("weight")
        ax.set_ylabel("lighting")
        ax.set_title(task, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), label="success rate", shrink=0.85)
    rate = results.get("success_rate")
    fig.suptitle(f"{results.get('policy', 'policy')} {Path(str(results.get('checkpoint', ''))).name}: "
                 f"{'-' if rate is None else f'{100 * rate:.0f}%'} of {results.get('rollouts', 0)} rollouts",
                 fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
