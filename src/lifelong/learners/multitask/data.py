"""Multi-task supervised data: a list of per-task (X, y) arrays, validated, with loaders and a generator.

- :func:`load_landmine` — land mine detection (Xue et al., JMLR 2007): 29 tasks (regions), 9 features,
  labels 0/1; ELLA's benchmark (Ruvolo & Eaton, ICML 2013, Table 1);
- :func:`synthetic_tasks` — the paper's synthetic regression tasks: θ_t = L s_t with a random basis
  L (12 features + bias, k = 6 latent components) and codes s_t with half their entries zero, Gaussian
  inputs and Gaussian noise;
- :class:`MultiTaskData` — any list of per-task arrays, checked for what would silently corrupt a fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lifelong.data import SOURCES, data_path
from lifelong.errors import InvalidInput, NotFound
from lifelong.learners.multitask.single_task import Loss


@dataclass
class MultiTaskData:
    """Tasks ``(X_t, y_t)``: same feature count everywhere, finite values, no empty task.

    For ``loss="logistic"`` labels must be 0 or 1.
    """

    X: list[np.ndarray]
    y: list[np.ndarray]
    loss: Loss
    name: str = "tasks"
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss not in ("squared", "logistic"):
            raise InvalidInput(f"must be 'squared' or 'logistic', got {self.loss!r}", field="loss")
        if len(self.X) != len(self.y):
            raise InvalidInput(f"{len(self.X)} feature arrays but {len(self.y)} label arrays", field="y")
        if not self.X:
            raise InvalidInput("no tasks", field="X")
        xs, ys = [], []
        d = None
        for t, (X, y) in enumerate(zip(self.X, self.y, strict=True)):
            X = np.asarray(X, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64).ravel()
            if X.ndim != 2:
                raise InvalidInput(f"task {t}: features must be a 2-d array, got shape {X.shape}", field="X")
            if len(X) == 0:
                raise InvalidInput(f"task {t} is empty", field="X")
            if len(X) != len(y):
                raise InvalidInput(f"task {t}: {len(X)} rows but {len(y)} labels", field="y")
            if d is None:
                d = X.shape[1]
            elif X.shape[1] != d:
                raise InvalidInput(f"task {t} has {X.shape[1]} features, task 0 has {d}", field="X")
            if not np.isfinite(X).all():
                raise InvalidInput(f"task {t}: features contain NaN or inf", field="X")
            if not np.isfinite(y).all():
                raise InvalidInput(f"task {t}: labels contain NaN or inf", field="y")
            if self.loss == "logistic" and not np.isin(y, (0.0, 1.0)).all():
                bad = sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:3]
                raise InvalidInput(f"task {t}: logistic labels must be 0 or 1, found {bad}", field="y")
            xs.append(X)
            ys.append(y)
        self.X, self.y = xs, ys

    @property
    def n_tasks(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return int(self.X[0].shape[1])

    def subset(self, rows: Sequence[np.ndarray]) -> MultiTaskData:
        """Keep ``rows[t]`` of every task t."""
        return MultiTaskData(
            [X[r] for X, r in zip(self.X, rows, strict=True)],
            [y[r] for y, r in zip(self.y, rows, strict=True)],
            self.loss,
            self.name,
            self.meta,
        )


def load_landmine(path: str | Path | None = None) -> MultiTaskData:
    """The land mine data: 29 tasks, 9 features, labels 0/1 (no bias column)."""
    from scipy.io import loadmat

    folder = data_path("landmine", path)
    file = folder / "landminedata.mat" if folder.is_dir() else folder
    if not file.is_file():
        raise NotFound(f"{file} is missing; it should be {SOURCES['landmine']}")
    try:
        mat = loadmat(file)
    except Exception as exc:  # scipy's reader raises many kinds on a damaged file; all mean "not this file"
        raise InvalidInput(
            f"not a readable .mat file ({type(exc).__name__}: {exc}); it should be {SOURCES['landmine']}",
            field=str(file),
        ) from exc
    try:
        features, labels = mat["feature"], mat["label"]
        X = [np.asarray(features[0, t], dtype=np.float64) for t in range(features.shape[1])]
        y = [np.asarray(labels[0, t], dtype=np.float64).ravel() for t in range(labels.shape[1])]
        return MultiTaskData(X, y, "logistic", name="landmine", meta={"source": SOURCES["landmine"]})
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:  # InvalidInput too
        reason = exc.reason if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
        raise InvalidInput(
            f"not the land mine data ({reason}); it should be {SOURCES['landmine']}", field=str(file)
        ) from exc


def synthetic_tasks(
    n_tasks: int = 100,
    n_features: int = 12,
    k: int = 6,
    n_per_task: int = 100,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[MultiTaskData, np.ndarray, np.ndarray]:
    """Regression tasks drawn from a known basis; returns (data, L, S).

    L ∈ R^{(d+1)×k} (the last row weighs the bias feature) and every s_t have standard normal entries,
    with half of each s_t set to zero; x ~ N(0, I_d); y = θ_tᵀ[x; 1] + ε with θ_t = L s_t and
    ε ~ N(0, noise²). The data holds the d raw features: learners add the bias feature themselves.
    """
    if k < 1 or n_features < 1 or n_tasks < 1 or n_per_task < 1:
        raise InvalidInput("n_tasks, n_features, k and n_per_task must be >= 1", field="k")
    rng = np.random.default_rng(seed)
    d = n_features + 1
    L = rng.normal(size=(d, k))
    S = rng.normal(size=(k, n_tasks))
    for t in range(n_tasks):
        S[rng.permutation(k)[: k // 2], t] = 0.0
    X, y = [], []
    for t in range(n_tasks):
        features = rng.normal(size=(n_per_task, n_features))
        theta = L @ S[:, t]
        X.append(features)
        y.append(features @ theta[:-1] + theta[-1] + noise * rng.normal(size=n_per_task))
    data = MultiTaskData(X, y, "squared", name="synthetic", meta={"seed": seed, "k": k, "noise": noise})
    return data, L, S
