"""Erasure that really forgets: one operation removes a user from the log, the learners, every snapshot,
the provenance and the caches — and a scan proves that nothing of them is left.

:func:`forget` erases one scope (a user of a tenant, or a whole tenant) in this order:

1. **Footprint.** Read the scope's interactions first: their ids, their feedback ids, and their texts
   (every string of at least :data:`MIN_TEXT` characters in an observation, an action or a correction).
2. **Log.** Delete the interactions and their feedback in one transaction, and in it rewrite the other
   interactions whose metadata names a deleted one (another user's request that recalled an item
   learned from it keeps ``<id>/ExampleBank/0`` in ``metadata["recalled"]``): those references go
   (:meth:`~lifelong.experience.ExperienceLog.redact_references`); an id still held elsewhere in such
   a body (what that user sent) stays, and the report says where and why
   (``ExperienceLog.forget(scope, secure=True)``). On SQLite the connection
   deletes with ``PRAGMA secure_delete`` (freed pages are zeroed), the log's indexes are rebuilt
   (interior index pages keep copies of deleted keys) and the WAL is checkpointed and truncated, so the
   deleted bytes do not linger in the database files.
3. **Live learners.** A learner named in ``rebuild_with`` is replaced by a fresh one that replays the
   remaining log (its tenant's part for a single-tenant learner) — the only way to take a user out of
   shared parameters (item embeddings, weights, counts). The others drop what they hold of the user in
   place (``learner.forget_user(user, tenant)``: context items with any of the user's interactions among
   their sources, per-user rows); a learner with shared parameters that learned from the scope and was
   not rebuilt is listed in :attr:`ErasureReport.residual`. Pending provenance links of the scope go.
4. **Snapshots.** Every version of every learner that provenance links to the scope's interactions,
   from the first such version on, is either *redacted* (the learner class can remove the items from a
   stored state: ``redact_state``; the snapshot is re-written with its new digest) or *erased* (the
   snapshot deleted, the version kept as an unrestorable tombstone). If the promoted version was erased,
   the rebuilt learner is committed and promoted in its place; if there is none, nothing of that
   learner is served (the history says why).
5. **Provenance** rows of the scope, and **caches**: every :class:`~lifelong.models.base.CachedEmbedder`
   reachable from the learners (and any given) drops the scope's texts.
6. **Scan** (:func:`scan`): every log table, every version's snapshot and history, every live learner's
   state, every cache and — on SQLite — the raw database and WAL files are searched for the scope's
   ids and texts. Texts that the remaining log still holds (someone else wrote the same line) are not
   the user's alone and are left out of the search; the report counts them.

The cost is one pass over the scope's events, one transaction per database, one decode per affected
snapshot, a rebuild per learner in ``rebuild_with`` (a replay of the remaining log), and for the scan one
substring search per needle over the log tables plus one pass over every snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner
from lifelong.models.base import CachedEmbedder
from lifelong.storage import Cursor, Database, contains, read_sqlite_file, scrub, secure_delete

#: Shorter strings ("yes", "4", a label) are too common to be anyone's own; they are not searched for.
MIN_TEXT = 8

#: How many of a scope's texts the scan searches for (the rarest are kept: the longest first).
MAX_TEXTS = 2000


@dataclass
class Footprint:
    """What identifies a scope's data: its ids and its texts."""

    scope: Scope
    interaction_ids: set[str] = field(default_factory=set)
    feedback_ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)  # every string, short ones too (for the caches)
    shared_texts: int = 0  # texts left out because the remaining log still holds them

    @property
    def needles(self) -> list[str]:
        return sorted(self.interaction_ids | self.feedback_ids | self.texts)


@dataclass
class ScanReport:
    """Where a scope's ids or texts were still found; ``hits`` empty means nothing is left."""

    needles: int
    places: int  # how many tables, snapshots, states, caches and files were searched
    hits: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hits


@dataclass
class ErasureReport:
    scope: Scope
    interactions_deleted: int
    feedback_deleted: int
    #: Other interactions whose metadata named a forgotten interaction (recalled its items), rewritten.
    references_redacted: list[str] = field(default_factory=list)
    #: Why other interactions still hold a forgotten id (not as a reference: in what their user sent).
    references_kept: list[str] = field(default_factory=list)
    rows_dropped: list[str] = field(default_factory=list)  # learners that dropped items/rows in place
    rebuilt: dict[str, Learner] = field(default_factory=dict)  # name → learner replayed without the scope
    residual: list[str] = field(default_factory=list)  # learners still carrying the scope's updates
    versions_redacted: list[tuple[str, int]] = field(default_factory=list)
    versions_erased: list[tuple[str, int]] = field(default_factory=list)
    promoted: dict[str, int] = field(default_factory=dict)  # learner → version promoted after erasure
    provenance_deleted: int = 0
    cache_entries_dropped: int = 0
    scan: ScanReport | None = None

    @property
    def user(self) -> str | None:
        return self.scope.user

    @property
    def clean(self) -> bool:
        """True when no learner still carries the scope, no other interaction still holds one of its
        ids, and the scan (when run) found nothing."""
        return not self.residual and not self.references_kept and (self.scan is None or self.scan.clean)

    def to_dict(self) -> dict[str, JSON]:
        return {
            "tenant": self.scope.tenant,
            "user": self.scope.user,
            "interactions_deleted": self.interactions_deleted,
            "feedback_deleted": self.feedback_deleted,
            "references_redacted": list(self.references_redacted),
            "references_kept": list(self.references_kept),
            "rows_dropped": list(self.rows_dropped),
            "rebuilt": sorted(self.rebuilt),
            "residual": list(self.residual),
            "versions_redacted": [f"{n} v{v}" for n, v in self.versions_redacted],
            "versions_erased": [f"{n} v{v}" for n, v in self.versions_erased],
            "promoted": {n: v for n, v in self.promoted.items()},
            "provenance_deleted": self.provenance_deleted,
            "cache_entries_dropped": self.cache_entries_dropped,
            "scan": None
            if self.scan is None
            else {"needles": self.scan.needles, "places": self.scan.places, "hits": list(self.scan.hits)},
            "clean": self.clean,
        }


def rebuild(make_learner: Callable[[], Learner], log: ExperienceLog, scope: Scope | None = None) -> Learner:
    """A fresh learner from ``make_learner`` that has learned every step of ``log`` (in ``scope``)."""
    learner = make_learner()
    learner.learn_many(log.replay(scope))
    return learner


def footprint(log: ExperienceLog, scope: Scope) -> Footprint:
    """The ids and texts of ``scope``'s events (read before they are deleted)."""
    found = Footprint(scope)
    for step in log.replay(scope):
        found.interaction_ids.add(step.interaction.id)
        found.strings.update(_strings(step.interaction.observation))
        found.strings.update(_strings(step.interaction.action))
        for fb in step.feedback:
            found.feedback_ids.add(fb.id)
            found.strings.update(_strings(fb.value))
    found.texts = {text for text in found.strings if len(text.strip()) >= MIN_TEXT}
    return found


def forget(
    scope: Scope,
    *,
    log: ExperienceLog,
    store: Any = None,
    learners: Mapping[str, Learner] | None = None,
    rebuild_with: Mapping[str, Callable[[], Learner]] | None = None,
    steps_for: Callable[[str], Iterable[Step]] | None = None,
    caches: Iterable[CachedEmbedder] = (),
    verify: bool = True,
) -> ErasureReport:
    """Erase ``scope`` everywhere (see the module docstring) and return what was done, with the scan.

    ``store`` is a :class:`~lifelong.state.VersionStore` (or None); ``learners`` are the live learners by
    name, ``rebuild_with`` factories for those to rebuild (the rebuilt learners are in the report:
    serve them instead of the old ones). A rebuilt learner learns the whole remaining log (its tenant's,
    for a single-tenant learner), or ``steps_for(name)`` where the caller's learners each learn a part
    of it (the service: one app of one tenant). ``verify=False`` skips the scan.
    """
    if not isinstance(scope, Scope):
        raise InvalidInput("forget needs a Scope, e.g. Scope('acme', user='ada')", field="scope")
    if scope.session is not None:
        raise InvalidInput("erasure works on a user or a whole tenant, not one session", field="scope")
    learners = dict(learners or {})
    unknown = set(rebuild_with or {}) - set(learners)
    if unknown:
        raise InvalidInput(f"no learner named {sorted(unknown)} to rebuild", field="rebuild_with")
    found = footprint(log, scope)
    deleted = log.forget(scope, secure=True)
    report = ErasureReport(
        scope,
        deleted.interactions,
        deleted.feedback,
        references_redacted=list(deleted.references.redacted),
        references_kept=list(deleted.references.kept),
    )
    ids = found.interaction_ids

    # Live learners.
    linked = _linked_versions(store, scope) if store is not None else {}
    for name, learner in learners.items():
        pending = learner.provenance.discard(ids)
        if not _holds_tenant(learner, scope.tenant):
            continue
        if _forget_in_place(learner, scope):  # also when rebuilt: the caller may still hold this one
            report.rows_dropped.append(name)
        make = (rebuild_with or {}).get(name)
        if make is not None:
            if steps_for is not None:
                fresh = make()
                fresh.learn_many(steps_for(name))
                report.rebuilt[name] = fresh
            else:
                replay_scope = Scope(scope.tenant) if learner.tenancy == "single" else None
                report.rebuilt[name] = rebuild(make, log, replay_scope)
            continue
        # Shared parameters keep what the scope taught them: known from provenance, or (without a
        # store to ask) assumed for any learner that learned something.
        taught = pending or learner.name in linked or store is None
        if not learner.erases_in_place and learner.version > 0 and taught:
            report.residual.append(name)

    # Snapshots and provenance.
    if store is not None:
        serving = {learner.name: report.rebuilt.get(name, learner) for name, learner in learners.items()}
        clean_live = {
            learner.name: serving[learner.name]
            for name, learner in learners.items()
            if name not in report.residual
        }
        secure_delete(store.db)
        for learner_name, first in sorted(linked.items()):
            _erase_versions(store, learner_name, first, ids, clean_live.get(learner_name), report)
        report.provenance_deleted = store.forget_provenance(scope, ids)
        scrub(store.db, ("provenance",))

    # Caches.
    every_cache = {
        id(c): c for c in [*caches, *_caches_of(learners.values()), *_caches_of(report.rebuilt.values())]
    }
    for cache in every_cache.values():
        report.cache_entries_dropped += cache.forget(found.strings)

    if verify:
        shared = _still_logged(log, found.texts)
        found.shared_texts = len(shared)
        found.texts -= shared
        live = {**learners, **report.rebuilt}
        report.scan = scan(found, log=log, store=store, learners=live, caches=every_cache.values())
    return report


def forget_user(
    user: str,
    *,
    log: ExperienceLog,
    learners: Mapping[str, Learner],
    tenant: str = "default",
    rebuild_with: Mapping[str, Callable[[], Learner]] | None = None,
    store: Any = None,
) -> ErasureReport:
    """:func:`forget` for one user of ``tenant``."""
    if not isinstance(user, str) or not user:
        raise InvalidInput("name the user to forget", field="user")
    return forget(
        Scope(tenant, user=user), log=log, store=store, learners=learners, rebuild_with=rebuild_with
    )


# -- the scan -------------------------------------------------------------------------------------------


def scan(
    found: Footprint,
    *,
    log: ExperienceLog,
    store: Any = None,
    learners: Mapping[str, Learner] | None = None,
    caches: Iterable[CachedEmbedder] = (),
) -> ScanReport:
    """Search every table, snapshot, live state, cache and SQLite file for ``found``'s ids and texts."""
    needles = found.needles
    report = ScanReport(len(needles), 0)
    scope = found.scope
    report.places += 1
    n = log.stats(scope).interactions
    if n:
        report.hits.append(f"log: {n} interactions of {scope} remain")
    held = log.count_holding(needles)
    report.places += len(held)
    for column, counts in held.items():
        for needle, count in counts.items():
            report.hits.append(f"table {column}: {count} rows hold {_short(needle)}")
    if store is not None:
        report.places += 1
        left = store.derived_from_scope(scope)
        if left:
            report.hits.append(f"provenance: {len(left)} links of {scope} remain")
        _scan_tables(
            store.db,
            [
                "provenance.interaction_id",
                "provenance.item",
                "state_history.detail",
                "state_versions.message",
            ],
            needles,
            report,
        )
        for name, version, state in store.snapshots():
            report.places += 1
            for hit in _scan_tree(state, needles, scope):
                report.hits.append(f"snapshot {name} v{version}: {hit}")
    for name, learner in (learners or {}).items():
        report.places += 1
        for hit in _scan_tree(learner.state_dict(), needles, scope):
            report.hits.append(f"live learner {name}: {hit}")
    for cache in caches:
        report.places += 1
        for text in found.texts:
            if cache.holds(text):
                report.hits.append(f"embedder cache {cache.name}: {_short(text)}")
    for db in {id(log.db): log.db, **({id(store.db): store.db} if store is not None else {})}.values():
        for path in _files_of(db):
            report.places += 1
            data = read_sqlite_file(path)  # never path.read_bytes(): see read_sqlite_file
            for needle in needles:
                at = data.find(needle.encode("utf-8"))
                if at >= 0:
                    report.hits.append(f"file {path.name} at byte {at}: {_short(needle)}")
    return report


def _scan_tables(db: Database, columns: list[str], needles: list[str], report: ScanReport) -> None:
    """Count the needles in the version store's ``table.column``s (the log counts its own:
    :meth:`~lifelong.experience.ExperienceLog.count_holding`)."""

    def read(cur: Cursor) -> list[str]:
        hits = []
        for column in columns:
            table, name = column.split(".")
            for needle in needles:
                escaped = json.dumps(needle)[1:-1]  # how canonical JSON stores it
                cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {contains(db.dialect, name)}", (escaped,))
                count = int(cur.fetchone()[0])
                if count:
                    hits.append(f"table {column}: {count} rows hold {_short(needle)}")
        return hits

    report.places += len(columns)
    if needles:
        report.hits.extend(db.run(read, write=False))


def _scan_tree(state: Any, needles: list[str], scope: Scope) -> Iterator[str]:
    """Hits of the needles in every string, key and byte array of a state tree, and the scope's user in
    structured places (an item of the scope's tenant held for or derived from the user; any key or
    string of a single-tenant state bound to the scope's tenant)."""
    strings: list[str] = []
    blobs: list[bytes] = []
    users: list[str] = []
    _collect(state, strings, blobs, users, scope, bound=False)
    text = "\x00".join(strings)
    for needle in needles:
        if needle in text or any(needle.encode("utf-8") in b for b in blobs):
            yield f"holds {_short(needle)}"
    if scope.user is not None and scope.user in users:
        yield f"holds user {scope.user!r} of tenant {scope.tenant!r}"


def _collect(
    node: Any, strings: list[str], blobs: list[bytes], users: list[str], scope: Scope, *, bound: bool
) -> None:
    if isinstance(node, dict):
        if node.get("tenant") == scope.tenant and "learner" in node and "state" in node:
            bound = True  # a single-tenant learner's state bound to the scope's tenant
        theirs = node.get("user") == scope.user or scope.user in (node.get("source_users") or [])
        if node.get("tenant") == scope.tenant and scope.user is not None and theirs:
            users.append(scope.user)
        for key, value in node.items():
            strings.append(str(key))
            if bound and key == scope.user:
                users.append(key)
            _collect(value, strings, blobs, users, scope, bound=bound)
    elif isinstance(node, list | tuple):
        for value in node:
            _collect(value, strings, blobs, users, scope, bound=bound)
    elif isinstance(node, str):
        strings.append(node)
        if bound and node == scope.user:
            users.append(node)
    elif isinstance(node, bytes):
        blobs.append(node)
    elif isinstance(node, np.ndarray) and node.dtype == np.uint8:
        blobs.append(node.tobytes())


# -- helpers --------------------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _still_logged(log: ExperienceLog, texts: set[str]) -> set[str]:
    """The texts some remaining event still holds (not the forgotten scope's alone); beyond the
    :data:`MAX_TEXTS` longest, every text counts as held (it is not searched for)."""
    wanted = sorted(texts, key=len, reverse=True)[:MAX_TEXTS]
    return log.held_texts(wanted) | (texts - set(wanted))


def _linked_versions(store: Any, scope: Scope) -> dict[str, int]:
    """Learner name → the first version provenance links to any of ``scope``'s interactions (one query:
    each link carries its interaction's tenant and user)."""
    first: dict[str, int] = {}
    for derived in store.derived_from_scope(scope):
        if derived.learner not in first or derived.version < first[derived.learner]:
            first[derived.learner] = derived.version
    return first


def _erase_versions(
    store: Any, name: str, first: int, ids: set[str], clean_live: Learner | None, report: ErasureReport
) -> None:
    promoted = store.promoted(name)
    erased_promoted = False
    for info in store.versions(name):
        if info.version < first or info.erased:
            continue
        state = store.state(name, info.version)
        redacted = _redact(state, ids, report.scope)
        if redacted is not None:
            store.rewrite(name, info.version, redacted, reason="erasure: redacted")
            report.versions_redacted.append((name, info.version))
        else:
            store.erase(name, info.version, reason="erasure: held data of a forgotten scope")
            report.versions_erased.append((name, info.version))
            erased_promoted |= promoted is not None and promoted.version == info.version
    if erased_promoted:
        if clean_live is not None and clean_live.name == name:
            version = store.commit(clean_live, message="rebuilt without a forgotten scope")
            store.promote(name, version.version, override="erasure: replaces an erased version")
            report.promoted[name] = version.version
        else:
            store.unpromote(name, reason="erasure: the promoted version was erased; nothing clean to serve")


def _redact(state: dict[str, Any], ids: set[str], scope: Scope) -> dict[str, Any] | None:
    """``state`` with the scope's items removed, if its learner class knows how (else None)."""
    cls = Learner.registry.get(str(state.get("learner")))
    return None if cls is None else cls.redact_state(state, ids, scope)


def _forget_in_place(learner: Learner, scope: Scope) -> bool:
    if scope.user is None:
        drop_tenant = getattr(learner, "forget_tenant", None)
        return bool(drop_tenant(scope.tenant)) if drop_tenant is not None else False
    drop = getattr(learner, "forget_user", None)
    return bool(drop(scope.user, scope.tenant)) if drop is not None else False


def _holds_tenant(learner: Learner, tenant: str) -> bool:
    return learner.tenancy != "single" or learner.tenant in (None, tenant)


def _caches_of(learners: Iterable[Learner]) -> Iterator[CachedEmbedder]:
    for learner in learners:
        embedder = getattr(learner, "embedder", None)
        if isinstance(embedder, CachedEmbedder):
            yield embedder
        tenants = getattr(learner, "tenants", None)
        if isinstance(tenants, dict):
            yield from _caches_of(t for t in tenants.values() if isinstance(t, Learner))


def _files_of(db: Database) -> list[Path]:
    if db.dialect != "sqlite":
        return []
    path = Path(getattr(db, "path", ""))
    return [p for p in (path, path.with_name(path.name + "-wal")) if p.is_file()]


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
