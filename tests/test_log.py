"""The experience log, one test module for both backends (SQLite file and the real PostgreSQL server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import lifelong.experience.log as log_module
from lifelong.errors import BackendUnavailable, Conflict, InvalidInput, NotFound
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope

ADA, BOB = Scope("acme", "ada", "s1"), Scope("acme", "bob")


@pytest.fixture
def log(log_url: str) -> ExperienceLog:
    return ExperienceLog(log_url)


def interaction(scope: Scope = ADA, t: float = 100.0, text: str = "q") -> Interaction:
    return Interaction(scope, text, "a", time=t)


def test_append_is_idempotent_by_id(log: ExperienceLog) -> None:
    i = interaction()
    assert log.append(i) is True
    assert log.append(i) is False
    report = log.append_many([i, i])
    assert (report.interactions, report.duplicates) == (0, 2)
    assert log.stats().interactions == 1


def test_same_id_other_content_is_a_conflict_and_writes_nothing(log: ExperienceLog) -> None:
    i = interaction()
    log.append(i)
    changed = Interaction(ADA, "other", "a", id=i.id, time=i.time)
    fresh = interaction(t=101)
    with pytest.raises(Conflict):
        log.append_many([fresh, changed])
    assert log.stats().interactions == 1  # the fresh one in the failed batch was rolled back
    with pytest.raises(Conflict):
        log.append_many([fresh, Interaction(ADA, "x", id=fresh.id, time=fresh.time)])
    assert log.get(i.id).interaction == i


def test_batch_is_all_or_nothing(log: ExperienceLog) -> None:
    a, b = interaction(t=1), interaction(t=2)
    orphan = Feedback.reward("no-such-interaction", 1.0)
    with pytest.raises(NotFound, match="no-such-interaction"):
        log.append_many([a, Feedback.accept(a.id), b, orphan])
    assert log.stats().interactions == 0 and log.stats().feedback == 0
    with pytest.raises(InvalidInput):
        log.append_many([a, "not a record"])  # type: ignore[list-item]
    assert log.append_many([]).interactions == 0


def test_feedback_joins_interactions_earlier_or_in_the_same_batch(log: ExperienceLog) -> None:
    a = interaction(t=1)
    log.append(a)
    b = interaction(t=2)
    report = log.append_many([Feedback.correction(b.id, "right"), b, Feedback.accept(a.id)])
    assert (report.interactions, report.feedback) == (1, 2)
    assert log.get(b.id).correction == "right" and log.get(a.id).accepted is True
    with pytest.raises(NotFound):
        log.append(Feedback.accept("missing"))


def test_late_and_repeated_feedback(log: ExperienceLog) -> None:
    i = interaction(t=1)
    log.append(i)
    log.append(Feedback.rating(i.id, 2, time=5))
    log.append(Feedback.rating(i.id, 5, time=50))  # changed their mind, much later
    log.append(Feedback.reject(i.id, time=6))
    step = log.get(i.id)
    assert len(step.feedback) == 3 and step.rating == 5.0 and step.accepted is False
    assert [f.time for f in step.feedback] == [5, 6, 50]


def test_replay_in_time_order_with_filters(log: ExperienceLog) -> None:
    times = [5.0, 1.0, 3.0, 4.0, 2.0]
    records = []
    for n, t in enumerate(times):
        i = interaction(ADA if n % 2 == 0 else BOB, t=t, text=f"q{n}")
        records += [i, Feedback.reward(i.id, float(n), time=t + 0.5)]
    log.append_many(records)
    assert [s.interaction.time for s in log.replay()] == [1, 2, 3, 4, 5]
    assert [s.interaction.time for s in log.replay(Scope("acme", "ada"))] == [2, 3, 5]
    assert [s.interaction.time for s in log.replay(Scope("acme", "ada", "s1"))] == [2, 3, 5]
    assert [s.interaction.time for s in log.replay(Scope("acme", "ada", "s2"))] == []
    assert [s.interaction.time for s in log.replay(Scope("acme"))] == [1, 2, 3, 4, 5]
    assert list(log.replay(Scope("other"))) == []
    assert [s.interaction.time for s in log.replay(since=2, until=4)] == [2, 3]
    assert all(len(s.feedback) == 1 for s in log.replay())
    # feedback that arrived after `until` is not part of the state as of `until`
    assert [len(s.feedback) for s in log.replay(until=4.2)] == [1, 1, 1, 0]


def test_replay_in_feedback_order(log: ExperienceLog) -> None:
    a, b = interaction(t=1), interaction(t=2)
    log.append_many(
        [
            a,
            b,
            Feedback.reward(b.id, 1, time=3),
            Feedback.reward(a.id, 2, time=4),
            Feedback.accept(b.id, time=9),
        ]
    )
    steps = list(log.replay(order="feedback"))
    assert [(s.interaction.id, s.feedback[0].time) for s in steps] == [(b.id, 3), (a.id, 4), (b.id, 9)]
    assert len(list(log.replay(order="feedback", since=3.5, until=5))) == 1
    with pytest.raises(InvalidInput):
        list(log.replay(order="random"))  # type: ignore[arg-type]


def test_replay_pages_through_long_logs(log: ExperienceLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module, "PAGE_SIZE", 7)
    records = []
    for n in range(30):
        i = interaction(t=float(n // 3), text=f"q{n}")  # ties in time: order of arrival decides
        records += [i, Feedback.reward(i.id, float(n))]
    log.append_many(records)
    steps = list(log.replay())
    assert [s.reward for s in steps] == [float(n) for n in range(30)]
    assert [s.reward for s in log.replay(order="feedback")] == [float(n) for n in range(30)]


def test_get_and_stats(log: ExperienceLog) -> None:
    with pytest.raises(NotFound):
        log.get("nope")
    a, b, c = interaction(ADA, 1), interaction(BOB, 2), interaction(Scope("other", "ada"), 3)
    log.append_many([a, b, c, Feedback.accept(a.id), Feedback.reward(a.id, 1), Feedback.accept(b.id)])
    stats = log.stats()
    assert (stats.interactions, stats.feedback, stats.tenants, stats.users) == (3, 3, 2, 3)
    assert stats.feedback_by_kind == {"accept": 2, "reward": 1}
    assert (stats.first_time, stats.last_time) == (1.0, 3.0)
    assert log.stats(Scope("acme", "ada")).feedback == 2 and len(log) == 3


def test_export_import_round_trip(log: ExperienceLog, tmp_path: Path) -> None:
    records = []
    for n in range(5):
        i = interaction(ADA if n % 2 else BOB, t=float(n))
        records += [i, Feedback.correction(i.id, f"r{n}"), Feedback.rating(i.id, 3)]
    log.append_many(records)
    path = tmp_path / "out.jsonl"
    assert log.export_jsonl(path) == 5
    assert all("feedback" in json.loads(line) for line in path.read_text().splitlines())
    copy = ExperienceLog(tmp_path / "copy.db")
    report = copy.import_jsonl(path)
    assert (report.interactions, report.feedback) == (5, 10)
    assert copy.import_jsonl(path).duplicates == 15  # importing twice stores once
    assert list(copy.replay()) == list(log.replay())
    assert log.export_jsonl(tmp_path / "ada.jsonl", Scope("acme", "ada")) == 2


def test_export_to_a_missing_directory_leaves_nothing(log: ExperienceLog, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        log.export_jsonl(tmp_path / "missing" / "out.jsonl")
    assert not (tmp_path / "missing").exists()


def test_import_rejects_garbage(log: ExperienceLog, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a step"}\n')
    with pytest.raises(InvalidInput):
        log.import_jsonl(bad)
    assert log.stats().interactions == 0


def test_forget_deletes_exactly_one_user(log: ExperienceLog) -> None:
    records = []
    for n in range(4):
        for scope in (ADA, Scope("acme", "ada", "s2"), BOB):
            i = interaction(scope, t=float(n))
            records += [i, Feedback.reward(i.id, 1.0), Feedback.accept(i.id)]
    log.append_many(records)
    report = log.forget(Scope("acme", "ada"))
    assert (report.interactions, report.feedback) == (8, 16) and len(report.interaction_ids) == 8
    assert log.stats(Scope("acme", "ada")).interactions == 0
    assert log.stats().interactions == 4 and log.stats().feedback == 8
    assert all(s.interaction.scope.user == "bob" for s in log.replay())
    assert log.forget(Scope("acme", "ada")).interactions == 0
    with pytest.raises(InvalidInput):
        log.forget(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["ada", ("acme", "ada"), {"user": "ada"}, 0])
@pytest.mark.parametrize("method", ["replay", "recent", "stats", "export_jsonl", "forget"])
def test_a_scope_that_is_not_a_scope_is_invalid_input_naming_its_type(
    log: ExperienceLog, tmp_path: Path, method: str, bad: object
) -> None:
    log.append(interaction())
    calls = {
        "replay": lambda: list(log.replay(bad)),  # type: ignore[arg-type]
        "recent": lambda: log.recent(bad),  # type: ignore[arg-type]
        "stats": lambda: log.stats(bad),  # type: ignore[arg-type]
        "export_jsonl": lambda: log.export_jsonl(tmp_path / "out.jsonl", bad),  # type: ignore[arg-type]
        "forget": lambda: log.forget(bad),  # type: ignore[arg-type]
    }
    with pytest.raises(InvalidInput, match=type(bad).__name__) as caught:
        calls[method]()
    assert caught.value.field == "scope" and "Scope" in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if "out" in p.name]  # no export, not even a partial one
    assert log.stats().interactions == 1  # nothing forgotten


def test_forget_redacts_what_other_interactions_say_of_the_forgotten_ones(log: ExperienceLog) -> None:
    a = interaction()
    item = f"{a.id}/ExampleBank/0"
    b = Interaction(
        BOB,
        f"what did {a.id} ask?",  # what bob sent: his, kept (and said why)
        "a",
        time=200.0,
        metadata={
            "recalled": {"ExampleBank": [item, "other/ExampleBank/0"], "acme/Memory": [a.id]},
            "gate": f"{a.id}/SkillLibrary/0",
            f"{a.id}/ExampleBank/1": 0.5,
            "note": f"x{a.id}",  # holds the id, but names nothing: kept
        },
    )
    c = Interaction(
        BOB, "q", "a", time=300.0, metadata={"recalled": {"ExampleBank": ["other/ExampleBank/0"]}}
    )
    log.append_many([a, b, c, Feedback.accept(b.id, time=201.0)])
    report = log.forget(Scope("acme", "ada"))
    assert report.references.redacted == (b.id,)
    [kept] = report.references.kept
    assert b.id in kept and "observation and metadata" in kept and "not rewritten" in kept
    after = log.get(b.id)
    assert dict(after.interaction.metadata) == {
        "recalled": {"ExampleBank": ["other/ExampleBank/0"], "acme/Memory": []},
        "gate": log_module.ERASED_REFERENCE,
        "note": f"x{a.id}",
    }
    assert (after.interaction.observation, after.interaction.time, after.accepted) == (
        b.observation,
        200.0,
        True,
    )
    assert log.get(c.id).interaction == c  # named nothing: untouched
    again = log.redact_references([a.id])  # nothing left to redact; the same reason to keep
    assert again.redacted == () and again.kept == report.references.kept
    assert log.redact_references([]) == log_module.RedactReport()
    with pytest.raises(InvalidInput, match="not one string"):
        log.redact_references(a.id)


def test_reopening_sees_everything(log_url: str) -> None:
    with ExperienceLog(log_url) as first:
        i = interaction()
        first.append_many([i, Feedback.accept(i.id)])
    with ExperienceLog(log_url) as second:
        assert second.get(i.id).accepted is True


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown scheme"):
        ExperienceLog("mysql://localhost/db")
    with pytest.raises(InvalidInput, match="does not exist"):
        ExperienceLog(tmp_path / "missing" / "log.db")
    with pytest.raises(InvalidInput):
        ExperienceLog("")
    with pytest.raises(InvalidInput):
        ExperienceLog(f"sqlite:///{tmp_path}/x.db?synchronous=sometimes")


def test_unreachable_postgres_names_the_url() -> None:
    with pytest.raises(BackendUnavailable) as info:
        ExperienceLog("postgresql://nobody:secret@127.0.0.1:1/test")
    assert "127.0.0.1:1" in str(info.value) and "secret" not in str(info.value)


# -- the reads other modules make through the log (DESIGN principle 7) -----------------------------------


def feedback_log(log: ExperienceLog) -> list[Feedback]:
    """Two tenants' interactions with feedback in a known order; the feedback, in the order appended."""
    fb: list[Feedback] = []
    for n in range(5):
        for scope in (ADA, Scope("other", "cy")):
            i = interaction(scope, t=float(n))
            f = Feedback.reward(i.id, float(n), time=float(n))
            log.append_many([i, f])
            fb.append(f)
    return fb


def test_feedback_after_pages_by_seq(log: ExperienceLog) -> None:
    fb = feedback_log(log)
    rows = log.feedback_after(0)
    assert [step.feedback[0] for _, step in rows] == fb
    seqs = [seq for seq, _ in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    assert all(step.interaction.id == step.feedback[0].interaction_id for _, step in rows)
    # Paging: the next page starts after the last seq returned.
    first = log.feedback_after(0, limit=3)
    assert first == rows[:3]
    assert log.feedback_after(first[-1][0], limit=3) == rows[3:6]
    assert log.feedback_after(seqs[-1]) == []
    # A window of seqs, and one tenant's feedback.
    assert log.feedback_after(seqs[1], upto=seqs[4]) == rows[2:5]
    acme = log.feedback_after(0, tenant="acme")
    assert [step.feedback[0] for _, step in acme] == fb[::2]
    assert log.feedback_after(0, tenant="nobody") == []
    assert log.max_feedback_seq() == seqs[-1]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": "0"}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": 0, "upto": 1.5}, "upto"),
        ({"seq": 0, "tenant": 3}, "tenant"),
        ({"seq": 0, "limit": 0}, "limit"),
        ({"seq": 0, "limit": 10**6}, "limit"),
    ],
)
def test_feedback_after_refuses_bad_input(log: ExperienceLog, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        log.feedback_after(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_feedback_seqs_at_the_end(log: ExperienceLog) -> None:
    assert log.max_feedback_seq() == 0
    assert log.last_feedback_seqs(10) == (0, [])
    feedback_log(log)
    seqs = [seq for seq, _ in log.feedback_after(0)]
    assert log.max_feedback_seq() == seqs[-1]
    top, recent = log.last_feedback_seqs(10_000)
    assert (top, recent) == (seqs[-1], seqs)
    top, recent = log.last_feedback_seqs(seqs[-1] - seqs[6])
    assert recent == seqs[7:]
    assert log.last_feedback_seqs(0) == (seqs[-1], [])
    for bad in (-1, None, 2.0):
        with pytest.raises(InvalidInput) as info:
            log.last_feedback_seqs(bad)  # type: ignore[arg-type]
        assert info.value.field == "window"


def test_feedback_with_id_prefix(log: ExperienceLog) -> None:
    i = interaction()
    records = [
        Feedback.accept(i.id, id="req-1.accept"),
        Feedback.reward(i.id, 1.0, id="req-1.reward"),
        Feedback.reward(i.id, 0.0, id="req-10.reward"),  # another request whose id extends this one's
        Feedback.reward(i.id, 0.5, id="req-1/x"),  # '/' follows '.': just past the range
        Feedback.reward(i.id, 0.5, id="req-0.reward"),
    ]
    log.append_many([i, *records])
    assert log.feedback_with_id_prefix("req-1.") == records[:2]
    assert [f.id for f in log.feedback_with_id_prefix("req-1")] == [
        "req-1.accept",
        "req-1.reward",
        "req-1/x",
        "req-10.reward",
    ]
    assert [f.id for f in log.feedback_with_id_prefix("req-")] == sorted(f.id for f in records)
    assert log.feedback_with_id_prefix("req-2.") == []
    assert log.feedback_with_id_prefix("req-1.\x00") == []  # no stored id holds a control character
    top = "req-\U0010ffff"  # no character follows the last one: the range is open above
    log.append(Feedback.accept(i.id, id=top + ".accept"))
    assert [f.id for f in log.feedback_with_id_prefix(top)] == [top + ".accept"]
    for bad in ("", None, 7):
        with pytest.raises(InvalidInput) as info:
            log.feedback_with_id_prefix(bad)  # type: ignore[arg-type]
        assert info.value.field == "prefix"


def test_tenant_of_and_interactions_per_tenant(log: ExperienceLog) -> None:
    assert log.interactions_per_tenant() == []
    a, b, c = interaction(ADA), interaction(BOB), interaction(Scope("zeta", "z"))
    log.append_many([c, a, b])
    assert log.tenant_of(a.id) == "acme" and log.tenant_of(c.id) == "zeta"
    assert log.tenant_of("missing") is None and log.tenant_of("") is None
    assert log.tenant_of("bad\x00id") is None  # not a storable id: not held (PostgreSQL refuses NUL)
    assert log.interactions_per_tenant() == [("acme", 2), ("zeta", 1)]
    with pytest.raises(InvalidInput) as info:
        log.tenant_of(None)  # type: ignore[arg-type]
    assert info.value.field == "interaction_id"


def test_ping(log: ExperienceLog) -> None:
    assert log.ping() is None


def test_erasure_reads(log: ExperienceLog) -> None:
    shared = 'a line with "quotes" and ünïcode'
    a = Interaction(ADA, shared, "ada's own answer", time=1.0)
    b = Interaction(BOB, "bob asks", shared, time=2.0)
    log.append_many([a, b, Feedback.correction(a.id, "the right answer", time=3.0)])
    found = log.count_holding([shared, a.id, "the right answer", "nowhere at all"])
    assert list(found) == list(log_module.TEXT_COLUMNS)
    assert found["interactions.body"] == {shared: 2, a.id: 1}
    assert found["feedback.body"] == {a.id: 1, "the right answer": 1}
    assert found["feedback.interaction_id"] == {a.id: 1}
    assert log.count_holding([]) == {column: {} for column in log_module.TEXT_COLUMNS}
    assert log.held_texts({shared, "ada's own answer", "nowhere at all"}) == {shared, "ada's own answer"}
    assert log.held_texts([]) == set()
    for method, field in ((log.count_holding, "needles"), (log.held_texts, "texts")):
        for bad in ("one string", None, [1]):
            with pytest.raises(InvalidInput) as info:
                method(bad)  # type: ignore[operator]
            assert info.value.field == field


def test_secure_forget_leaves_no_bytes_in_sqlite_files(log: ExperienceLog) -> None:
    from lifelong.storage import read_sqlite_file

    secret = "a secret only ada wrote down"
    a, b = Interaction(ADA, secret, "ok", time=1.0), interaction(BOB)
    log.append_many([a, b, Feedback.correction(a.id, secret + " again")])
    report = log.forget(Scope("acme", "ada"), secure=True)
    assert (report.interactions, report.feedback) == (1, 1)
    assert log.held_texts([secret]) == set() and log.tenant_of(b.id) == "acme"
    if log.db.dialect == "sqlite":
        path = Path(log.db.path)  # type: ignore[attr-defined]
        for file in (path, path.with_name(path.name + "-wal")):
            if file.is_file():
                assert secret.encode() not in read_sqlite_file(file)
                assert a.id.encode() not in read_sqlite_file(file)
    with pytest.raises(InvalidInput) as info:
        log.forget(Scope("acme", "bob"), secure="yes")  # type: ignore[arg-type]
    assert info.value.field == "secure"
    assert log.tenant_of(b.id) == "acme"  # refused before anything was deleted


def test_seq_and_id_reads_use_their_indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One query per call, a range on an index: the primary key (seq) or the unique id index.
    log = ExperienceLog(tmp_path / "plans.db")
    feedback_log(log)
    captured: list[tuple[str, list[Any]]] = []
    run = log.db.run

    class Recording:
        def __init__(self, cur: Any) -> None:
            self.cur = cur

        def execute(self, sql: str, params: Any = ()) -> Any:
            captured.append((sql, list(params)))
            return self.cur.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cur, name)

    monkeypatch.setattr(
        log.db, "run", lambda fn, write=True: run(lambda cur: fn(Recording(cur)), write=write)
    )

    def plans(read: Callable[[], object]) -> list[str]:
        captured.clear()
        read()
        queries = list(captured)
        return [
            " / ".join(
                str(r[-1])
                for r in run(lambda cur, q=q: cur.execute("EXPLAIN QUERY PLAN " + q[0], q[1]).fetchall())
            )
            for q in queries
        ]

    for read in (lambda: log.feedback_after(0), lambda: log.feedback_after(3, upto=8, limit=2)):
        (plan,) = plans(read)
        assert "INTEGER PRIMARY KEY (rowid>?" in plan and "TEMP B-TREE" not in plan, plan
    assert len(plans(lambda: log.feedback_after(3, upto=8, tenant="acme"))) == 1
    (plan,) = plans(lambda: log.feedback_with_id_prefix("req-1."))
    assert "sqlite_autoindex_feedback" in plan and "(id>? AND id<?)" in plan and "TEMP B-TREE" not in plan, (
        plan
    )
    (plan,) = plans(lambda: log.tenant_of("x"))
    assert "sqlite_autoindex_interactions" in plan and "(id=?)" in plan, plan


def test_the_feedback_of_one_call_is_one_arrival(log: ExperienceLog) -> None:
    from lifelong.experience.records import arrivals, feedback_of

    a, b = interaction(t=1), interaction(t=2)
    call = feedback_of(a.id, accept=False, correction="x", time=3.0)  # one call: a reject and its correction
    later = feedback_of(a.id, rating=4, rating_scale=(1, 5), time=5.0)
    log.append_many([a, b, *call, Feedback.reward(b.id, 1, time=4.0), *later])
    steps = list(log.replay(order="feedback"))
    assert [[f.kind.value for f in s.feedback] for s in steps] == [
        ["reject", "correction"],
        ["reward"],
        ["rating"],
    ]
    rows = log.feedback_after(0)
    assert len(rows) == 4 and [seq for seq, _ in arrivals(rows)] == [rows[1][0], rows[2][0], rows[3][0]]
    assert len({f.time for f in feedback_of("i", reward=1, accept=True)}) == 1  # stamped alike
