"""Compiled per-event updates for the factorization learners (Numba, ``nopython`` mode).

One event touches a handful of rows of width ``dim``; in NumPy that is dozens of small array operations
whose call overhead (~1 µs each) dominates the arithmetic. These kernels do the same updates in one
compiled loop, in place on the :class:`~lifelong.learners.recsys.id_table.IdTable` arrays. They are
compiled on first use and cached on disk (``cache=True``; :func:`numba_cache_dir` keeps a read-only
install working). The maths is documented where they are called:
:mod:`lifelong.learners.recsys.factorization` (squared loss) and :mod:`lifelong.learners.recsys.implicit`
(BPR).
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def _writable(path: Path) -> bool:
    """True when ``path`` is, or could be created as, a directory this process can write to."""
    for folder in (path, *path.parents):  # the nearest part that exists decides
        if folder.exists():
            return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    return False


def numba_cache_dir() -> str | None:
    """Where numba should cache compiled kernels when it would find nowhere itself, else None.

    With ``cache=True`` numba refuses to compile (at import) when neither the package's ``__pycache__``
    (a read-only install) nor the user cache (no writable HOME) can be written and NUMBA_CACHE_DIR is
    unset. Then this returns a fresh temporary directory, or "" when even that fails: compile uncached.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "numba"
    except RuntimeError:  # no home directory at all
        user_cache = None
    if _writable(Path(__file__).parent / "__pycache__") or (user_cache is not None and _writable(user_cache)):
        return None
    try:
        folder = tempfile.mkdtemp(prefix="lifelong-numba-")
    except OSError:
        return ""
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


_CACHE_DIR = numba_cache_dir()
if _CACHE_DIR:
    os.environ["NUMBA_CACHE_DIR"] = _CACHE_DIR  # read when numba is first imported (and on reloads)
    if "numba" in sys.modules:  # imported already: numba read its configuration then
        sys.modules["numba"].config.CACHE_DIR = _CACHE_DIR
CACHE = _CACHE_DIR != ""  # False: nowhere to write, compile in every process

from numba import njit  # noqa: E402  (after the cache directory is settled)

EPS = 1e-8


@njit(cache=CACHE, fastmath=True)
def _adagrad_scalar(values: np.ndarray, squares: np.ndarray, row: int, grad: float, lr: float) -> None:
    squares[row] += grad * grad
    values[row] -= lr * grad / math.sqrt(squares[row] + EPS)


@njit(cache=CACHE, fastmath=True)
def _side(
    bias: np.ndarray,
    vec: np.ndarray,
    row: int,
    feat_bias: np.ndarray,
    feat_vec: np.ndarray,
    features: np.ndarray,
    out: np.ndarray,
) -> float:
    """One side of the model: row bias + mean feature bias (returned), row vector + mean feature vector
    (written to ``out``); an absent row (−1) or no features contribute nothing."""
    total = 0.0
    out[:] = 0.0
    if row >= 0:
        total += bias[row]
        out += vec[row]
    n_f = features.shape[0]
    for f in features:
        total += feat_bias[f] / n_f
        out += feat_vec[f] / n_f
    return total


@njit(cache=CACHE, fastmath=True)
def _adagrad_rows(
    bias: np.ndarray,
    bias_g2: np.ndarray,
    vec: np.ndarray,
    vec_g2: np.ndarray,
    row: int,
    share: float,
    error: float,
    other: np.ndarray,
    lr: float,
    reg: float,
) -> None:
    """AdaGrad on row ``row`` for the squared loss, whose prediction used ``share`` × this row."""
    _adagrad_scalar(bias, bias_g2, row, -error * share + reg * bias[row], lr)
    for d in range(vec.shape[1]):
        g = -error * share * other[d] + reg * vec[row, d]
        vec_g2[row, d] += g * g
        vec[row, d] -= lr * g / math.sqrt(vec_g2[row, d] + EPS)


@njit(cache=CACHE, fastmath=True)
def squared_loss_step(
    mean: float,
    user_bias: np.ndarray,
    user_bias_g2: np.ndarray,
    user_vec: np.ndarray,
    user_vec_g2: np.ndarray,
    item_bias: np.ndarray,
    item_bias_g2: np.ndarray,
    item_vec: np.ndarray,
    item_vec_g2: np.ndarray,
    feat_bias: np.ndarray,
    feat_bias_g2: np.ndarray,
    feat_vec: np.ndarray,
    feat_vec_g2: np.ndarray,
    u: int,
    i: int,
    user_features: np.ndarray,
    item_features: np.ndarray,
    target: float,
    lr: float,
    reg: float,
) -> float:
    """AdaGrad step on ½(r − r̂)² + ½ reg ‖θ‖² for the touched rows; u or i = −1 when absent.

    r̂ = μ + (b_u + b̄_G(u)) + (b_i + b̄_F(i)) + (p_u + z̄_G(u))ᵀ(q_i + z̄_F(i)), with G, F the user's and
    the item's feature rows. Returns the prediction made before the step.
    """
    dim = user_vec.shape[1]
    p = np.empty(dim)
    q = np.empty(dim)
    prediction = mean + _side(user_bias, user_vec, u, feat_bias, feat_vec, user_features, p)
    prediction += _side(item_bias, item_vec, i, feat_bias, feat_vec, item_features, q)
    prediction += float(np.dot(p, q))
    error = target - prediction
    # Every gradient is taken at the parameters before the step: p and q are copies.
    if u >= 0:
        _adagrad_rows(user_bias, user_bias_g2, user_vec, user_vec_g2, u, 1.0, error, q, lr, reg)
    if i >= 0:
        _adagrad_rows(item_bias, item_bias_g2, item_vec, item_vec_g2, i, 1.0, error, p, lr, reg)
    for f in user_features:
        _adagrad_rows(
            feat_bias, feat_bias_g2, feat_vec, feat_vec_g2, f, 1.0 / user_features.shape[0], error, q, lr, reg
        )
    for f in item_features:
        _adagrad_rows(
            feat_bias, feat_bias_g2, feat_vec, feat_vec_g2, f, 1.0 / item_features.shape[0], error, p, lr, reg
        )
    return prediction


@njit(cache=CACHE, fastmath=True)
def bpr_step(
    p: np.ndarray,
    p_g2: np.ndarray,
    b: np.ndarray,
    b_g2: np.ndarray,
    q: np.ndarray,
    q_g2: np.ndarray,
    a: np.ndarray,
    a_g2: np.ndarray,
    c: np.ndarray,
    c_g2: np.ndarray,
    u: int,
    i: int,
    negatives: np.ndarray,
    context: np.ndarray,
    lr: float,
    reg: float,
) -> float:
    """AdaGrad step on the mean of −ln σ(x̂_ui − x̂_uj) over the negatives j (u = −1: no user row).

    ``context`` holds the rows of the user's recent items. Returns the mean loss before the step.
    """
    dim = q.shape[1]
    n_l = context.shape[0]
    pu = np.zeros(dim)
    if u >= 0:
        pu[:] = p[u]
    ctx = np.zeros(dim)
    for l_row in context:
        for d in range(dim):
            ctx[d] += a[l_row, d] / n_l
    js = negatives[negatives != i]
    n = js.shape[0]
    if n == 0:
        return 0.0
    g = np.empty(n)
    loss = 0.0
    grad_p = np.zeros(dim)
    grad_ctx = np.zeros(dim)
    for k in range(n):
        j = js[k]
        x = b[i] - b[j]
        for d in range(dim):
            x += (q[i, d] - q[j, d]) * pu[d] + (c[i, d] - c[j, d]) * ctx[d]
        x = min(30.0, max(-30.0, x))
        g[k] = -1.0 / (1.0 + math.exp(x)) / n  # d/dx of −ln σ(x), averaged over the pairs
        loss += math.log1p(math.exp(-x)) / n
        for d in range(dim):
            grad_p[d] += g[k] * (q[i, d] - q[j, d])
            grad_ctx[d] += g[k] * (c[i, d] - c[j, d])
    g_sum = g.sum()
    # Gradients use the parameters before the step: read everything first, then write.
    qi_grad = g_sum * pu + reg * q[i]
    ci_grad = g_sum * ctx + reg * c[i]
    for k in range(n):
        j = js[k]
        _adagrad_scalar(b, b_g2, j, -g[k] + reg * b[j], lr)
        for d in range(dim):
            gq = -g[k] * pu[d] + reg * q[j, d]
            q_g2[j, d] += gq * gq
            q[j, d] -= lr * gq / math.sqrt(q_g2[j, d] + EPS)
            if n_l > 0:
                gc = -g[k] * ctx[d] + reg * c[j, d]
                c_g2[j, d] += gc * gc
                c[j, d] -= lr * gc / math.sqrt(c_g2[j, d] + EPS)
    _adagrad_scalar(b, b_g2, i, g_sum + reg * b[i], lr)
    for d in range(dim):
        q_g2[i, d] += qi_grad[d] * qi_grad[d]
        q[i, d] -= lr * qi_grad[d] / math.sqrt(q_g2[i, d] + EPS)
        if n_l > 0:
            c_g2[i, d] += ci_grad[d] * ci_grad[d]
            c[i, d] -= lr * ci_grad[d] / math.sqrt(c_g2[i, d] + EPS)
        if u >= 0:
            gp = grad_p[d] + reg * pu[d]
            p_g2[u, d] += gp * gp
            p[u, d] -= lr * gp / math.sqrt(p_g2[u, d] + EPS)
    for l_row in context:
        for d in range(dim):
            ga = grad_ctx[d] / n_l + reg * a[l_row, d]
            a_g2[l_row, d] += ga * ga
            a[l_row, d] -= lr * ga / math.sqrt(a_g2[l_row, d] + EPS)
    return loss


def compile_kernels() -> None:
    """Compile (or load from the disk cache) every kernel now, so the first event is not slow."""
    rows, dim = np.zeros((2, 2)), np.zeros(2)
    empty = np.zeros(0, dtype=np.int64)
    squared_loss_step(
        0.0, dim.copy(), dim.copy(), rows.copy(), rows.copy(), dim.copy(), dim.copy(), rows.copy(),
        rows.copy(), dim.copy(), dim.copy(), rows.copy(), rows.copy(), 0, 0, empty, empty, 1.0, 0.1, 0.0,
    )  # fmt: skip
    bpr_step(
        rows.copy(), rows.copy(), dim.copy(), dim.copy(), rows.copy(), rows.copy(), rows.copy(),
        rows.copy(), rows.copy(), rows.copy(), 0, 0, np.array([1], dtype=np.int64), empty, 0.1, 0.0,
    )  # fmt: skip
