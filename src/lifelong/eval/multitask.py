"""The multi-task lifelong protocol of Ruvolo & Eaton (ICML 2013, section 5).

For each of several random 50/50 train/test splits of every task:

1. features (and a regression target) are standardised with statistics of the *training* half only,
   pooled over tasks (:class:`Standardizer`) — the same transform for every method;
2. hyper-parameters are chosen on the training half only, by inner validation splits of it, every
   method on its own grid;
3. ELLA learns the tasks one at a time in a random order; the batch baselines (STL, pooled, GO-MTL)
   fit all training data at once;
4. each method is scored on every task's test half, in the data's own units: mean AUC over tasks
   (classification) or mean RMSE (regression); the score of a split is that mean, and results are
   mean ± std over splits.

**Why standardise.** The penalties of every method (the single-task ridge ρ, ELLA's and GO-MTL's μ and
λ) are fixed numbers on a fixed grid; what they mean depends on the units of the features and of the
target. On data measured in its own units (blood pressure in mm Hg next to a serum value near 5, a
target in the hundreds) the grids no longer span sensible values and the selections turn erratic (on
the diabetes tasks of ``lifelong.bench.make_multitask_csv`` ELLA's RMSE ranged from 51 to 98 over 10
splits, 52 to 58 once standardised). One pooled affine change of units — the same for
all tasks, so a shared basis still means one function of the inputs in every task — fitted on the
training half, is what a scikit-learn ``Pipeline(StandardScaler(), model)`` does, and for data already
standardised (the land mine features) it changes next to nothing. It is fitted once per outer split;
the inner validation splits of the selection reuse it (their validation rows took part in the mean and
scale: a mild leak confined to the selection, traded for not refitting the transform per candidate).

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
from lifelong.eval.loop import progress_bar
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


@dataclass(frozen=True)
class Standardizer:
    """One affine change of units for every task, fitted on training rows pooled over the tasks.

    Features: x' = (x − m) / s, m and s each feature's mean and standard deviation over all tasks'
    training rows (s = 1 for a constant feature). For a regression (``loss="squared"``) the target too,
    y' = (y − m_y) / s_y; 0/1 labels are left alone. :meth:`predictor` wraps a model fitted on
    transformed data so that it takes raw features and predicts in the original units, which is how the
    protocol scores every method on the untouched test half.

    >>> import numpy as np
    >>> from lifelong.learners.multitask.data import MultiTaskData
    >>> train = MultiTaskData([np.array([[1.0, 10.0], [3.0, 30.0]])], [np.array([100.0, 300.0])], "squared")
    >>> scaling = Standardizer.fit(train)
    >>> scaling.transform(train).X[0].tolist(), scaling.transform(train).y[0].tolist()
    ([[-1.0, -1.0], [1.0, 1.0]], [-1.0, 1.0])
    """

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float = 0.0
    y_scale: float = 1.0

    @classmethod
    def fit(cls, train: MultiTaskData) -> Standardizer:
        X = np.vstack(train.X)
        scale = X.std(axis=0)
        scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(X).max(axis=0)))] = 1.0
        if train.loss != "squared":
            return cls(X.mean(axis=0), scale)
        y = np.concatenate(train.y)
        y_scale = float(y.std())
        return cls(X.mean(axis=0), scale, float(y.mean()), y_scale if y_scale > 0 else 1.0)

    @classmethod
    def identity(cls, n_features: int) -> Standardizer:
        return cls(np.zeros(n_features), np.ones(n_features))

    def features(self, X: np.ndarray) -> np.ndarray:
        return np.asarray((np.asarray(X, dtype=np.float64) - self.x_mean) / self.x_scale)

    def transform(self, data: MultiTaskData) -> MultiTaskData:
        ys = data.y if data.loss != "squared" else [(y - self.y_mean) / self.y_scale for y in data.y]
        return MultiTaskData([self.features(X) for X in data.X], ys, data.loss, data.name, data.meta)

    def predictor(self, model: TaskPredictor) -> TaskPredictor:
        """``model`` (fitted on transformed data) as a predictor of raw rows, in the original units."""
        return _Rescaled(model, self)


@dataclass(frozen=True)
class _Rescaled:
    model: TaskPredictor
    scaling: Standardizer

    def predict_task(self, task: Any, X: np.ndarray) -> np.ndarray:
        p = self.model.predict_task(task, self.scaling.features(X))
        return np.asarray(self.scaling.y_mean + self.scaling.y_scale * np.asarray(p))


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
    progress: bool = False,
    desc: str = "selection",
) -> Selection:
    """Pick the candidate with the best mean validation score over inner splits of ``train`` only.

    ``progress`` shows a bar over the candidate × inner-split fits (on a terminal).
    """
    if not candidates:
        raise InvalidInput("no candidate hyper-parameters", field="candidates")
    started = time.perf_counter()
    folds = [random_split(train, seed=1000 * seed + i) for i in range(inner_splits)]
    sign = 1.0 if higher_is_better(train) else -1.0
    scored = []
    with progress_bar(len(candidates) * len(folds), desc, progress, unit="fit") as bar:
        for params in candidates:
            values = []
            for inner_train, inner_val in folds:
                values.append(mean_score(fit(params, inner_train, seed), inner_val))
                bar.update(1)
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
    model: Any,
    train: MultiTaskData,
    test: MultiTaskData,
    order: Sequence[int],
    *,
    views: bool = True,
    scorer: TaskPredictor | None = None,
) -> LifelongTrace:
    """Feed tasks to an online multi-task learner (``add_task``) one by one, timing each.

    The views score ``scorer`` (default: ``model`` itself) on ``test``; pass
    ``Standardizer.predictor(model)`` when ``train`` is standardised and ``test`` is not.
    """
    scorer = model if scorer is None else scorer
    times, seen, right_after = [], [], []
    for position, task in enumerate(order):
        started = time.perf_counter()
        model.add_task(task, train.X[task], train.y[task])
        times.append(time.perf_counter() - started)
        if views:
            scores = task_scores(scorer, test, order[: position + 1])
            seen.append(float(np.nanmean(scores)))
            right_after.append(scores[-1])
    after_all = task_scores(scorer, test, order) if views else []
    return LifelongTrace(list(order), times, seen, right_after, after_all)
