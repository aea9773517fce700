"""Measure learning: protocols that run a learner against its frozen control, metrics, results."""

from lifelong.eval.metrics import (
    ContinualScores,
    Slope,
    aulc,
    continual_scores,
    first_last_gap,
    mean_std,
    ols_slope,
    rolling,
    slope_ci,
    windowed,
)
from lifelong.eval.metrics import (
    cumulative_regret as regret_curve,
)
from lifelong.eval.protocols import (
    Trace,
    adaptation_gap,
    cold_start,
    continual_matrix,
    cumulative_regret,
    prequential,
    run_stream,
)
from lifelong.eval.result import Curve, Result, Stat, merge_results

__all__ = [
    "ContinualScores",
    "Curve",
    "Result",
    "Slope",
    "Stat",
    "Trace",
    "adaptation_gap",
    "aulc",
    "cold_start",
    "continual_matrix",
    "continual_scores",
    "cumulative_regret",
    "first_last_gap",
    "mean_std",
    "merge_results",
    "ols_slope",
    "prequential",
    "regret_curve",
    "rolling",
    "run_stream",
    "slope_ci",
    "windowed",
]
