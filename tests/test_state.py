"""Version store: snapshots, diff, gated promotion, rollback, provenance — on SQLite, PostgreSQL and files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lifelong.errors import Conflict, InvalidInput, NotFound
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners import OnlineSoftmax
from lifelong.state import GateResult, VersionStore, decode, digest, encode


def teach(model: OnlineSoftmax, text: str, label: str, user: str = "ada") -> Interaction:
    interaction = Interaction(Scope(user=user), text, model.predict(text))
    model.learn(Step(interaction, (Feedback.correction(interaction.id, label),)))
    return interaction


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "files"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VersionStore]:
    """A store on each backend: snapshots inside SQLite, inside PostgreSQL, or as files."""
    if request.param == "files":
        s = VersionStore.in_directory(tmp_path / "snapshots")
    elif request.param == "sqlite":
        s = VersionStore(tmp_path / "state.db")
    else:
        s = VersionStore(request.getfixturevalue("postgres_url"))
    yield s
    s.close()


def test_codec_round_trips_arrays_bytes_and_json() -> None:
    state = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "blob": b"\x00\x01",
        "n": [1, "a", None],
    }
    back = decode(encode(state))
    assert np.array_equal(back["w"], state["w"]) and back["w"].dtype == np.float32
    assert back["blob"] == b"\x00\x01" and back["n"] == [1, "a", None]
    assert digest(back) == digest(state)
    assert digest({**state, "n": [2]}) != digest(state)


def test_codec_refuses_objects_and_garbage() -> None:
    with pytest.raises(InvalidInput):
        encode({"x": object()})
    with pytest.raises(InvalidInput):
        decode(b"not a snapshot")


def test_commit_list_restore(store: VersionStore) -> None:
    model = OnlineSoftmax()
    v1 = store.commit(model, message="empty")
    teach(model, "my card was stolen", "card_lost")
    v2 = store.commit(model, message="one lesson", metrics={"acc": 1.0})
    assert [v.version for v in store.versions(model.name)] == [1, 2]
    assert v2.parent == v1.version and v2.learner_version == 1 and v2.metrics == {"acc": 1.0}
    assert v1.digest != v2.digest

    fresh = OnlineSoftmax()
    store.restore(fresh, 2)
    assert fresh.version == 1 and fresh.predict("stolen card") == "card_lost"
    store.restore(fresh, 1)
    assert fresh.version == 0 and fresh.predict("stolen card") is None
    with pytest.raises(NotFound):
        store.state(model.name, 99)
    with pytest.raises(NotFound):
        store.state(model.name)  # nothing promoted yet


def test_diff_names_what_changed(store: VersionStore) -> None:
    model = OnlineSoftmax()
    teach(model, "my card was stolen", "card_lost")
    store.commit(model)
    teach(model, "top up failed", "top_up_failed")
    store.commit(model)
    assert store.diff(model.name, 1, 1).identical
    diff = store.diff(model.name, 1, 2)
    keys = {c.key: c for c in diff.changes}
    assert "state.classes" in keys and keys["state.classes"].after == ["card_lost", "top_up_failed"]
    assert "version" in keys
    assert "state.weights" in keys  # shape grew by one class
    assert "2 change" not in str(diff) or diff.changes


def test_promote_gate_and_rollback(store: VersionStore) -> None:
    model = OnlineSoftmax()
    name = model.name
    for text, label in [
        ("card stolen", "card_lost"),
        ("top up failed", "top_up"),
        ("pin blocked", "pin"),
    ]:
        teach(model, text, label)
        store.commit(model)
    assert store.promote(name, 1).promoted
    assert store.promote(name, 2).promoted
    assert store.promoted(name).version == 2  # type: ignore[union-attr]

    def needs_three_classes(candidate: dict, current: dict | None) -> GateResult:  # type: ignore[type-arg]
        n = len(candidate["state"]["classes"])
        return GateResult(n >= 4, {"classes": n}, "needs 4 classes")

    refused = store.promote(name, 3, gate=needs_three_classes)
    assert not refused.promoted and refused.gate is not None and refused.gate.metrics == {"classes": 3}
    assert store.promoted(name).version == 2  # type: ignore[union-attr]  # gated-out never served

    with pytest.raises(Conflict, match="failed its gate"):
        store.promote(name, 3)  # a gated-out version is not served without an explicit override
    assert store.promote(name, 3, override="serve the 3-class model for the demo").promoted
    assert store.rollback(name).version == 2  # the version promoted before
    assert store.rollback(name, to=1).version == 1
    with pytest.raises(InvalidInput):
        store.rollback(name, to=3)
    served = OnlineSoftmax()
    store.restore(served)  # promoted
    assert served.classes == ["card_lost"]
    history = store.history(name)
    actions = [e["action"] for e in history]
    assert actions == ["commit"] * 3 + [
        "promote",
        "promote",
        "gate_failed",
        "override",
        "rollback",
        "rollback",
    ]
    assert history[6]["override"] == "serve the 3-class model for the demo"


VERSION_CALLS = ["state", "info", "promote", "rollback", "diff_a", "diff_b", "erase", "rewrite", "restore"]


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (call, bad)
        for call in VERSION_CALLS
        for bad in ["1", True, 1.0, None, [1]]
        # None is "the promoted one" / "the one served before" there
        if not (bad is None and call in ("state", "rollback", "restore"))
    ],
)
def test_a_version_that_is_not_an_int_is_invalid_input(store: VersionStore, call: str, bad: object) -> None:
    model = OnlineSoftmax()
    v1 = store.commit(model)
    store.commit(model)
    store.promote(model.name, 2, override="test")
    name, before = model.name, store.history(model.name)
    calls = {
        "state": lambda: store.state(name, bad),  # type: ignore[arg-type]
        "info": lambda: store.info(name, bad),  # type: ignore[arg-type]
        "promote": lambda: store.promote(name, bad, override="x"),  # type: ignore[arg-type]
        "rollback": lambda: store.rollback(name, to=bad, override="x"),  # type: ignore[arg-type]
        "diff_a": lambda: store.diff(name, bad, 2),  # type: ignore[arg-type]
        "diff_b": lambda: store.diff(name, 1, bad),  # type: ignore[arg-type]
        "erase": lambda: store.erase(name, bad, reason="x"),  # type: ignore[arg-type]
        "rewrite": lambda: store.rewrite(name, bad, {}, reason="x"),  # type: ignore[arg-type]
        "restore": lambda: store.restore(model, bad),  # type: ignore[arg-type]
    }
    with pytest.raises(InvalidInput, match=type(bad).__name__) as caught:
        calls[call]()
    assert caught.value.field == "version"
    assert store.history(name) == before and store.promoted(name).version == 2  # type: ignore[union-attr]
    assert store.info(name, np.int64(1)) == v1 == store.info(name, 1)  # NumPy's ints are ints


def test_provenance_by_interaction_and_user(store: VersionStore) -> None:
    model = OnlineSoftmax()
    a = teach(model, "card stolen", "card_lost", user="ada")
    store.commit(model)
    b = teach(model, "top up failed", "top_up", user="bob")
    store.commit(model)
    assert [(d.item, d.version) for d in store.derived_from(a.id)] == [("weights", 1)]
    assert [(d.item, d.version) for d in store.derived_from(b.id)] == [("weights", 2)]
    assert [d.interaction_id for d in store.derived_from_user("bob")] == [b.id]
    assert store.derived_from_user("carol") == []
    assert [d.user for d in store.derived_from_scope(Scope(user="bob"))] == ["bob"]
    assert {d.interaction_id for d in store.derived_from_scope(Scope())} <= {a.id, b.id}
    assert set(store.links_of(model.name, "weights")) == {a.id, b.id}
    assert store.forget_provenance(Scope(user="ada")) == 1
    assert store.derived_from_user("ada") == []


def test_failed_commit_keeps_provenance(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "s.db")
    model = OnlineSoftmax()
    teach(model, "card stolen", "card_lost")
    store.db.close()
    (tmp_path / "s.db").unlink()
    (tmp_path / "s.db").mkdir()  # the database file is now a directory: the commit must fail
    with pytest.raises(InvalidInput, match="is a directory"):
        store.commit(model)
    assert len(model.provenance) == 1
