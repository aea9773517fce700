"""PNG plots of results: one panel per kind of curve (score, regret, Perf(k), …) and matrix heatmaps.

The learner is drawn solid, its frozen control dashed, peers in their own colours; each curve is the
mean over seeds with a shaded ±1 std band.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lifelong.eval.result import Result


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: Result, path: str | Path) -> Path:
    plt = _pyplot()
    kinds = list(dict.fromkeys(curve.kind for curve in result.curves.values()))
    panels = len(kinds) + len(result.matrices)
    if panels == 0:
        raise ValueError("nothing to plot: the result has no curves or matrices")
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        curves = {name: c for name, c in result.curves.items() if c.kind == kind}
        for name, curve in curves.items():
            x, mean, std = np.asarray(curve.x), curve.mean, curve.std
            style = "--" if "frozen" in name else "-"
            (line,) = ax.plot(x, mean, style, marker="o" if len(x) <= 12 else None, label=name, lw=1.8)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
            first = curve
        ax.set_xlabel(first.xlabel)
        ax.set_ylabel(first.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(kind.replace("_", " "))
    for ax, (name, matrix) in zip(axes[0][len(kinds) :], result.matrices.items(), strict=False):
        m = np.asarray(matrix, dtype=np.float64)
        image = ax.imshow(m, cmap="viridis", origin="upper")
        ax.set_xlabel("test task j")
        ax.set_ylabel("after learning task i")
        ax.set_title(name)
        for (i, j), value in np.ndenumerate(m):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="w", fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{result.name} — {len(result.seeds)} seed(s), mean ± std")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
