"""Erasure as the forgotten user would check it: nothing of them in the log, the learners, any snapshot,
the provenance, the caches or the database files — and nothing of anyone else lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifelong.agents import Agent, LabelTask
from lifelong.cli import main
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.experience.records import canonical_json
from lifelong.learners import ExampleBank, Learner, Lessons, Memory, OnlineSoftmax, PerTenant
from lifelong.models import HashingEmbedder
from lifelong.state import VersionStore
from lifelong.state.erasure import footprint, forget, scan

EMBED = HashingEmbedder()
ALICE, BOB = Scope("acme", user="alice"), Scope("acme", user="bob")
OTHER_ALICE = Scope("globex", user="alice")
SECRET = "alice's secret account number 4417-1234"


def softmax() -> PerTenant:
    return PerTenant(OnlineSoftmax, name="softmax")


def learners() -> dict[str, Learner]:
    return {
        "examples": ExampleBank(EMBED),  # shared by the tenant's users: items can mix users
        "memory": Memory(EMBED),
        "lessons": Lessons(EMBED),
        "softmax": softmax(),
    }


def corrected(scope: Scope, text: str, answer: str, label: str, t: float) -> Step:
    i = Interaction(scope, text, answer, time=t)
    return Step(
        i,
        (
            Feedback.correction(i.id, label, time=t + 0.1),
            Feedback.outcome(i.id, {"remember": f"{scope.user} said: {text}"}, time=t + 0.2),
        ),
    )


def history() -> list[Step]:
    steps = []
    for n in range(4):
        t = 10.0 * n
        steps.append(corrected(ALICE, f"{SECRET} case {n}", "wrong_answer", "alice_private_label", t))
        steps.append(corrected(BOB, f"bob asks about the weather {n}", "sunny", "weather_label", t + 1))
        steps.append(corrected(OTHER_ALICE, f"globex alice writes note {n}", "x", "globex_label", t + 2))
    # The same input from both users of acme: one example item with sources from alice and bob.
    steps.append(corrected(ALICE, "how do I reset my password", "no", "reset_password", 50.0))
    steps.append(corrected(BOB, "how do I reset my password", "no", "reset_password", 51.0))
    return steps


def run(log: ExperienceLog, store: VersionStore, live: dict[str, Learner]) -> None:
    for n, step in enumerate(history()):
        log.append_many([step.interaction, *step.feedback])
        for learner in live.values():
            learner.learn(step)
        if n % 4 == 3:
            for learner in live.values():
                store.promote(learner.name, store.commit(learner).version)


def raw_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.is_file())


def test_forget_leaves_nothing_of_the_user_anywhere_on_sqlite(tmp_path: Path) -> None:
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    live = learners()
    run(log, store, live)
    before = scan(footprint(log, ALICE), log=log, store=store, learners=live)
    assert before.hits  # the scan sees the user before erasure: it can fail
    assert SECRET.encode() in raw_bytes(tmp_path / "log.db")

    report = forget(ALICE, log=log, store=store, learners=live, rebuild_with={"softmax": softmax})
    assert report.scan is not None and report.scan.clean, report.scan.hits
    assert report.clean and report.residual == []
    assert report.interactions_deleted == 5 and report.feedback_deleted == 10
    assert sorted({n for n, _ in report.versions_redacted}) == ["ExampleBank", "Lessons", "Memory"]
    assert {n for n, _ in report.versions_erased} == {"softmax"}
    assert "softmax" in report.promoted  # the rebuilt softmax serves in place of the erased version
    # Not in the database files either (secure_delete and a truncated WAL).
    for name in ("log.db", "state.db"):
        assert SECRET.encode() not in raw_bytes(tmp_path / name), name
        assert b"alice_private_label" not in raw_bytes(tmp_path / name), name
    # Every stored version restores without alice, and the promoted ones are clean.
    for name, _, state in store.snapshots():
        assert "alice_private_label" not in repr(state) and SECRET not in repr(state), name
    assert store.derived_from_user("alice", "acme") == []
    # Nothing of anyone else was lost: bob, and alice of the other tenant.
    assert log.stats(BOB).interactions == 5 and log.stats(OTHER_ALICE).interactions == 4
    assert live["memory"].active_items(BOB) and live["memory"].active_items(OTHER_ALICE)
    assert store.derived_from_user("alice", "globex")
    rebuilt = report.rebuilt["softmax"]
    assert rebuilt.predict("how do I reset my password", BOB) == "reset_password"  # bob's part rebuilt
    assert rebuilt.predict("globex alice writes note 1", OTHER_ALICE) == "globex_label"
    assert "alice_private_label" not in repr(rebuilt.state_dict())


def test_an_item_mixing_two_users_goes_and_a_rebuild_brings_back_the_others_part(tmp_path: Path) -> None:
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    live = learners()
    run(log, store, live)
    mixed = [i for i in live["examples"].active_items(Scope("acme")) if "password" in i.query]
    assert len(mixed) == 1 and set(mixed[0].source_users) == {"alice", "bob"}
    report = forget(
        ALICE,
        log=log,
        store=store,
        learners=live,
        rebuild_with={"examples": lambda: ExampleBank(EMBED), "softmax": softmax},
    )
    assert report.clean, report.to_dict()
    assert not [i for i in live["examples"].active_items(Scope("acme")) if "password" in i.query]
    again = [i for i in report.rebuilt["examples"].active_items(Scope("acme")) if "password" in i.query]
    assert len(again) == 1 and again[0].source_users == ["bob"]


def test_forget_without_a_rebuild_reports_the_residual_learner(tmp_path: Path) -> None:
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    live = learners()
    run(log, store, live)
    report = forget(ALICE, log=log, store=store, learners=live)
    assert report.residual == ["softmax"] and not report.clean
    assert report.scan is not None and any("live learner softmax" in hit for hit in report.scan.hits)
    # Its stored versions are gone all the same, and nothing unclean is served.
    assert store.promoted("softmax") is None


def test_forget_on_postgresql_and_snapshot_files(postgres_url: str, tmp_path: Path) -> None:
    log = ExperienceLog(postgres_url)
    store = VersionStore(postgres_url, snapshots_dir=tmp_path / "snapshots")
    live = learners()
    run(log, store, live)
    report = forget(ALICE, log=log, store=store, learners=live, rebuild_with={"softmax": softmax})
    assert report.scan is not None and report.scan.clean, report.scan.hits
    for path in (tmp_path / "snapshots").rglob("*.npz"):
        assert b"alice_private_label" not in path.read_bytes()  # compressed: decoded by the scan above
    log.close()
    store.close()


def test_embedder_cache_drops_the_users_texts(tmp_path: Path) -> None:
    log = ExperienceLog(tmp_path / "log.db")
    live = learners()
    for step in history():
        log.append_many([step.interaction, *step.feedback])
        for learner in live.values():
            learner.learn(step)
        live["examples"].recall(step.interaction.observation, step.interaction.scope)  # type: ignore[attr-defined]
    cache = live["examples"].embedder  # type: ignore[attr-defined]
    assert cache.holds(f"{SECRET} case 0")
    report = forget(ALICE, log=log, learners=live, rebuild_with={"softmax": softmax})
    assert report.cache_entries_dropped > 0 and not cache.holds(f"{SECRET} case 0")
    assert report.scan is not None and report.scan.clean, report.scan.hits


def test_cli_forget_erases_log_snapshots_and_provenance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path, state_path = tmp_path / "log.db", tmp_path / "state.db"
    log, store = ExperienceLog(log_path), VersionStore(state_path)
    run(log, store, learners())
    log.close()
    store.close()
    assert (
        main(["forget", str(log_path), "--tenant", "acme", "--user", "alice", "--state", str(state_path)])
        == 2
    )
    assert "--yes" in capsys.readouterr().err
    code = main(
        ["forget", str(log_path), "--tenant", "acme", "--user", "alice", "--state", str(state_path), "--yes"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert '"interactions_deleted": 5' in out and '"hits": []' in out
    for path in (log_path, state_path):
        assert SECRET.encode() not in raw_bytes(path)
    store = VersionStore(state_path)
    for name, _, state in store.snapshots():
        assert SECRET not in repr(state), name


def test_forget_refuses_a_session_scope_and_unknown_rebuilds(tmp_path: Path) -> None:
    log = ExperienceLog(tmp_path / "log.db")
    with pytest.raises(Exception, match="session"):
        forget(Scope("acme", user="alice", session="s1"), log=log)
    with pytest.raises(Exception, match="rebuild"):
        forget(ALICE, log=log, learners={}, rebuild_with={"nope": OnlineSoftmax})


def test_no_pointer_to_the_users_items_survives(tmp_path: Path) -> None:
    """Found by the scan: bob's old example kept ``replaced_by`` = alice's newer item (her interaction id)."""
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    bank = ExampleBank(EMBED)
    for scope, label, t in ((BOB, "bob_answer", 1.0), (ALICE, "alice_answer", 2.0)):
        step = corrected(scope, "how do I close my account", "no", label, t)
        log.append_many([step.interaction, *step.feedback])
        bank.learn(step)
    store.promote(bank.name, store.commit(bank).version)
    [old] = bank.history(Scope("acme"))
    assert old.replaced_by is not None
    report = forget(ALICE, log=log, store=store, learners={"examples": bank})
    assert report.scan is not None and report.scan.clean, report.scan.hits
    assert bank.history(Scope("acme"))[0].replaced_by is None


def test_no_provenance_row_names_the_users_item(tmp_path: Path) -> None:
    """Found by the reliability campaign (raw bytes of the store): bob confirmed alice's example, so a
    provenance row (item named after alice's interaction, bob's interaction) outlived her erasure."""
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    bank = ExampleBank(EMBED)
    steps = [
        corrected(scope, "how do I close my account", "no", "same_answer", t)
        for scope, t in ((ALICE, 1.0), (BOB, 2.0))
    ]
    for step in steps:
        log.append_many([step.interaction, *step.feedback])
        bank.learn(step)
    store.promote(bank.name, store.commit(bank).version)
    alice_id = steps[0].interaction.id
    assert [d.item for d in store.derived_from(steps[1].interaction.id)] == [f"{alice_id}/ExampleBank/0"]
    report = forget(ALICE, log=log, store=store, learners={"examples": bank})
    assert report.scan is not None and report.scan.clean, report.scan.hits
    assert store.derived_from(steps[1].interaction.id) == []
    assert alice_id.encode() not in raw_bytes(tmp_path / "state.db")


def test_another_users_request_that_recalled_the_users_example_keeps_none_of_their_ids(
    tmp_path: Path,
) -> None:
    """Found by a probe: bob's logged request kept ``metadata["recalled"]`` = [alice's example, named
    after her interaction], so after her erasure the scan (and the raw log file) still held her id."""
    log, store = ExperienceLog(tmp_path / "log.db"), VersionStore(tmp_path / "state.db")
    agent = Agent(None, LabelTask(["card_arrival", "change_pin"]), log, examples=ExampleBank(EMBED))
    examples = agent.learners["examples"]
    a = agent.act("my new card never arrived in the post", ALICE)
    agent.feedback(a.id, correction="card_arrival")  # alice's feedback creates an example
    store.promote(examples.name, store.commit(examples).version)
    b = agent.act("my new card never arrived in the post", BOB)  # bob's request recalls it
    agent.feedback(b.id, accept=True)
    store.promote(examples.name, store.commit(examples).version)
    item = f"{a.id}/ExampleBank/0"
    assert log.get(b.id).interaction.metadata["recalled"] == {"ExampleBank": [item]}
    assert a.id.encode() in raw_bytes(tmp_path / "log.db")

    report = agent.forget_user("alice", "acme", store=store)
    assert report.scan is not None and report.scan.clean, report.scan.hits
    assert report.clean and report.references_redacted == [b.id] and report.references_kept == []
    bobs = log.get(b.id)
    assert bobs.interaction.metadata["recalled"] == {"ExampleBank": []}
    assert a.id not in canonical_json(bobs.to_dict())
    assert a.id not in repr(agent._pending.get(b.id))  # the agent's copy of bob's request too
    for name in ("log.db", "state.db"):
        assert a.id.encode() not in raw_bytes(tmp_path / name), name
    # Nothing else of bob's request changed, and his feedback stays.
    assert (bobs.interaction.observation, bobs.interaction.scope, bobs.accepted) == (
        "my new card never arrived in the post",
        BOB,
        True,
    )
    assert log.stats(BOB).interactions == 1 and log.stats(ALICE).interactions == 0
    log.close()
    store.close()
