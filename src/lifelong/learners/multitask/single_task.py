"""Single-task models and the pieces ELLA and GO-MTL build on: losses, their optimum and Hessian, Lasso.

One task's objective, for a linear model θ on data (X, y) of n rows, with ρ the single-task ridge:

    J(θ) = (1/n) Σ_i ℓ(y_i, θᵀx_i) + (ρ/n) ‖θ‖²            (the bias weight, if any, is not penalised)

with ℓ the squared loss (y − z)² or the logistic loss log(1 + e^z) − y z. Its minimiser θ* is the
single-task optimum α_t of Ruvolo & Eaton (ICML 2013, eq. 2) and

    D = ½ ∇²J(θ*)                                                     (ELLA, the line after eq. 3)

For the squared loss ∇²J = (2/n)(XᵀX + ρI) — the ½ cancels the 2 — so D = (XᵀX + ρI)/n; for the
logistic loss D = (1/2n) XᵀWX + (ρ/n) I with W = diag(σ(z)(1 − σ(z))). Then for any θ near θ*,
J(θ) ≈ J(θ*) + ‖θ − θ*‖²_D: the second-order expansion ELLA uses (eq. 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lifelong.errors import InvalidInput

Loss = Literal["squared", "logistic"]
#: Defaults of μ, λ and the single-task ridge ρ: the settings of the ELLA authors' land mine demo.
DEFAULT_MU = math.exp(-12)
DEFAULT_LAM = math.exp(-10)
DEFAULT_RIDGE = math.exp(-5)
#: A tiny ridge on the bias so a task whose labels are all one class still has a finite optimum.
BIAS_RIDGE = 1e-6


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))  # stable for large |z|


def loss_value(loss: Loss, X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    """Mean loss (1/n) Σ ℓ(y_i, θᵀx_i), without the ridge."""
    z = X @ theta
    if loss == "squared":
        return float(np.mean((y - z) ** 2))
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def penalty_diagonal(d: int, ridge: float, bias: bool) -> np.ndarray:
    """ρ on every weight, and BIAS_RIDGE on the last one when it is the bias."""
    p = np.full(d, float(ridge))
    if bias:
        p[-1] = BIAS_RIDGE
    return p


def objective(loss: Loss, X: np.ndarray, y: np.ndarray, theta: np.ndarray, ridge: float, bias: bool) -> float:
    """J(θ) of the module docstring."""
    p = penalty_diagonal(X.shape[1], ridge, bias)
    return loss_value(loss, X, y, theta) + float(theta @ (p * theta)) / len(y)


def gradient(
    loss: Loss, X: np.ndarray, y: np.ndarray, theta: np.ndarray, ridge: float, bias: bool
) -> np.ndarray:
    """∇J(θ)."""
    n = len(y)
    z = X @ theta
    residual = 2.0 * (z - y) if loss == "squared" else sigmoid(z) - y
    p = penalty_diagonal(X.shape[1], ridge, bias)
    return np.asarray(X.T @ residual / n + 2.0 * p * theta / n)


def hessian(
    loss: Loss, X: np.ndarray, y: np.ndarray, theta: np.ndarray, ridge: float, bias: bool
) -> np.ndarray:
    """∇²J(θ)."""
    n = len(y)
    if loss == "squared":
        weights = np.full(n, 2.0)
    else:
        s = sigmoid(X @ theta)
        weights = s * (1.0 - s)
    p = penalty_diagonal(X.shape[1], ridge, bias)
    return np.asarray((X.T * weights) @ X / n + np.diag(2.0 * p / n))


@dataclass(frozen=True)
class TaskFit:
    """The single-task optimum θ* and D = ½∇²J(θ*)."""

    theta: np.ndarray
    D: np.ndarray
    iterations: int


def fit_single_task(
    loss: Loss,
    X: np.ndarray,
    y: np.ndarray,
    ridge: float,
    bias: bool,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> TaskFit:
    """Minimise J exactly: a linear solve for the squared loss, Newton–IRLS for the logistic loss.

    Newton steps are damped by backtracking on J, so the iteration never increases the objective.
    """
    d = X.shape[1]
    if loss == "squared":
        p = penalty_diagonal(d, ridge, bias)
        theta = np.linalg.solve(X.T @ X + np.diag(p), X.T @ y)  # ∇J = 0
        return TaskFit(theta, hessian(loss, X, y, theta, ridge, bias) / 2.0, 1)
    theta = np.zeros(d)
    current = objective(loss, X, y, theta, ridge, bias)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        g = gradient(loss, X, y, theta, ridge, bias)
        step = np.linalg.solve(hessian(loss, X, y, theta, ridge, bias), g)
        decrement = float(g @ step)  # Newton decrement λ², Boyd & Vandenberghe §9.5.1
        if decrement / 2.0 < tol:
            break
        t = 1.0
        while True:
            candidate = theta - t * step
            value = objective(loss, X, y, candidate, ridge, bias)
            if value <= current - 0.25 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        theta, current = candidate, value
    return TaskFit(theta, hessian(loss, X, y, theta, ridge, bias) / 2.0, iterations)


def lasso(
    M: np.ndarray, target: np.ndarray, mu: float, *, tol: float = 1e-10, max_iter: int = 1000
) -> np.ndarray:
    """argmin_s ‖target − M s‖² + μ‖s‖₁ (the form of ELLA's eq. 4).

    Note the scaling: there is no ½ in front of the squared error. SPAMS' Lasso minimises
    ½‖·‖² + λ‖s‖₁, so it needs λ = μ/2; scikit-learn's minimises (1/2m)‖·‖² + α‖s‖₁ over m rows, so it
    needs α = μ/(2m). Here: ‖t − Ms‖² = ½ sᵀ(2MᵀM)s − (2Mᵀt)ᵀs + const, solved by :func:`lasso_quadratic`.
    """
    return lasso_quadratic(2.0 * M.T @ M, 2.0 * M.T @ target, mu, tol=tol, max_iter=max_iter)


def lasso_quadratic(
    Q: np.ndarray,
    c: np.ndarray,
    mu: float,
    *,
    start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> np.ndarray:
    """argmin_v ½ vᵀQv − cᵀv + μ‖v‖₁ for positive semi-definite Q, by cyclic coordinate descent.

    Coordinate j: v_j = S(c_j − Σ_{i≠j} Q_ji v_i, μ) / Q_jj, with S the soft threshold. Coordinate
    descent converges slowly when columns are correlated, so after every sweep the support and signs it
    found are tried exactly: v_A = Q_AA⁻¹ (c_A − μ sign_A), accepted when the optimality (KKT) conditions
    hold — signs unchanged on A and |c_j − Q_jA v_A| ≤ μ off A.
    """
    if mu < 0:
        raise InvalidInput(f"must be >= 0, got {mu}", field="mu")
    k = len(c)
    v = np.zeros(k) if start is None else start.astype(np.float64).copy()
    diagonal = np.diag(Q).copy()
    for _ in range(max_iter):
        biggest = 0.0
        for j in range(k):
            if diagonal[j] <= 0.0:
                continue
            rho = c[j] - Q[j] @ v + diagonal[j] * v[j]
            new = np.sign(rho) * max(abs(rho) - mu, 0.0) / diagonal[j]
            if new != v[j]:
                biggest = max(biggest, abs(new - v[j]))
                v[j] = new
        if biggest < tol:
            break
        exact = _exact_on_support(Q, c, mu, v)
        if exact is not None:
            return exact
    return v


def _exact_on_support(Q: np.ndarray, c: np.ndarray, mu: float, v: np.ndarray) -> np.ndarray | None:
    """The exact minimiser if the support and signs of ``v`` are the optimal ones, else None."""
    active = np.flatnonzero(v)
    signs = np.sign(v[active])
    solution = np.zeros_like(v)
    if len(active):
        try:
            solution[active] = np.linalg.solve(Q[np.ix_(active, active)], c[active] - mu * signs)
        except np.linalg.LinAlgError:
            return None
        if np.any(np.sign(solution[active]) != signs):
            return None
    inactive = np.setdiff1d(np.arange(len(v)), active)
    slack = np.abs(c[inactive] - Q[inactive] @ solution)
    return solution if np.all(slack <= mu * (1 + 1e-9) + 1e-12) else None


def sqrt_psd(D: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, V = np.linalg.eigh((D + D.T) / 2.0)
    return np.asarray((V * np.sqrt(np.clip(w, 0.0, None))) @ V.T)
