"""Learning metrics: pure functions on arrays of per-step scores.

A learning curve here is a per-step score (reward, accuracy, …) averaged over windows. What matters is
not the level but the change: the slope of the curve (with a bootstrap confidence interval), the area
under it, the gap between its first and last window, and the difference to a frozen control. Each is
computed per seed; :func:`mean_std` summarises any of them over seeds. Bad arguments raise
:class:`~lifelong.errors.InvalidInput` naming the field.

>>> x, y = windowed([0, 0, 1, 0, 1, 1, 1, 1], 2)
>>> x.tolist(), y.tolist()
([2.0, 4.0, 6.0, 8.0], [0.0, 0.5, 1.0, 1.0])
>>> round(ols_slope(x, y), 3), aulc(x, y), first_last_gap(y)
(0.175, 0.6666666666666666, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata

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


def windowed(
    scores: ArrayLike, window: int, *, at: Literal["end", "centre"] = "end"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean score over consecutive non-overlapping windows of ``window`` steps; returns (x, means).

    Steps are numbered 1, 2, … . With ``at="end"`` the x of a window is the number of steps seen at its
    end (what the learner had seen when the window closed, so curves of different window sizes line
    up); with ``at="centre"`` it is the mean step number of the window. A last, partial window is kept
    if it holds at least ``window // 2`` steps.

    >>> windowed([1, 1, 0, 0, 1], 4)  # the last window of 1 step < 4/2 is dropped
    (array([4.]), array([0.5]))
    >>> windowed([1, 1, 0, 0, 1, 1], 2, at="centre")[0]
    array([1.5, 3.5, 5.5])
    """
    s = _vector(scores, "scores")
    _check_window(window)
    if at not in ("end", "centre"):
        raise InvalidInput(f"must be 'end' or 'centre', got {at!r}", field="at")
    xs, means = [], []
    for start in range(0, len(s), window):
        chunk = s[start : start + window]
        if len(chunk) < max(1, window // 2) and start > 0:
            break
        xs.append(start + len(chunk) if at == "end" else start + (len(chunk) + 1) / 2)
        means.append(chunk.mean())
    return np.asarray(xs, dtype=np.float64), np.asarray(means, dtype=np.float64)


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise InvalidInput(f"must be an integer >= 1, got {window!r}", field="window")


def rolling(scores: ArrayLike, window: int) -> np.ndarray:
    """Trailing moving average over the last ``window`` steps (shorter at the start): one value per step.

    >>> rolling([1, 0, 1, 1], 2)
    array([1. , 0.5, 0.5, 1. ])
    """
    s = _vector(scores, "scores")
    _check_window(window)
    c = np.cumsum(np.insert(s, 0, 0.0))
    idx = np.arange(1, len(s) + 1)
    lo = np.maximum(0, idx - window)
    return np.asarray((c[idx] - c[lo]) / (idx - lo))


def ols_slope(x: ArrayLike, y: ArrayLike) -> float:
    """Least-squares slope of y on x, ``Σ (x - x̄)(y - ȳ) / Σ (x - x̄)²`` (0 when x does not vary).

    >>> ols_slope([0, 1, 2, 3], [1, 3, 5, 7])
    2.0
    """
    xv, yv = _pair(x, y)
    dx = xv - xv.mean()
    denominator = float(dx @ dx)
    return 0.0 if denominator == 0 else float(dx @ (yv - yv.mean()) / denominator)


def _pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xv, yv = _vector(x, "x"), _vector(y, "y")
    if len(xv) != len(yv):
        raise InvalidInput(f"{len(xv)} x values but {len(yv)} y values", field="y")
    return xv, yv


def slope_ci(x: ArrayLike, y: ArrayLike, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Slope:
    """OLS slope with a percentile bootstrap interval over resampled (x, y) pairs (Efron 1979).

    ``n_boot`` resamples of the n pairs are drawn with replacement from ``np.random.default_rng(seed)``;
    the interval is their ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles. With fewer than three
    points there is nothing to resample and the interval is the slope itself.
    """
    xv, yv = _pair(x, y)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise InvalidInput(f"must be an integer >= 1, got {n_boot!r}", field="n_boot")
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
    # A resample whose x values are all equal has no slope; count it as 0 like ols_slope does.
    boot = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return Slope(slope, float(lo), float(hi), level)


def aulc(x: ArrayLike, y: ArrayLike) -> float:
    """Area under the learning curve, normalised by the x range (trapezoid rule).

    ``∫ y dx / (x_last - x_first)``: the average level of the curve over the run, so it lies in the
    range of the scores, and a learner that improves sooner has a larger AULC than one that reaches the
    same end later. ``x`` must be non-decreasing.

    >>> aulc([0, 10, 20], [0.5, 0.5, 0.5])
    0.5
    """
    xv, yv = _pair(x, y)
    if len(xv) == 0:
        raise InvalidInput("the curve is empty", field="y")
    if np.any(np.diff(xv) < 0):
        raise InvalidInput("must be non-decreasing", field="x")
    if len(xv) == 1 or xv[-1] == xv[0]:
        return float(yv.mean())
    return float(np.trapezoid(yv, xv) / (xv[-1] - xv[0]))


def first_last_gap(curve: ArrayLike) -> float:
    """Last window minus first window of a windowed curve: how much the run improved.

    >>> round(first_last_gap([0.2, 0.5, 0.9]), 6)
    0.7
    """
    c = _vector(curve, "curve")
    if len(c) == 0:
        raise InvalidInput("the curve is empty", field="curve")
    return float(c[-1] - c[0])


def mean_std(values: ArrayLike) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value), e.g. of a metric over seeds.

    >>> mean_std([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    v = _vector(values, "values")
    if len(v) == 0:
        raise InvalidInput("no values", field="values")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def cumulative_regret(rewards: ArrayLike, best_rewards: ArrayLike) -> np.ndarray:
    """Regret after each step: ``regret_t = Σ_{s<=t} (best_reward_s − reward_s)``.

    >>> cumulative_regret([1, 0, 1, 0], [1, 1, 1, 1])
    array([0., 1., 1., 2.])
    """
    r, b = _vector(rewards, "rewards"), _vector(best_rewards, "best_rewards")
    if len(r) != len(b):
        raise InvalidInput(f"{len(r)} rewards but {len(b)} best rewards", field="best_rewards")
    return np.asarray(np.cumsum(b - r))


@dataclass(frozen=True)
class ContinualScores:
    """Average accuracy, backward transfer and forward transfer (Lopez-Paz & Ranzato 2017)."""

    acc: float
    bwt: float
    fwt: float


def continual_scores(R: np.ndarray | Sequence[Sequence[float]], b: ArrayLike) -> ContinualScores:
    """ACC, BWT and FWT of a continual-learning matrix.

    ``R[i, j]`` is the test score on task j after learning tasks 0..i (in the order learned) and
    ``b[j]`` the score of the untrained learner on task j. Lopez-Paz & Ranzato, "Gradient Episodic
    Memory for Continual Learning", NeurIPS 2017, eqs. (2)–(4):

        ACC = 1/T Σ_j R[T-1, j]                               (2)
        BWT = 1/(T-1) Σ_{j<T-1} (R[T-1, j] − R[j, j])         (3)  negative = forgetting
        FWT = 1/(T-1) Σ_{j≥1} (R[j-1, j] − b_j)               (4)  positive = transfer to unseen tasks

    With a single task BWT and FWT are 0 (no pairs to compare).

    >>> s = continual_scores([[0.9, 0.3], [0.6, 0.8]], [0.1, 0.2])
    >>> round(s.acc, 6), round(s.bwt, 6), round(s.fwt, 6)
    (0.7, -0.3, 0.1)
    """
    m = np.asarray(R, dtype=np.float64)
    bv = _vector(b, "b")
    if m.ndim != 2 or m.shape[0] != m.shape[1] or len(bv) == 0:
        raise InvalidInput(f"must be a non-empty T x T matrix, got shape {m.shape}", field="R")
    if m.shape[0] != len(bv):
        raise InvalidInput(f"must have length T = {m.shape[0]}, got {len(bv)}", field="b")
    t = m.shape[0]
    acc = float(m[-1].mean())  # eq. (2)
    if t == 1:
        return ContinualScores(acc, 0.0, 0.0)
    bwt = float(np.mean([m[-1, j] - m[j, j] for j in range(t - 1)]))  # eq. (3)
    fwt = float(np.mean([m[j - 1, j] - bv[j] for j in range(1, t)]))  # eq. (4)
    return ContinualScores(acc, bwt, fwt)


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks for ties); NaN with one class only."""
    y = np.asarray(y)
    positives = y == 1
    n1 = int(positives.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
