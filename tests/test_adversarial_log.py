"""The experience log under adversarial use: races, many threads, bad files, bad URLs, bad bounds.

Every case must end in a typed :class:`LifelongError` that says what is wrong (never a raw sqlite3 or
psycopg traceback, never a silent accept or a silent loss), on both backends where both apply.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lifelong.experience.log as log_module
from lifelong.errors import BackendUnavailable, Conflict, InvalidInput, LifelongError, NotFound
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope
from lifelong.storage import PostgresDatabase, SQLiteDatabase, open_database

POSTGRES = "postgresql://127.0.0.1:5432/test"
ADA = Scope("acme", "ada", "s1")


def interaction(scope: Scope = ADA, t: float = 100.0, text: str = "q", **kw: Any) -> Interaction:
    return Interaction(scope, text, "a", time=t, **kw)


def with_query(url: str, **params: object) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def snapshot(log: ExperienceLog) -> list[dict[str, Any]]:
    return [step.to_dict() for step in log.replay()]


# -- 1. same id, different content, at the same moment --------------------------------------------
def race(fns: list[Callable[[], Any]]) -> list[Any]:
    """Run the functions in threads released together; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(fns))
    results: list[Any] = [None] * len(fns)

    def worker(k: int) -> None:
        barrier.wait()
        try:
            results[k] = fns[k]()
        except Exception as exc:
            results[k] = exc

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(fns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_same_id_other_content_is_one_conflict_never_a_silent_loss(log_url: str) -> None:
    first, second = ExperienceLog(log_url), ExperienceLog(log_url)
    base = interaction(Scope("acme", "race"), t=1.0)
    first.append(base)
    try:
        for trial in range(50):
            rid = f"race-{trial}"
            if trial % 2 == 0:  # interactions
                records: list[Interaction | Feedback] = [
                    interaction(Scope("acme", "race"), t=2.0 + trial, text=f"from writer {k}", id=rid)
                    for k in range(2)
                ]
            else:  # feedback
                records = [Feedback.correction(base.id, f"answer {k}", id=rid, time=5.0) for k in range(2)]
            # Each writer also appends a record of its own: the loser's must be rolled back with it.
            own = [interaction(Scope("acme", "race"), t=3.0, text=f"own {trial}.{k}") for k in range(2)]
            outcomes = race(
                [
                    lambda k=k, log=log, own=own, records=records: log.append_many([own[k], records[k]])
                    for k, log in enumerate((first, second))
                ]
            )
            winners = [k for k, r in enumerate(outcomes) if not isinstance(r, Exception)]
            losers = [k for k, r in enumerate(outcomes) if isinstance(r, Exception)]
            assert len(winners) == 1 and len(losers) == 1, f"trial {trial}: {outcomes}"
            assert isinstance(outcomes[losers[0]], Conflict), outcomes[losers[0]]
            report = outcomes[winners[0]]
            assert (report.interactions + report.feedback, report.duplicates) == (2, 0)
            won = records[winners[0]]
            if isinstance(won, Interaction):
                assert first.get(rid).interaction == won
            else:
                assert [fb for fb in first.get(base.id).feedback if fb.id == rid] == [won]
            with pytest.raises(NotFound):
                first.get(own[losers[0]].id)  # the loser's batch left nothing behind
    finally:
        first.close()
        second.close()


def test_concurrent_same_record_is_stored_once_and_counted_as_a_duplicate(log_url: str) -> None:
    first, second = ExperienceLog(log_url), ExperienceLog(log_url)
    try:
        for trial in range(20):
            same = interaction(t=float(trial), text=f"same {trial}")
            reports = race([lambda log=log, same=same: log.append_many([same]) for log in (first, second)])
            assert not any(isinstance(r, Exception) for r in reports), reports
            assert sorted((r.interactions, r.duplicates) for r in reports) == [(0, 1), (1, 0)]
        assert first.stats().interactions == 20
    finally:
        first.close()
        second.close()


# -- 2. a bounded connection pool on PostgreSQL ------------------------------------------------------
def server_connections(application_name: str) -> int:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchone()
        return int(row[0]) if row else 0


@pytest.mark.postgres
@pytest.mark.parametrize("pool_size", [None, 3])
def test_many_short_lived_threads_share_a_bounded_pool(postgres_url: str, pool_size: int | None) -> None:
    name = f"lifelong_pool_{uuid.uuid4().hex[:8]}"
    url = with_query(postgres_url, application_name=name)
    if pool_size is not None:
        url = with_query(url, pool_size=pool_size)
    bound = pool_size or 8
    log = ExperienceLog(url)
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(server_connections(name))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        threads = [
            threading.Thread(target=log.append, args=(interaction(t=float(k), text=f"t{k}"),))
            for k in range(60)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        seen.append(server_connections(name))
    finally:
        done.set()
        sampler.join()
    assert log.stats().interactions == 60
    assert max(seen) <= bound, f"{max(seen)} server connections for a pool of {bound}"
    log.close()  # closes the pool: its connections go away
    deadline = time.monotonic() + 10
    while server_connections(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server_connections(name) == 0


@pytest.mark.postgres
def test_every_pooled_connection_uses_the_schema(postgres_url: str) -> None:
    db = open_database(with_query(postgres_url, pool_size=4))
    schema = postgres_url.split("schema=")[1]
    inside = threading.Barrier(4)

    def current_schema(cur: Any) -> str:
        cur.execute("SELECT current_schema()")
        inside.wait(30)  # all four at once: four distinct connections
        return str(cur.fetchone()[0])

    try:
        assert race([lambda: db.run(current_schema)] * 4) == [schema] * 4
    finally:
        db.close()


@pytest.mark.postgres
def test_a_lost_connection_is_replaced(postgres_url: str) -> None:
    import psycopg

    name = f"lifelong_lost_{uuid.uuid4().hex[:8]}"
    log = ExperienceLog(with_query(postgres_url, application_name=name))
    log.append(interaction(t=1))
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
        )
    try:
        log.append(interaction(t=2))
    except BackendUnavailable as exc:  # the pool handed out the dead connection once, at most
        assert "connection lost" in str(exc)
        log.append(interaction(t=2, id="again"))
    assert log.stats().interactions == 2
    log.close()


@pytest.mark.parametrize("size", ["0", "-1", "abc", "1001", "", "2.5"])
def test_pool_size_is_validated(size: str) -> None:
    with pytest.raises(InvalidInput) as info:
        open_database(f"{POSTGRES}?pool_size={size}")
    assert info.value.field == "pool_size"


def test_lifelong_keys_do_not_reach_libpq_and_libpq_keys_pass() -> None:
    db = open_database(f"{POSTGRES}?schema=abc&pool_size=2&application_name=me&sslmode=disable")
    assert isinstance(db, PostgresDatabase) and db.pool_size == 2 and db.schema == "abc"
    assert "schema" not in db._dsn and "pool_size" not in db._dsn
    assert "application_name=me" in db._dsn and "sslmode=disable" in db._dsn


@pytest.fixture
def limited_role(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL role that may hold one connection at most (the server says "too many" beyond)."""
    import psycopg

    role = f"lifelong_lim_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    yield role
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        for _ in range(50):
            try:
                conn.execute(f"DROP ROLE IF EXISTS {role}")
                break
            except psycopg.errors.DependentObjectsStillInUse:
                time.sleep(0.1)


@pytest.mark.postgres
def test_too_many_connections_says_so_at_open(limited_role: str) -> None:
    import psycopg

    url = f"postgresql://{limited_role}@127.0.0.1:5432/test"
    with (
        psycopg.connect(url),
        pytest.raises(BackendUnavailable) as info,
    ):  # the role's one connection is taken
        ExperienceLog(url)
    message = str(info.value)
    assert "too many connections" in message and "pool_size" in message and "max_connections" in message
    assert "start PostgreSQL" not in message


@pytest.mark.postgres
def test_a_pool_that_cannot_grow_says_too_many_connections(limited_role: str) -> None:
    db = open_database(f"postgresql://{limited_role}@127.0.0.1:5432/test?pool_size=4")
    assert isinstance(db, PostgresDatabase)
    db.pool_timeout = 2.0
    held, release = threading.Event(), threading.Event()

    def hold(cur: Any) -> None:
        cur.execute("SELECT 1")
        held.set()
        release.wait(30)

    holder = threading.Thread(target=db.run, args=(hold,))
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(BackendUnavailable) as info:  # a second connection: the server refuses it
            db.run(lambda cur: cur.execute("SELECT 1"))
        assert "too many connections" in str(info.value) and "start PostgreSQL" not in str(info.value)
    finally:
        release.set()
        holder.join()
        db.close()


def test_sqlite_connections_of_finished_threads_do_not_pile_up(tmp_path: Path) -> None:
    log = ExperienceLog(tmp_path / "log.db")
    for wave in range(15):
        threads = [
            threading.Thread(target=log.append, args=(interaction(t=float(wave), text=f"{wave}.{k}"),))
            for k in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert log.stats().interactions == 60
    assert isinstance(log.db, SQLiteDatabase)
    assert len(log.db._connections) <= 5  # the live ones (at most a wave and this thread) plus one


# -- 3. import: all or nothing, and every error names the file and the line ------------------------
def step_lines(n: int, tag: str = "imp") -> list[str]:
    lines = []
    for k in range(n):
        i = Interaction(Scope("acme", f"u{k % 7}"), f"{tag} {k}", "a", id=f"{tag}-{k}", time=1000.0 + k)
        step = {
            **i.to_dict(),
            "feedback": [Feedback.reward(i.id, 1.0, id=f"{tag}-f{k}", time=1001.0 + k).to_dict()],
        }
        lines.append(json.dumps(step))
    return lines


def bad_line(kind: str, good: str) -> bytes:
    """The 1,251st line of the file, broken in one way."""
    data = json.loads(good)
    if kind == "bad JSON":
        return good[:-7].encode()
    if kind == "NaN reward":
        data["feedback"][0]["value"] = math.nan  # json.dumps writes NaN, which json.loads reads back
        return json.dumps(data).encode()
    if kind == "missing key":
        del data["scope"]
        return json.dumps(data).encode()
    if kind == "wrong type":
        data["feedback"] = [5]
        return json.dumps(data).encode()
    if kind == "not an object":
        return b"[1, 2, 3]"
    if kind == "invalid UTF-8":
        return good.replace("imp", "im\udcffp").encode("utf-8", "surrogateescape")
    if kind == "deep nesting":
        return b"[" * 100_000 + b"]" * 100_000
    if kind == "deep observation":
        data["observation"] = json.loads("[" * 500 + "]" * 500)
        return json.dumps(data).encode()
    if kind == "feedback before interaction":
        data["feedback"][0]["time"] = data["time"] - 10
        return json.dumps(data).encode()
    if kind == "same id, other content":
        data["observation"] = "changed"
        data["id"] = "imp-3"  # line 4 holds imp-3 with other content
        data["feedback"] = []
        return json.dumps(data).encode()
    raise AssertionError(kind)


BAD_LINES = [
    "bad JSON",
    "NaN reward",
    "missing key",
    "wrong type",
    "not an object",
    "invalid UTF-8",
    "deep nesting",
    "deep observation",
    "feedback before interaction",
    "same id, other content",
]


@pytest.mark.parametrize("kind", BAD_LINES)
def test_a_bad_line_imports_nothing_and_names_file_and_line(log_url: str, tmp_path: Path, kind: str) -> None:
    log = ExperienceLog(log_url)
    before = interaction(t=1.0)
    log.append_many([before, Feedback.accept(before.id, time=2.0)])
    held = snapshot(log)
    lines = [line.encode() for line in step_lines(2500)]
    lines[1250] = bad_line(kind, step_lines(1251)[1250])
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(LifelongError) as info:
        log.import_jsonl(path, batch_size=100)  # many batches before the bad line, one transaction
    message = str(info.value)
    assert str(path) in message and "line 1251" in message, message
    assert isinstance(info.value, Conflict if kind == "same id, other content" else InvalidInput)
    assert snapshot(log) == held  # exactly what it held before
    log.close()


def test_import_accepts_a_byte_order_mark_and_blank_lines(log_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(step_lines(30)).encode() + b"\n\n")
    log = ExperienceLog(log_url)
    report = log.import_jsonl(path, batch_size=7)
    assert (report.interactions, report.feedback, report.duplicates) == (30, 30, 0)
    assert log.import_jsonl(path).duplicates == 60


def test_import_of_a_directory_or_a_bad_batch_size(log_url: str, tmp_path: Path) -> None:
    log = ExperienceLog(log_url)
    with pytest.raises(InvalidInput, match="is a directory"):
        log.import_jsonl(tmp_path)
    with pytest.raises(NotFound):
        log.import_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "ok.jsonl").write_text("\n".join(step_lines(2)))
    with pytest.raises(InvalidInput):
        log.import_jsonl(tmp_path / "ok.jsonl", batch_size=0)


# -- 4. replaying a scope pages through an index, never sorts the scope ------------------------------
def page_plans(log: ExperienceLog, replay: Callable[[], Any]) -> list[str]:
    """The query plans of every page query that ``replay`` issues, one text per page."""
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

    log.db.run = lambda fn, write=True: run(lambda cur: fn(Recording(cur)), write=write)  # type: ignore[method-assign]
    try:
        replay()
    finally:
        del log.db.run
    prefix = "EXPLAIN QUERY PLAN " if log.db.dialect == "sqlite" else "EXPLAIN "

    def explain(cur: Any, sql: str, params: list[Any]) -> str:
        cur.execute(prefix + sql, params)
        return "\n".join(str(row[-1] if log.db.dialect == "sqlite" else row[0]) for row in cur.fetchall())

    pages = [(sql, params) for sql, params in captured if "LIMIT" in sql]
    return [log.db.run(lambda cur, s=sql, p=params: explain(cur, s, p), write=False) for sql, params in pages]


def test_scope_replays_use_an_index_in_replay_order(log_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log = ExperienceLog(log_url)
    records = []
    for k in range(4000):
        scope = Scope(f"t{k % 2}", f"u{k % 8}", f"s{k % 16}")
        records.append(Interaction(scope, "q", "a", time=1e9 + k // 3))  # ties in time: seq decides
    log.append_many(records)
    if log.db.dialect == "postgresql":
        log.db.run(lambda cur: cur.execute("ANALYZE"))
    monkeypatch.setattr(log_module, "PAGE_SIZE", 50)
    for scope, since in [
        (Scope("t1", "u1"), None),
        (Scope("t1"), None),
        (Scope("t1", "u1", "s1"), None),
        (Scope("t1", "u1"), 1e9 + 200),
    ]:
        plans = page_plans(log, lambda s=scope, t=since: list(log.replay(s, since=t)))
        assert len(plans) > 4
        # PostgreSQL may sort the last few pages' rows (fewer than a few pages); never a longer rest.
        for plan in plans if log.db.dialect == "sqlite" else plans[:-4]:
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, f"{scope}:\n{plan}"
        for plan in plans[1:]:  # pages after the first seek to the keyset, they do not scan up to it
            assert "(time, seq)" in plan.replace('"', "") or "time>" in plan, plan
    assert [s.interaction.time for s in log.replay(Scope("t1", "u1"))] == sorted(
        r.time for r in records if r.scope.tenant == "t1" and r.scope.user == "u1"
    )


def indexes(log: ExperienceLog) -> set[str]:
    def read(cur: Any) -> set[str]:
        if log.db.dialect == "sqlite":
            cur.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'interactions'")
        else:
            cur.execute(
                "SELECT indexname FROM pg_indexes "
                "WHERE tablename = 'interactions' AND schemaname = current_schema()"
            )
        return {row[0] for row in cur.fetchall()}

    return log.db.run(read, write=False)


def test_an_older_log_gets_the_new_indexes(log_url: str) -> None:
    with ExperienceLog(log_url) as log:
        log.append(interaction())

        def downgrade(cur: Any) -> None:  # the indexes as lifelong 0.1.0 made them
            cur.execute("DROP INDEX interactions_user_time")
            cur.execute("CREATE INDEX interactions_scope ON interactions (tenant, user_id, session)")

        log.db.run(downgrade)
        assert "interactions_scope" in indexes(log)
    with ExperienceLog(log_url) as log:
        found = indexes(log)
        assert "interactions_user_time" in found
        assert "interactions_scope" not in found
        assert len(list(log.replay(ADA))) == 1


# -- 5. typed errors: files, URLs, reading without creating, feedback times, replay bounds ------------
def assert_typed(
    fn: Callable[[], Any], path: Path, kind: type[LifelongError] = LifelongError
) -> LifelongError:
    """``fn`` fails with a LifelongError of ``kind`` that names ``path`` (never a raw sqlite3 error)."""
    try:
        fn()
    except sqlite3.Error as exc:  # pragma: no cover - the failure this test exists for
        raise AssertionError(f"raw {type(exc).__name__}: {exc}") from exc
    except LifelongError as exc:
        assert isinstance(exc, kind), exc
        assert str(path) in str(exc), exc
        return exc
    raise AssertionError("no error")


def a_real_log(path: Path, n: int = 2000) -> None:
    with ExperienceLog(path) as log:
        log.append_many([interaction(Scope("acme", f"u{k}"), t=float(k), text="x" * 200) for k in range(n)])
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def damage(kind: str, path: Path) -> None:
    if kind == "random bytes":
        path.write_bytes(os.urandom(8192))
    elif kind == "text file":
        path.write_text("this is not a database\n")
    elif kind == "too short":
        path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20)
    else:
        a_real_log(path)
        data = bytearray(path.read_bytes())
        if kind == "truncated":
            path.write_bytes(bytes(data[: len(data) // 2]))
        elif kind == "pages overwritten":
            data[8192 : 8192 + 16384] = os.urandom(16384)
            path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["random bytes", "text file", "too short", "truncated", "pages overwritten"])
def test_a_damaged_sqlite_file_is_a_typed_error_naming_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "log.db"
    damage(kind, path)

    def use() -> None:
        with ExperienceLog(path) as log:
            list(log.replay())
            log.stats()
            log.append_many([interaction(Scope("acme", f"n{k}"), t=float(k)) for k in range(500)])

    assert_typed(use, path, InvalidInput)


def test_a_directory_is_not_a_log(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    error = assert_typed(lambda: ExperienceLog(tmp_path / "dir.db"), tmp_path / "dir.db", InvalidInput)
    assert "directory" in str(error)
    assert_typed(lambda: ExperienceLog(f"sqlite:///{tmp_path}/dir.db"), tmp_path / "dir.db", InvalidInput)


def test_a_read_only_log_refuses_writes_with_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    a_real_log(path, 10)
    with ExperienceLog(f"sqlite:///{path}?mode=ro") as log:
        assert len(log) == 10  # reading works
        error = assert_typed(lambda: log.append(interaction()), path, InvalidInput)
        assert "read-only" in str(error)
    assert_typed(
        lambda: ExperienceLog(f"sqlite:///{tmp_path}/none.db?mode=ro"), tmp_path / "none.db", NotFound
    )


def chattr(flag: str, path: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("what", ["file", "directory"])
def test_an_unwritable_file_or_directory_is_a_typed_error(tmp_path: Path, what: str) -> None:
    """As root, chmod does not stop writes; the immutable attribute does (where the filesystem has it)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "log.db"
    a_real_log(path, 10)
    target = path if what == "file" else folder
    if os.geteuid() != 0:
        target.chmod(0o444 if what == "file" else 0o555)
    elif not chattr("+i", target):
        pytest.skip("cannot make a file unwritable here (no chattr +i)")
    try:

        def use() -> None:
            with ExperienceLog(path) as log:
                log.append(interaction())

        assert_typed(use, path)
        if what == "directory":
            assert_typed(lambda: ExperienceLog(folder / "new.db"), folder / "new.db", InvalidInput)
    finally:
        if os.geteuid() == 0:
            chattr("-i", target)
        target.chmod(0o755 if what == "directory" else 0o644)


def test_options_on_a_plain_path_are_refused_with_the_url_to_write(tmp_path: Path) -> None:
    plain = f"{tmp_path}/log.db?synchronous=normal"
    with pytest.raises(InvalidInput) as info:
        ExperienceLog(plain)
    assert f"sqlite:///{tmp_path}/log.db?synchronous=normal" in str(info.value)
    assert not any(tmp_path.iterdir())  # no file named "log.db?synchronous=normal"
    with ExperienceLog(f"sqlite:///{tmp_path}/log.db?synchronous=normal") as log:
        assert isinstance(log.db, SQLiteDatabase) and log.db.synchronous == "normal"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("sqlite:///{tmp}/x.db?synchronus=normal", "synchronus"),
        ("sqlite:///{tmp}/x.db?synchronous=normal&journal=off", "journal"),
        ("sqlite:///{tmp}/x.db?mode=rx", "mode"),
        ("sqlite:///{tmp}/x.db?synchronous=", "synchronous"),
        (POSTGRES + "?schemaa=x", "schemaa"),
        (POSTGRES + "?schema=x&poolsize=3", "poolsize"),
        (POSTGRES + "?schema=", "schema"),
    ],
)
def test_unknown_or_empty_url_options_are_named(tmp_path: Path, url: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        open_database(url.format(tmp=tmp_path))
    assert key in str(info.value)
    assert not (tmp_path / "x.db").exists()


def test_reading_does_not_create_a_log(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for url in (missing, f"sqlite:///{missing}"):
        with pytest.raises(NotFound) as info:
            ExperienceLog(url, create=False)
        assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert not missing.exists()
    (tmp_path / "empty.db").touch()
    with pytest.raises(NotFound, match="no experience log"):
        ExperienceLog(tmp_path / "empty.db", create=False)
    a_real_log(tmp_path / "real.db", 3)
    with ExperienceLog(tmp_path / "real.db", create=False) as log:
        assert len(log) == 3
    with pytest.raises(NotFound):
        open_database(missing, create=False)


@pytest.mark.postgres
def test_reading_does_not_create_a_postgres_schema(postgres_url: str) -> None:
    import psycopg

    missing = postgres_url + "x"  # a schema nobody made
    with pytest.raises(NotFound, match="does not exist"):
        ExperienceLog(missing, create=False)
    with psycopg.connect(POSTGRES) as conn:
        schema = missing.split("schema=")[1]
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None
    ExperienceLog(postgres_url).close()
    with ExperienceLog(postgres_url, create=False) as log:
        assert len(log) == 0


def test_feedback_before_its_interaction_is_refused(log_url: str) -> None:
    log = ExperienceLog(log_url)
    stored = interaction(t=100.0)
    log.append(stored)
    early = Feedback.reward(stored.id, 1.0, time=99.5, id="early")
    with pytest.raises(InvalidInput) as info:
        log.append(early)  # interaction in the log
    assert "early" in str(info.value) and "99.5" in str(info.value) and "100.0" in str(info.value)
    fresh = interaction(t=200.0)
    with pytest.raises(InvalidInput, match="before its interaction"):
        log.append_many([fresh, Feedback.accept(fresh.id, time=199.999)])  # interaction in the batch
    with pytest.raises(InvalidInput):
        log.append_many([Feedback.accept(stored.id, time=150.0), Feedback.reject(stored.id, time=1.0)])
    assert log.stats().feedback == 0 and log.stats().interactions == 1  # nothing of those batches landed
    assert log.append(Feedback.accept(stored.id, time=100.0))  # the same instant is fine
    assert log.append_many([fresh, Feedback.accept(fresh.id, time=200.0)]).feedback == 1


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        (math.nan, None, "since"),
        (None, math.nan, "until"),
        (math.inf, 5.0, "since"),
        (10.0, -math.inf, "since"),
        (5.0, 1.0, "since"),
        ("yesterday", None, "since"),
        (None, True, "until"),
    ],
)
def test_replay_bounds_are_checked(log_url: str, since: Any, until: Any, field: str) -> None:
    log = ExperienceLog(log_url)
    with pytest.raises(InvalidInput) as info:
        log.replay(since=since, until=until)  # checked when called, not when first iterated
    assert info.value.field == field
    with pytest.raises(InvalidInput):
        list(log.replay(since=since, until=until, order="feedback"))


def test_infinite_bounds_mean_no_bound(log_url: str) -> None:
    log = ExperienceLog(log_url)
    log.append_many([interaction(t=float(t)) for t in range(3)])
    assert len(list(log.replay(since=-math.inf, until=math.inf))) == 3
    assert list(log.replay(since=math.inf)) == []


def test_memory_stays_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with ExperienceLog(":memory:") as log:
        log.append(interaction())
        assert len(log) == 1
    with ExperienceLog(":memory:") as fresh:
        assert len(fresh) == 0  # nothing persisted ...
    assert not any(tmp_path.iterdir())  # ... and no file named ":memory:" appeared
