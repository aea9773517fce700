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
improving. Plain alternation crawls along the scale ambiguity L S = (L c)(S / c) when μ and λ are small
(hundreds to over a thousand rounds, often stopped by ``max_iter`` before converging); each round
here also rescales the columns to balance the two penalties and extrapolates (see :class:`GOMTL`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lifelong.errors import NotFound
from lifelong.learners.multitask.data import MultiTaskData
from lifelong.learners.multitask.single_task import (
    DEFAULT_LAM,
    DEFAULT_MU,
    DEFAULT_RIDGE,
    Loss,
    fit_single_task,
    loss_value,
    sigmoid,
)
from lifelong.utils.validation import check_scalar


def add_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


class _Moments:
    """Per-task squared losses, gradients and Hessians of J_t at per-task parameters Θ (d × T) from each
    task's moments G_t = XᵀX/n, h_t = Xᵀy/n, c_t = yᵀy/n: J_t(θ) = θᵀG_tθ − 2h_tᵀθ + c_t."""

    def __init__(self, Xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
        self.G = np.stack([X.T @ X / len(y) for X, y in zip(Xs, ys, strict=True)])
        self.h = np.stack([X.T @ y / len(y) for X, y in zip(Xs, ys, strict=True)])
        self.c = np.array([float(y @ y) / len(y) for y in ys])

    def losses(self, thetas: np.ndarray) -> np.ndarray:
        Gt = np.einsum("tij,jt->ti", self.G, thetas)
        return np.asarray(np.einsum("ti,it->t", Gt - 2.0 * self.h, thetas) + self.c)

    def gradients(self, thetas: np.ndarray) -> np.ndarray:  # T × d
        return np.asarray(2.0 * (np.einsum("tij,jt->ti", self.G, thetas) - self.h))

    def hessians(self, thetas: np.ndarray) -> np.ndarray:  # T × d × d
        return np.asarray(2.0 * self.G)


class _Stacked:
    """All tasks' rows in one array, tasks contiguous: per-task logistic losses, gradients and Hessians
    (of the mean loss J_t, no ridge) at per-task parameters Θ (d × T) without a loop over tasks."""

    def __init__(self, Xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
        self.X, self.y = np.vstack(Xs), np.concatenate(ys)
        self.n = np.array([len(y) for y in ys], dtype=np.float64)
        self.starts = np.concatenate([[0], np.cumsum([len(y) for y in ys])[:-1]]).astype(np.intp)
        self.task = np.repeat(np.arange(len(ys)), [len(y) for y in ys])

    def _z(self, thetas: np.ndarray) -> np.ndarray:
        return np.asarray(np.einsum("ij,ij->i", self.X, thetas.T[self.task]))

    def _mean(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(
            np.add.reduceat(values, self.starts, axis=0) / self.n.reshape((-1,) + (1,) * (values.ndim - 1))
        )

    def losses(self, thetas: np.ndarray) -> np.ndarray:
        z = self._z(thetas)
        return self._mean(np.logaddexp(0.0, z) - self.y * z)

    def gradients(self, thetas: np.ndarray) -> np.ndarray:  # T × d
        return self._mean(self.X * (sigmoid(self._z(thetas)) - self.y)[:, None])

    def hessians(self, thetas: np.ndarray) -> np.ndarray:  # T × d × d
        p = sigmoid(self._z(thetas))
        weighted = self.X * (p * (1.0 - p))[:, None]
        ends = np.append(self.starts[1:], len(self.y))
        # one d × d product per task: cheaper than the n × d × d outer products a single array op needs
        return (
            np.stack([weighted[a:b].T @ self.X[a:b] for a, b in zip(self.starts, ends, strict=True)])
            / self.n[:, None, None]
        )


def lasso_batch(
    Q: np.ndarray, c: np.ndarray, mu: float, start: np.ndarray, *, tol: float = 1e-10
) -> np.ndarray:
    """argmin_v ½ vᵀQ_t v − c_tᵀv + μ‖v‖₁ for every t at once (Q: T × k × k, c and start: T × k).

    :func:`~lifelong.learners.multitask.single_task.lasso_quadratic` for a stack of problems: cyclic
    coordinate descent, each coordinate a soft threshold for all t together, and after every sweep
    the support and signs it found tried exactly (v_A = Q_AA⁻¹(c_A − μ sign_A)), kept for the problems
    where the optimality conditions hold, which are then done (tried on ``start`` first).
    """
    v = start.astype(np.float64).copy()
    k = v.shape[1]
    diagonal = np.einsum("tjj->tj", Q).copy()
    usable = diagonal > 0.0
    safe = np.where(usable, diagonal, 1.0)
    # Warm start: where the support and signs of ``start`` are still the optimal ones (the usual case
    # from one alternation round to the next) the exact solve settles the problem without a sweep.
    exact, ok = _exact_on_supports(Q, c, mu, v)
    v[ok] = exact[ok]
    todo = np.flatnonzero(~ok)
    if len(todo):  # else a few feature-sign rounds from the unpenalised solution's signs
        try:
            guess = np.linalg.solve(Q[todo], c[todo][..., None])[..., 0]
        except np.linalg.LinAlgError:
            guess = v[todo]
        for _ in range(2 * k):
            exact, ok, guess = _exact_on_supports(Q[todo], c[todo], mu, guess, revise=True)
            v[todo[ok]] = exact[ok]
            todo, guess = todo[~ok], guess[~ok]
            if not len(todo):
                break
    for _ in range(1000 if len(todo) else 0):
        Qs, cs, ds, us, vs = Q[todo], c[todo], diagonal[todo], usable[todo], v[todo]
        biggest = 0.0
        for j in range(k):
            rho = cs[:, j] - np.einsum("ti,ti->t", Qs[:, j, :], vs) + ds[:, j] * vs[:, j]
            shrunk = np.sign(rho) * np.maximum(np.abs(rho) - mu, 0.0) / safe[todo, j]
            new = np.where(us[:, j], shrunk, vs[:, j])
            biggest = max(biggest, float(np.abs(new - vs[:, j]).max()))
            vs[:, j] = new
        v[todo] = vs
        if biggest < tol:
            break
        exact, ok = _exact_on_supports(Qs, cs, mu, vs)
        v[todo[ok]] = exact[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    return v


def _exact_on_supports(
    Q: np.ndarray, c: np.ndarray, mu: float, v: np.ndarray, *, revise: bool = False
) -> Any:
    """For every problem, the exact minimiser on the support and signs of v, and whether it is optimal.

    With ``revise``, also a next guess (feature-sign search, Lee, Battle, Raina & Ng 2007): the
    solution with the coordinates whose sign it flipped dropped, and the inactive coordinates that
    violate optimality added with the sign their gradient asks for.
    """
    active = v != 0.0
    signs = np.sign(v)
    k = v.shape[1]
    both = active[:, :, None] & active[:, None, :]
    M = np.where(both, Q, 0.0) + np.eye(k) * (~active)[:, None, :]
    rhs = np.where(active, c - mu * signs, 0.0)
    try:
        solution = np.linalg.solve(M, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        failed = np.zeros(len(v), dtype=bool)
        return (v, failed, v) if revise else (v, failed)
    solution = np.where(active, solution, 0.0)
    kept = ~active | (np.sign(solution) == signs)
    residual = c - np.einsum("tij,tj->ti", Q, solution)
    violated = ~active & (np.abs(residual) > mu * (1 + 1e-9) + 1e-12)
    ok = np.all(kept, axis=1) & ~np.any(violated, axis=1)
    if not revise:
        return solution, ok
    guess = np.where(kept, solution, 0.0) + np.where(violated, 1e-12 * np.sign(residual), 0.0)
    return solution, ok, guess


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
    objective over one round below which the alternation stops (``converged`` is then True);
    ``max_iter`` bounds the rounds. ``history`` holds the objective after every round; it never rises.

    One round: every s_t given L, a rescaling of each basis column against its codes (an exact descent
    step along the scale ambiguity of L S, :meth:`_rebalance`), then L given S, then a safeguarded
    extrapolation along the round's move. Each block step is ``inner_steps`` damped (proximal) Newton
    steps on all tasks at once — one by default: for the squared loss one step is the exact block
    minimiser, and for the logistic loss an inexact block step is still a descent step, and near the
    optimum one Newton step is all a block needs, at a fraction of the cost of solving it to the end.
    """

    #: Safeguarded extrapolation after each round (kept only when it lowers the objective).
    extrapolate = True
    #: Newton steps per block and round.
    inner_steps = 1

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
        check_scalar(k, "k", int, min_val=1)
        self.k, self.loss, self.mu, self.lam, self.ridge, self.bias = k, loss, mu, lam, ridge, bias
        self.tol, self.max_iter = tol, max_iter
        self.L = np.zeros((0, k))
        self.S = np.zeros((k, 0))
        self.history: list[float] = []
        self.converged = False

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
        self.converged = False
        # Every step works on all tasks at once: for the squared loss from each task's moments (both block
        # steps are then exact, at a cost independent of n_t), for the logistic loss from the stacked rows.
        rows: _Moments | _Stacked = _Moments(Xs, ys) if self.loss == "squared" else _Stacked(Xs, ys)
        current = self._value(rows)
        beta, before = 0.5, (self.L.copy(), self.S.copy())
        for _ in range(self.max_iter):
            previous = current
            current = self._round(rows)
            if self.extrapolate:
                # Safeguarded extrapolation along the last round's move (Ang & Gillis, Neural
                # Computation 2019): kept only when it lowers the objective, so the sequence stays
                # monotone; β grows while it helps and halves when it does not.
                L, S = self.L, self.S
                self.L, self.S = L + beta * (L - before[0]), S + beta * (S - before[1])
                jumped = self._value(rows)
                if jumped < current:
                    current, beta = jumped, min(1.0, 1.5 * beta)
                else:
                    self.L, self.S, beta = L, S, beta / 2.0
                before = (L, S)
            self.history.append(current)
            # Stopping rule: the relative decrease of the objective over one round.
            if previous - current <= self.tol * max(abs(current), 1e-12):
                self.converged = True
                break
        self.thetas = {t: self.L @ self.S[:, t] for t in range(T)}
        return self

    def _round(self, rows: _Moments | _Stacked) -> float:
        """One alternation: every code s_t given L, the rescaling, then L given S; the new objective."""
        self._codes(rows)
        self._rebalance(self.S.shape[1])
        self._basis(rows)
        return self._value(rows)

    def _value(self, rows: _Moments | _Stacked) -> float:
        """The objective (eq. 1 × T) at the current L, S."""
        penalty = self.mu * np.abs(self.S).sum() + self.lam * self.S.shape[1] * (self.L**2).sum()
        return float(rows.losses(self.L @ self.S).sum() + penalty)

    def _rebalance(self, T: int) -> None:
        """Rescale each basis column and its codes, l_j → c l_j, S_j → S_j / c, to the c that minimises
        λT c²‖l_j‖² + μ‖S_j‖₁ / c: c³ = μ‖S_j‖₁ / (2λT‖l_j‖²).

        L S, hence the loss, is unchanged, and the penalty can only fall: an exact descent step along
        the scale ambiguity of L S that plain alternation crawls along (hundreds of rounds when μ and λ
        are small). A column with no codes left, or all zero, is left as it is.
        """
        if self.mu <= 0.0 or self.lam <= 0.0:
            return
        column = (self.L**2).sum(axis=0)
        codes = np.abs(self.S).sum(axis=1)
        for j in np.flatnonzero((column > 0.0) & (codes > 0.0)):
            c = (self.mu * codes[j] / (2.0 * self.lam * T * column[j])) ** (1.0 / 3.0)
            self.L[:, j] *= c
            self.S[j, :] /= c

    def _codes(self, rows: _Moments | _Stacked) -> None:
        """Every s_t: ``inner_steps`` proximal Newton steps on J_t(L s) + μ‖s‖₁ with backtracking (Lee,
        Sun & Saunders 2014), all tasks at once."""
        codes = self.S.T.copy()  # T × k
        current = rows.losses(self.L @ codes.T) + self.mu * np.abs(codes).sum(axis=1)
        for _ in range(self.inner_steps):
            thetas = self.L @ codes.T
            g = rows.gradients(thetas) @ self.L  # T × k: Lᵀ∇J_t
            H = self.L.T @ (rows.hessians(thetas) @ self.L) + 1e-10 * np.eye(self.k)  # T × k × k: LᵀH_tL
            # The quadratic model in v: ½ vᵀHv − (Hs − g)ᵀv + μ‖v‖₁
            step = lasso_batch(H, np.einsum("tij,tj->ti", H, codes) - g, self.mu, codes) - codes
            size = np.ones(len(codes))
            for _ in range(30):
                candidate = codes + size[:, None] * step
                new = rows.losses(self.L @ candidate.T) + self.mu * np.abs(candidate).sum(axis=1)
                worse = new > current
                if not worse.any():
                    break
                size[worse] *= 0.5
            keep = ~worse
            codes[keep], current[keep] = candidate[keep], new[keep]
        self.S = codes.T.copy()

    def _basis(self, rows: _Moments | _Stacked) -> None:
        """min_L Σ_t J_t(L s_t) + λT‖L‖²_F by ``inner_steps`` Newton steps on vec(L) (column-major),
        with backtracking."""
        d, k, T = self.L.shape[0], self.k, self.S.shape[1]

        def value(L: np.ndarray) -> float:
            return float(rows.losses(L @ self.S).sum() + self.lam * T * (L**2).sum())

        current = value(self.L)
        codes = self.S.T
        for _ in range(self.inner_steps):
            thetas = self.L @ self.S
            grad = rows.gradients(thetas).T @ codes + 2.0 * self.lam * T * self.L  # d × k
            # ∂² / ∂L[i,a] ∂L[j,b] = Σ_t s_ta s_tb H_t[i,j]; vec index a·d + i
            pairs = (codes[:, :, None] * codes[:, None, :]).reshape(T, k * k)
            blocks = (pairs.T @ rows.hessians(thetas).reshape(T, d * d)).reshape(k, k, d, d)
            H = blocks.transpose(0, 2, 1, 3).reshape(d * k, d * k)
            H += 2.0 * self.lam * T * np.eye(d * k)
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
            if new > current:
                return
            self.L, current = candidate, new

    def state(self) -> dict[str, Any]:
        return {"L": self.L, "S": self.S, "iterations": len(self.history), "converged": self.converged}
