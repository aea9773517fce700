"""Collision-free id tables and the streaming factorization learner."""

from __future__ import annotations

import numpy as np
import pytest

from lifelong.errors import InvalidInput
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners.recsys.factorization import StreamingFactorization
from lifelong.learners.recsys.id_table import IdTable
from lifelong.state import digest


def test_id_table_admits_grows_expires_and_forgets() -> None:
    table = IdTable(min_count=2, ttl=10.0, capacity=2)
    table.register("vec", 3)
    assert table.row("a", 0.0) is None  # seen once: not admitted yet
    assert table.row("a", 1.0) == 0 and "a" in table
    table.arrays["vec"][0] = 7.0
    for n in range(5):  # grows past the initial capacity without touching existing rows
        table.row(f"x{n}", 2.0)
        table.row(f"x{n}", 2.0)
    assert table.capacity >= 6 and len(table) == 6 and np.all(table.arrays["vec"][0] == 7.0)
    assert table.row("a", 12.0) == 0  # a sighting refreshes last_seen
    expired = table.expire(now=13.0)
    assert sorted(expired) == [f"x{n}" for n in range(5)] and "a" in table
    assert all(np.all(table.arrays["vec"][r] == 0) for r in table.free)
    freed = set(table.free)
    assert table.remove("a") and not table.remove("a") and len(table) == 0
    table.row("b", 20.0)
    assert table.row("b", 20.0) in freed | {0}  # a recycled row is reused, the table does not grow
    back = IdTable.from_state(table.state())
    assert back.rows == table.rows and np.array_equal(back.arrays["vec"], table.arrays["vec"])
    with pytest.raises(InvalidInput):
        IdTable(min_count=0)
    with pytest.raises(InvalidInput):
        IdTable(ttl=0)


def low_rank_ratings(n: int, seed: int = 0) -> list[Step]:
    rng = np.random.default_rng(seed)
    users, items = rng.normal(size=(40, 3)), rng.normal(size=(60, 3))
    steps = []
    for t in range(n):
        u, i = int(rng.integers(40)), int(rng.integers(60))
        rating = float(np.clip(3 + users[u] @ items[i] + rng.normal(0, 0.3), 1, 5))
        x = Interaction(Scope(user=f"u{u}"), {"user": f"u{u}", "item": f"i{i}"}, None, time=float(t))
        steps.append(Step(x, (Feedback.rating(x.id, rating, time=t + 0.5),)))
    return steps


def prequential_rmse(model: StreamingFactorization, steps: list[Step], warmup: int | None = None) -> float:
    errors = []
    for n, step in enumerate(steps):
        if warmup is not None and n == warmup:
            model.freeze()
        errors.append((model.predict(step.interaction.observation) - step.rating) ** 2)  # type: ignore[operator]
        model.learn(step)
    return float(np.sqrt(np.mean(errors[-1000:])))


def test_learning_beats_the_frozen_control() -> None:
    steps = low_rank_ratings(6000)
    learner = prequential_rmse(StreamingFactorization(dim=6, seed=1), steps)
    frozen = prequential_rmse(StreamingFactorization(dim=6, seed=1), steps, warmup=300)
    assert learner < 0.8 * frozen, (learner, frozen)


def test_feedback_is_visible_at_the_next_rank_and_forget_removes_the_row() -> None:
    model = StreamingFactorization(dim=4)
    for item in ("a", "b", "c"):
        x = Interaction(Scope(user="ada"), {"user": "ada", "item": item}, None)
        model.learn(Step(x, (Feedback.rating(x.id, 3.0),)))
    x = Interaction(Scope(user="ada"), {"user": "ada", "item": "c"}, None)
    for _ in range(3):
        model.learn(Step(x, (Feedback.rating(x.id, 5.0),)))
    assert model.rank("ada", k=1) == ["c"]  # learned at once
    assert model.rank("ada", k=3, exclude=["c"])[0] != "c"
    assert model.forget_user("ada") and model.users.get("ada") is None
    assert model.predict({"user": "ada", "item": "c"}) == pytest.approx(model.score("nobody", "c"))


def test_side_features_help_unseen_items() -> None:
    genres = {"i1": ["drama"], "i2": ["drama"], "i3": ["comedy"], "new": ["drama"]}
    model = StreamingFactorization(dim=2, item_features=lambda item: genres.get(item, []))
    for n in range(60):
        item, rating = ("i1", 5.0) if n % 2 else ("i3", 1.0)
        x = Interaction(Scope(user=f"u{n % 5}"), {"user": f"u{n % 5}", "item": item}, None)
        model.learn(Step(x, (Feedback.rating(x.id, rating),)))
    # a never-seen drama item inherits the drama feature's learned bias
    assert model.score("u1", "new") > model.score("u1", "unknown-genre-item")
    # the vectorised rank (row + feature rows per item) orders items exactly as score() does
    by_score = sorted(model.items.rows, key=lambda item: -model.score("u1", item))
    assert model.rank("u1", k=3) == by_score


def test_user_demographics_help_new_users() -> None:
    # Young users love "action", older ones hate it; a new user with an age band starts from that.
    ages = {f"u{n}": ["young"] if n % 2 else ["old"] for n in range(40)} | {"new_young": ["young"]}
    model = StreamingFactorization(dim=2, user_features=lambda user: ages.get(user, []))
    for n in range(400):
        user = f"u{n % 40}"
        rating = 5.0 if n % 2 else 1.0  # odd users are young
        x = Interaction(Scope(user=user), {"user": user, "item": "action"}, None)
        model.learn(Step(x, (Feedback.rating(x.id, rating),)))
    assert model.score("new_young", "action") > model.score("no_demographics", "action") + 0.5


def test_replay_and_state_round_trip() -> None:
    steps = low_rank_ratings(500, seed=2)
    a, b = StreamingFactorization(dim=4, min_count=2), StreamingFactorization(dim=4, min_count=2)
    for step in steps:
        a.learn(step)
    b.learn_many(steps)
    assert digest(a.state_dict()) == digest(b.state_dict())
    c = StreamingFactorization(dim=4).freeze()
    c.load_state_dict(a.state_dict())
    obs = steps[0].interaction.observation
    assert c.predict(obs) == a.predict(obs) and c.frozen and c.rank("u1") == a.rank("u1")
    with pytest.raises(InvalidInput):
        a.predict({"user": "x"})
    with pytest.raises(InvalidInput):
        StreamingFactorization(dim=0)


def rated(item: str, rating: float, t: float, user: str = "u") -> Step:
    x = Interaction(Scope(user=user), {"user": user, "item": item}, None, time=t)
    return Step(x, (Feedback.rating(x.id, rating),))


def test_popularity_counts_positives_with_decay() -> None:
    from lifelong.learners.recsys.popularity import Popularity

    plain = Popularity()
    decayed = Popularity(half_life=10.0)
    events = [
        rated("old", 5, 0),
        rated("old", 5, 1),
        rated("old", 4, 2),
        rated("new", 5, 40),
        rated("new", 5, 41),
    ]
    events.append(rated("bad", 1, 42))  # not positive: never ranked
    for model in (plain, decayed):
        model.learn_many(events)
    assert plain.rank(k=3) == ["old", "new"]
    assert decayed.rank(k=3) == ["new", "old"]  # three old positives decayed by ~2^-4 each
    assert decayed.predict({"item": "old"}) == pytest.approx(sum(2 ** (-(42 - t) / 10) for t in (0, 1, 2)))
    assert plain.rank(k=3, exclude=["old"]) == ["new"]
    copy = Popularity(half_life=1.0)
    copy.load_state_dict(decayed.state_dict())
    assert copy.rank() == decayed.rank() and copy.half_life == 10.0
    with pytest.raises(InvalidInput):
        Popularity(half_life=0)
