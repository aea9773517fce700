"""Following the log: how every worker of the service learns from feedback any worker took.

"The log is the truth": a worker never learns from a request it handled directly. Feedback is appended
to the experience log (and acknowledged once it is durable); every worker — the one that took it
included — reads new feedback rows by their ``seq``
(:meth:`~lifelong.experience.ExperienceLog.feedback_after`) and learns from them before it answers its next
request (and every ``poll`` seconds when idle). So N workers on one PostgreSQL log hold the same learned
state, a worker that restarts rebuilds it from the promoted snapshots plus the log after them, and a
crash between the append and the learning loses nothing.

:class:`Tail` reads a table's rows exactly once each in ``seq`` order. On PostgreSQL a ``BIGSERIAL``
value is taken when a row is inserted but becomes visible when its transaction commits, so a reader
can see seq 11 before seq 10 commits; advancing a plain high-water mark past 10 would lose it. A tail
therefore remembers the *holes* below the highest seq it has seen, keeps re-reading them, and gives a
hole up only after ``hole_timeout`` seconds (a rolled-back insert, or an idempotent append that took
no row, leaves a hole forever). Rows above a hole are applied once and remembered until the hole
closes. SQLite hands out seqs under its write lock, in commit order, so it never leaves an open hole.

:class:`Events` is the service's own small table of control events that the log cannot carry: a
tenant's learner now serves version v (promote, rollback) from feedback seq s on; a tenant's data was
erased (every worker drops the tenant and reloads it from the cleaned log). Events name tenants,
learners and versions, never users, so erasure leaves nothing in them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lifelong.storage import Cursor, Database, schema_lock

PAGE = 1000


@dataclass
class _Hole:
    low: int
    high: int  # inclusive
    since: float


class Tail:
    """Exactly-once reading of ``seq``-numbered rows that may commit out of order (module docstring)."""

    def __init__(self, *, hole_timeout: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cursor = 0  # every seq <= cursor has been applied or given up
        self.seen: set[int] = set()  # applied seqs above the cursor
        self.holes: list[_Hole] = []
        self.hole_timeout = hole_timeout
        self.clock = clock

    @property
    def high(self) -> int:
        """The highest seq applied."""
        return max(self.seen, default=self.cursor)

    def applied(self, seq: int) -> bool:
        return (seq <= self.cursor and not self._in_hole(seq)) or seq in self.seen

    def _in_hole(self, seq: int) -> bool:
        return any(h.low <= seq <= h.high for h in self.holes)

    def take(self, seqs: list[int]) -> list[int]:
        """Of the seqs a read above :attr:`cursor` returned, those not applied yet (apply them, in order)."""
        fresh = [s for s in seqs if s > self.cursor and s not in self.seen]
        high_before = self.high
        self.seen.update(fresh)
        now = self.clock()
        self.holes = [h for h in self._split(self.holes) if now - h.since < self.hole_timeout]
        # New holes: gaps between what was the highest seq and the newly seen ones.
        expected = high_before + 1
        for s in sorted(s for s in fresh if s > high_before):
            if s > expected:
                self.holes.append(_Hole(expected, s - 1, now))
            expected = s + 1
        self._advance()
        return fresh

    def _split(self, holes: list[_Hole]) -> list[_Hole]:
        """Holes with the seqs that have since arrived cut out of them."""
        out: list[_Hole] = []
        for hole in holes:
            inside = sorted(s for s in self.seen if hole.low <= s <= hole.high) if self.seen else []
            low = hole.low
            for s in inside:
                if s > low:
                    out.append(_Hole(low, s - 1, hole.since))
                low = s + 1
            if low <= hole.high:
                out.append(_Hole(low, hole.high, hole.since))
        return out

    def _advance(self) -> None:
        floor = min((h.low for h in self.holes), default=None)
        top = self.high if floor is None else floor - 1
        if top > self.cursor:
            self.cursor = top
            self.seen = {s for s in self.seen if s > top}


# ------------------------------------------------------------------------------------------ events

_EVENTS_DDL = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGSERIAL PRIMARY KEY",
}


@dataclass(frozen=True, slots=True)
class Event:
    """A control event: ``kind`` is ``serve`` (learner serves ``version`` from feedback ``from_seq`` on)
    or ``reload`` (drop the tenant's learners and load them again, e.g. after an erasure)."""

    seq: int
    tenant: str
    kind: str
    learner: str | None = None
    version: int | None = None
    from_seq: int | None = None


class Events:
    """The service's control events (module docstring), in the log's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

        def create(cur: Cursor) -> None:
            schema_lock(cur, db.dialect, "service events")
            cur.execute(
                f"""CREATE TABLE IF NOT EXISTS service_events (
                    seq {_EVENTS_DDL[db.dialect]},
                    tenant TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    learner TEXT,
                    version BIGINT,
                    from_seq BIGINT,
                    time DOUBLE PRECISION NOT NULL)"""
            )
            cur.execute(
                "CREATE INDEX IF NOT EXISTS service_events_tenant ON service_events (tenant, learner, seq)"
            )

        db.run(create)

    def emit(
        self,
        tenant: str,
        kind: str,
        learner: str | None = None,
        version: int | None = None,
        from_seq: int | None = None,
    ) -> None:
        def write(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO service_events (tenant, kind, learner, version, from_seq, time) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, kind, learner, version, from_seq, time.time()),
            )

        self.db.run(write)

    def after(self, seq: int, limit: int = PAGE) -> list[Event]:
        def read(cur: Cursor) -> list[Event]:
            cur.execute(
                "SELECT seq, tenant, kind, learner, version, from_seq FROM service_events WHERE seq > ? "
                f"ORDER BY seq LIMIT {int(limit)}",
                (seq,),
            )
            return [Event(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in cur.fetchall()]

        return self.db.run(read, write=False)

    def serving(self, tenant: str, learner: str) -> Event | None:
        """The latest ``serve`` event of a tenant's learner."""

        def read(cur: Cursor) -> Event | None:
            cur.execute(
                "SELECT seq, tenant, kind, learner, version, from_seq FROM service_events "
                "WHERE tenant = ? AND learner = ? AND kind = 'serve' ORDER BY seq DESC LIMIT 1",
                (tenant, learner),
            )
            r = cur.fetchone()
            return None if r is None else Event(int(r[0]), r[1], r[2], r[3], r[4], r[5])

        return self.db.run(read, write=False)

    def high(self) -> int:
        def read(cur: Cursor) -> int:
            cur.execute("SELECT MAX(seq) FROM service_events")
            row = cur.fetchone()
            return int(row[0] or 0)

        return self.db.run(read, write=False)
