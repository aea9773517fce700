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
>>> store.promote(model.name, v1.version).promoted
True
>>> i = Interaction(Scope(user="ada"), "card stolen")
>>> _ = model.learn(Step(i, (Feedback.correction(i.id, "card_lost"),)))
>>> v2 = store.commit(model)
>>> store.promote(model.name, v2.version).promoted
True
>>> [d.item for d in store.derived_from_user("ada")]
['weights']
>>> store.rollback(model.name).version      # back to the version served before
1

Storage: the same URLs as the experience log (a file path or ``sqlite:///``, ``postgresql://``), so a
store can live next to its log; or :meth:`VersionStore.in_directory` to keep snapshots as files with a
small SQLite index beside them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import numbers
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import Conflict, InvalidInput, LifelongError, NotFound
from lifelong.experience.records import Scope
from lifelong.files import atomic_open
from lifelong.learners.base import Learner
from lifelong.state.codec import decode, digest, encode
from lifelong.state.diff import StateDiff, diff_states
from lifelong.storage import Cursor, Database, contains, open_database, schema_lock

#: The digest of a version whose snapshot was erased (it held data of a forgotten user).
ERASED = "erased"

#: Longest learner name; names map to one snapshot folder each (see :func:`snapshot_folder`).
MAX_NAME = 200


class Tampered(LifelongError):
    """A stored snapshot does not match the digest recorded when it was committed."""


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

    @property
    def erased(self) -> bool:
        """True when the snapshot was erased because it held data of a forgotten user."""
        return self.digest == ERASED

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
        # The last version number given out per learner: taken with one atomic upsert, so concurrent
        # commits never compute the same MAX(version) + 1.
        "CREATE TABLE IF NOT EXISTS state_counters (learner TEXT PRIMARY KEY, last INTEGER NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS state_history (
            seq {seq},
            learner TEXT NOT NULL,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            detail TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS state_history_learner ON state_history (learner, seq)",
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
            schema_lock(cur, self.db.dialect, "version store")
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
        """Snapshot ``learner``'s state as a new version, with the provenance recorded since the last one.

        Version numbers come from one atomic counter per learner, so concurrent commits (threads,
        processes, PostgreSQL clients) each get their own number.
        """
        name = check_name(learner.name)
        state = learner.state_dict()
        blob = encode(state)
        links = learner.provenance.drain()
        metrics_text = json.dumps(metrics or {}, sort_keys=True, default=float)

        def write(cur: Cursor) -> VersionInfo:
            version = _next_version(cur, name)
            info = VersionInfo(
                name,
                version,
                learner.version,
                time.time(),
                digest(state),
                version - 1 if version > 1 else None,
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
        root = self.snapshots_dir.resolve()
        path = (root / snapshot_folder(name) / f"{version:08d}.npz").resolve()
        if path.parent.parent != root:  # cannot happen with snapshot_folder; checked all the same
            raise InvalidInput(f"learner name {name!r} maps outside the snapshot directory", field="name")
        return path

    def _legacy_file(self, name: str, version: int) -> Path | None:
        """Where stores before 0.12 kept the file (a lossy mapping; read-only fallback)."""
        assert self.snapshots_dir is not None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        if safe in ("", ".", ".."):
            return None
        path = self.snapshots_dir / safe / f"{version:08d}.npz"
        return path if path.is_file() else None

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
        version = check_version(version)

        def read(cur: Cursor) -> Any:
            cur.execute(
                "SELECT learner, version, learner_version, created, digest, parent, message, metrics "
                "FROM state_versions WHERE learner = ? AND version = ?",
                (name, version),
            )
            return cur.fetchone()

        row = self.db.run(read, write=False)
        if row is None:
            raise NotFound(f"learner {name!r} has no version {version}")
        return _info(row)

    def state(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The state dict of ``version`` (default: the promoted one)."""
        if version is not None:
            version = check_version(version)
        if version is None:
            promoted = self.promoted(name)
            if promoted is None:
                raise NotFound(f"learner {name!r} has no promoted version; promote one first")
            version = promoted.version

        def read(cur: Cursor) -> Any:
            cur.execute(
                "SELECT snapshot, digest FROM state_versions WHERE learner = ? AND version = ?",
                (name, version),
            )
            return cur.fetchone()

        row = self.db.run(read, write=False)
        if row is None:
            raise NotFound(f"learner {name!r} has no version {version}")
        snapshot, stored_digest = row
        if stored_digest == ERASED:
            raise _erased(name, version)
        if snapshot is None:
            path = self._file(name, version)
            if not path.is_file():
                path = self._legacy_file(name, version) or path
            if not path.is_file():
                raise NotFound(f"snapshot file {path} of {name!r} version {version} is missing")
            blob = path.read_bytes()
        else:
            blob = bytes(snapshot)
        try:
            state = decode(blob)
        except InvalidInput as exc:
            raise Tampered(f"snapshot of {name!r} version {version} is unreadable: {exc.reason}") from None
        if not hmac.compare_digest(digest(state).encode(), stored_digest.encode()):
            raise Tampered(
                f"snapshot of {name!r} version {version} does not match the digest recorded at commit "
                "(it was changed afterwards); restore another version"
            )
        return state

    def snapshots(self) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """Every stored (learner, version, state), erased versions left out (the erasure scan)."""

        def read(cur: Cursor) -> list[Any]:
            cur.execute(
                "SELECT learner, version FROM state_versions WHERE digest <> ? ORDER BY learner, version",
                (ERASED,),
            )
            return list(cur.fetchall())

        for name, version in self.db.run(read, write=False):
            yield str(name), int(version), self.state(str(name), int(version))

    def rewrite(self, name: str, version: int, state: dict[str, Any], *, reason: str) -> VersionInfo:
        """Replace a version's snapshot by ``state`` (erasure redacts it); its new digest is stored and
        the rewrite is recorded in the history. Nothing else may change a stored version."""
        version = check_version(version)
        info = self.info(name, version)
        blob = encode(state)
        new_digest = digest(state)

        def write(cur: Cursor) -> None:
            if self.snapshots_dir is not None:
                self._write_file(name, version, blob)
            stored = None if self.snapshots_dir is not None else blob
            cur.execute(
                "UPDATE state_versions SET snapshot = ?, digest = ? WHERE learner = ? AND version = ?",
                (stored, new_digest, name, version),
            )
            self._record(cur, name, version, "rewrite", {"reason": reason, "was": info.digest})

        self.db.run(write)
        return self.info(name, version)

    def erase(self, name: str, version: int, *, reason: str) -> None:
        """Delete a version's snapshot for good; the version stays as a tombstone that cannot be restored,
        promoted or rolled back to."""
        version = check_version(version)
        self.info(name, version)

        def write(cur: Cursor) -> None:
            cur.execute(
                "UPDATE state_versions SET snapshot = NULL, digest = ? WHERE learner = ? AND version = ?",
                (ERASED, name, version),
            )
            self._record(cur, name, version, "erase", {"reason": reason})

        self.db.run(write)
        if self.snapshots_dir is not None:
            for path in (self._file(name, version), self._legacy_file(name, version)):
                if path is not None:
                    path.unlink(missing_ok=True)

    def unpromote(self, name: str, *, reason: str) -> None:
        """Serve no version of ``name`` (its promoted one is gone); recorded in the history."""
        current = self.promoted(name)

        def write(cur: Cursor) -> None:
            cur.execute("DELETE FROM state_promoted WHERE learner = ?", (name,))
            self._record(
                cur, name, 0 if current is None else current.version, "unpromote", {"reason": reason}
            )

        self.db.run(write)

    def restore(self, learner: Learner, version: int | None = None) -> VersionInfo:
        """Load ``version`` (default: the promoted one) into ``learner``."""
        if version is not None:
            version = check_version(version)
        state = self.state(learner.name, version)
        learner.load_state_dict(state)
        info = self.promoted(learner.name) if version is None else self.info(learner.name, version)
        assert info is not None
        return info

    def diff(self, name: str, a: int, b: int) -> StateDiff:
        a, b = check_version(a, "a"), check_version(b, "b")
        return diff_states(self.state(name, a), self.state(name, b), a, b)

    # -- promotion ----------------------------------------------------------------------------------
    def promoted(self, name: str) -> VersionInfo | None:
        def read(cur: Cursor) -> Any:
            cur.execute("SELECT version FROM state_promoted WHERE learner = ?", (name,))
            return cur.fetchone()

        row = self.db.run(read, write=False)
        return None if row is None else self.info(name, int(row[0]))

    def promote(
        self, name: str, version: int, *, gate: Gate | None = None, override: str | None = None
    ) -> Promotion:
        """Make ``version`` the one to serve, if ``gate`` (when given) passes; record the decision.

        A version whose last gate verdict was a failure is never served again without a gate that now
        passes it, or an explicit ``override`` (the reason, kept in the history).
        """
        version = check_version(version)
        info = self.info(name, version)  # NotFound for an unknown version
        if info.erased:
            raise _erased(name, version)
        current = self.promoted(name)
        verdict = None
        if gate is not None:
            current_state = None if current is None else self.state(name, current.version)
            candidate = self.state(name, version)
            try:
                verdict = gate(candidate, current_state)
            except LifelongError:
                raise
            except Exception as exc:  # a user's gate is user code: say whose fault it is, keep the cause
                raise InvalidInput(
                    f"the gate raised {type(exc).__name__}: {exc}; nothing was promoted", field="gate"
                ) from exc
            if not isinstance(verdict, GateResult):
                raise InvalidInput("a gate must return a GateResult", field="gate")
        elif self._failed_gate(name, version) and not (isinstance(override, str) and override.strip()):
            raise Conflict(
                f"version {version} of {name!r} failed its gate; promote it with a gate that passes "
                "it, or give override='why' to serve it anyway (the reason is recorded)"
            )
        passed = verdict is None or verdict.passed
        previous = None if current is None else current.version

        def write(cur: Cursor) -> None:
            detail: dict[str, Any] = {"previous": previous}
            if verdict is not None:
                detail.update(gate_metrics=verdict.metrics, reason=verdict.reason)
            if override is not None:
                detail["override"] = override
            if passed:
                self._set_promoted(cur, name, version)
            action = "gate_failed" if not passed else "override" if override is not None else "promote"
            self._record(cur, name, version, action, detail)

        self.db.run(write)
        return Promotion(name, version, passed, previous, verdict)

    def rollback(self, name: str, to: int | None = None, *, override: str | None = None) -> VersionInfo:
        """Serve an earlier version again: ``to``, or else the last one promoted before the current one.

        Only versions that were served before are default targets (never one that was merely committed,
        failed its gate or was erased); an explicit ``to`` that failed its gate needs ``override``.
        """
        if to is not None:
            to = check_version(to, "to")
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
        if target.erased:
            raise _erased(name, to)
        if self._failed_gate(name, to) and not (isinstance(override, str) and override.strip()):
            raise Conflict(
                f"version {to} of {name!r} failed its gate; give override='why' to serve it anyway"
            )

        def write(cur: Cursor) -> None:
            self._set_promoted(cur, name, to)
            detail: dict[str, Any] = {"from": current.version}
            if override is not None:
                detail["override"] = override
            self._record(cur, name, to, "rollback", detail)

        self.db.run(write)
        return target

    def _previous_promoted(self, name: str, current: int) -> int:
        def read(cur: Cursor) -> list[Any]:
            cur.execute(
                "SELECT DISTINCT h.version FROM state_history h JOIN state_versions v "
                "ON v.learner = h.learner AND v.version = h.version "
                "WHERE h.learner = ? AND h.version < ? AND h.action IN ('promote', 'override', 'rollback') "
                "AND v.digest <> ? ORDER BY h.version DESC",
                (name, current, ERASED),
            )
            return [int(row[0]) for row in cur.fetchall()]

        for version in self.db.run(read, write=False):
            if not self._failed_gate(name, version):
                return int(version)
        raise NotFound(f"learner {name!r} served no version before {current}; give rollback(to=...)")

    def _failed_gate(self, name: str, version: int) -> bool:
        """Whether the last gate verdict on ``version`` was a failure."""

        def read(cur: Cursor) -> list[Any]:
            cur.execute(
                "SELECT action, detail FROM state_history WHERE learner = ? AND version = ? "
                "AND action IN ('promote', 'gate_failed') ORDER BY seq DESC",
                (name, version),
            )
            return list(cur.fetchall())

        for action, detail in self.db.run(read, write=False):
            if action == "gate_failed":
                return True
            if "gate_metrics" in json.loads(detail):
                return False
        return False

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

    def forget_provenance(
        self, scope: Scope, interaction_ids: set[str] | frozenset[str] = frozenset()
    ) -> int:
        """Delete the provenance links of ``scope``'s interactions, and every link of an item named after
        one of ``interaction_ids`` (an item another user's interaction confirmed later carries the
        forgotten interaction's id in its name); returns how many were deleted.

        Call this after the derived items themselves were removed or rebuilt without those interactions.
        """
        where = "tenant = ?" + (" AND user_id = ?" if scope.user is not None else "")
        params = [scope.tenant] + ([scope.user] if scope.user is not None else [])
        named_after = contains(self.db.dialect, "item")

        def delete(cur: Cursor) -> int:
            cur.execute(f"DELETE FROM provenance WHERE {where}", params)
            count = int(cur.rowcount)
            for interaction_id in sorted(interaction_ids):
                cur.execute(f"DELETE FROM provenance WHERE {named_after}", (interaction_id,))
                count += int(cur.rowcount)
            return count

        return self.db.run(delete)


def check_name(name: object) -> str:
    """A learner name fit to key versions: a non-empty printable string of at most MAX_NAME characters."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a learner needs a non-empty name", field="name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"is {len(name)} characters long; at most {MAX_NAME}", field="name")
    if not name.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise InvalidInput(f"{name!r} holds control or unpaired surrogate characters", field="name")
    return name


def check_version(version: object, param: str = "version") -> int:
    """A version number as an int; :class:`InvalidInput` (field ``version``) for anything else.

    ``"1"`` would match no row (or, worse, a text-typed column could compare it as text); a bool is not a
    version either. ``param`` names the argument when it is not called ``version`` (``to``, ``a``, ``b``).

    >>> check_version(3)
    3
    >>> check_version("1", "to")
    Traceback (most recent call last):
    ...
    lifelong.errors.InvalidInput: version: to must be an int version number, got str '1'
    """
    if isinstance(version, numbers.Integral) and not isinstance(version, bool):
        return int(version)
    what = "" if param == "version" else f"{param} "
    text = repr(version)
    text = text if len(text) <= 60 else text[:57] + "..."
    raise InvalidInput(
        f"{what}must be an int version number, got {type(version).__name__} {text}", field="version"
    )


def snapshot_folder(name: str) -> str:
    """The folder of learner ``name``'s snapshot files: one folder per name, never outside the store.

    Letters, digits, ``-`` and ``_`` stay; every other character (``.``, ``/``, ``%`` included) becomes
    ``%XX`` per UTF-8 byte, so the mapping is injective (``team/x`` ≠ ``team_x``) and ``..`` cannot
    climb out. Names whose encoding is too long for a file system keep a prefix and their SHA-256.

    >>> snapshot_folder("team/x"), snapshot_folder("team_x"), snapshot_folder("..")
    ('team%2Fx', 'team_x', '%2E%2E')
    """
    out = []
    for char in name:
        if char.isascii() and (char.isalnum() or char in "-_"):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    folder = "".join(out)
    if len(folder) > 120:
        folder = f"{folder[:40]}~{hashlib.sha256(name.encode('utf-8')).hexdigest()}"
    return folder


def _erased(name: str, version: int) -> NotFound:
    return NotFound(f"version {version} of {name!r} was erased: it held data of a forgotten user")


def _next_version(cur: Cursor, name: str) -> int:
    cur.execute(
        "INSERT INTO state_counters (learner, last) VALUES "
        "(?, COALESCE((SELECT MAX(version) FROM state_versions WHERE learner = ?), 0) + 1) "
        "ON CONFLICT (learner) DO UPDATE SET last = state_counters.last + 1 RETURNING last",
        (name, name),
    )
    return int(cur.fetchone()[0])


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
