"""Measure learning: protocols that run a learner against its frozen control, metrics, results.

- :mod:`~lifelong.eval.metrics` — pure functions: windowed curves, OLS slope with a bootstrap interval,
  AULC, first-vs-last gap, mean ± std over seeds, cumulative regret, ACC/BWT/FWT.
- :mod:`~lifelong.eval.loop` — :func:`run_stream`, the one predict → judge → log → learn loop.
- :mod:`~lifelong.eval.protocols` — :func:`prequential`, :func:`cumulative_regret`;
  :mod:`~lifelong.eval.adaptation` — :func:`adaptation_gap`, :func:`cold_start`;
  :mod:`~lifelong.eval.continual` — :func:`continual_matrix`.
- :mod:`~lifelong.eval.result` — :class:`Result` (JSON + PNG) and :mod:`~lifelong.eval.plots`.
"""

from lifelong.eval.adaptation import DEFAULT_KS, Task, adaptation_gap, cold_start, perf_by_k
from lifelong.eval.continual import continual_matrix
from lifelong.eval.loop import MakeEnv, MakeLearner, Trace, run_stream
from lifelong.eval.metrics import (
    ContinualScores,
    Slope,
    auc,
    aulc,
    continual_scores,
    first_last_gap,
    mean_std,
    ols_slope,
    rolling,
    slope_ci,
    windowed,
)
from lifelong.eval.metrics import cumulative_regret as regret_curve
from lifelong.eval.plots import plot_result
from lifelong.eval.protocols import cumulative_regret, prequential
from lifelong.eval.result import Curve, Result, Stat, environment_versions, merge_results

__all__ = [
    "DEFAULT_KS",
    "ContinualScores",
    "Curve",
    "MakeEnv",
    "MakeLearner",
    "Result",
    "Slope",
    "Stat",
    "Task",
    "Trace",
    "adaptation_gap",
    "auc",
    "aulc",
    "cold_start",
    "continual_matrix",
    "continual_scores",
    "cumulative_regret",
    "environment_versions",
    "first_last_gap",
    "mean_std",
    "merge_results",
    "ols_slope",
    "perf_by_k",
    "plot_result",
    "prequential",
    "regret_curve",
    "rolling",
    "run_stream",
    "slope_ci",
    "windowed",
]
