"""ELLA and its baselines: derivatives, sparse coding, the basis, revisits, replay, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners.multitask.baselines import GOMTL, Pooled, SingleTask
from lifelong.learners.multitask.data import MultiTaskData, load_landmine, synthetic_tasks
from lifelong.learners.multitask.ella import ELLA
from lifelong.learners.multitask.single_task import fit_single_task, gradient, hessian, lasso, objective
from lifelong.state import digest

LANDMINE = Path(__file__).resolve().parents[2] / "shared" / "data" / "landmine"


def finite_differences(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = eps
        out.append((f(x + e) - f(x - e)) / (2 * eps))
    return np.array(out)


@pytest.mark.parametrize("loss", ["squared", "logistic"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradient_and_hessian_match_finite_differences(loss: str, bias: bool) -> None:
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(size=(40, 4)), np.ones((40, 1))])
    y = (rng.random(40) < 0.4).astype(float) if loss == "logistic" else rng.normal(size=40)
    theta = rng.normal(size=5)
    ridge = 0.3
    g = gradient(loss, X, y, theta, ridge, bias)  # type: ignore[arg-type]
    assert np.allclose(
        g, finite_differences(lambda t: objective(loss, X, y, t, ridge, bias), theta), atol=1e-6
    )  # type: ignore[arg-type]
    H = hessian(loss, X, y, theta, ridge, bias)  # type: ignore[arg-type]
    numeric = finite_differences(lambda t: gradient(loss, X, y, t, ridge, bias), theta)  # type: ignore[arg-type]
    assert np.allclose(H, numeric.T, atol=1e-5)


def test_single_task_optimum_and_D_is_half_the_hessian() -> None:
    rng = np.random.default_rng(1)
    X = np.hstack([rng.normal(size=(60, 3)), np.ones((60, 1))])
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(size=60)
    fit = fit_single_task("squared", X, y, 0.5, True)
    assert np.allclose(gradient("squared", X, y, fit.theta, 0.5, True), 0, atol=1e-9)
    # squared loss: D = (XᵀX + ρI')/n — the ½ cancels the 2 of the squared loss's Hessian
    p = np.array([0.5, 0.5, 0.5, 1e-6])
    assert np.allclose(fit.D, (X.T @ X + np.diag(p)) / 60)
    labels = (X[:, 0] + rng.normal(size=60) > 0).astype(float)
    fit = fit_single_task("logistic", X, labels, 0.5, True)
    assert np.allclose(gradient("logistic", X, labels, fit.theta, 0.5, True), 0, atol=1e-8)
    assert np.allclose(fit.D, hessian("logistic", X, labels, fit.theta, 0.5, True) / 2)
    # the expansion J(θ) ≈ J(θ*) + ‖θ − θ*‖²_D holds near the optimum
    delta = 1e-3 * rng.normal(size=4)
    gap = objective("logistic", X, labels, fit.theta + delta, 0.5, True) - objective(
        "logistic", X, labels, fit.theta, 0.5, True
    )
    assert gap == pytest.approx(delta @ fit.D @ delta, rel=1e-2)


def test_lasso_scaling_and_optimality() -> None:
    rng = np.random.default_rng(2)
    M, t = rng.normal(size=(20, 5)), rng.normal(size=20)
    mu = 3.0
    s = lasso(M, t, mu)
    # KKT for ‖t − Ms‖² + μ‖s‖₁: 2Mᵀ(t − Ms) = μ sign(s) on the support, |·| ≤ μ off it
    g = 2 * M.T @ (t - M @ s)
    assert np.allclose(g[s != 0], mu * np.sign(s[s != 0]), atol=1e-6)
    assert np.all(np.abs(g[s == 0]) <= mu + 1e-6)
    assert np.allclose(lasso(M, t, 0.0), np.linalg.lstsq(M, t, rcond=None)[0], atol=1e-6)
    assert not lasso(M, t, 1e6).any()


def test_basis_spans_the_true_one() -> None:
    data, L_true, _ = synthetic_tasks(n_tasks=60, n_features=8, k=3, n_per_task=200, noise=0.1, seed=3)
    model = ELLA(k=3, loss="squared", mu=1e-3, lam=1e-6, ridge=1e-3)
    for t in range(data.n_tasks):
        model.add_task(t, data.X[t], data.y[t])
    ids, S = model.codes()
    assert ids[:3] == ["0", "1", "2"] and S.shape == (3, 60)
    assert np.allclose(model.L @ S[:, 10], model.theta(10))
    angles = subspace_angles(model.L, L_true)
    assert np.degrees(angles).max() < 10  # small principal angles: same subspace
    errors = [
        np.linalg.norm(
            model.theta(t)
            - fit_single_task(
                "squared", np.hstack([data.X[t], np.ones((200, 1))]), data.y[t], 1e-3, True
            ).theta
        )
        for t in range(5)
    ]
    assert max(errors) < 0.5


def recompute_A_b(model: ELLA) -> tuple[np.ndarray, np.ndarray]:
    A = sum(np.kron(np.outer(m.s, m.s), m.D) for m in model.tasks.values())
    b = sum(np.kron(m.s, m.D @ m.theta) for m in model.tasks.values())
    return A, b  # type: ignore[return-value]


def test_incremental_A_b_equal_recomputation_after_revisits() -> None:
    data, _, _ = synthetic_tasks(n_tasks=12, n_features=5, k=3, n_per_task=40, seed=4)
    model = ELLA(k=3, loss="squared", mu=0.01, lam=1e-4, ridge=0.1)
    for t in range(12):
        model.add_task(t, data.X[t][:20], data.y[t][:20])
    for t, rows in ((3, slice(20, 30)), (7, slice(20, 30)), (3, slice(30, 40))):  # tasks come back
        model.add_task(t, data.X[t][rows], data.y[t][rows])
    A, b = recompute_A_b(model)
    assert np.allclose(model.A, A) and np.allclose(model.b, b)
    assert model.T == 12 and model.tasks["3"].n == 40 and model.tasks["7"].n == 30
    # the basis is the closed form of eq. 6 given A and b
    L = np.linalg.solve(A / 12 + model.lam * np.eye(A.shape[0]), b / 12).reshape(model.L.shape, order="F")
    assert np.allclose(model.L, L)


def test_replaying_the_log_rebuilds_the_same_basis(tmp_path: Path) -> None:
    data, _, _ = synthetic_tasks(n_tasks=8, n_features=4, k=2, n_per_task=30, seed=5)
    log = ExperienceLog(tmp_path / "log.db")
    online = ELLA(k=2, loss="squared", mu=0.01, lam=1e-3)
    for t in [0, 1, 2, 3, 4, 5, 6, 7, 2]:
        rows = slice(0, 15) if t != 2 or "2" not in online.tasks else slice(15, 30)
        i = Interaction(Scope(tenant="ella"), {"task": t, "X": data.X[t][rows]}, None)
        fb = Feedback.correction(i.id, data.y[t][rows].tolist())
        log.append_many([i, fb])
        online.learn(Step(i, (fb,)))
    rebuilt = ELLA(k=2, loss="squared", mu=0.01, lam=1e-3)
    rebuilt.learn_many(log.replay(Scope(tenant="ella")))
    assert digest(rebuilt.state_dict()) == digest(online.state_dict())
    copy = ELLA().freeze()
    copy.load_state_dict(online.state_dict())
    assert copy.frozen and copy.version == online.version and copy.k == 2 and copy.loss == "squared"
    x = data.X[2][:3].tolist()
    assert copy.predict({"task": 2, "X": x}) == online.predict({"task": 2, "X": x})
    assert isinstance(online.predict({"task": 2, "x": x[0]}), float)


def test_bad_inputs_raise_invalid_input() -> None:
    X, y = np.ones((5, 3)), np.array([0, 1, 0, 1, 1.0])
    with pytest.raises(InvalidInput, match="features"):
        MultiTaskData([X, np.ones((5, 4))], [y, y], "logistic")
    with pytest.raises(InvalidInput, match="NaN"):
        MultiTaskData([np.full((5, 3), np.nan)], [y], "logistic")
    with pytest.raises(InvalidInput, match="empty"):
        MultiTaskData([np.ones((0, 3))], [np.ones(0)], "logistic")
    with pytest.raises(InvalidInput, match="0 or 1"):
        MultiTaskData([X], [y * 2], "logistic")
    model = ELLA(k=2)
    model.add_task(0, X, y)
    with pytest.raises(InvalidInput):
        model.add_task(1, np.ones((5, 4)), y)
    with pytest.raises(InvalidInput):
        model.add_task(1, X, y * 3)
    with pytest.raises(InvalidInput):
        model.add_task(1, np.full((5, 3), np.inf), y)
    with pytest.raises(InvalidInput):
        model.add_task(1, np.ones((0, 3)), np.ones(0))
    with pytest.raises(NotFound):
        model.predict_task(9, X)
    for bad in ({"k": 0}, {"mu": -1.0}, {"lam": float("nan")}, {"loss": "hinge"}, {"init": "zeros"}):
        with pytest.raises(InvalidInput):
            ELLA(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        model.predict({"X": [[1, 2, 3]]})


@pytest.mark.skipif(not (LANDMINE / "landminedata.mat").is_file(), reason=f"no land mine data in {LANDMINE}")
def test_landmine_loader_and_baselines_run() -> None:
    data = load_landmine(LANDMINE)
    assert data.n_tasks == 29 and data.n_features == 9 and sum(len(y) for y in data.y) == 14820
    small = data.subset([np.arange(60) for _ in range(29)])
    for model in (SingleTask(), Pooled(), GOMTL(k=2, max_iter=3)):
        model.fit(small)
        p = model.predict_task(0, data.X[0][:5])
        assert p.shape == (5,) and np.all((p >= 0) & (p <= 1))
    with pytest.raises(NotFound):
        load_landmine(LANDMINE.parent / "nowhere")


def test_benchmark_protocol_json(tmp_path: Path) -> None:
    from lifelong.bench.ella import compare

    data, _, _ = synthetic_tasks(n_tasks=8, n_features=4, k=2, n_per_task=40, seed=6)
    result = compare(data, 2, name="tiny", progress=False)
    result.save(tmp_path, "ella")
    saved = __import__("json").loads((tmp_path / "ella.json").read_text())
    assert saved["speedup_vs_gomtl"] > 0
    for method in ("ella", "gomtl", "stl", "pooled"):
        entry = saved["methods"][method]
        assert entry["metric"] == "rmse" and entry["train_seconds"] > 0 and len(entry["per_split"]) == 2
        assert entry["mean"] > 0 and entry["std"] >= 0
    # ELLA and GO-MTL share the basis structure the data was drawn from: both beat one pooled model
    assert saved["methods"]["ella"]["mean"] < saved["methods"]["pooled"]["mean"]
    assert len(saved["curves"]["ELLA: tasks seen so far"]["x"]) == 8
    assert (tmp_path / "ella.png").stat().st_size > 10_000


@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_gomtl_objective_decreases_every_round_and_converges(loss: str) -> None:
    data, _, _ = synthetic_tasks(n_tasks=8, n_features=4, k=2, n_per_task=40, seed=7)
    if loss == "logistic":
        data = MultiTaskData(data.X, [(y > np.median(y)).astype(float) for y in data.y], "logistic")
    # small μ and λ: the setting where plain alternation crawled along the scale of L S
    model = GOMTL(k=3, loss=loss, mu=np.exp(-12), lam=np.exp(-10), ridge=0.1).fit(data)  # type: ignore[arg-type]
    history = np.array(model.history)
    assert model.converged and len(history) < model.max_iter
    assert np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1]))
    # the recorded objective is eq. 1 (× T) at the returned L, S
    Xs = [model._design(X) for X in data.X]
    assert history[-1] == pytest.approx(model.objective(Xs, data.y), rel=1e-9)
    assert np.allclose(model.theta(0), model.L @ model.S[:, 0])


def test_gomtl_rebalance_keeps_the_fit_and_lowers_the_penalty() -> None:
    rng = np.random.default_rng(8)
    model = GOMTL(k=2, loss="squared", mu=0.1, lam=0.01)
    model.L, model.S = rng.normal(size=(5, 2)) * [10.0, 0.1], rng.normal(size=(2, 6))
    product, T = model.L @ model.S, 6

    def penalty() -> float:
        return float(model.mu * np.abs(model.S).sum() + model.lam * T * (model.L**2).sum())

    before = penalty()
    model._rebalance(T)
    assert np.allclose(model.L @ model.S, product) and penalty() < before
    # balanced (2λT‖l_j‖² = μ‖S_j‖₁ for every column): rescaling again changes nothing
    again = penalty()
    model._rebalance(T)
    assert penalty() == pytest.approx(again, rel=1e-12)


def test_protocol_is_invariant_to_the_units_of_features_and_target() -> None:
    from lifelong.bench.ella import compare

    data, _, _ = synthetic_tasks(n_tasks=8, n_features=3, k=2, n_per_task=30, seed=9)
    units = np.array([1000.0, 0.01, 7.0])
    scaled = MultiTaskData([X * units + 50.0 for X in data.X], [300.0 + 40.0 * y for y in data.y], "squared")
    plain = compare(data, 1, name="plain", progress=False)
    other = compare(scaled, 1, name="units", progress=False)
    for method in ("ella", "gomtl", "stl", "pooled"):
        assert other.metrics[f"{method}.rmse"].mean == pytest.approx(
            40.0 * plain.metrics[f"{method}.rmse"].mean, rel=1e-4
        )
    assert other.config["selected"] == plain.config["selected"]
    # GO-MTL chose its own hyper-parameters, on its own grid, and converged
    chosen = plain.config["selected"][0]["gomtl"]
    assert (
        set(chosen) == {"k", "mu", "lam", "ridge"}
        and chosen["ridge"] == plain.config["selected"][0]["stl"]["ridge"]
    )
    assert plain.metrics["gomtl.converged"].mean == 1.0 and plain.config["gomtl_grid_size"] == 18


def test_grids_cap_k_and_gomtl_has_its_own() -> None:
    from lifelong.bench.ella import ella_grid, gomtl_grid

    assert sorted({c["k"] for c in ella_grid(29, 9)}) == list(range(1, 8))  # the land mine grid: unchanged
    assert sorted({c["k"] for c in ella_grid(49, 1)}) == [1, 2]  # k ≤ d + 1: one feature and the bias
    assert sorted({c["k"] for c in gomtl_grid(29, 9)}) == [1, 2, 3, 5, 7] and len(gomtl_grid(29, 9)) == 45
    assert sorted({c["k"] for c in gomtl_grid(100, 12)}) == [1, 2, 3, 5, 7, 10]
