"""PNG plots of results: one panel per kind of curve (score, regret, Perf(k), G(k), …), matrix heatmaps.

The learner is drawn solid, every frozen control dashed in grey, peers and other curves in their own
colours; each curve is the mean over seeds with a shaded ±1 std band. Matplotlib runs on the Agg
backend: files only, never a window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lifelong.errors import InvalidInput


class Curve(Protocol):
    """What a panel reads of a curve (:class:`lifelong.eval.Curve` has it; this module needs no import)."""

    @property
    def x(self) -> Sequence[float]: ...
    @property
    def per_seed(self) -> Sequence[Sequence[float]]: ...
    @property
    def kind(self) -> str: ...
    @property
    def xlabel(self) -> str: ...
    @property
    def ylabel(self) -> str: ...
    @property
    def mean(self) -> np.ndarray: ...
    @property
    def std(self) -> np.ndarray: ...


class Result(Protocol):
    """What a plot reads of a result (:class:`lifelong.eval.Result`)."""

    @property
    def name(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def seeds(self) -> Sequence[int]: ...
    @property
    def curves(self) -> Mapping[str, Curve]: ...
    @property
    def matrices(self) -> Mapping[str, Any]: ...


#: Panel titles of the curve kinds the protocols produce.
TITLES = {
    "score": "learning curve",
    "regret": "cumulative regret",
    "perf_by_k": "Perf(k) on the unseen environment",
    "gap_by_k": "adaptation gap G(k)",
}
#: Colours: the learner first; peers and others cycle through the rest.
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")
FROZEN_COLOUR = "0.35"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_result(result: Result, path: str | Path) -> Path:
    """Draw ``result``'s curves and matrices side by side into the PNG file ``path``."""
    plt = _pyplot()
    kinds = list(dict.fromkeys(curve.kind for curve in result.curves.values()))
    panels = len(kinds) + len(result.matrices)
    if panels == 0:
        raise InvalidInput("nothing to plot: the result has no curves or matrices", field="result")
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        _curve_panel(ax, kind, {n: c for n, c in result.curves.items() if c.kind == kind})
    for ax, (name, matrix) in zip(axes[0][len(kinds) :], result.matrices.items(), strict=False):
        _heatmap(fig, ax, name, np.asarray(matrix, dtype=np.float64))
    fig.suptitle(f"{result.name} — {result.protocol}, {len(result.seeds)} seed(s), mean ± std")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve_panel(ax: Any, kind: str, curves: Mapping[str, Curve]) -> None:
    colours = iter(PALETTE)
    for name, curve in curves.items():
        x, mean, std = np.asarray(curve.x, dtype=np.float64), curve.mean, curve.std
        frozen = "frozen" in name
        colour = FROZEN_COLOUR if frozen else next(colours, None)
        (line,) = ax.plot(
            x,
            mean,
            "--" if frozen else "-",
            color=colour,
            marker="o" if len(x) <= 12 else None,
            label=f"{name} (n={len(curve.per_seed)})",
            lw=1.8,
        )
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, lw=0)
    first = next(iter(curves.values()))
    ax.set_xlabel(first.xlabel)
    ax.set_ylabel(first.ylabel)
    ax.set_title(TITLES.get(kind, kind.replace("_", " ")))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _heatmap(fig: Any, ax: Any, name: str, m: np.ndarray) -> None:
    image = ax.imshow(m, cmap="viridis", origin="upper")
    ax.set_xlabel("test task j")
    ax.set_ylabel("after learning task i")
    ax.set_xticks(range(m.shape[1]))
    ax.set_yticks(range(m.shape[0]))
    ax.set_title(name, fontsize=10)
    finite = m[np.isfinite(m)]
    middle = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
    if m.size <= 400:  # numbers stay readable up to 20 x 20
        for (i, j), value in np.ndenumerate(m):
            colour = "black" if np.isfinite(value) and value > middle else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=colour, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046)
