"""The implicit-feedback ranker (BPR-trained FPMC) and its compiled kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelong.errors import InvalidInput
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners import (
    CoVisitation,
    ImplicitFactorization,
    Popularity,
    RankFusion,
    StreamingFactorization,
)
from lifelong.learners.recsys._kernels import bpr_step, squared_loss_step
from lifelong.state import digest


def watched(user: str, item: str, t: float) -> Step:
    x = Interaction(Scope(user=user), {"user": user, "item": item}, None, time=t)
    return Step(x, (Feedback.rating(x.id, 4.0, time=t),))


def taste_stream(n: int, seed: int = 0) -> list[Step]:
    """40 users, 8 clusters of 15 items; each user watches items of their own cluster, in a cycle."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(8, size=40)
    position = rng.integers(15, size=40)
    steps = []
    for t in range(n):
        u = int(rng.integers(40))
        position[u] = (position[u] + 1) % 15
        steps.append(watched(f"u{u}", f"i{cluster[u] * 15 + position[u]}", float(t)))
    return steps


def hit_rate(
    model: ImplicitFactorization | Popularity, steps: list[Step], freeze_at: int | None = None
) -> float:
    """Prequential HR@10 over the last half of the stream (repeat views allowed: nothing excluded)."""
    hits = []
    for n, step in enumerate(steps):
        if freeze_at is not None and n == freeze_at:
            model.freeze()
        obs = step.interaction.observation
        assert isinstance(obs, dict)
        if n >= len(steps) // 2:
            hits.append(obs["item"] in model.rank(obs["user"], k=10))
        model.learn(step)
    return float(np.mean(hits))


def test_ranker_beats_its_frozen_control_and_popularity() -> None:
    steps = taste_stream(6000)
    learner = hit_rate(ImplicitFactorization(dim=16, seed=1), steps)
    frozen = hit_rate(ImplicitFactorization(dim=16, seed=1), steps, freeze_at=300)
    popular = hit_rate(Popularity(), steps)
    # 10 of a user's 15 items is HR 0.67 if the cluster is known; popularity can only guess (~0.1).
    assert learner > 0.5 and learner > frozen + 0.2 and learner > popular + 0.3, (learner, frozen, popular)


def test_feedback_is_visible_at_the_next_rank() -> None:
    model = ImplicitFactorization(dim=8, window=0, seed=0)
    for n, item in enumerate(["a", "b", "c", "d"] * 3):
        model.learn(watched("bob", item, float(n)))
    before = model.rank("ada", k=4)
    for n in range(6):
        model.learn(watched("ada", "d", 100.0 + n))
    assert model.rank("ada", k=1) == ["d"] and model.version == 18
    assert "d" not in model.rank("ada", k=4, exclude=["d"]) and len(before) == 4


def test_replay_is_exact_and_state_round_trips() -> None:
    steps = taste_stream(800, seed=3)
    a, b = ImplicitFactorization(dim=8, min_count=2), ImplicitFactorization(dim=8, min_count=2)
    for step in steps:
        a.learn(step)
    b.learn_many(steps)
    assert digest(a.state_dict()) == digest(b.state_dict())
    c = ImplicitFactorization(dim=8)
    c.load_state_dict(a.state_dict())
    assert c.rank("u1") == a.rank("u1") and c.predict({"user": "u1", "item": "i3"}) == a.predict(
        {"user": "u1", "item": "i3"}
    )
    more = taste_stream(50, seed=4)
    a.learn_many(more)
    c.learn_many(more)  # the negative sampler's state travels with the snapshot
    assert digest(a.state_dict()) == digest(c.state_dict())


def test_forget_expire_and_bad_input() -> None:
    model = ImplicitFactorization(dim=4, ttl=10.0)
    model.learn(watched("ada", "old", 0.0))
    model.learn(watched("ada", "x", 1.0))
    model.learn(watched("bob", "new", 20.0))
    users, items = model.expire(now=20.0)
    assert users == ["ada"] and sorted(items) == ["old", "x"] and "ada" not in model.recent
    assert model.rank("bob") == ["new"] and model.predict({"user": "bob", "item": "x"}) == -math.inf
    assert model.forget_user("bob") and model.users.get("bob") is None and "bob" not in model.recent
    assert not model.forget_user("bob")
    reject = Interaction(Scope(user="bob"), {"user": "bob", "item": "new"}, None)
    assert not model.learn(Step(reject, (Feedback.reject(reject.id),)))  # no pair to learn from
    for bad in ({"dim": 0}, {"negatives": 0}, {"window": -1}, {"learning_rate": 0.0}):
        with pytest.raises(InvalidInput):
            ImplicitFactorization(**bad)  # type: ignore[arg-type]
    no_item = Interaction(Scope(user="bob"), {"user": "bob"}, None)
    with pytest.raises(InvalidInput, match="item"):
        model.learn(Step(no_item, (Feedback.accept(no_item.id),)))
    with pytest.raises(InvalidInput):
        model.rank("bob", k=0)


def _adagrad(value: np.ndarray, square: np.ndarray, grad: np.ndarray, lr: float) -> None:
    square += grad * grad
    value -= lr * grad / np.sqrt(square + 1e-8)


def test_bpr_kernel_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    dim, lr, reg = 5, 0.1, 0.01
    arrays = {name: rng.normal(size=(6, dim)) for name in ("p", "q", "a", "c")}
    arrays["b"] = rng.normal(size=6)
    squares = {name: np.abs(rng.normal(size=v.shape)) for name, v in arrays.items()}
    u, i, negs, context = 2, 1, np.array([0, 3, 4]), np.array([5, 3])
    ref = {k: v.copy() for k, v in arrays.items()}
    ref_sq = {k: v.copy() for k, v in squares.items()}
    # Reference: gradients of the mean of −ln σ(x_ui − x_uj), all taken at the parameters before the step.
    p, ctx = ref["p"][u].copy(), ref["a"][context].mean(axis=0)
    x = (
        ref["b"][i]
        - ref["b"][negs]
        + (ref["q"][i] - ref["q"][negs]) @ p
        + (ref["c"][i] - ref["c"][negs]) @ ctx
    )
    g = -1 / (1 + np.exp(x)) / len(negs)
    grads = {
        ("p", u): g @ (ref["q"][i] - ref["q"][negs]) + reg * p,
        ("q", i): g.sum() * p + reg * ref["q"][i],
        ("c", i): g.sum() * ctx + reg * ref["c"][i],
        ("b", i): np.array(g.sum() + reg * ref["b"][i]),
    }
    for n, j in enumerate(negs):
        grads[("q", j)] = -g[n] * p + reg * ref["q"][j]
        grads[("c", j)] = -g[n] * ctx + reg * ref["c"][j]
        grads[("b", j)] = np.array(-g[n] + reg * ref["b"][j])
    for row in context:
        grads[("a", row)] = (g @ (ref["c"][i] - ref["c"][negs])) / len(context) + reg * ref["a"][row]
    for (name, row), grad in grads.items():
        value, square = ref[name][row : row + 1], ref_sq[name][row : row + 1]
        _adagrad(value.reshape(-1), square.reshape(-1), grad.reshape(-1), lr)
    loss = bpr_step(
        arrays["p"], squares["p"], arrays["b"], squares["b"], arrays["q"], squares["q"], arrays["a"],
        squares["a"], arrays["c"], squares["c"], u, i, negs, context, lr, reg,
    )  # fmt: skip
    assert loss == pytest.approx(float(np.mean(np.log1p(np.exp(-x)))))
    for name in arrays:
        np.testing.assert_allclose(arrays[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_squared_loss_kernel_matches_a_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    dim, lr, reg, mean, target = 4, 0.05, 0.02, 3.5, 5.0
    vec = {name: rng.normal(size=(3, dim)) for name in ("user", "item", "feat")}
    bias = {name: rng.normal(size=3) for name in vec}
    vec_sq = {name: np.ones((3, dim)) for name in vec}
    bias_sq = {name: np.ones(3) for name in vec}
    u, i, user_feats, item_feats = 0, 2, np.array([2]), np.array([0, 1])
    p = vec["user"][u] + vec["feat"][user_feats].mean(axis=0)
    q = vec["item"][i] + vec["feat"][item_feats].mean(axis=0)
    b = bias["user"][u] + bias["feat"][user_feats].mean() + bias["item"][i] + bias["feat"][item_feats].mean()
    prediction = mean + b + p @ q
    e = target - prediction

    def stepped(value: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return value - lr * grad / np.sqrt(1 + grad**2 + 1e-8)  # AdaGrad from accumulators of 1

    expected = {
        "user": stepped(vec["user"][u], -e * q + reg * vec["user"][u]),
        "item": stepped(vec["item"][i], -e * p + reg * vec["item"][i]),
        "user feature": stepped(vec["feat"][2], -e * q + reg * vec["feat"][2]),
        "item feature": stepped(vec["feat"][0], -e / 2 * p + reg * vec["feat"][0]),
    }
    got = squared_loss_step(
        mean, bias["user"], bias_sq["user"], vec["user"], vec_sq["user"], bias["item"], bias_sq["item"],
        vec["item"], vec_sq["item"], bias["feat"], bias_sq["feat"], vec["feat"], vec_sq["feat"],
        u, i, user_feats, item_feats, target, lr, reg,
    )  # fmt: skip
    assert got == pytest.approx(prediction)
    actual = {"user": vec["user"][u], "item": vec["item"][i], "user feature": vec["feat"][2]}
    actual["item feature"] = vec["feat"][0]
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-9, err_msg=name)


def test_covisitation_follows_sequences_and_round_trips() -> None:
    model = CoVisitation(window=1, context=1)
    for n, user in enumerate(["a", "b", "c"]):
        for m, item in enumerate(["x", "y", "z"]):
            model.learn(watched(user, item, float(10 * n + m)))
    model.learn(watched("d", "x", 100.0))
    assert model.rank("d", k=1, exclude=["x"]) == ["y"]  # after x comes y
    assert model.rank("nobody", k=3) == ["x", "y", "z"]  # no history: popularity order, ties by arrival
    copy = CoVisitation()
    copy.load_state_dict(model.state_dict())
    assert copy.scores("d")[1].tolist() == model.scores("d")[1].tolist()
    assert model.forget_user("d") and model.rank("d", k=1) == ["x"]
    with pytest.raises(InvalidInput):
        CoVisitation(alpha=2.0)


def test_rank_fusion_beats_or_matches_its_members_and_learns_through_them() -> None:
    steps = taste_stream(4000, seed=5)
    fused = RankFusion({"mf": ImplicitFactorization(dim=16, seed=1), "cov": CoVisitation()})
    fused_hr = hit_rate(fused, steps)  # type: ignore[arg-type]
    members = fused.members
    assert members["mf"].version > 0 and members["cov"].version > 0 and len(fused.provenance) > 0
    alone = hit_rate(CoVisitation(), steps)  # type: ignore[arg-type]
    assert fused_hr > 0.5 and fused_hr >= alone - 0.05, (fused_hr, alone)
    copy = RankFusion({"mf": ImplicitFactorization(dim=16), "cov": CoVisitation()})
    copy.load_state_dict(fused.state_dict())
    assert copy.rank("u3") == fused.rank("u3") and fused.forget_user("u3")
    with pytest.raises(InvalidInput):
        RankFusion({})
    with pytest.raises(InvalidInput, match="scores"):
        RankFusion({"mf": StreamingFactorization()})
