"""ELLA: the Efficient Lifelong Learning Algorithm (Ruvolo & Eaton, ICML 2013).

Every task's parameters are a sparse combination of a shared basis, θ_t = L s_t (L ∈ R^{d×k}). The
multi-task objective (eq. 1) is

    e_T(L) = 1/T Σ_t min_s { (1/n_t) Σ_i ℓ(f(x_i; L s), y_i) + μ‖s‖₁ } + λ‖L‖²_F.

ELLA makes it cheap to learn online, one task at a time, with two approximations:

1. a second-order expansion of each task's loss around its single-task optimum α_t (eq. 3),
   (1/n_t) Σ ℓ(L s) ≈ const + ‖α_t − L s‖²_{D_t}, D_t = ½ ∇²(loss at α_t)
   (see :mod:`lifelong.learners.multitask.single_task`);
2. each code s_t is computed once, when task t arrives (or comes back with more data), with the basis as
   it is then (eq. 4): s_t = argmin_s μ‖s‖₁ + ‖α_t − L s‖²_{D_t} — a Lasso on D_t^½ L, D_t^½ α_t.

Then the basis has a closed form given running sums (eqs. 5–6, section 3.3):

    A = Σ_t (s_t s_tᵀ) ⊗ D_t,   b = Σ_t vec(s_tᵀ ⊗ (α_tᵀ D_t)),
    vec(L) = (A/T + λ I)⁻¹ b/T,

so adding a task costs O(n_t d² + k³ d³) — nothing that grows with the number of tasks. A task that
comes back with more data has its old contribution to A and b removed before the new one is added.
Basis columns that become all zero are re-initialised at random.

As a ``lifelong`` learner a step is a batch of one task's data: the observation is
``{"task": t, "X": [[...], ...]}`` (or ``{"task": t, "x": [...]}`` for one example) and the labels
arrive as the correction (a list, or one value). ``predict({"task": t, "x": [...]})`` gives
P(y = 1) for the logistic loss and the prediction for the squared loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.multitask.single_task import (
    DEFAULT_LAM,
    DEFAULT_MU,
    DEFAULT_RIDGE,
    Loss,
    fit_single_task,
    lasso,
    sigmoid,
    sqrt_psd,
)
from lifelong.utils.validation import check_choice, check_scalar

Init = Literal["first_tasks", "random"]


@dataclass
class TaskModel:
    """What ELLA keeps per task: its single-task optimum α_t, D_t, its code s_t and (optionally) data."""

    theta: np.ndarray  # α_t
    D: np.ndarray
    s: np.ndarray
    n: int
    X: np.ndarray | None = None
    y: np.ndarray | None = None


class ELLA(Predictor):
    """Lifelong multi-task learning with a shared sparse basis.

    Parameters
    ----------
    k
        Number of basis components (latent tasks).
    loss
        ``"logistic"`` (labels 0/1) or ``"squared"`` (regression).
    mu
        L1 weight on the codes s_t (sparsity), μ of eq. 1.
    lam
        Ridge on the basis, λ of eq. 1.
    ridge
        Ridge of each single-task fit (ρ in :mod:`lifelong.learners.multitask.single_task`).
    bias
        Append a constant feature (last; not penalised by the single-task ridge).
    init
        ``"first_tasks"``: the first k tasks' optima become the first k basis columns (as in the
        authors' code); ``"random"``: L starts with standard normal entries.
    keep_data
        Keep each task's data so a task that returns is refitted on all of it. Without it, a returning
        task is refitted on its new batch only, and memory per task is O(d² + k) whatever its size.
    seed
        Seed of the random initialisation and re-initialisation of basis columns.
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
        init: Init = "first_tasks",
        keep_data: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self._configure(k, loss, mu, lam, ridge, bias, init, keep_data, seed)

    def _configure(
        self,
        k: int,
        loss: Loss,
        mu: float,
        lam: float,
        ridge: float,
        bias: bool,
        init: Init,
        keep_data: bool,
        seed: int,
    ) -> None:
        """Validate and set the hyper-parameters, and empty the learned state."""
        check_scalar(k, "k", int, min_val=1)
        for name, value in (("mu", mu), ("lam", lam), ("ridge", ridge)):  # finite: inf is out of bounds
            check_scalar(value, name, float, min_val=0, max_val=math.inf, include_boundaries="left")
        check_choice(loss, "loss", ("logistic", "squared"))
        check_choice(init, "init", ("first_tasks", "random"))
        self.k, self.loss, self.mu, self.lam, self.ridge = k, loss, float(mu), float(lam), float(ridge)
        self.bias, self.init, self.keep_data, self.seed = bias, init, keep_data, int(seed)
        self.d: int | None = None  # features including the bias, fixed by the first task
        self.L = np.zeros((0, k))
        self.A = np.zeros((0, 0))
        self.b = np.zeros(0)
        self.tasks: dict[str, TaskModel] = {}
        self._updates = 0

    @property
    def T(self) -> int:
        """Number of distinct tasks learned."""
        return len(self.tasks)

    # -- the algorithm ------------------------------------------------------------------------------
    def _design(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if self.bias:
            X = np.hstack([X, np.ones((len(X), 1))])
        return X

    def _start(self, d: int) -> None:
        self.d = d
        rng = np.random.default_rng(self.seed)
        self.L = rng.normal(size=(d, self.k))
        self.A = np.zeros((d * self.k, d * self.k))
        self.b = np.zeros(d * self.k)

    def add_task(
        self, task: Any, X: np.ndarray | Sequence[Sequence[float]], y: np.ndarray | Sequence[float]
    ) -> TaskModel:
        """Learn task ``task`` from a batch (X, y); a known task is revisited with the extra data."""
        key = str(task)
        design = self._design(np.asarray(X, dtype=np.float64))
        labels = np.asarray(y, dtype=np.float64).ravel()
        self._check_batch(design, labels)
        if self.d is None:
            self._start(design.shape[1])
        old = self.tasks.get(key)
        if old is not None:
            self._contribute(old, sign=-1.0)  # remove the returning task's old contribution
            if self.keep_data and old.X is not None and old.y is not None:
                design, labels = np.vstack([old.X, design]), np.concatenate([old.y, labels])
        fit = fit_single_task(self.loss, design, labels, self.ridge, self.bias)
        new_index = self.T  # 0-based index of this task if it is new
        if old is None and self.init == "first_tasks" and new_index < self.k:
            # The first k tasks seed the basis with their own optima (authors' initialisation).
            self.L[:, new_index] = fit.theta
            s = np.zeros(self.k)
            s[new_index] = 1.0
        else:
            s = self.encode(fit.theta, fit.D)
        model = TaskModel(
            fit.theta,
            fit.D,
            s,
            len(labels),
            design if self.keep_data else None,
            labels if self.keep_data else None,
        )
        self.tasks[key] = model
        self._contribute(model, sign=1.0)
        self._update_basis()
        return model

    def encode(self, theta: np.ndarray, D: np.ndarray) -> np.ndarray:
        """s = argmin_s μ‖s‖₁ + ‖θ − L s‖²_D (eq. 4), a Lasso on D^½ L and D^½ θ."""
        root = sqrt_psd(D)
        return lasso(root @ self.L, root @ theta, self.mu)

    def _contribute(self, task: TaskModel, sign: float) -> None:
        # A += (s sᵀ) ⊗ D ; b += vec(D θ sᵀ) = s ⊗ (D θ)   (column-major vec, eqs. 5–6)
        self.A += sign * np.kron(np.outer(task.s, task.s), task.D)
        self.b += sign * np.kron(task.s, task.D @ task.theta)

    def _update_basis(self) -> None:
        assert self.d is not None
        T = self.T
        system = self.A / T + self.lam * np.eye(self.d * self.k)
        # C order, as a restored basis has: the layout changes the last bits of every product with L.
        self.L = np.ascontiguousarray(
            np.linalg.solve(system, self.b / T).reshape((self.d, self.k), order="F"), dtype=np.float64
        )
        dead = np.flatnonzero((self.L**2).sum(axis=0) < 1e-10)
        if len(dead):
            rng = np.random.default_rng([self.seed, self._updates])
            self.L[:, dead] = rng.normal(size=(self.d, len(dead)))
        self._updates += 1

    def codes(self) -> tuple[list[str], np.ndarray]:
        """The task ids in the order learned and their codes as the columns of S (k × T)."""
        ids = list(self.tasks)
        S = np.column_stack([self.tasks[t].s for t in ids]) if ids else np.zeros((self.k, 0))
        return ids, S

    # -- prediction ---------------------------------------------------------------------------------
    def theta(self, task: Any) -> np.ndarray:
        """θ_t = L s_t with the current basis."""
        model = self.tasks.get(str(task))
        if model is None:
            raise NotFound(f"ELLA has not learned task {task!r}; known: {len(self.tasks)} task(s)")
        return np.asarray(self.L @ model.s)

    def predict_task(self, task: Any, X: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """P(y = 1) (logistic) or the predicted value (squared) for every row of X."""
        z = self._design(np.asarray(X, dtype=np.float64)) @ self.theta(task)
        return sigmoid(z) if self.loss == "logistic" else np.asarray(z)

    def predict(self, observation: JSON, scope: Scope | None = None) -> JSON:
        self.check_scope(scope)
        task, X, single = _task_batch(observation)
        values = self.predict_task(task, X)
        return float(values[0]) if single else values.tolist()

    # -- learner contract ---------------------------------------------------------------------------
    def _learn(self, step: Step) -> bool:
        task, X, single = _task_batch(step.interaction.observation)
        labels = step.correction
        if labels is None:
            return False
        y = np.asarray([labels] if single else labels, dtype=np.float64)
        if y.ndim != 1 or len(y) != len(X):
            raise InvalidInput(f"{len(X)} rows but labels of shape {y.shape}", field="correction")
        self.add_task(task, X, y)
        self.provenance.record(f"task:{task}", step)
        self.provenance.record("basis", step)
        return True

    def _check_batch(self, X: np.ndarray, y: np.ndarray) -> None:
        if len(X) == 0:
            raise InvalidInput("the batch is empty", field="X")
        if len(X) != len(y):
            raise InvalidInput(f"{len(X)} rows but {len(y)} labels", field="y")
        if self.d is not None and X.shape[1] != self.d:
            raise InvalidInput(
                f"{X.shape[1] - int(self.bias)} features, earlier tasks had {self.d - int(self.bias)}",
                field="X",
            )
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InvalidInput("features and labels must be finite (found NaN or inf)", field="X")
        if self.loss == "logistic" and not np.isin(y, (0.0, 1.0)).all():
            raise InvalidInput("logistic labels must be 0 or 1", field="y")

    def _get_state(self) -> dict[str, Any]:
        tasks = {}
        for key, m in self.tasks.items():
            entry: dict[str, Any] = {"theta": m.theta.copy(), "D": m.D.copy(), "s": m.s.copy(), "n": m.n}
            if m.X is not None and m.y is not None:
                entry.update(X=m.X.copy(), y=m.y.copy())
            tasks[key] = entry
        return {
            "config": self.config(),
            "d": self.d,
            "L": self.L.copy(),
            "A": self.A.copy(),
            "b": self.b.copy(),
            "updates": self._updates,
            "task_order": list(self.tasks),
            "tasks": tasks,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        c = state["config"]
        self._configure(
            int(c["k"]),
            c["loss"],
            c["mu"],
            c["lam"],
            c["ridge"],
            c["bias"],
            c["init"],
            c["keep_data"],
            c["seed"],
        )
        self.d = None if state["d"] is None else int(state["d"])
        self.L, self.A, self.b = np.array(state["L"]), np.array(state["A"]), np.array(state["b"])
        self._updates = int(state["updates"])
        self.tasks = {}
        for key in state["task_order"]:
            e = state["tasks"][key]
            self.tasks[key] = TaskModel(
                np.array(e["theta"]),
                np.array(e["D"]),
                np.array(e["s"]),
                int(e["n"]),
                None if "X" not in e else np.array(e["X"]),
                None if "y" not in e else np.array(e["y"]),
            )


def _task_batch(observation: JSON) -> tuple[str, np.ndarray, bool]:
    """(task, X, single) from ``{"task": t, "X": rows}`` or ``{"task": t, "x": row}``."""
    if not isinstance(observation, dict) or "task" not in observation:
        raise InvalidInput(
            'expected {"task": ..., "X": [[...]]} or {"task": ..., "x": [...]}', field="observation"
        )
    if "X" in observation:
        return str(observation["task"]), np.asarray(observation["X"], dtype=np.float64), False
    if "x" in observation:
        return str(observation["task"]), np.asarray([observation["x"]], dtype=np.float64), True
    raise InvalidInput('needs "X" (rows) or "x" (one row)', field="observation")
