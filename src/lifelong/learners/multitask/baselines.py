"""Batch baselines for ELLA: single-task learning, one pooled model, and GO-MTL.

They see all tasks' training data at once (they are not online learners) and share ELLA's loss,
bias handling and prediction interface (``fit(data)``, ``predict_task(t, X)``), so one benchmark can
run them side by side.

GO-MTL (Kumar & Daumé, "Learning Task Grouping and Overlap in Multi-task Learning", ICML 2012) is the
batch problem ELLA approximates, in ELLA's scaling (Ruvolo & Eaton 2013, eq. 1, times T):

    min_{L, S}  Σ_t [ J_t(L s_t) + μ‖s_t‖₁ ] + λ T ‖L‖²_F,   J_t = mean loss of task t,

solved as Kumar & Daumé do, by alternating over S (one L1-regularised problem per task, here by proximal
Newton) and L (a smooth convex problem over all tasks' data, here by Newton on vec(L)), from L set to the
top-k left singular vectors of the single-task solutions (their section 3.2), until the objective stops
improving.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, NotFound
from lifelong.learners.multitask.data import MultiTaskData
from lifelong.learners.multitask.single_task import (
    DEFAULT_LAM,
    DEFAULT_MU,
    DEFAULT_RIDGE,
    Loss,
    fit_single_task,
    gradient,
    hessian,
    lasso_quadratic,
    loss_value,
    sigmoid,
)


def add_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


class _TaskLinearModel:
    """Holds one θ per task and predicts like ELLA."""

    loss: Loss
    bias: bool

    def __init__(self) -> None:
        self.thetas: dict[int, np.ndarray] = {}

    def _design(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return add_bias(X) if self.bias else X

    def theta(self, task: int) -> np.ndarray:
        if task not in self.thetas:
            raise NotFound(f"task {task!r} was not in the training data")
        return self.thetas[task]

    def predict_task(self, task: int, X: np.ndarray) -> np.ndarray:
        z = self._design(X) @ self.theta(task)
        return sigmoid(z) if self.loss == "logistic" else np.asarray(z)


class SingleTask(_TaskLinearModel):
    """STL: one ridge-regularised model per task, fitted on that task alone."""

    def __init__(self, *, loss: Loss = "logistic", ridge: float = DEFAULT_RIDGE, bias: bool = True) -> None:
        super().__init__()
        self.loss, self.ridge, self.bias = loss, ridge, bias

    def fit(self, data: MultiTaskData) -> SingleTask:
        for t, (X, y) in enumerate(zip(data.X, data.y, strict=True)):
            self.thetas[t] = fit_single_task(self.loss, self._design(X), y, self.ridge, self.bias).theta
        return self


class Pooled(_TaskLinearModel):
    """One model for all tasks, fitted on their pooled data."""

    def __init__(self, *, loss: Loss = "logistic", ridge: float = DEFAULT_RIDGE, bias: bool = True) -> None:
        super().__init__()
        self.loss, self.ridge, self.bias = loss, ridge, bias

    def fit(self, data: MultiTaskData) -> Pooled:
        X = self._design(np.vstack(data.X))
        theta = fit_single_task(self.loss, X, np.concatenate(data.y), self.ridge, self.bias).theta
        self.thetas = {t: theta for t in range(data.n_tasks)}
        return self


class GOMTL(_TaskLinearModel):
    """Batch GO-MTL by alternating optimisation of S and L (see the module docstring).

    Parameters mirror :class:`~lifelong.learners.multitask.ella.ELLA`: ``k``, ``mu``, ``lam``, and
    ``ridge`` for the single-task fits that initialise L. ``tol`` is the relative decrease of the
    objective below which the alternation stops; ``max_iter`` bounds it.
    """

    def __init__(
        self,
        k: int = 2,
        *,
        loss: Loss = "logistic",
        mu: float = DEFAULT_MU,
        lam: float = DEFAULT_LAM,
        ridge: float = DEFAULT_RIDGE,
        bias: bool = True,
        tol: float = 1e-6,
        max_iter: int = 1000,
    ) -> None:
        super().__init__()
        if k < 1:
            raise InvalidInput(f"must be >= 1, got {k}", field="k")
        self.k, self.loss, self.mu, self.lam, self.ridge, self.bias = k, loss, mu, lam, ridge, bias
        self.tol, self.max_iter = tol, max_iter
        self.L = np.zeros((0, k))
        self.S = np.zeros((k, 0))
        self.history: list[float] = []

    def objective(self, Xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
        total = sum(
            loss_value(self.loss, X, y, self.L @ self.S[:, t]) + self.mu * np.abs(self.S[:, t]).sum()
            for t, (X, y) in enumerate(zip(Xs, ys, strict=True))
        )
        return float(total + self.lam * len(Xs) * (self.L**2).sum())

    def fit(self, data: MultiTaskData) -> GOMTL:
        Xs = [self._design(X) for X in data.X]
        ys = list(data.y)
        T = len(Xs)
        # Initialisation: top-k left singular vectors of the single-task solutions, scaled.
        thetas = np.column_stack(
            [
                fit_single_task(self.loss, X, y, self.ridge, self.bias).theta
                for X, y in zip(Xs, ys, strict=True)
            ]
        )
        U, sigma, _ = np.linalg.svd(thetas, full_matrices=False)
        k = min(self.k, U.shape[1])
        self.L = np.zeros((Xs[0].shape[1], self.k))
        self.L[:, :k] = U[:, :k] * sigma[:k] / math.sqrt(T)
        self.S = np.zeros((self.k, T))
        self.history = []
        previous = math.inf
        for _ in range(self.max_iter):
            for t in range(T):
                self.S[:, t] = self._code(Xs[t], ys[t], self.S[:, t])
            self._basis(Xs, ys)
            current = self.objective(Xs, ys)
            self.history.append(current)
            if previous - current <= self.tol * max(abs(current), 1e-12):
                break
            previous = current
        self.thetas = {t: self.L @ self.S[:, t] for t in range(T)}
        return self

    def _code(self, X: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
        """min_s J_t(L s) + μ‖s‖₁ by proximal Newton with backtracking (Lee, Sun & Saunders 2014)."""

        def value(v: np.ndarray) -> float:
            return loss_value(self.loss, X, y, self.L @ v) + self.mu * float(np.abs(v).sum())

        current = value(s)
        for _ in range(50):
            theta = self.L @ s
            g = self.L.T @ gradient(self.loss, X, y, theta, 0.0, False)
            H = self.L.T @ hessian(self.loss, X, y, theta, 0.0, False) @ self.L + 1e-10 * np.eye(self.k)
            # The quadratic model in v: ½ vᵀHv − (Hs − g)ᵀv + μ‖v‖₁
            proposal = lasso_quadratic(H, H @ s - g, self.mu, start=s)
            step, t = proposal - s, 1.0
            while True:
                candidate = s + t * step
                new = value(candidate)
                if new <= current or t < 1e-8:
                    break
                t *= 0.5
            if current - new <= 1e-12 * max(abs(current), 1.0):
                return candidate if new <= current else s
            s, current = candidate, new
        return s

    def _basis(self, Xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
        """min_L Σ_t J_t(L s_t) + λT‖L‖²_F by Newton on vec(L) (column-major), with backtracking."""
        d, k, T = self.L.shape[0], self.k, len(Xs)

        def value(L: np.ndarray) -> float:
            fit = sum(
                loss_value(self.loss, X, y, L @ self.S[:, t])
                for t, (X, y) in enumerate(zip(Xs, ys, strict=True))
            )
            return float(fit + self.lam * T * (L**2).sum())

        current = value(self.L)
        for _ in range(50):
            grad = 2.0 * self.lam * T * self.L
            H = 2.0 * self.lam * T * np.eye(d * k)
            for task, (X, y) in enumerate(zip(Xs, ys, strict=True)):
                s = self.S[:, task]
                if not s.any():
                    continue
                theta = self.L @ s
                grad += np.outer(gradient(self.loss, X, y, theta, 0.0, False), s)
                H += np.kron(np.outer(s, s), hessian(self.loss, X, y, theta, 0.0, False))
            step = np.linalg.solve(H, grad.reshape(-1, order="F")).reshape((d, k), order="F")
            decrement = float((grad * step).sum())
            if decrement / 2.0 < 1e-12:
                return
            size = 1.0
            while True:
                candidate = self.L - size * step
                new = value(candidate)
                if new <= current - 0.25 * size * decrement or size < 1e-8:
                    break
                size *= 0.5
            self.L, current = candidate, new

    def state(self) -> dict[str, Any]:
        return {"L": self.L, "S": self.S, "iterations": len(self.history)}
