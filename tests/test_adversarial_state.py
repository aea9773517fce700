"""The version store as an attacker sees it: tampered snapshots, code in pickles, hostile learner names,
concurrent commits, and gates that a careless caller would walk around."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from lifelong.errors import Conflict, InvalidInput, LifelongError, NotFound
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners import OnlineSoftmax
from lifelong.state import VersionStore
from lifelong.state.codec import encode
from lifelong.state.store import GateResult, Tampered, snapshot_folder


def teach(model: OnlineSoftmax, text: str, label: str) -> None:
    i = Interaction(Scope(user="ada"), text)
    model.learn(Step(i, (Feedback.correction(i.id, label),)))


def committed(store: VersionStore, n: int = 2) -> OnlineSoftmax:
    model = OnlineSoftmax()
    for k in range(n):
        teach(model, f"text number {k}", f"label{k}")
        store.commit(model)
    return model


def overwrite_snapshot(store: VersionStore, name: str, version: int, blob: bytes) -> None:
    store.db.run(
        lambda cur: cur.execute(
            "UPDATE state_versions SET snapshot = ? WHERE learner = ? AND version = ?", (blob, name, version)
        )
    )


def test_overwritten_weights_do_not_restore(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store)
    evil = model.state_dict()
    evil["state"]["bias"] = evil["state"]["bias"] + 100.0
    overwrite_snapshot(store, model.name, 2, encode(evil))
    with pytest.raises(Tampered, match="digest"):
        store.restore(OnlineSoftmax(), 2)
    store.restore(OnlineSoftmax(), 1)  # the untouched version still restores


def test_a_flipped_byte_or_a_truncated_snapshot_does_not_restore(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store)
    blob = encode(model.state_dict())
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    for bad in (bytes(flipped), blob[: len(blob) // 3], b"", b"not a zip at all"):
        overwrite_snapshot(store, model.name, 2, bad)
        with pytest.raises(Tampered):
            store.state(model.name, 2)


def test_a_swapped_snapshot_file_does_not_restore(tmp_path: Path) -> None:
    store = VersionStore.in_directory(tmp_path / "state")
    model = committed(store)
    folder = tmp_path / "state" / snapshot_folder(model.name)
    (folder / "00000002.npz").write_bytes((folder / "00000001.npz").read_bytes())
    with pytest.raises(Tampered):
        store.restore(OnlineSoftmax(), 2)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_in_a_river_snapshot_never_runs_without_opt_in(tmp_path: Path) -> None:
    pytest.importorskip("river")
    from river import naive_bayes

    from lifelong.interop.river import RiverLearner

    marker = tmp_path / "pwned"
    learner = RiverLearner(naive_bayes.MultinomialNB())
    state = learner.state_dict()
    state["state"]["estimator"] = pickle.dumps(_Exploit(marker))
    with pytest.raises(InvalidInput, match="allow_pickle"):
        RiverLearner(naive_bayes.MultinomialNB()).load_state_dict(state)
    assert not marker.exists()
    # Opted in, a store still checks the digest first: a snapshot changed after commit never unpickles.
    store = VersionStore(tmp_path / "state.db")
    trusted = RiverLearner(naive_bayes.MultinomialNB(), allow_pickle=True, name="nb")
    store.commit(trusted)
    state = trusted.state_dict()
    state["state"]["estimator"] = pickle.dumps(_Exploit(marker))
    overwrite_snapshot(store, "nb", 1, encode(state))
    with pytest.raises(Tampered):
        store.restore(RiverLearner(naive_bayes.MultinomialNB(), allow_pickle=True, name="nb"), 1)
    assert not marker.exists()


def test_learner_names_map_to_files_injectively_and_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "state"
    store = VersionStore.in_directory(root)
    names = ["team/x", "team_x", "..", ".", "../../etc/passwd", "a%2Fb", "a/b", "ünïcode", "x" * 200]
    for n, name in enumerate(names):
        model = OnlineSoftmax()
        model.name = name
        teach(model, f"text {n}", f"label{n}")
        store.commit(model)
    files = sorted(p for p in tmp_path.rglob("*.npz"))
    assert len(files) == len(names)  # one file each: no collision
    assert all(root.resolve() in p.resolve().parents for p in files)  # none outside the store
    for n, name in enumerate(names):
        restored = OnlineSoftmax()
        restored.name = name
        store.restore(restored, 1)
        assert restored.classes == [f"label{n}"]
    assert len({snapshot_folder(name) for name in names}) == len(names)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "a\nb", "\ud800", "x" * 201], ids=repr)
def test_unfit_learner_names_are_refused(tmp_path: Path, name: str) -> None:
    store = VersionStore(tmp_path / "state.db")
    model = OnlineSoftmax()
    model.name = name
    with pytest.raises(InvalidInput, match="name"):
        store.commit(model)


def test_concurrent_commits_get_distinct_versions(db_url: str) -> None:
    store = VersionStore(db_url)
    errors: list[BaseException] = []

    def work() -> None:
        model = OnlineSoftmax()
        try:
            for k in range(10):
                teach(model, f"text {k}", "label")
                store.commit(model)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [v.version for v in store.versions("OnlineSoftmax")] == list(range(1, 41))


def test_default_rollback_goes_only_to_a_version_that_was_served(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store, 3)
    store.promote(model.name, 3)  # v1 and v2 were committed, never served
    with pytest.raises(NotFound, match="served no version"):
        store.rollback(model.name)
    store.promote(model.name, 1)
    store.promote(model.name, 3)
    assert store.rollback(model.name).version == 1


def test_a_gated_out_version_is_never_served_without_a_logged_override(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store, 3)

    def refuse(candidate: dict[str, Any], current: dict[str, Any] | None) -> GateResult:
        return GateResult(False, {"accuracy": 0.1}, "worse on the probe")

    store.promote(model.name, 1)
    assert not store.promote(model.name, 2, gate=refuse).promoted
    store.promote(model.name, 3)
    with pytest.raises(Conflict, match="failed its gate"):
        store.rollback(model.name, to=2)
    with pytest.raises(Conflict, match="failed its gate"):
        store.promote(model.name, 2)
    assert store.rollback(model.name).version == 1  # the default skips the gated-out version
    assert store.promote(model.name, 3).promoted
    assert store.rollback(model.name, to=2, override="incident 42: probe was broken").version == 2
    last = store.history(model.name)[-1]
    assert last["action"] == "rollback" and last["override"] == "incident 42: probe was broken"
    # A gate that passes it now clears it.
    assert store.promote(model.name, 2, gate=lambda c, p: GateResult(True)).promoted
    store.promote(model.name, 3)
    assert store.rollback(model.name, to=2).version == 2


def test_a_gate_that_raises_is_a_typed_error_and_promotes_nothing(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store, 2)
    store.promote(model.name, 1)

    def broken(candidate: dict[str, Any], current: dict[str, Any] | None) -> GateResult:
        raise ZeroDivisionError("probe set is empty")

    with pytest.raises(InvalidInput, match="gate raised ZeroDivisionError"):
        store.promote(model.name, 2, gate=broken)
    with pytest.raises(InvalidInput, match="GateResult"):
        store.promote(model.name, 2, gate=lambda c, p: True)  # type: ignore[arg-type, return-value]
    assert store.promoted(model.name).version == 1  # type: ignore[union-attr]


def test_an_erased_version_cannot_be_restored_promoted_or_rolled_back_to(db_url: str) -> None:
    store = VersionStore(db_url)
    model = committed(store, 2)
    store.promote(model.name, 1)
    store.promote(model.name, 2)
    store.erase(model.name, 1, reason="test")
    for attempt in (
        lambda: store.state(model.name, 1),
        lambda: store.promote(model.name, 1),
        lambda: store.rollback(model.name, to=1),
        lambda: store.rollback(model.name),
    ):
        with pytest.raises(LifelongError):
            attempt()
    assert store.info(model.name, 1).erased
