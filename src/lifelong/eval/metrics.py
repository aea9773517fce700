"""Learning metrics: pure functions on arrays of per-step scores.

A learning curve here is a per-step score (reward, accuracy, …) averaged over windows. What matters is
not the level but the change: the slope of the curve (with a bootstrap confidence interval), the area
under it, the gap between its first and last window, and the difference to a frozen control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lifelong.errors import InvalidInput

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Slope:
    """OLS slope of a curve and its bootstrap confidence interval ``[lo, hi]``."""

    slope: float
    lo: float
    hi: float
    level: float = 0.95

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.lo > 0 or self.hi < 0


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InvalidInput(f"must be one-dimensional, got shape {array.shape}", field=name)
    return array


def windowed(scores: ArrayLike, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean score over consecutive non-overlapping windows; returns (window ends, means).

    The x value of a window is the number of steps seen at its end, so curves of different window
    sizes line up. A last, partial window is kept if it holds at least half a window.
    """
    s = _vector(scores, "scores")
    if window < 1:
        raise InvalidInput(f"must be >= 1, got {window}", field="window")
    ends, means = [], []
    for start in range(0, len(s), window):
        chunk = s[start : start + window]
        if len(chunk) < max(1, window // 2) and start > 0:
            break
        ends.append(start + len(chunk))
        means.append(chunk.mean())
    return np.asarray(ends, dtype=np.float64), np.asarray(means)


def rolling(scores: ArrayLike, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start): one value per step."""
    s = _vector(scores, "scores")
    if window < 1:
        raise InvalidInput(f"must be >= 1, got {window}", field="window")
    c = np.cumsum(np.insert(s, 0, 0.0))
    idx = np.arange(1, len(s) + 1)
    lo = np.maximum(0, idx - window)
    return np.asarray((c[idx] - c[lo]) / (idx - lo))


def ols_slope(x: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of y on x (0 when x does not vary)."""
    xv, yv = _vector(x, "x"), _vector(y, "y")
    if len(xv) != len(yv):
        raise InvalidInput(f"{len(xv)} x values but {len(yv)} y values", field="y")
    dx = xv - xv.mean()
    denominator = float(dx @ dx)
    return 0.0 if denominator == 0 else float(dx @ (yv - yv.mean()) / denominator)


def slope_ci(x: ArrayLike, y: ArrayLike, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Slope:
    """OLS slope with a percentile bootstrap interval over resampled (x, y) pairs (Efron 1979)."""
    xv, yv = _vector(x, "x"), _vector(y, "y")
    if not 0 < level < 1:
        raise InvalidInput(f"must be in (0, 1), got {level}", field="level")
    slope = ols_slope(xv, yv)
    if len(xv) < 3:
        return Slope(slope, slope, slope, level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(xv), size=(n_boot, len(xv)))
    xs, ys = xv[idx], yv[idx]
    dx = xs - xs.mean(axis=1, keepdims=True)
    denominator = (dx * dx).sum(axis=1)
    numerator = (dx * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1)
    boot = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return Slope(slope, float(lo), float(hi), level)


def aulc(x: ArrayLike, y: ArrayLike) -> float:
    """Area under the learning curve, normalised by the x range (trapezoid rule).

    It lies in the range of the scores: the average level of the curve over the run, so a learner that
    improves sooner has a larger AULC than one that reaches the same end later.
    """
    xv, yv = _vector(x, "x"), _vector(y, "y")
    if len(xv) != len(yv) or len(xv) == 0:
        raise InvalidInput("x and y must be non-empty and of equal length", field="y")
    if len(xv) == 1 or xv[-1] == xv[0]:
        return float(yv.mean())
    return float(np.trapezoid(yv, xv) / (xv[-1] - xv[0]))


def first_last_gap(curve: ArrayLike) -> float:
    """Last window minus first window of a windowed curve: how much the run improved."""
    c = _vector(curve, "curve")
    if len(c) == 0:
        raise InvalidInput("the curve is empty", field="curve")
    return float(c[-1] - c[0])


def mean_std(values: ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) across seeds."""
    v = _vector(values, "values")
    if len(v) == 0:
        raise InvalidInput("no values", field="values")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def cumulative_regret(rewards: ArrayLike, best_rewards: ArrayLike) -> np.ndarray:
    """Regret after each step: the running sum of (best reward − reward)."""
    r, b = _vector(rewards, "rewards"), _vector(best_rewards, "best_rewards")
    if len(r) != len(b):
        raise InvalidInput(f"{len(r)} rewards but {len(b)} best rewards", field="best_rewards")
    return np.cumsum(b - r)


@dataclass(frozen=True)
class ContinualScores:
    acc: float
    bwt: float
    fwt: float


def continual_scores(R: np.ndarray | Sequence[Sequence[float]], b: ArrayLike) -> ContinualScores:
    """ACC, BWT and FWT of a continual-learning matrix.

    ``R[i, j]`` is the test score on task j after learning tasks 0..i (in the order learned) and
    ``b[j]`` the score of the untrained learner on task j. Lopez-Paz & Ranzato, "Gradient Episodic
    Memory for Continual Learning", NeurIPS 2017, eqs. (2)–(4):

        ACC = 1/T Σ_j R[T-1, j]
        BWT = 1/(T-1) Σ_{j<T-1} (R[T-1, j] − R[j, j])     (negative = forgetting)
        FWT = 1/(T-1) Σ_{j≥1} (R[j-1, j] − b_j)           (positive = transfer to unseen tasks)
    """
    m = np.asarray(R, dtype=np.float64)
    bv = _vector(b, "b")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(bv) or len(bv) == 0:
        raise InvalidInput(f"R must be T x T and b of length T, got {m.shape} and {len(bv)}", field="R")
    t = m.shape[0]
    acc = float(m[-1].mean())
    if t == 1:
        return ContinualScores(acc, 0.0, 0.0)
    bwt = float(np.mean([m[-1, j] - m[j, j] for j in range(t - 1)]))
    fwt = float(np.mean([m[j - 1, j] - bv[j] for j in range(1, t)]))
    return ContinualScores(acc, bwt, fwt)
