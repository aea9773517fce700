"""The service's learned state: per tenant, a memory, an example bank and lessons, followed from the log.

One :class:`Engine` per worker process. Its methods are not thread-safe: the app calls them from one
dedicated thread, so learner state is only ever touched by that thread and needs no locks.

Each tenant has its own learner instances, named ``<tenant>/memory``, ``<tenant>/examples`` and
``<tenant>/lessons`` in the version store, so a tenant's versions, promotions and rollbacks never touch
another tenant's state. A tenant is loaded on its first request: for each learner the promoted snapshot
(if any) is restored, then the tenant's feedback after it is replayed from the log (see
:mod:`lifelong.serve.follow` for why every worker learns only from the log).

Serving a version (promote, rollback) means: serve exactly that snapshot, then learn from the feedback
that arrives after the promotion. Feedback logged between the snapshot and the promotion stays in the
log (a later commit and promotion can include it again) but the served learner skips it — that is what
rolling back is for.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.context.base import ContextLearner, Item, Recalled
from lifelong.learners.context.examples import ExampleBank
from lifelong.learners.context.lessons import Lessons
from lifelong.learners.context.memory import Memory
from lifelong.models.base import CachedEmbedder, Embedder
from lifelong.serve.follow import PAGE, Event, Events, Tail
from lifelong.state.erasure import ErasureReport, forget
from lifelong.state.store import VersionInfo, VersionStore

#: The learners every tenant has, in the order their recalls go into a prompt.
LEARNERS = ("memory", "examples", "lessons")


@dataclass
class TenantState:
    """One tenant's learners and, per learner, the feedback seq it serves from."""

    tenant: str
    learners: dict[str, ContextLearner]
    from_seq: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """How many items each learner recalls, and its budget of items per scope."""

    memory_k: int = 4
    examples_k: int = 4
    lessons_k: int = 3
    memory_budget: int | None = 1000
    examples_budget: int | None = None
    share_examples: bool = True  # the example bank is the tenant's (True) or each user's
    hole_timeout: float = 10.0


class Engine:
    """Per-tenant learners of one worker, kept in step with the log (module docstring)."""

    def __init__(
        self,
        log: ExperienceLog,
        store: VersionStore,
        embedder: Embedder,
        settings: Settings | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.events = Events(log.db)
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder, 65_536)
        self.settings = settings or Settings()
        self.tenants: dict[str, TenantState] = {}
        self.tail = Tail(hole_timeout=self.settings.hole_timeout)
        self.event_tail = Tail(hole_timeout=self.settings.hole_timeout)
        self.applied = 0  # feedback rows learned from, all tenants (a metric)
        self._start_at_end()

    # ------------------------------------------------------------------ following the log

    def _start_at_end(self) -> None:
        """Begin following at the log's end; the seqs missing among the last ones may still commit."""

        top, recent = self.log.last_feedback_seqs(10_000)
        self.tail.cursor = max(0, top - 10_000)
        self.tail.take(recent)  # the gaps among them become holes, re-read for a while
        self.event_tail.cursor = self.events.high()

    def catch_up(self) -> int:
        """Learn from every feedback row and apply every event that appeared since the last call; returns
        how many feedback rows were new. Called before every request that reads learned state."""
        for event in self._new_events():
            self._apply_event(event)
        fresh = 0
        for seq, step in self._new_feedback():
            self._apply(seq, step)
            fresh += 1
        return fresh

    def _new_feedback(self) -> Iterator[tuple[int, Step]]:
        rows: list[tuple[int, Step]] = []
        for hole in list(self.tail.holes):
            rows += self.log.feedback_after(hole.low - 1, upto=hole.high, limit=PAGE)
        after = self.tail.high
        while True:
            page = self.log.feedback_after(after, limit=PAGE)
            rows += page
            if len(page) < PAGE:
                break
            after = page[-1][0]
        by_seq = {seq: step for seq, step in rows}
        for seq in sorted(self.tail.take(sorted(by_seq))):
            yield seq, by_seq[seq]

    def _new_events(self) -> list[Event]:
        events = self.events.after(self.event_tail.cursor)
        fresh = set(self.event_tail.take([e.seq for e in events]))
        return [e for e in events if e.seq in fresh]

    def _apply(self, seq: int, step: Step) -> None:
        state = self.tenants.get(step.interaction.scope.tenant)
        if state is None:
            return  # loaded (with this row) on the tenant's first request
        for name, learner in state.learners.items():
            if seq > state.from_seq.get(name, 0):
                learner.learn(step)
        self.applied += 1

    def _apply_event(self, event: Event) -> None:
        state = self.tenants.get(event.tenant)
        if state is None:
            return
        if event.kind == "reload" or event.learner not in state.learners:
            del self.tenants[event.tenant]
            return
        learner = state.learners[event.learner]
        self.store.restore(learner, event.version)
        start = int(event.from_seq or 0)
        state.from_seq[event.learner] = start
        for _, step in self._replay(event.tenant, start):
            learner.learn(step)

    def _replay(self, tenant: str, after: int) -> Iterator[tuple[int, Step]]:
        """The tenant's feedback rows with seq > ``after`` that this worker has applied already."""
        upto = self.tail.high
        while after < upto:
            page = self.log.feedback_after(after, tenant=tenant, upto=upto, limit=PAGE)
            for seq, step in page:
                if self.tail.applied(seq):
                    yield seq, step
            if len(page) < PAGE:
                return
            after = page[-1][0]

    # ------------------------------------------------------------------ tenants

    def tenant(self, tenant: str) -> TenantState:
        """The tenant's learners, loaded on first use."""
        state = self.tenants.get(tenant)
        if state is None:
            state = self._load(tenant)
            self.tenants[tenant] = state
        return state

    def _make(self, tenant: str, name: str) -> ContextLearner:
        s = self.settings
        learner: ContextLearner
        if name == "memory":
            learner = Memory(self.embedder, k=s.memory_k, budget=s.memory_budget)
        elif name == "examples":
            learner = ExampleBank(
                self.embedder, k=s.examples_k, budget=s.examples_budget, per_user=not s.share_examples
            )
        else:
            learner = Lessons(self.embedder, k=s.lessons_k)
        learner.name = f"{tenant}/{name}"
        return learner

    def _load(self, tenant: str) -> TenantState:
        state = TenantState(tenant, {name: self._make(tenant, name) for name in LEARNERS})
        for name, learner in state.learners.items():
            promoted = self.store.promoted(learner.name)
            if promoted is None or promoted.erased:
                state.from_seq[name] = 0
                continue
            self.store.restore(learner)
            event = self.events.serving(tenant, name)
            if event is not None and event.version == promoted.version:
                state.from_seq[name] = int(event.from_seq or 0)
            else:
                state.from_seq[name] = int(promoted.metrics.get("log_seq", 0))
        start = min(state.from_seq.values())
        for seq, step in self._replay(tenant, start):
            for name, learner in state.learners.items():
                if seq > state.from_seq[name]:
                    learner.learn(step)
        # A loaded tenant is a long-lived heap (100K items are a million objects): move it out of the
        # collector's generations, so full collections do not rescan it on the request path.
        gc.collect()
        gc.freeze()
        return state

    def learner(self, tenant: str, name: str) -> ContextLearner:
        if name not in LEARNERS:
            raise NotFound(f"no learner {name!r}; the learners are {', '.join(LEARNERS)}")
        return self.tenant(tenant).learners[name]

    # ------------------------------------------------------------------ reading

    def recall(self, scope: Scope, query: str, *, now: float | None = None) -> dict[str, list[Recalled]]:
        """What each learner recalls for ``query`` in ``scope`` (after catching up with the log)."""
        self.catch_up()
        state = self.tenant(scope.tenant)
        return {name: learner.recall(query, scope, now=now) for name, learner in state.learners.items()}

    def items(self, scope: Scope, name: str = "memory", *, limit: int = 100) -> list[Item]:
        """The active items of ``scope`` (a user's; with no user, the tenant's), newest first."""
        self.catch_up()
        learner = self.learner(scope.tenant, name)
        items = [
            item
            for item in learner.active_items()
            if item.tenant == scope.tenant and (scope.user is None or item.user in (scope.user, None))
        ]
        items.sort(key=lambda item: (-item.created, item.id))
        return items[:limit]

    # ------------------------------------------------------------------ versions

    def commit(self, tenant: str, name: str, message: str = "") -> VersionInfo:
        self.catch_up()
        learner = self.learner(tenant, name)
        metrics: dict[str, Any] = {"log_seq": self.tail.high, "items": len(learner.active_items())}
        return self.store.commit(learner, message=message, metrics=metrics)

    def versions(self, tenant: str, name: str) -> dict[str, JSON]:
        learner = self.learner(tenant, name)
        promoted = self.store.promoted(learner.name)
        return {
            "learner": name,
            "promoted": None if promoted is None else promoted.version,
            "versions": [_public(v) for v in self.store.versions(learner.name)],
            "history": self.store.history(learner.name),
        }

    def promote(self, tenant: str, name: str, version: int, override: str | None = None) -> VersionInfo:
        learner = self.learner(tenant, name)
        self.store.promote(learner.name, version, override=override)
        self.events.emit(tenant, "serve", name, version, self.tail.high)
        self.catch_up()
        return self.store.info(learner.name, version)

    def rollback(
        self, tenant: str, name: str, to: int | None = None, override: str | None = None
    ) -> VersionInfo:
        learner = self.learner(tenant, name)
        info = self.store.rollback(learner.name, to, override=override)
        self.events.emit(tenant, "serve", name, info.version, self.tail.high)
        self.catch_up()
        return info

    def diff(self, tenant: str, name: str, a: int, b: int) -> dict[str, Any]:
        learner = self.learner(tenant, name)
        return self.store.diff(learner.name, a, b).to_dict()

    # ------------------------------------------------------------------ erasure

    def forget(self, scope: Scope) -> ErasureReport:
        """Erase a user (or a tenant) everywhere; every worker then reloads the tenant."""
        if scope.session is not None:
            raise InvalidInput("erasure works on a user or a whole tenant", field="scope")
        self.catch_up()
        state = self.tenant(scope.tenant)
        learners = {learner.name: learner for learner in state.learners.values()}
        report = forget(scope, log=self.log, store=self.store, learners=learners, caches=[self.embedder])
        self.events.emit(scope.tenant, "reload")
        self.catch_up()
        return report


def _public(info: VersionInfo) -> dict[str, JSON]:
    data = info.to_dict()
    data["name"] = data.pop("learner").rpartition("/")[2]
    public: dict[str, JSON] = json.loads(json.dumps(data, default=str))
    return public


def interaction_tenant(log: ExperienceLog, interaction_id: str, tenant: str) -> Step:
    """The step of ``interaction_id`` if it belongs to ``tenant``; else NotFound with the message a
    missing id gets (no existence leak)."""
    try:
        step = log.get(interaction_id)
    except (NotFound, InvalidInput):
        step = None
    if step is None or step.interaction.scope.tenant != tenant:
        raise NotFound(f"no interaction {interaction_id!r}")
    return step


class TenantOf:
    """Which tenant each interaction id belongs to: one indexed read, then an LRU cache. Safe to cache:
    an id's tenant never changes, and an erased id fails the append that follows (NotFound)."""

    def __init__(self, log: ExperienceLog, size: int = 100_000) -> None:
        self.log, self.size = log, size
        self._known: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, interaction_id: str, tenant: str) -> None:
        with self._lock:
            self._known[interaction_id] = tenant
            if len(self._known) > self.size:
                self._known.popitem(last=False)

    def check(self, interaction_id: str, tenant: str) -> None:
        """NotFound unless ``interaction_id`` is logged for ``tenant`` (the message a missing id gets)."""
        with self._lock:
            known = self._known.get(interaction_id)
        if known is None:
            known = self.log.tenant_of(interaction_id)
            if known is not None:
                self.remember(interaction_id, known)
        if known != tenant:
            raise NotFound(f"no interaction {interaction_id!r}")
