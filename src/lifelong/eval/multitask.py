"""The multi-task lifelong protocol of Ruvolo & Eaton (ICML 2013, section 5).

For each of several random 50/50 train/test splits of every task:

1. hyper-parameters are chosen on the *training* half only, by inner validation splits of it;
2. ELLA learns the tasks one at a time in a random order; the batch baselines (STL, pooled, GO-MTL)
   fit all training data at once;
3. each method is scored on every task's test half: mean AUC over tasks (classification) or mean RMSE
   (regression); the score of a split is that mean, and results are mean ± std over splits.

ELLA also gives the two lifelong views: (a) the mean score over the tasks seen so far after each new
task, and (b) reverse transfer — each task's score right after it was learned versus after all tasks.

**Why not** :func:`~lifelong.eval.loop.run_stream`: this is the paper's protocol, and in it the unit of
learning is a *task* (all of its training rows at once, ``add_task``), the batch baselines fit everything
at once, and scores are computed on held-out halves after training, not on the next interaction. There
is no action to judge and no feedback per step. ELLA's one-step contract (``learn`` on a task-batch
step) is what the stream loop and ``log.replay()`` drive; this protocol calls ``add_task`` on the same
data so that ELLA and GO-MTL are compared exactly as in Table 1.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.eval.metrics import auc
from lifelong.learners.multitask.data import MultiTaskData


class TaskPredictor(Protocol):
    def predict_task(self, task: Any, X: np.ndarray) -> np.ndarray: ...


def rmse(y: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y) - np.asarray(predictions)) ** 2)))


def task_scores(model: TaskPredictor, data: MultiTaskData, tasks: Iterable[int] | None = None) -> list[float]:
    """The metric of every task (AUC for logistic, RMSE for squared); NaN where AUC is undefined."""
    metric = auc if data.loss == "logistic" else rmse
    tasks = range(data.n_tasks) if tasks is None else tasks
    return [metric(data.y[t], model.predict_task(t, data.X[t])) for t in tasks]


def mean_score(model: TaskPredictor, data: MultiTaskData, tasks: Iterable[int] | None = None) -> float:
    return float(np.nanmean(task_scores(model, data, tasks)))


def higher_is_better(data: MultiTaskData) -> bool:
    return data.loss == "logistic"


def random_split(
    data: MultiTaskData, seed: int, train_fraction: float = 0.5
) -> tuple[MultiTaskData, MultiTaskData]:
    """Every task's rows split at random into train and test (at least one row each)."""
    if not 0 < train_fraction < 1:
        raise InvalidInput(f"must be in (0, 1), got {train_fraction}", field="train_fraction")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for y in data.y:
        rows = rng.permutation(len(y))
        cut = min(max(1, int(len(y) * train_fraction)), len(y) - 1) if len(y) > 1 else 1
        train.append(rows[:cut])
        test.append(rows[cut:] if len(y) > 1 else rows[:cut])
    return data.subset(train), data.subset(test)


def grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """All combinations: ``grid(k=[1, 2], mu=[0.1])`` → ``[{"k": 1, "mu": 0.1}, {"k": 2, "mu": 0.1}]``."""
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


@dataclass
class Selection:
    params: dict[str, Any]
    score: float
    seconds: float
    scores: list[tuple[dict[str, Any], float]] = field(default_factory=list)


def select(
    fit: Callable[[dict[str, Any], MultiTaskData, int], TaskPredictor],
    candidates: Sequence[dict[str, Any]],
    train: MultiTaskData,
    *,
    inner_splits: int = 2,
    seed: int = 0,
) -> Selection:
    """Pick the candidate with the best mean validation score over inner splits of ``train`` only."""
    if not candidates:
        raise InvalidInput("no candidate hyper-parameters", field="candidates")
    started = time.perf_counter()
    folds = [random_split(train, seed=1000 * seed + i) for i in range(inner_splits)]
    sign = 1.0 if higher_is_better(train) else -1.0
    scored = []
    for params in candidates:
        values = [mean_score(fit(params, inner_train, seed), inner_val) for inner_train, inner_val in folds]
        scored.append((params, float(np.mean(values))))
    best = max(scored, key=lambda item: sign * item[1] if math.isfinite(item[1]) else -math.inf)
    return Selection(best[0], best[1], time.perf_counter() - started, scored)


@dataclass
class LifelongTrace:
    """What ELLA's sequential training shows: per-task times and the two lifelong views."""

    order: list[int]
    seconds_per_task: list[float]
    seen_so_far: list[float]  # (a): mean test score over the first i+1 tasks, after learning task i
    right_after: list[float]  # (b): score of the i-th task right after it was learned ...
    after_all: list[float]  # ... and after all tasks


def learn_in_order(
    model: Any, train: MultiTaskData, test: MultiTaskData, order: Sequence[int], *, views: bool = True
) -> LifelongTrace:
    """Feed tasks to an online multi-task learner (``add_task``) one by one, timing each."""
    times, seen, right_after = [], [], []
    for position, task in enumerate(order):
        started = time.perf_counter()
        model.add_task(task, train.X[task], train.y[task])
        times.append(time.perf_counter() - started)
        if views:
            scores = task_scores(model, test, order[: position + 1])
            seen.append(float(np.nanmean(scores)))
            right_after.append(scores[-1])
    after_all = task_scores(model, test, order) if views else []
    return LifelongTrace(list(order), times, seen, right_after, after_all)
