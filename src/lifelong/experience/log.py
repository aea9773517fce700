"""The experience log: an append-only, durable store of interactions and their feedback.

The log is the truth (DESIGN principle 1): every interaction and every piece of feedback is appended here
before anything learns from it, and every learned state can be rebuilt by replaying it.

>>> import tempfile, os
>>> from lifelong.experience import ExperienceLog, Interaction, Feedback, Scope
>>> log = ExperienceLog(os.path.join(tempfile.mkdtemp(), "log.db"))
>>> i = Interaction(Scope(user="ada"), observation="2+2?", action="5")
>>> log.append(i), log.append(i)          # idempotent by id: stored once
(True, False)
>>> log.append(Feedback.correction(i.id, "4"))
True
>>> [step.correction for step in log.replay(Scope(user="ada"))]
['4']
>>> log.forget(Scope(user="ada")).interactions
1

Backends are chosen by URL (see :mod:`lifelong.storage`): a file path or ``sqlite:///...`` for SQLite,
``postgresql://...`` for PostgreSQL. Both store the same rows, each record as canonical JSON beside the
columns used for filtering and ordering.
"""

from __future__ import annotations

import codecs
import json
import math
import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lifelong.errors import Conflict, InvalidInput, NotFound
from lifelong.experience.records import (
    _BAD_NAME_CHAR,
    Feedback,
    Interaction,
    Scope,
    Step,
    arrivals,
    canonical_json,
)
from lifelong.files import atomic_open
from lifelong.storage import (
    Cursor,
    Database,
    chunks,
    contains,
    open_database,
    placeholders,
    redact,
    scrub,
    secure_delete,
)

Origin = Callable[[str], str]  # a record id -> where it came from, for messages ("" when obvious)

SCHEMA_VERSION = 1
PAGE_SIZE = 1000

#: Where the log stores text that erasure searches (see :meth:`ExperienceLog.count_holding`).
TEXT_COLUMNS = ("interactions.body", "feedback.body", "feedback.interaction_id")


@dataclass(frozen=True)
class AppendReport:
    """What one append stored: new records, and records already present (same id, same content)."""

    interactions: int = 0
    feedback: int = 0
    duplicates: int = 0


#: What replaces, in another interaction's metadata, a string value that named a forgotten interaction.
ERASED_REFERENCE = "[erased]"


@dataclass(frozen=True)
class RedactReport:
    """What :meth:`ExperienceLog.redact_references` rewrote, and what it had to leave.

    ``redacted``: the interactions whose metadata named a forgotten interaction (its id, or an item
    named after it such as ``<id>/ExampleBank/0`` in ``metadata["recalled"]``) and no longer do.
    ``kept``: one sentence per interaction that still holds a forgotten id other than as a reference
    (inside its observation, its action or a text: what its own user sent or was answered, which is
    theirs and is not rewritten), saying where and why.
    """

    redacted: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForgetReport:
    """What :meth:`ExperienceLog.forget` deleted, and the references to it it redacted elsewhere."""

    scope: Scope
    interactions: int
    feedback: int
    interaction_ids: tuple[str, ...] = field(repr=False, default=())
    references: RedactReport = field(default_factory=RedactReport)


@dataclass(frozen=True)
class LogStats:
    interactions: int
    feedback: int
    feedback_by_kind: dict[str, int]
    tenants: int
    users: int
    sessions: int
    first_time: float | None
    last_time: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ddl(dialect: str) -> list[str]:
    seq = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        "CREATE TABLE IF NOT EXISTS lifelong_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS interactions (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            user_id TEXT,
            session TEXT,
            time DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS interactions_time ON interactions (time, seq)",
        # Replays of a scope page in (time, seq) order; this index delivers that order for a user (a
        # session filters within its user), so no page sorts the whole scope (quadratic). A tenant-only
        # replay walks interactions_time and filters: linear, and one index less for every append to
        # maintain (single appends are bound by the pages each commit writes).
        "CREATE INDEX IF NOT EXISTS interactions_user_time ON interactions (tenant, user_id, time, seq)",
        "DROP INDEX IF EXISTS interactions_tenant_time",
        "DROP INDEX IF EXISTS interactions_scope",  # older logs: (tenant, user_id, session), no order
        f"""CREATE TABLE IF NOT EXISTS feedback (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            interaction_id TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS feedback_interaction ON feedback (interaction_id)",
        "CREATE INDEX IF NOT EXISTS feedback_time ON feedback (time, seq)",
    ] + (
        # A session determines its user and tenant: without knowing that, PostgreSQL's planner multiplies
        # their selectivities, thinks a session has a handful of rows and sorts it on every page.
        [
            "CREATE STATISTICS IF NOT EXISTS interactions_scope_stats (dependencies) "
            "ON tenant, user_id, session FROM interactions"
        ]
        if dialect == "postgresql"
        else []
    )


class ExperienceLog:
    """Append-only log of :class:`Interaction` and :class:`Feedback` on SQLite or PostgreSQL.

    Parameters
    ----------
    url
        A file path or ``sqlite:///PATH`` (embedded default) or ``postgresql://HOST:PORT/DB``.
    create
        False for readers: a log that does not exist raises :class:`NotFound` instead of being
        created empty, so a mistyped path is not silently a new, empty log.
    """

    def __init__(self, url: str | Path, *, create: bool = True) -> None:
        self.db: Database = open_database(url, create=create)
        self.url = self.db.url
        try:
            if (self.db.read_only or not create) and not self.db.run(self._holds_log, write=False):
                raise NotFound(
                    f"{redact(self.url)} holds no experience log (opened for reading, so none was created)"
                )
            if self.db.read_only:
                self.db.run(self._check_schema, write=False)
            else:
                self.db.run(self._create_schema)  # also migrates an older log's indexes
        except BaseException:
            self.db.close()  # a PostgreSQL pool would otherwise keep its connections open
            raise

    # -- set-up -----------------------------------------------------------------------------------
    def _create_schema(self, cur: Cursor) -> None:
        if self.db.dialect == "postgresql":  # two processes opening one new log must not race on DDL
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('lifelong experience log schema'))")
        for statement in _ddl(self.db.dialect):
            cur.execute(statement)
        if self._check_schema(cur) is None:
            cur.execute(
                "INSERT INTO lifelong_meta (key, value) VALUES ('log_schema', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )

    def _holds_log(self, cur: Cursor) -> bool:
        if self.db.dialect == "sqlite":
            cur.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('lifelong_meta', 'interactions', 'feedback')"
            )
            return bool(cur.fetchone()[0] == 3)
        cur.execute(
            "SELECT to_regclass('lifelong_meta') IS NOT NULL AND to_regclass('interactions') IS NOT NULL "
            "AND to_regclass('feedback') IS NOT NULL"
        )
        return bool(cur.fetchone()[0])

    def _check_schema(self, cur: Cursor) -> int | None:
        """The stored schema version (None for a new log); refuses a log newer than this code."""
        cur.execute("SELECT value FROM lifelong_meta WHERE key = 'log_schema'")
        row = cur.fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise InvalidInput(
                f"log schema {row[0]} is newer than this lifelong ({SCHEMA_VERSION}); upgrade lifelong",
                field="url",
            )
        return None if row is None else int(row[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ExperienceLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ExperienceLog({self.db!r})"

    # -- writing ----------------------------------------------------------------------------------
    def append(self, record: Interaction | Feedback) -> bool:
        """Append one record durably; True if it is new, False if the same record was already stored.

        Raises :class:`Conflict` if the id is stored with different content, :class:`NotFound` if
        feedback names an interaction the log does not hold.
        """
        report = self.append_many([record])
        return (report.interactions + report.feedback) == 1

    def append_many(self, records: Iterable[Interaction | Feedback]) -> AppendReport:
        """Append a batch in one transaction: all of it lands, or (on any error) none of it.

        Interactions in the batch are written before feedback, so feedback may refer to an
        interaction in the same batch. Feedback timed before its interaction is refused.
        """
        batch = _Batch.of(records, _nowhere)
        if not batch.size:
            return AppendReport()
        return self.db.run(lambda cur: self._write(cur, batch))

    def _write(self, cur: Cursor, batch: _Batch) -> AppendReport:
        """Write one batch inside the caller's transaction (shared by append_many and import_jsonl)."""
        new_i, dup_i = self._insert_new(cur, "interactions", batch.interactions, batch.origin)
        times = {row[0]: row[4] for row in batch.interactions}
        times.update(self._interaction_times(cur, {row[1] for row in batch.feedback} - times.keys()))
        for fid, iid, _, ftime, _ in batch.feedback:
            if ftime < times[iid]:  # strict: equal times are fine, any earlier time is a bad clock or id
                raise InvalidInput(
                    f"feedback {fid!r}{batch.origin(fid)} is timed {ftime!r}, before its interaction "
                    f"{iid!r} at {times[iid]!r}; feedback cannot precede what it is about",
                    field="time",
                )
        new_f, dup_f = self._insert_new(cur, "feedback", batch.feedback, batch.origin)
        return AppendReport(new_i, new_f, dup_i + dup_f + batch.repeats)

    def _insert_new(
        self, cur: Cursor, table: str, rows: list[tuple[Any, ...]], origin: Origin
    ) -> tuple[int, int]:
        """Insert rows whose id is new; check that rows with a known id carry the same content.

        The insert comes first and the check after it, in the same transaction: a row that a
        concurrent writer committed first makes our insert do nothing, and under READ COMMITTED the
        re-read (a new statement) sees that row, so a same-id-other-content race is a Conflict for
        exactly one writer instead of a silent loss. (SQLite writers are serialised anyway.)
        """
        if not rows:
            return 0, 0
        columns = (
            "id, tenant, user_id, session, time, body"
            if table == "interactions"
            else "id, interaction_id, kind, time, body"
        )
        row_sql = f"({placeholders(len(rows[0]))})"
        insert = f"INSERT INTO {table} ({columns}) VALUES {row_sql} ON CONFLICT (id) DO NOTHING"
        pipelined = getattr(cur, "executemany_returning", None)
        if pipelined is not None:  # PostgreSQL: the ids that were inserted, from one pipelined batch
            inserted = {row[0] for row in pipelined(insert + " RETURNING id", rows)}
            known = [row for row in rows if row[0] not in inserted]
            self._check_stored(cur, table, known, origin)
            return len(inserted), len(known)
        # SQLite: writers are serialised, so the change count says how many rows were new; only when
        # some were not is every row's stored body compared (ours compare equal to themselves).
        cur.executemany(insert, rows)
        new = cur.rowcount
        if new < len(rows):
            self._check_stored(cur, table, rows, origin)
        return new, len(rows) - new

    def _check_stored(self, cur: Cursor, table: str, rows: list[tuple[Any, ...]], origin: Origin) -> None:
        """Conflict unless every row's id is stored with exactly the row's body."""
        stored: dict[str, str] = {}
        for ids in chunks([row[0] for row in rows]):
            cur.execute(f"SELECT id, body FROM {table} WHERE id IN ({placeholders(len(ids))})", ids)
            stored.update({rid: body for rid, body in cur.fetchall()})
        for row in rows:
            if stored.get(row[0]) != row[-1]:
                raise Conflict(
                    f"{table} id {row[0]!r}{origin(row[0])} is already "
                    "stored with different content; give the new record a new id"
                )

    def _interaction_times(self, cur: Cursor, ids: set[str]) -> dict[str, float]:
        """The times of these stored interactions; NotFound if one is not in the log."""
        found: dict[str, float] = {}
        wanted = sorted(ids)
        for part in chunks(wanted):
            cur.execute(f"SELECT id, time FROM interactions WHERE id IN ({placeholders(len(part))})", part)
            found.update({rid: float(t) for rid, t in cur.fetchall()})
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(
                f"feedback refers to interaction {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + " which is not in the log; append the interaction first"
            )
        return found

    # -- reading ----------------------------------------------------------------------------------
    def get(self, interaction_id: str) -> Step:
        """The interaction with this id joined with all its feedback."""

        def read(cur: Cursor) -> Step:
            cur.execute("SELECT body FROM interactions WHERE id = ?", (interaction_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no interaction {interaction_id!r} in {self.db!r}")
            interaction = Interaction.from_dict(json.loads(row[0]))
            return Step(interaction, tuple(self._feedback_of(cur, [interaction_id])[interaction_id]))

        return self.db.run(read, write=False)

    def replay(
        self,
        scope: Scope | None = None,
        since: float | None = None,
        until: float | None = None,
        *,
        order: Literal["interaction", "feedback"] = "interaction",
    ) -> Iterator[Step]:
        """Yield steps in time order, filtered by scope and by time range ``since <= t < until``.

        ``order="interaction"`` yields one step per interaction (by interaction time) joined with all
        its feedback that arrived before ``until``. ``order="feedback"`` yields one step per arrival of
        feedback (by feedback time): the pieces one call gave (the same interaction and time, see
        :func:`~lifelong.experience.records.arrivals`) come together, exactly as an online loop that
        learns on every arrival saw them, late feedback included. Pages through the log, so memory stays
        bounded on long logs.
        """
        if order not in ("interaction", "feedback"):
            raise InvalidInput("must be 'interaction' or 'feedback'", field="order")
        _check_scope(scope)
        since, until = _bound(since, "since"), _bound(until, "until")
        if since is not None and until is not None and since > until:
            raise InvalidInput(f"since {since!r} is after until {until!r}; swap them?", field="since")
        where, params = _filters("i", scope)
        alias = "i" if order == "interaction" else "f"
        if since is not None:
            where.append(f"{alias}.time >= ?")
            params.append(since)
        if until is not None:
            where.append(f"{alias}.time < ?")
            params.append(until)
        if order == "interaction":
            select = "SELECT i.time, i.seq, i.id, i.body FROM interactions i"
            if scope is not None and scope.user is None and self.db.dialect == "sqlite":
                select += " INDEXED BY interactions_time"  # else it sorts the tenant on every page

            def expand(cur: Cursor, rows: list[Any]) -> list[Step]:
                feedback = self._feedback_of(cur, [r[2] for r in rows], until)
                return [Step(Interaction.from_dict(json.loads(r[3])), tuple(feedback[r[2]])) for r in rows]

        else:
            select = (
                "SELECT f.time, f.seq, i.body, f.body FROM feedback f "
                "JOIN interactions i ON i.id = f.interaction_id"
            )

            def expand(cur: Cursor, rows: list[Any]) -> list[Step]:
                return [
                    Step(Interaction.from_dict(json.loads(r[2])), (Feedback.from_dict(json.loads(r[3])),))
                    for r in rows
                ]

            return _arriving(self._pages(select, alias, where, params, expand))
        return self._pages(select, alias, where, params, expand)

    def _pages(
        self,
        select: str,
        alias: str,
        where: list[str],
        params: list[Any],
        expand: Callable[[Cursor, list[Any]], list[Step]],
    ) -> Iterator[Step]:
        """Keyset pagination on (time, seq): one short read transaction per page of ``PAGE_SIZE`` rows.

        ``select`` must return ``time`` and ``seq`` of ``alias`` as its first two columns.
        """
        after: tuple[float, int] | None = None
        while True:
            page_where, page_params = list(where), list(params)
            if after is not None:
                # A row value, so the index on (..., time, seq) seeks straight to the next page.
                page_where.append(f"({alias}.time, {alias}.seq) > (?, ?)")
                page_params += [after[0], after[1]]
            sql = (
                select
                + (" WHERE " + " AND ".join(page_where) if page_where else "")
                + f" ORDER BY {alias}.time, {alias}.seq LIMIT {PAGE_SIZE}"
            )

            def read_page(cur: Cursor, sql: str = sql, page_params: list[Any] = page_params) -> Any:
                cur.execute(sql, page_params)
                rows = cur.fetchall()
                return rows, expand(cur, rows)

            rows, steps = self.db.run(read_page, write=False)
            yield from steps
            if len(rows) < PAGE_SIZE:
                return
            after = (rows[-1][0], rows[-1][1])

    def _feedback_of(
        self, cur: Cursor, ids: Sequence[str], until: float | None = None
    ) -> dict[str, list[Feedback]]:
        out: dict[str, list[Feedback]] = defaultdict(list)
        for part in chunks(list(ids)):
            sql = (
                "SELECT interaction_id, body FROM feedback "
                f"WHERE interaction_id IN ({placeholders(len(part))})"
            )
            params: list[Any] = list(part)
            if until is not None:
                sql += " AND time < ?"
                params.append(until)
            cur.execute(sql + " ORDER BY time, seq", params)
            for iid, body in cur.fetchall():
                out[iid].append(Feedback.from_dict(json.loads(body)))
        return out

    def recent(self, scope: Scope | None = None, limit: int = 50) -> list[Step]:
        """The ``limit`` newest interactions of ``scope`` (newest first), each with all its feedback."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
            raise InvalidInput(f"must be an integer in [1, 100000], got {limit!r}", field="limit")
        _check_scope(scope)
        where, params = _filters("i", scope)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def read(cur: Cursor) -> list[Step]:
            cur.execute(
                f"SELECT i.id, i.body FROM interactions i{clause} "
                f"ORDER BY i.time DESC, i.seq DESC LIMIT {limit}",
                params,
            )
            rows = cur.fetchall()
            feedback = self._feedback_of(cur, [r[0] for r in rows])
            return [Step(Interaction.from_dict(json.loads(r[1])), tuple(feedback[r[0]])) for r in rows]

        return self.db.run(read, write=False)

    def __len__(self) -> int:
        return self.stats().interactions

    def stats(self, scope: Scope | None = None) -> LogStats:
        """Counts: interactions, feedback by kind, distinct tenants/users/sessions, time span."""
        _check_scope(scope)
        where, params = _filters("i", scope)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def read(cur: Cursor) -> LogStats:
            cur.execute(
                "SELECT COUNT(*), COUNT(DISTINCT i.tenant), COUNT(DISTINCT i.tenant || '/' || i.user_id), "
                "COUNT(DISTINCT i.tenant || '/' || i.user_id || '/' || i.session), MIN(i.time), MAX(i.time) "
                f"FROM interactions i{clause}",
                params,
            )
            n, tenants, users, sessions, first, last = cur.fetchone()
            cur.execute(
                "SELECT f.kind, COUNT(*) FROM feedback f JOIN interactions i ON i.id = f.interaction_id"
                f"{clause} GROUP BY f.kind ORDER BY f.kind",
                params,
            )
            by_kind = {kind: int(count) for kind, count in cur.fetchall()}
            return LogStats(
                int(n),
                sum(by_kind.values()),
                by_kind,
                int(tenants),
                int(users),
                int(sessions),
                None if first is None else float(first),
                None if last is None else float(last),
            )

        return self.db.run(read, write=False)

    def interactions_per_tenant(self) -> list[tuple[str, int]]:
        """Every tenant with its number of interactions, ordered by tenant."""

        def read(cur: Cursor) -> list[tuple[str, int]]:
            cur.execute("SELECT tenant, COUNT(*) FROM interactions GROUP BY tenant ORDER BY tenant")
            return [(str(t), int(n)) for t, n in cur.fetchall()]

        return self.db.run(read, write=False)

    def tenant_of(self, interaction_id: str) -> str | None:
        """The tenant of the interaction with this id; None when the log holds no such interaction.

        One read on the unique id index. An id no record can have (a control character, say) is
        simply not held: None.
        """
        if not isinstance(interaction_id, str):
            raise InvalidInput(
                f"must be a string, got {type(interaction_id).__name__}", field="interaction_id"
            )
        if not _storable(interaction_id):
            return None

        def read(cur: Cursor) -> Any:
            cur.execute("SELECT tenant FROM interactions WHERE id = ?", (interaction_id,))
            return cur.fetchone()

        row = self.db.run(read, write=False)
        return None if row is None else str(row[0])

    def feedback_with_id_prefix(self, prefix: str) -> list[Feedback]:
        """Every stored piece of feedback whose id starts with ``prefix``, ordered by id.

        One read: a range on the unique id index (``prefix <= id < next``, ``next`` being the prefix
        with its last character incremented; the rows are checked for the prefix too). The service
        files the records of one idempotent feedback request under ``<feedback_id>.<kind>``.
        """
        if not isinstance(prefix, str) or not prefix:
            got = repr(prefix) if isinstance(prefix, str) else type(prefix).__name__
            raise InvalidInput(f"must be a non-empty string, got {got}", field="prefix")
        if not _storable(prefix):
            return []
        upper = _prefix_end(prefix)
        sql = "SELECT id, body FROM feedback WHERE id >= ?" + ("" if upper is None else " AND id < ?")
        params = [prefix] if upper is None else [prefix, upper]

        def read(cur: Cursor) -> list[Feedback]:
            cur.execute(sql + " ORDER BY id", params)
            return [
                Feedback.from_dict(json.loads(body)) for rid, body in cur.fetchall() if rid.startswith(prefix)
            ]

        return self.db.run(read, write=False)

    # -- following the log by seq -----------------------------------------------------------------
    # Every record gets a ``seq`` that grows with each append. Readers that must see every piece of
    # feedback exactly once (the service's workers, :mod:`lifelong.serve.follow`) page by seq; on
    # PostgreSQL a row may become visible after rows with higher seqs (its transaction commits later),
    # which such a reader has to allow for (:class:`lifelong.serve.follow.Tail` does).

    def max_feedback_seq(self) -> int:
        """The highest seq of any stored feedback (0 for none)."""

        def read(cur: Cursor) -> int:
            cur.execute("SELECT MAX(seq) FROM feedback")
            return int(cur.fetchone()[0] or 0)

        return self.db.run(read, write=False)

    def last_feedback_seqs(self, window: int) -> tuple[int, list[int]]:
        """The highest feedback seq (0 for none) and, ascending, every feedback seq above it minus ``window``.

        Read in one transaction: where a reader starts following the log's end, the seqs missing among
        the last ``window`` may belong to transactions that have not committed yet.
        """
        window = _count(window, "window", 0)

        def read(cur: Cursor) -> tuple[int, list[int]]:
            cur.execute("SELECT MAX(seq) FROM feedback")
            top = int(cur.fetchone()[0] or 0)
            cur.execute("SELECT seq FROM feedback WHERE seq > ?", (top - window,))
            return top, sorted(int(r[0]) for r in cur.fetchall())

        return self.db.run(read, write=False)

    def feedback_after(
        self, seq: int, *, tenant: str | None = None, upto: int | None = None, limit: int = PAGE_SIZE
    ) -> list[tuple[int, Step]]:
        """Up to ``limit`` pieces of feedback with a seq above ``seq`` (and at most ``upto``), by seq.

        Each comes as ``(seq, step)``: the feedback's interaction with that one piece of feedback, as an
        online learner that learns on every arrival sees it. ``tenant`` keeps the feedback on that
        tenant's interactions. One query, a range on the feedback's primary key; read the next page
        from the last seq returned (fewer than ``limit`` rows: the end for now).
        """
        seq = _count(seq, "seq", 0)
        where = ["f.seq > ?"]
        params: list[Any] = [seq]
        if upto is not None:
            where.append("f.seq <= ?")
            params.append(_count(upto, "upto", 0))
        if tenant is not None:
            if not isinstance(tenant, str):
                raise InvalidInput(f"must be a string or None, got {type(tenant).__name__}", field="tenant")
            where.append("i.tenant = ?")
            params.append(tenant)
        limit = _count(limit, "limit", 1, 100_000)
        sql = (
            "SELECT f.seq, i.body, f.body FROM feedback f JOIN interactions i ON i.id = f.interaction_id "
            f"WHERE {' AND '.join(where)} ORDER BY f.seq LIMIT {limit}"
        )

        def read(cur: Cursor) -> list[tuple[int, Step]]:
            cur.execute(sql, params)
            return [
                (int(n), Step(Interaction.from_dict(json.loads(i)), (Feedback.from_dict(json.loads(f)),)))
                for n, i, f in cur.fetchall()
            ]

        return self.db.run(read, write=False)

    def ping(self) -> None:
        """One trivial read: returns when the log's database answers, else raises
        :class:`~lifelong.errors.BackendUnavailable` (a health check)."""
        self.db.run(lambda cur: cur.execute("SELECT 1"), write=False)

    # -- export / import --------------------------------------------------------------------------
    def export_jsonl(
        self,
        path: str | Path,
        scope: Scope | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Write one JSON line per interaction (with its feedback); returns the number of lines.

        The file appears whole or not at all: it is written beside the target and renamed into place.
        """
        _check_scope(scope)
        path = Path(path)
        if not path.parent.exists():
            raise InvalidInput(f"directory {path.parent} does not exist", field="path")
        count = 0
        with atomic_open(path) as out:
            for step in self.replay(scope, since, until):
                out.write(canonical_json(step.to_dict()) + "\n")
                count += 1
        return count

    def import_jsonl(self, path: str | Path, batch_size: int = 1000) -> AppendReport:
        """Append the steps of a JSONL export (idempotent: importing twice stores them once).

        All or nothing: the whole file goes in as one transaction, read line by line so memory stays
        bounded; a bad line anywhere stores nothing and the error names the file and the line.
        """
        path = Path(path)
        if path.is_dir():
            raise InvalidInput("is a directory; give a JSONL file", field=str(path))
        if not path.is_file():
            raise NotFound(f"no file {path}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"must be an integer >= 1, got {batch_size!r}", field="batch_size")

        def write_all(cur: Cursor) -> AppendReport:
            totals = AppendReport()
            batch: list[Interaction | Feedback] = []
            lines: dict[str, int] = {}  # record id -> line number, for the messages of this batch

            def origin(record_id: str) -> str:
                return f" ({path} line {lines[record_id]})" if record_id in lines else f" ({path})"

            def flush() -> AppendReport:
                report = self._write(cur, _Batch.of(batch, origin))
                batch.clear()
                lines.clear()
                return AppendReport(
                    totals.interactions + report.interactions,
                    totals.feedback + report.feedback,
                    totals.duplicates + report.duplicates,
                )

            try:
                with path.open("rb") as file:
                    for number, raw in enumerate(file, 1):
                        step = _parse_line(raw, number, path)
                        if step is None:
                            continue
                        records: list[Interaction | Feedback] = [step.interaction, *step.feedback]
                        lines.update((r.id, number) for r in records)
                        batch += records
                        if len(batch) >= batch_size:
                            totals = flush()
            except OSError as exc:
                raise InvalidInput(f"cannot read it ({exc.strerror or exc})", field=str(path)) from None
            return flush() if batch else totals

        return self.db.run(write_all)

    # -- forgetting -------------------------------------------------------------------------------
    def forget(self, scope: Scope, *, secure: bool = False) -> ForgetReport:
        """Delete every interaction in ``scope`` and all their feedback, in one transaction.

        The only exception to append-only: a user's right to be forgotten. In the same transaction the
        other interactions' metadata stops naming the deleted ones (:meth:`redact_references`: e.g.
        another user's request that recalled an example learned from them), so no id of theirs stays
        behind and a crash cannot leave the references without the ids to find them by. Learned state
        derived from these interactions is found through the version store's provenance
        (:meth:`lifelong.state.VersionStore.derived_from`).

        ``secure=True`` (erasure, :func:`lifelong.state.erasure.forget`) also makes the deleted bytes
        leave SQLite's files: this thread's connection zeroes the pages it frees (``PRAGMA
        secure_delete``, left on for the connection), then the log's indexes are rebuilt (interior index
        pages keep copies of deleted keys) and the WAL is checkpointed and truncated
        (:func:`lifelong.storage.scrub`). Nothing more is done on PostgreSQL.
        """
        _check_scope(scope, allow_none=False)
        if not isinstance(secure, bool):
            raise InvalidInput(f"must be True or False, got {secure!r}", field="secure")
        where, params = _filters("interactions", scope)
        clause = " AND ".join(where)

        def delete(cur: Cursor) -> ForgetReport:
            cur.execute(f"SELECT id FROM interactions WHERE {clause}", params)
            ids = tuple(row[0] for row in cur.fetchall())
            cur.execute(
                f"DELETE FROM feedback WHERE interaction_id IN (SELECT id FROM interactions WHERE {clause})",
                params,
            )
            n_feedback = cur.rowcount
            cur.execute(f"DELETE FROM interactions WHERE {clause}", params)
            n_interactions = cur.rowcount
            references = self._redact_references(cur, ids)
            return ForgetReport(scope, n_interactions, n_feedback, ids, references)

        if secure:
            secure_delete(self.db)
        report = self.db.run(delete)
        if secure:
            scrub(self.db, ("interactions", "feedback"))
        return report

    def count_holding(self, needles: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each place the log stores text (:data:`TEXT_COLUMNS`, as ``table.column``), how many rows
        hold each needle; needles no row holds are left out, every place is a key.

        A needle is matched as canonical JSON stores it (escaped). Erasure's proof that a scope's ids and
        texts are gone, not a hot path: one read transaction, one substring count per needle and place
        (a pass over the table each).
        """
        wanted = _strings(needles, "needles")
        found: dict[str, dict[str, int]] = {column: {} for column in TEXT_COLUMNS}
        if not wanted:
            return found

        def read(cur: Cursor) -> None:
            for column in TEXT_COLUMNS:
                table, name = column.split(".")
                for needle in wanted:
                    escaped = json.dumps(needle)[1:-1]  # how canonical JSON stores it
                    cur.execute(
                        f"SELECT COUNT(*) FROM {table} WHERE {contains(self.db.dialect, name)}", (escaped,)
                    )
                    count = int(cur.fetchone()[0])
                    if count:
                        found[column][needle] = count

        self.db.run(read, write=False)
        return found

    def held_texts(self, texts: Iterable[str]) -> set[str]:
        """The texts that some stored interaction or feedback still holds (matched as canonical JSON
        stores them). One read transaction, one query per text that stops at the first row holding it."""
        wanted = _strings(texts, "texts")
        holds = contains(self.db.dialect, "body")

        def read(cur: Cursor) -> set[str]:
            held = set()
            for text in wanted:
                escaped = json.dumps(text)[1:-1]
                cur.execute(
                    f"SELECT 1 FROM interactions WHERE {holds} UNION ALL "
                    f"SELECT 1 FROM feedback WHERE {holds} LIMIT 1",
                    (escaped, escaped),
                )
                if cur.fetchone() is not None:
                    held.add(text)
            return held

        return self.db.run(read, write=False) if wanted else set()

    def redact_references(self, interaction_ids: Iterable[str]) -> RedactReport:
        """Rewrite, in one transaction, every stored interaction whose metadata names one of
        ``interaction_ids`` so that it no longer does; :meth:`forget` does this for what it deletes.

        A string *names* interaction ``X`` when it is ``X`` or starts with ``X/`` (the ids of items
        learned from ``X``: ``X/ExampleBank/0``). Such a string is dropped from a list (the ids in
        ``metadata["recalled"]``: nothing can be credited to an item that is gone), a dict entry whose
        key names ``X`` is dropped, and a string value naming ``X`` becomes :data:`ERASED_REFERENCE`.
        Nothing else of the interaction changes (its id, scope, time, observation, action); those that
        still hold one of the ids elsewhere are listed in :attr:`RedactReport.kept`, with why.
        """
        if isinstance(interaction_ids, str):
            raise InvalidInput(
                "give a collection of interaction ids, not one string", field="interaction_ids"
            )
        ids = tuple(interaction_ids)
        for iid in ids:
            if not isinstance(iid, str) or not iid:
                raise InvalidInput(f"must hold non-empty strings, got {iid!r}", field="interaction_ids")
        return self.db.run(lambda cur: self._redact_references(cur, ids))

    def _redact_references(self, cur: Cursor, ids: Sequence[str]) -> RedactReport:
        """:meth:`redact_references` inside the caller's transaction.

        One pass over the interactions per chunk of ids (a substring test per id and row), then the
        few rows that hold one are parsed, redacted and written back with their canonical body.
        """
        if not ids:
            return RedactReport()
        escaped = {iid: json.dumps(iid)[1:-1] for iid in ids}  # how canonical JSON stores them
        holds = contains(self.db.dialect, "body")
        rows: dict[str, str] = {}
        for part in chunks(list(ids), 200):
            cur.execute(
                f"SELECT id, body FROM interactions WHERE {' OR '.join([holds] * len(part))}",
                [escaped[iid] for iid in part],
            )
            rows.update(cur.fetchall())
        redacted, kept, updates = [], [], []
        for rid, body in sorted(rows.items()):
            present = [iid for iid in ids if escaped[iid] in body]
            data = json.loads(body)
            metadata, changed = _without_references(data.get("metadata") or {}, present)
            if changed:
                data["metadata"] = metadata
                new_body = _body(Interaction.from_dict(data))
                updates.append((new_body, rid))
                redacted.append(rid)
                body = new_body
            still = [iid for iid in present if escaped[iid] in body]
            if still:
                kept.append(_kept_reason(rid, still, json.loads(body)))
        if updates:
            cur.executemany("UPDATE interactions SET body = ? WHERE id = ?", updates)
        return RedactReport(tuple(redacted), tuple(kept))


@dataclass
class _Batch:
    """Records turned into rows, repeats inside the batch dropped."""

    interactions: list[tuple[Any, ...]]
    feedback: list[tuple[Any, ...]]
    repeats: int  # records dropped because the same record came earlier in the batch
    origin: Origin

    @property
    def size(self) -> int:
        return len(self.interactions) + len(self.feedback) + self.repeats

    @classmethod
    def of(cls, records: Iterable[Interaction | Feedback], origin: Origin) -> _Batch:
        i_rows: list[tuple[Any, ...]] = []
        f_rows: list[tuple[Any, ...]] = []
        for record in records:
            if isinstance(record, Interaction):
                scope = record.scope
                i_rows.append(
                    (record.id, scope.tenant, scope.user, scope.session, record.time, _body(record))
                )
            elif isinstance(record, Feedback):
                f_rows.append(
                    (record.id, record.interaction_id, record.kind.value, record.time, _body(record))
                )
            else:
                raise InvalidInput(
                    f"expected Interaction or Feedback, got {type(record).__name__}", field="record"
                )
        unique_i, unique_f = _unique_rows(i_rows, origin), _unique_rows(f_rows, origin)
        return cls(unique_i, unique_f, len(i_rows) + len(f_rows) - len(unique_i) - len(unique_f), origin)


def _kept_reason(rid: str, ids: Sequence[str], data: dict[str, Any]) -> str:
    """Why interaction ``rid`` (its body ``data``) still holds ``ids`` after its references went."""
    needle = json.dumps(ids[0])[1:-1]
    where = [
        name for name in ("observation", "action", "metadata") if needle in canonical_json(data.get(name))
    ]
    more = f" (and {len(ids) - 1} more forgotten ids)" if len(ids) > 1 else ""
    return (
        f"interaction {rid} still holds {ids[0]!r}{more} in its {' and '.join(where) or 'body'}, not as a "
        "reference to the forgotten interaction: it is what that interaction's own user sent or was "
        "answered, theirs to keep, and is not rewritten"
    )


def _names_one_of(text: str, ids: Sequence[str]) -> bool:
    """Whether ``text`` is one of ``ids`` or the id of an item named after one (``<id>/...``)."""
    return any(text == iid or text.startswith(iid + "/") for iid in ids)


def _without_references(node: Any, ids: Sequence[str]) -> tuple[Any, bool]:
    """``node`` (metadata, JSON) without the strings naming one of ``ids`` (see redact_references)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        changed = False
        for key, value in node.items():
            if _names_one_of(key, ids):
                changed = True
                continue
            if isinstance(value, str) and _names_one_of(value, ids):
                out[key], changed = ERASED_REFERENCE, True
                continue
            out[key], sub = _without_references(value, ids)
            changed |= sub
        return out, changed
    if isinstance(node, list):
        kept: list[Any] = []
        changed = False
        for value in node:
            if isinstance(value, str) and _names_one_of(value, ids):
                changed = True
                continue
            new, sub = _without_references(value, ids)
            kept.append(new)
            changed |= sub
        return kept, changed
    return node, False


def _nowhere(record_id: str) -> str:
    return ""


def _body(record: Interaction | Feedback) -> str:
    return canonical_json(record.to_dict())


def _unique_rows(rows: list[tuple[Any, ...]], origin: Origin) -> list[tuple[Any, ...]]:
    """Drop repeats of an id inside one batch; the same id with other content is a conflict."""
    seen: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        earlier = seen.get(row[0])
        if earlier is None:
            seen[row[0]] = row
        elif earlier[-1] != row[-1]:
            raise Conflict(f"id {row[0]!r}{origin(row[0])} appears twice in one batch with different content")
    return list(seen.values())


def _parse_line(raw: bytes, number: int, path: Path) -> Step | None:
    """One line of a JSONL export as a Step (None for a blank line); InvalidInput naming the line."""
    if number == 1 and raw.startswith(codecs.BOM_UTF8):  # files saved by some editors start with one
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"line {number} is not valid UTF-8 ({exc.reason} at byte {exc.start})", field=str(path)
        ) from None
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except RecursionError:
        raise InvalidInput(f"line {number} nests JSON too deeply", field=str(path)) from None
    except json.JSONDecodeError as exc:  # its own "line 1" would mislead: a JSONL line is one JSON text
        raise InvalidInput(
            f"line {number} is not JSON ({exc.msg} at column {exc.colno})", field=str(path)
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InvalidInput(f"line {number} is not JSON ({exc})", field=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"line {number} is a JSON {type(data).__name__}, not a step record (an object)", field=str(path)
        )
    try:
        return Step.from_dict(data)
    except RecursionError:
        raise InvalidInput(f"line {number} nests JSON too deeply", field=str(path)) from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, ArithmeticError) as exc:
        # InvalidInput is a ValueError; the others are fields of the wrong JSON type.
        raise InvalidInput(f"line {number} is not a valid step record ({exc})", field=str(path)) from None


def _bound(value: float | None, name: str) -> float | None:
    """A replay time bound: None (open) or a number that is not NaN (NaN would silently match nothing)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"must be a number of seconds or None, got {value!r}", field=name)
    try:
        number = float(value)
    except OverflowError:
        number = math.copysign(math.inf, value)  # an int beyond float range: as good as infinite
    if math.isnan(number):
        raise InvalidInput("must be a number of seconds or None, got nan", field=name)
    return number


def _arriving(steps: Iterator[Step]) -> Iterator[Step]:
    """:func:`~lifelong.experience.records.arrivals`, streamed across pages."""
    pending: Step | None = None
    for step in steps:
        if pending is not None:
            merged = arrivals([(0, pending), (1, step)])
            if len(merged) == 1:
                pending = merged[0][1]
                continue
            yield pending
        pending = step
    if pending is not None:
        yield pending


def _count(value: Any, name: str, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) in ``[low, high]``; else InvalidInput naming ``name``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidInput(f"must be an integer {bounds}, got {value!r}", field=name)
    return value


def _strings(values: Iterable[str], name: str) -> list[str]:
    """``values`` as a list of strings (duplicates dropped, order kept); InvalidInput naming ``name``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInput(f"must be a collection of strings, got {type(values).__name__}", field=name)
    out = list(dict.fromkeys(values))
    bad = next((v for v in out if not isinstance(v, str)), None)
    if bad is not None:
        raise InvalidInput(f"must hold only strings, got {type(bad).__name__}", field=name)
    return out


def _storable(text: str) -> bool:
    """False for text no stored id can hold (control or unpaired characters: see records)."""
    return text.isprintable() or _BAD_NAME_CHAR.search(text) is None


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: there is none), for a
    range scan: its last character that can be incremented, incremented, and what follows dropped."""
    for at in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[at]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not text: skip to the next character
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:at] + chr(code)
    return None


def _check_scope(scope: object, *, allow_none: bool = True) -> None:
    """InvalidInput naming the type unless ``scope`` is a :class:`Scope` (or None where allowed).

    A plain string (``scope="ada"``) would otherwise fail deep inside as an AttributeError.
    """
    if isinstance(scope, Scope) or (scope is None and allow_none):
        return
    optional = " or None" if allow_none else ""
    raise InvalidInput(
        f"must be a Scope{optional} (e.g. Scope(user='ada')), got {type(scope).__name__} {_short(scope)}",
        field="scope",
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _filters(alias: str, scope: Scope | None) -> tuple[list[str], list[Any]]:
    _check_scope(scope)
    if scope is None:
        return [], []
    where = [f"{alias}.tenant = ?"]
    params: list[Any] = [scope.tenant]
    if scope.user is not None:
        where.append(f"{alias}.user_id = ?")
        params.append(scope.user)
    if scope.session is not None:
        where.append(f"{alias}.session = ?")
        params.append(scope.session)
    return where, params
