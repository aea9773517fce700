"""The version store: snapshots of learned state, promotion behind a gate, rollback, provenance.

Nothing learned is irreversible (DESIGN principle 3). A learner's state is committed as a numbered
version; one version per learner is *promoted* (the one to serve); a candidate is promoted only if an
optional gate (a held-out probe) passes; any earlier version can be rolled back to. Every step of that
is recorded in an audit history.

Provenance (principle 1): each commit also stores the links the learner recorded since the previous
commit — learned item ← interaction id (and its tenant/user) — so the store answers "what was derived
from interaction X" and "what was derived from user U".

>>> import tempfile, os
>>> from lifelong.learners import OnlineSoftmax
>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> store = VersionStore(os.path.join(tempfile.mkdtemp(), "state.db"))
>>> model = OnlineSoftmax()
>>> v1 = store.commit(model, message="empty")
>>> i = Interaction(Scope(user="ada"), "card stolen")
>>> _ = model.learn(Step(i, (Feedback.correction(i.id, "card_lost"),)))
>>> v2 = store.commit(model)
>>> store.promote(model.name, v2.version).promoted
True
>>> [d.item for d in store.derived_from_user("ada")]
['weights']
>>> store.rollback(model.name).version      # back to the version promoted before: none → v1
1

Storage: the same URLs as the experience log (a file path or ``sqlite:///``, ``postgresql://``), so a
store can live next to its log; or :meth:`VersionStore.in_directory` to keep snapshots as files with a
small SQLite index beside them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import Scope
from lifelong.files import atomic_open
from lifelong.learners.base import Learner
from lifelong.state.codec import decode, digest, encode
from lifelong.state.diff import StateDiff, diff_states
from lifelong.storage import Cursor, Database, open_database


@dataclass(frozen=True)
class VersionInfo:
    learner: str
    version: int
    learner_version: int
    created: float
    digest: str
    parent: int | None
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class GateResult:
    """The verdict of a gate on a candidate version."""

    passed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


#: A gate sees the candidate state and the currently promoted state (None if none) and judges.
Gate = Callable[[dict[str, Any], dict[str, Any] | None], GateResult]


@dataclass(frozen=True)
class Promotion:
    learner: str
    version: int
    promoted: bool
    previous: int | None
    gate: GateResult | None = None


@dataclass(frozen=True)
class Derived:
    """A learned item and the version in which it was first derived from an interaction."""

    learner: str
    item: str
    version: int
    interaction_id: str
    tenant: str
    user: str | None


def _ddl(dialect: str) -> list[str]:
    blob = "BLOB" if dialect == "sqlite" else "BYTEA"
    seq = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        f"""CREATE TABLE IF NOT EXISTS state_versions (
            learner TEXT NOT NULL,
            version INTEGER NOT NULL,
            learner_version INTEGER NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            digest TEXT NOT NULL,
            parent INTEGER,
            message TEXT NOT NULL,
            metrics TEXT NOT NULL,
            snapshot {blob},
            PRIMARY KEY (learner, version))""",
        "CREATE TABLE IF NOT EXISTS state_promoted (learner TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS state_history (
            seq {seq},
            learner TEXT NOT NULL,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            detail TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS provenance (
            learner TEXT NOT NULL,
            item TEXT NOT NULL,
            interaction_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            user_id TEXT,
            version INTEGER NOT NULL,
            PRIMARY KEY (learner, item, interaction_id))""",
        "CREATE INDEX IF NOT EXISTS provenance_interaction ON provenance (interaction_id)",
        "CREATE INDEX IF NOT EXISTS provenance_user ON provenance (tenant, user_id)",
    ]


class VersionStore:
    """Versions of learned state for any number of learners (keyed by ``learner.name``).

    Parameters
    ----------
    url
        Where the index (and, without ``snapshots_dir``, the snapshots) live: a file path,
        ``sqlite:///PATH`` or ``postgresql://...``.
    snapshots_dir
        Keep snapshots as ``<dir>/<learner>/<version>.npz`` files instead of in the database.
    """

    def __init__(self, url: str | Path, *, snapshots_dir: str | Path | None = None) -> None:
        self.db: Database = open_database(url)
        self.snapshots_dir = Path(snapshots_dir) if snapshots_dir is not None else None
        if self.snapshots_dir is not None:
            self.snapshots_dir.mkdir(parents=True, exist_ok=True)

        def create(cur: Cursor) -> None:
            for statement in _ddl(self.db.dialect):
                cur.execute(statement)

        self.db.run(create)

    @classmethod
    def in_directory(cls, path: str | Path) -> VersionStore:
        """A store that keeps snapshot files in ``path`` with its index in ``path/versions.db``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / "versions.db", snapshots_dir=folder)

    def close(self) -> None:
        self.db.close()

    # -- snapshots ----------------------------------------------------------------------------------
    def commit(
        self, learner: Learner, *, message: str = "", metrics: dict[str, Any] | None = None
    ) -> VersionInfo:
        """Snapshot ``learner``'s state as a new version, with the provenance recorded since the last one."""
        state = learner.state_dict()
        blob = encode(state)
        links = learner.provenance.drain()
        name = learner.name
        metrics_text = json.dumps(metrics or {}, sort_keys=True, default=float)

        def write(cur: Cursor) -> VersionInfo:
            cur.execute("SELECT MAX(version) FROM state_versions WHERE learner = ?", (name,))
            last = cur.fetchone()[0]
            version = 1 if last is None else int(last) + 1
            info = VersionInfo(
                name,
                version,
                learner.version,
                time.time(),
                digest(state),
                None if last is None else int(last),
                message,
                metrics or {},
            )
            stored = None if self.snapshots_dir is not None else blob
            if self.snapshots_dir is not None:
                self._write_file(name, version, blob)
            cur.execute(
                "INSERT INTO state_versions (learner, version, learner_version, created, digest, "
                "parent, message, metrics, snapshot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    info.learner_version,
                    info.created,
                    info.digest,
                    info.parent,
                    message,
                    metrics_text,
                    stored,
                ),
            )
            if links:
                cur.executemany(
                    "INSERT INTO provenance (learner, item, interaction_id, tenant, user_id, version) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [(name, ln.item, ln.interaction_id, ln.tenant, ln.user, version) for ln in links],
                )
            self._record(cur, name, version, "commit", {"message": message})
            return info

        try:
            return self.db.run(write)
        except BaseException:
            learner.provenance.extend(links)  # not stored: the next commit keeps them
            raise

    def _file(self, name: str, version: int) -> Path:
        assert self.snapshots_dir is not None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.snapshots_dir / safe / f"{version:08d}.npz"

    def _write_file(self, name: str, version: int, blob: bytes) -> None:
        path = self._file(name, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as out:
            out.write(blob)

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of learner ``name``, oldest first."""

        def read(cur: Cursor) -> list[VersionInfo]:
            cur.execute(
                "SELECT learner, version, learner_version, created, digest, parent, message, metrics "
                "FROM state_versions WHERE learner = ? ORDER BY version",
                (name,),
            )
            return [_info(row) for row in cur.fetchall()]

        return self.db.run(read, write=False)

    def info(self, name: str, version: int) -> VersionInfo:
        for info in self.versions(name):
            if info.version == version:
                return info
        raise NotFound(f"learner {name!r} has no version {version}")

    def state(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The state dict of ``version`` (default: the promoted one)."""
        if version is None:
            promoted = self.promoted(name)
            if promoted is None:
                raise NotFound(f"learner {name!r} has no promoted version; promote one first")
            version = promoted.version

        def read(cur: Cursor) -> Any:
            cur.execute(
                "SELECT snapshot FROM state_versions WHERE learner = ? AND version = ?",
                (name, version),
            )
            return cur.fetchone()

        row = self.db.run(read, write=False)
        if row is None:
            raise NotFound(f"learner {name!r} has no version {version}")
        if row[0] is None:
            path = self._file(name, version)
            if not path.is_file():
                raise NotFound(f"snapshot file {path} of {name!r} version {version} is missing")
            return decode(path.read_bytes())
        return decode(bytes(row[0]))

    def restore(self, learner: Learner, version: int | None = None) -> VersionInfo:
        """Load ``version`` (default: the promoted one) into ``learner``."""
        state = self.state(learner.name, version)
        learner.load_state_dict(state)
        info = self.promoted(learner.name) if version is None else self.info(learner.name, version)
        assert info is not None
        return info

    def diff(self, name: str, a: int, b: int) -> StateDiff:
        return diff_states(self.state(name, a), self.state(name, b), a, b)

    # -- promotion ----------------------------------------------------------------------------------
    def promoted(self, name: str) -> VersionInfo | None:
        def read(cur: Cursor) -> Any:
            cur.execute("SELECT version FROM state_promoted WHERE learner = ?", (name,))
            return cur.fetchone()

        row = self.db.run(read, write=False)
        return None if row is None else self.info(name, int(row[0]))

    def promote(self, name: str, version: int, *, gate: Gate | None = None) -> Promotion:
        """Make ``version`` the one to serve, if ``gate`` (when given) passes; record the decision."""
        self.info(name, version)  # NotFound for an unknown version
        current = self.promoted(name)
        verdict = None
        if gate is not None:
            current_state = None if current is None else self.state(name, current.version)
            verdict = gate(self.state(name, version), current_state)
            if not isinstance(verdict, GateResult):
                raise InvalidInput("a gate must return a GateResult", field="gate")
        passed = verdict is None or verdict.passed
        previous = None if current is None else current.version

        def write(cur: Cursor) -> None:
            detail: dict[str, Any] = {"previous": previous}
            if verdict is not None:
                detail.update(gate_metrics=verdict.metrics, reason=verdict.reason)
            if passed:
                self._set_promoted(cur, name, version)
            self._record(cur, name, version, "promote" if passed else "gate_failed", detail)

        self.db.run(write)
        return Promotion(name, version, passed, previous, verdict)

    def rollback(self, name: str, to: int | None = None) -> VersionInfo:
        """Serve an earlier version again: ``to``, or else the one promoted before the current one.

        With nothing promoted before, rolls back to the version preceding the current one.
        """
        current = self.promoted(name)
        if current is None:
            raise NotFound(f"learner {name!r} has no promoted version to roll back from")
        if to is None:
            to = self._previous_promoted(name, current.version)
        if to >= current.version:
            raise InvalidInput(
                f"rollback must go to an earlier version than {current.version}, got {to}",
                field="to",
            )
        target = self.info(name, to)

        def write(cur: Cursor) -> None:
            self._set_promoted(cur, name, to)
            self._record(cur, name, to, "rollback", {"from": current.version})

        self.db.run(write)
        return target

    def _previous_promoted(self, name: str, current: int) -> int:
        for event in reversed(self.history(name)):
            if event["action"] in ("promote", "rollback") and event["version"] < current:
                return int(event["version"])
        earlier = [v.version for v in self.versions(name) if v.version < current]
        if not earlier:
            raise NotFound(f"learner {name!r} has no version before {current}")
        return earlier[-1]

    def history(self, name: str) -> list[dict[str, Any]]:
        """The audit trail of ``name``: commits, promotions, failed gates, rollbacks, oldest first."""

        def read(cur: Cursor) -> list[dict[str, Any]]:
            cur.execute(
                "SELECT version, action, time, detail FROM state_history WHERE learner = ? ORDER BY seq",
                (name,),
            )
            return [
                {"version": int(v), "action": a, "time": float(t), **json.loads(d)}
                for v, a, t, d in cur.fetchall()
            ]

        return self.db.run(read, write=False)

    def _set_promoted(self, cur: Cursor, name: str, version: int) -> None:
        cur.execute(
            "INSERT INTO state_promoted (learner, version) VALUES (?, ?) "
            "ON CONFLICT (learner) DO UPDATE SET version = excluded.version",
            (name, version),
        )

    def _record(self, cur: Cursor, name: str, version: int, action: str, detail: dict[str, Any]) -> None:
        cur.execute(
            "INSERT INTO state_history (learner, version, action, time, detail) VALUES (?, ?, ?, ?, ?)",
            (name, version, action, time.time(), json.dumps(detail, sort_keys=True, default=float)),
        )

    # -- provenance ---------------------------------------------------------------------------------
    def derived_from(self, interaction_id: str) -> list[Derived]:
        """Every learned item that interaction ``interaction_id`` contributed to."""
        return self._derived("interaction_id = ?", [interaction_id])

    def derived_from_user(self, user: str, tenant: str | None = None) -> list[Derived]:
        """Every learned item derived from any interaction of ``user`` (in ``tenant`` if given)."""
        if tenant is None:
            return self._derived("user_id = ?", [user])
        return self._derived("user_id = ? AND tenant = ?", [user, tenant])

    def derived_from_scope(self, scope: Scope) -> list[Derived]:
        if scope.user is None:
            return self._derived("tenant = ?", [scope.tenant])
        return self.derived_from_user(scope.user, scope.tenant)

    def _derived(self, where: str, params: list[Any]) -> list[Derived]:
        def read(cur: Cursor) -> list[Derived]:
            cur.execute(
                "SELECT learner, item, version, interaction_id, tenant, user_id FROM provenance "
                f"WHERE {where} ORDER BY learner, item, version, interaction_id",
                params,
            )
            return [Derived(ln, it, int(v), iid, t, u) for ln, it, v, iid, t, u in cur.fetchall()]

        found = self.db.run(read, write=False)
        # One row per (learner, item): the earliest version it was derived in.
        unique: dict[tuple[str, str], Derived] = {}
        for d in found:
            key = (d.learner, d.item)
            if key not in unique or d.version < unique[key].version:
                unique[key] = d
        return list(unique.values())

    def links_of(self, name: str, item: str) -> list[str]:
        """The interaction ids learned item ``item`` of learner ``name`` came from."""

        def read(cur: Cursor) -> list[str]:
            cur.execute(
                "SELECT interaction_id FROM provenance WHERE learner = ? AND item = ? ORDER BY version",
                (name, item),
            )
            return [row[0] for row in cur.fetchall()]

        return self.db.run(read, write=False)

    def forget_provenance(self, scope: Scope) -> int:
        """Delete the provenance links of ``scope``'s interactions; returns how many were deleted.

        Call this after the derived items themselves were removed or rebuilt without those interactions.
        """
        where = "tenant = ?" + (" AND user_id = ?" if scope.user is not None else "")
        params = [scope.tenant] + ([scope.user] if scope.user is not None else [])

        def delete(cur: Cursor) -> int:
            cur.execute(f"DELETE FROM provenance WHERE {where}", params)
            return int(cur.rowcount)

        return self.db.run(delete)


def _info(row: Any) -> VersionInfo:
    learner, version, lv, created, dig, parent, message, metrics = row
    return VersionInfo(
        learner,
        int(version),
        int(lv),
        float(created),
        dig,
        None if parent is None else int(parent),
        message,
        json.loads(metrics),
    )
