"""The service's learned state: per tenant and app, an :class:`~lifelong.agents.Agent` followed from the log.

One :class:`Engine` per worker process. Its methods are not thread-safe: the app calls them from one
dedicated thread, so learner state is only ever touched by that thread and needs no locks.

Each tenant's requests that name no app are answered by one agent (memory, examples and lessons:
:func:`~lifelong.agents.apps.build_agent` with no app), and each declared app by its own agent, built by
the same function the library's benchmarks use. Every learner has its own name in the version store —
``<tenant>/<learner>`` for the undeclared requests, ``<tenant>/<app>/<learner>`` for an app's — so a
tenant's or an app's versions, promotions and rollbacks never touch another's state. An agent is loaded
on its first request: each learner's promoted snapshot (if any) is restored, then the feedback after it
is replayed from the log (see :mod:`lifelong.serve.follow` for why every worker learns only from the
log). Each logged interaction says which app it belongs to (``metadata["app"]``), and a feedback row
teaches only that app's agent.

Serving a version (promote, rollback) means: serve exactly that snapshot, then learn from the feedback
that arrives after the promotion. Feedback logged between the snapshot and the promotion stays in the
log (a later commit and promotion can include it again) but the served learner skips it — that is what
rolling back is for.

The harness search of an app (:class:`~lifelong.agents.harness.HarnessSearch`) spends model calls on
replays. The engine keeps a debt of calls per app (the search's budget for every feedback it learns
from) and pays it in :meth:`Engine.background` when the worker is idle, one call at a time, so a
request waits for at most one replay; past ``max_debt`` the next request pays down the excess first.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lifelong.agents.agent import Agent, Decision, Limits, Turn
from lifelong.agents.apps import App, build_agent
from lifelong.agents.harness import HarnessSearch
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Interaction, Scope, Step, arrivals
from lifelong.learners.base import Learner
from lifelong.learners.context.base import ContextLearner, Item
from lifelong.models.base import CachedEmbedder, Completion, Embedder, Model
from lifelong.serve.apps import AppStore
from lifelong.serve.follow import PAGE, Event, Events, Tail
from lifelong.state.erasure import ErasureReport, forget
from lifelong.state.store import VersionInfo, VersionStore

#: Key of the interaction metadata naming the app a request belonged to (absent: undeclared).
APP = "app"

#: The learners of the undeclared requests, in the order their recalls go into a prompt.
LEARNERS = ("memory", "examples", "lessons")


@dataclass(frozen=True)
class Settings:
    """How the undeclared requests recall, the prompt budget, and the background search's bounds."""

    memory_k: int = 4
    examples_k: int = 4
    lessons_k: int = 3
    context_budget: int | None = 512  # tokens the recalled context may add to a request
    hole_timeout: float = 10.0
    max_debt: int = 8  # harness calls an app may owe before a request pays them


@dataclass
class AppState:
    """One app's agent (or the undeclared requests' agent, ``app=None``) in one tenant, the feedback seq
    each learner serves from, and the harness calls it owes."""

    tenant: str
    app: App | None
    agent: Agent
    from_seq: dict[str, int] = field(default_factory=dict)
    debt: int = 0

    @property
    def learners(self) -> dict[str, Learner]:
        """The agent's learners by their public name (``examples``, ``gate``, ``Prototypes``, ...)."""
        return self.agent.all_learners

    def store_name(self, name: str) -> str:
        return f"{self.tenant}/{name}" if self.app is None else f"{self.tenant}/{self.app.name}/{name}"


def app_of(interaction: Interaction) -> str | None:
    """The app an interaction was answered by (None: an undeclared request)."""
    name = interaction.metadata.get(APP)
    return name if isinstance(name, str) and name else None


class Engine:
    """Per-tenant, per-app agents of one worker, kept in step with the log (module docstring)."""

    def __init__(
        self,
        log: ExperienceLog,
        store: VersionStore,
        embedder: Embedder,
        model: Model,
        apps: AppStore,
        settings: Settings | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.apps = apps
        self.model = model
        self.events = Events(log.db)
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder, 65_536)
        self.settings = settings or Settings()
        self.tenants: dict[str, dict[str | None, AppState]] = {}
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
        for state in self._states():
            while state.debt > self.settings.max_debt and self._tick(state):
                pass
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
        fresh = sorted(self.tail.take(sorted(by_seq)))
        yield from arrivals((seq, by_seq[seq]) for seq in fresh)  # one call's feedback: one step

    def _new_events(self) -> list[Event]:
        events = self.events.after(self.event_tail.cursor)
        fresh = set(self.event_tail.take([e.seq for e in events]))
        return [e for e in events if e.seq in fresh]

    def _apply(self, seq: int, step: Step) -> None:
        apps = self.tenants.get(step.interaction.scope.tenant)
        state = None if apps is None else apps.get(app_of(step.interaction))
        if state is None:
            return  # loaded (with this row) on the app's first request
        self._learn(state, seq, step)
        self.applied += 1

    def _learn(self, state: AppState, seq: int, step: Step) -> None:
        for name, learner in state.learners.items():
            if seq > state.from_seq.get(name, 0):
                learner.learn(step)
        harness = state.agent.harness
        if harness is not None and not harness.frozen and seq > state.from_seq.get("harness", 0):
            state.debt += harness.budget

    def _apply_event(self, event: Event) -> None:
        apps = self.tenants.get(event.tenant)
        if apps is None:
            return
        if event.kind == "reload" or event.learner is None:
            del self.tenants[event.tenant]
            return
        app, _, name = event.learner.rpartition("/")
        state = apps.get(app or None)
        if state is None or name not in state.learners:
            return
        learner = state.learners[name]
        self.store.restore(learner, event.version)
        start = int(event.from_seq or 0)
        state.from_seq[name] = start
        for _, step in self._replay(state, start):
            learner.learn(step)

    def _replay(self, state: AppState, after: int) -> Iterator[tuple[int, Step]]:
        """The feedback rows of ``state``'s tenant and app with seq > ``after`` that this worker has
        applied already."""
        upto = self.tail.high
        name = None if state.app is None else state.app.name
        while after < upto:
            page = self.log.feedback_after(after, tenant=state.tenant, upto=upto, limit=PAGE)
            mine = [
                (seq, step)
                for seq, step in page
                if self.tail.applied(seq) and app_of(step.interaction) == name
            ]
            yield from arrivals(mine)
            if len(page) < PAGE:
                return
            after = page[-1][0]

    def _states(self) -> Iterator[AppState]:
        for apps in self.tenants.values():
            yield from apps.values()

    # ------------------------------------------------------------------ background learning

    def background(self, calls: int = 1) -> int:
        """Pay at most ``calls`` of the harness calls the apps owe (one at a time); returns those made."""
        made = 0
        for state in list(self._states()):
            while made < calls and state.debt > 0:
                if not self._tick(state):
                    break
                made += 1
        return made

    def _tick(self, state: AppState) -> bool:
        """One harness call of ``state`` (False when its search had nothing to do: the debt is void)."""
        harness = state.agent.harness
        if harness is None or state.debt <= 0:
            state.debt = 0
            return False
        budget, harness.budget = harness.budget, 1
        try:
            made = harness.tick(state.agent)
        finally:
            harness.budget = budget
        if made == 0:
            state.debt = 0
            return False
        state.debt -= made
        return True

    # ------------------------------------------------------------------ tenants and apps

    def state(self, tenant: str, app: str | None = None) -> AppState:
        """The agent of ``app`` (None: the undeclared requests) of ``tenant``, loaded on first use.
        NotFound for an app the tenant has not declared."""
        apps = self.tenants.setdefault(tenant, {})
        state = apps.get(app)
        if state is None:
            spec = None
            if app is not None:
                spec = self.apps.get(tenant, app)
                if spec is None:
                    raise NotFound(f"no app {app!r}; declare it with POST /v1/apps")
            state = self._load(tenant, spec)
            apps[app] = state
        elif app is not None and self.apps.get(tenant, app) != state.app:
            del apps[app]  # declared again with another spec (or removed) on some worker
            return self.state(tenant, app)
        return state

    def _agent(self, app: App | None) -> Agent:
        s = self.settings
        # A label or code app's task writes its whole prompt: the library's budget for it, the same agent.
        # A free-text request is the client's own messages: only what was learned is budgeted.
        own_prompt = app is not None and app.task in ("label", "completion")
        return build_agent(
            app,
            self.model,
            self.embedder,
            self.log,
            token_budget=768 if own_prompt else None,
            context_budget=None if own_prompt else s.context_budget,
            recall=(s.examples_k, s.lessons_k, s.memory_k),
        )

    def _load(self, tenant: str, app: App | None) -> AppState:
        state = AppState(tenant, app, self._agent(app))
        for name, learner in state.learners.items():
            learner.name = state.store_name(name)
        if state.agent.harness is not None:
            state.agent.harness.store = self.store
        event_prefix = "" if app is None else f"{app.name}/"
        for name, learner in state.learners.items():
            promoted = self.store.promoted(learner.name)
            if isinstance(learner, HarnessSearch):
                # The search's evidence is model calls, not the log: it resumes from its snapshot and
                # learns only from feedback that arrives from now on.
                state.from_seq[name] = self.tail.high
                if promoted is not None and not promoted.erased:
                    self.store.restore(learner)
                continue
            if promoted is None or promoted.erased:
                state.from_seq[name] = 0
                continue
            self.store.restore(learner)
            event = self.events.serving(tenant, event_prefix + name)
            if event is not None and event.version == promoted.version:
                state.from_seq[name] = int(event.from_seq or 0)
            else:
                state.from_seq[name] = int(promoted.metrics.get("log_seq", 0))
        start = min(state.from_seq.values(), default=0)
        for seq, step in self._replay(state, start):
            for name, learner in state.learners.items():
                if seq > state.from_seq[name]:
                    learner.learn(step)
        # A loaded agent is a long-lived heap (100K items are a million objects): move it out of the
        # collector's generations, so full collections do not rescan it on the request path.
        gc.collect()
        gc.freeze()
        return state

    def learner(self, tenant: str, name: str, app: str | None = None) -> Learner:
        """The learner ``name`` of ``tenant``'s ``app``; NotFound naming the learners there are."""
        learners = self.state(tenant, app).learners
        if name not in learners:
            raise NotFound(f"no learner {name!r}; the learners are {', '.join(learners)}")
        return learners[name]

    def memory(self, tenant: str, app: str | None = None) -> ContextLearner:
        memory = self.state(tenant, app).agent.memory
        if memory is None:
            raise NotFound(f"app {app!r} keeps no memory")
        return memory

    # ------------------------------------------------------------------ a turn

    def begin(
        self,
        scope: Scope,
        app: str | None,
        observation: JSON,
        *,
        now: float,
        shadow: bool,
        limits: Limits | None,
    ) -> tuple[AppState, Turn]:
        """Steps 1–3 of the turn (:meth:`Agent.begin`) for ``app``'s agent, after catching up."""
        self.catch_up()
        state = self.state(scope.tenant, app)
        return state, state.agent.begin(observation, scope, now=now, shadow=shadow, limits=limits)

    def finish(
        self,
        state: AppState,
        turn: Turn,
        outputs: dict[str, Completion],
        *,
        interaction_id: str,
        metadata: dict[str, JSON],
    ) -> tuple[Decision, Interaction]:
        """Step 5 and the record of step 6 (:meth:`Agent.finish`, :meth:`Agent.record`)."""
        decision = state.agent.finish(turn, outputs)
        if state.app is not None:
            metadata = {APP: state.app.name, **metadata}
        return decision, state.agent.record(turn, decision, id=interaction_id, metadata=metadata)

    def recall(self, scope: Scope, query: str, app: str | None = None) -> dict[str, list[Any]]:
        """What each context learner of the app recalls for ``query`` (after catching up)."""
        self.catch_up()
        context = self.state(scope.tenant, app).agent.recall(query, scope)
        return {name: getattr(context, name) for name in LEARNERS}

    def items(
        self, scope: Scope, name: str = "memory", app: str | None = None, *, limit: int = 100
    ) -> list[Item]:
        """The active items of ``scope`` (a user's; with no user, the tenant's), newest first."""
        self.catch_up()
        learner = self.learner(scope.tenant, name, app)
        if not isinstance(learner, ContextLearner):
            raise InvalidInput(f"{name} holds no items", field="name")
        items = [
            item
            for item in learner.active_items()
            if item.tenant == scope.tenant and (scope.user is None or item.user in (scope.user, None))
        ]
        items.sort(key=lambda item: (-item.created, item.id))
        return items[:limit]

    # ------------------------------------------------------------------ versions

    def commit(self, tenant: str, name: str, app: str | None = None, message: str = "") -> VersionInfo:
        self.catch_up()
        learner = self.learner(tenant, name, app)
        metrics: dict[str, Any] = {"log_seq": self.tail.high}
        if isinstance(learner, ContextLearner):
            metrics["items"] = len(learner.active_items())
        return self.store.commit(learner, message=message, metrics=metrics)

    def versions(self, tenant: str, name: str, app: str | None = None) -> dict[str, JSON]:
        learner = self.learner(tenant, name, app)
        promoted = self.store.promoted(learner.name)
        return {
            "learner": name,
            "app": app,
            "promoted": None if promoted is None else promoted.version,
            "versions": [_public(v, name) for v in self.store.versions(learner.name)],
            "history": self.store.history(learner.name),
        }

    def promote(
        self, tenant: str, name: str, version: int, override: str | None = None, app: str | None = None
    ) -> VersionInfo:
        learner = self.learner(tenant, name, app)
        self.store.promote(learner.name, version, override=override)
        self.events.emit(tenant, "serve", _event_name(app, name), version, self.tail.high)
        self.catch_up()
        return self.store.info(learner.name, version)

    def rollback(
        self,
        tenant: str,
        name: str,
        to: int | None = None,
        override: str | None = None,
        app: str | None = None,
    ) -> VersionInfo:
        learner = self.learner(tenant, name, app)
        info = self.store.rollback(learner.name, to, override=override)
        self.events.emit(tenant, "serve", _event_name(app, name), info.version, self.tail.high)
        self.catch_up()
        return info

    def diff(self, tenant: str, name: str, a: int, b: int, app: str | None = None) -> dict[str, Any]:
        learner = self.learner(tenant, name, app)
        return self.store.diff(learner.name, a, b).to_dict()

    def reload(self, tenant: str) -> None:
        """Make every worker load ``tenant``'s agents again (an app was declared anew or removed)."""
        self.events.emit(tenant, "reload")
        self.catch_up()

    # ------------------------------------------------------------------ erasure

    def forget(self, scope: Scope) -> ErasureReport:
        """Erase a user (or a tenant) everywhere; every worker then reloads the tenant.

        Learners that keep what the user taught in shared weights (the gate, the experts, the mixture)
        are rebuilt from the rest of their app's log before the scan runs, so the report is about what
        the service will serve."""
        if scope.session is not None:
            raise InvalidInput("erasure works on a user or a whole tenant", field="scope")
        self.catch_up()
        self.state(scope.tenant)  # the undeclared agent, even when nothing was asked yet
        learners: dict[str, Learner] = {}
        rebuild: dict[str, Any] = {}
        partition: dict[str, str | None] = {}
        for state in self.tenants.get(scope.tenant, {}).values():
            fresh = self._agent(state.app).all_learners
            for name, learner in state.learners.items():
                learners[learner.name] = learner
                partition[learner.name] = None if state.app is None else state.app.name
                if not learner.erases_in_place:  # shared statistics: rebuilt from the rest of the log
                    rebuild[learner.name] = _factory(fresh[name], learner.name)

        def steps_for(name: str) -> Iterator[Step]:
            return (
                step
                for step in self.log.replay(Scope(scope.tenant))
                if app_of(step.interaction) == partition[name]
            )

        report = forget(
            scope,
            log=self.log,
            store=self.store,
            learners=learners,
            rebuild_with=rebuild,
            steps_for=steps_for,
            caches=[self.embedder],
        )
        self.events.emit(scope.tenant, "reload")
        self.catch_up()
        return report


def _factory(learner: Learner, name: str) -> Any:
    def make() -> Learner:
        learner.name = name
        return learner

    return make


def _event_name(app: str | None, name: str) -> str:
    return name if app is None else f"{app}/{name}"


def _public(info: VersionInfo, name: str) -> dict[str, JSON]:
    data = info.to_dict()
    data.pop("learner")
    data["name"] = name
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
