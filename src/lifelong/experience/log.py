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

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lifelong.errors import Conflict, InvalidInput, NotFound
from lifelong.experience.records import Feedback, Interaction, Scope, Step, canonical_json
from lifelong.files import atomic_open
from lifelong.storage import Cursor, Database, chunks, open_database, placeholders

SCHEMA_VERSION = 1
PAGE_SIZE = 1000


@dataclass(frozen=True)
class AppendReport:
    """What one append stored: new records, and records already present (same id, same content)."""

    interactions: int = 0
    feedback: int = 0
    duplicates: int = 0


@dataclass(frozen=True)
class ForgetReport:
    """What :meth:`ExperienceLog.forget` deleted."""

    scope: Scope
    interactions: int
    feedback: int
    interaction_ids: tuple[str, ...] = field(repr=False, default=())


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
        "CREATE INDEX IF NOT EXISTS interactions_scope ON interactions (tenant, user_id, session)",
        f"""CREATE TABLE IF NOT EXISTS feedback (
            seq {seq},
            id TEXT NOT NULL UNIQUE,
            interaction_id TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            body TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS feedback_interaction ON feedback (interaction_id)",
        "CREATE INDEX IF NOT EXISTS feedback_time ON feedback (time, seq)",
    ]


class ExperienceLog:
    """Append-only log of :class:`Interaction` and :class:`Feedback` on SQLite or PostgreSQL.

    Parameters
    ----------
    url
        A file path or ``sqlite:///PATH`` (embedded default) or ``postgresql://HOST:PORT/DB``.
    """

    def __init__(self, url: str | Path) -> None:
        self.db: Database = open_database(url)
        self.url = self.db.url
        self.db.run(self._create_schema)

    # -- set-up -----------------------------------------------------------------------------------
    def _create_schema(self, cur: Cursor) -> None:
        for statement in _ddl(self.db.dialect):
            cur.execute(statement)
        cur.execute("SELECT value FROM lifelong_meta WHERE key = 'log_schema'")
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "INSERT INTO lifelong_meta (key, value) VALUES ('log_schema', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise InvalidInput(
                f"log schema {row[0]} is newer than this lifelong ({SCHEMA_VERSION}); upgrade lifelong",
                field="url",
            )

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
        interaction in the same batch.
        """
        interactions: list[Interaction] = []
        feedback: list[Feedback] = []
        for record in records:
            if isinstance(record, Interaction):
                interactions.append(record)
            elif isinstance(record, Feedback):
                feedback.append(record)
            else:
                raise InvalidInput(
                    f"expected Interaction or Feedback, got {type(record).__name__}", field="record"
                )
        if not interactions and not feedback:
            return AppendReport()
        i_rows = _unique_rows(
            [(r.id, r.scope.tenant, r.scope.user, r.scope.session, r.time, _body(r)) for r in interactions]
        )
        f_rows = _unique_rows([(r.id, r.interaction_id, r.kind.value, r.time, _body(r)) for r in feedback])

        def write(cur: Cursor) -> AppendReport:
            new_i, dup_i = self._insert_new(cur, "interactions", i_rows)
            known = {row[0] for row in i_rows}
            missing = {row[1] for row in f_rows} - known
            self._require_interactions(cur, missing)
            new_f, dup_f = self._insert_new(cur, "feedback", f_rows)
            duplicates = dup_i + dup_f + len(interactions) + len(feedback) - len(i_rows) - len(f_rows)
            return AppendReport(new_i, new_f, duplicates)

        return self.db.run(write)

    def _insert_new(self, cur: Cursor, table: str, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Insert rows whose id is new; check that rows with a known id carry the same content."""
        if not rows:
            return 0, 0
        stored: dict[str, str] = {}
        for part in chunks([row[0] for row in rows]):
            cur.execute(f"SELECT id, body FROM {table} WHERE id IN ({placeholders(len(part))})", part)
            stored.update({rid: body for rid, body in cur.fetchall()})
        for row in rows:
            if row[0] in stored and stored[row[0]] != row[-1]:
                raise Conflict(
                    f"{table} id {row[0]!r} is already "
                    "stored with different content; give the new record a new id"
                )
        new = [row for row in rows if row[0] not in stored]
        if new:
            columns = (
                "id, tenant, user_id, session, time, body"
                if table == "interactions"
                else "id, interaction_id, kind, time, body"
            )
            cur.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders(len(new[0]))}) "
                "ON CONFLICT (id) DO NOTHING",
                new,
            )
        return len(new), len(rows) - len(new)

    def _require_interactions(self, cur: Cursor, ids: set[str]) -> None:
        found: set[str] = set()
        wanted = sorted(ids)
        for part in chunks(wanted):
            cur.execute(f"SELECT id FROM interactions WHERE id IN ({placeholders(len(part))})", part)
            found.update(row[0] for row in cur.fetchall())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(
                f"feedback refers to interaction {missing[0]!r}"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + " which is not in the log; append the interaction first"
            )

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
        its feedback that arrived before ``until``. ``order="feedback"`` yields one step per piece of
        feedback (by feedback time), exactly as an online loop that learns on every arrival saw it,
        late feedback included. Pages through the log, so memory stays bounded on long logs.
        """
        if order not in ("interaction", "feedback"):
            raise InvalidInput("must be 'interaction' or 'feedback'", field="order")
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

        yield from self._pages(select, alias, where, params, expand)

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
                page_where.append(f"({alias}.time > ? OR ({alias}.time = ? AND {alias}.seq > ?))")
                page_params += [after[0], after[0], after[1]]
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

    def __len__(self) -> int:
        return self.stats().interactions

    def stats(self, scope: Scope | None = None) -> LogStats:
        """Counts: interactions, feedback by kind, distinct tenants/users/sessions, time span."""
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
        """Append the steps of a JSONL export (idempotent: importing twice stores them once)."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no file {path}")
        totals = [0, 0, 0]
        batch: list[Interaction | Feedback] = []

        def flush() -> None:
            report = self.append_many(batch)
            totals[0] += report.interactions
            totals[1] += report.feedback
            totals[2] += report.duplicates
            batch.clear()

        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    step = Step.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError, AttributeError) as exc:
                    raise InvalidInput(
                        f"line {number} is not a step record ({exc})", field=str(path)
                    ) from None
                batch += [step.interaction, *step.feedback]
                if len(batch) >= batch_size:
                    flush()
        if batch:
            flush()
        return AppendReport(*totals)

    # -- forgetting -------------------------------------------------------------------------------
    def forget(self, scope: Scope) -> ForgetReport:
        """Delete every interaction in ``scope`` and all their feedback, in one transaction.

        The only exception to append-only: a user's right to be forgotten. Learned state derived from
        these interactions is found through the version store's provenance
        (:meth:`lifelong.state.VersionStore.derived_from`).
        """
        if not isinstance(scope, Scope):
            raise InvalidInput("forget needs a Scope (e.g. Scope(user='ada'))", field="scope")
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
            return ForgetReport(scope, cur.rowcount, n_feedback, ids)

        return self.db.run(delete)


def _body(record: Interaction | Feedback) -> str:
    return canonical_json(record.to_dict())


def _unique_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Drop repeats of an id inside one batch; the same id with other content is a conflict."""
    seen: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        earlier = seen.get(row[0])
        if earlier is None:
            seen[row[0]] = row
        elif earlier[-1] != row[-1]:
            raise Conflict(f"id {row[0]!r} appears twice in one batch with different content")
    return list(seen.values())


def _filters(alias: str, scope: Scope | None) -> tuple[list[str], list[Any]]:
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
