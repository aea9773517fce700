"""What the token-space learners (memory, example bank, lessons) share: scoped items found by meaning.

The model stays frozen; these learners learn the *context* it is given. Each keeps text items per scope
— per user (``per_user=True``) or shared by a tenant — with the vector of the text they are found by,
the interactions they came from (:attr:`Item.sources`) and how useful they have been. An agent calls
:meth:`ContextLearner.recall` before it prompts the model and logs which items it used in the
interaction's metadata (``metadata["recalled"][learner name] = [item ids]``); when the feedback arrives,
:meth:`learn` credits those items — a *win* when the response was accepted, rewarded or confirmed, a
*loss* when it was rejected, penalised or corrected — and then lets the learner derive new items from
the step. Because the credit comes from the logged metadata and every time is the interaction's time,
replaying the log rebuilds the same items (DESIGN principle 1); recall itself changes nothing, so a
frozen learner recalls exactly what a learning one would have at the moment it froze.

Recall scores blend the cosine similarity with recency and usefulness (the blend of Park et al.,
"Generative Agents", UIST 2023, §4.1, with usefulness in place of an LLM-rated importance)::

    score = similarity + w_recency * 0.5 ** (age / half_life) + w_usefulness * (usefulness - 0.5)
    usefulness = (wins + 1) / (wins + losses + 2)     # Laplace-smoothed rate of positive outcomes

computed for a shortlist of the most similar items (the priors are bounded, so far-off items cannot win).

Observations are text, or dicts whose ``"query"`` field is the text to search by (see :func:`query_text`).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner
from lifelong.learners.context.gate import same_answer
from lifelong.learners.context.vector_index import VectorIndex
from lifelong.models.base import CachedEmbedder, Embedder, embed_one
from lifelong.models.embedders import default_embedder
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar

#: Recall re-ranks the RERANK_FACTOR * k (at least RERANK_MIN) most similar items with the priors.
RERANK_FACTOR = 8
RERANK_MIN = 32

#: An item keeps the ids of at most this many of the interactions that confirmed it (the first and the
#: latest); :attr:`Item.source_users` keeps every distinct user, and the version store's provenance
#: keeps every link — so a budget bounds the state however often one input is confirmed.
MAX_SOURCES = 64

#: Retired (superseded or dropped) items kept per scope for inspection, by default.
HISTORY_LIMIT = 100

#: Inputs at least this similar are the same input (re-phrasings score lower).
SAME_INPUT = 0.995

#: Key of the metadata field in which an agent records which items of which learner it recalled.
RECALLED = "recalled"

#: Key of the metadata field holding the model's own answer (before lessons, experts and the gate
#: changed or silenced it): recalled context is judged by what the model made of it.
MODEL_ANSWER = "model_answer"


def query_text(observation: JSON) -> str:
    """The text an observation is searched by: itself if a string, else its ``"query"`` field."""
    if isinstance(observation, str):
        return observation
    if isinstance(observation, dict) and isinstance(observation.get("query"), str):
        return str(observation["query"])
    raise InvalidInput(
        "context learners need a text observation or a dict with a 'query' text", field="observation"
    )


def judged_action(step: Step) -> JSON:
    """The answer the recalled context is judged by: the model's own answer when the agent logged it
    and the right answer is known (another expert, a lesson or the gate may have served something
    else), else the served action."""
    metadata = step.interaction.metadata
    if MODEL_ANSWER in metadata and step.corrected:
        return metadata[MODEL_ANSWER]
    return step.interaction.action


def outcome(step: Step) -> int:
    """+1 if the response was accepted, rewarded or confirmed; -1 if rejected, penalised or corrected.

    When the model's own answer is logged and the right answer known, it is that answer that is judged
    (0 when the model gave none).
    """
    metadata = step.interaction.metadata
    if MODEL_ANSWER in metadata and step.corrected:
        answer = metadata[MODEL_ANSWER]
        if answer is None:
            return 0
        return 1 if same_answer(answer, step.correction) else -1
    accepted = step.accepted
    if accepted is not None:
        return 1 if accepted else -1
    correction = step.correction
    if correction is not None:
        return 1 if correction == step.interaction.action else -1
    reward = step.reward
    if reward is not None and reward != 0:
        return 1 if reward > 0 else -1
    return 0


def right_answer(step: Step) -> JSON:
    """The answer the step shows to be right: the correction, else an accepted or rewarded response."""
    if step.corrected:
        return step.correction
    return step.interaction.action if outcome(step) > 0 else None


@dataclass
class Item:
    """One learned piece of context."""

    id: str
    text: str  # what goes into a prompt
    query: str  # the text it is found by
    payload: dict[str, JSON]  # the learner's structured view (input/output, key/value, right/wrong)
    tenant: str
    user: str | None  # None: shared by the tenant
    sources: list[str] = field(default_factory=list)  # interaction ids it was derived from
    source_users: list[str | None] = field(default_factory=list)
    created: float = 0.0
    touched: float = 0.0  # last time it was written or credited
    wins: int = 0
    losses: int = 0
    status: str = "active"  # active | superseded | dropped
    replaced_by: str | None = None

    @property
    def usefulness(self) -> float:
        return (self.wins + 1) / (self.wins + self.losses + 2)

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class Recalled:
    """An item returned by :meth:`ContextLearner.recall`, with its blended score and raw similarity."""

    item: Item
    score: float
    similarity: float

    @property
    def id(self) -> str:
        return self.item.id


ScopeKey = tuple[str, str | None]


class ContextLearner(Learner):
    """Base of the learners whose state is scoped text items found by embedding similarity.

    Every item belongs to one tenant (and, with ``per_user``, one user); recall only ever searches the
    request's own scope, so tenants never see each other's items.
    """

    tenancy = "per_tenant"
    erases_in_place = True

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        per_user: bool = True,
        k: int = 4,
        budget: int | None = None,
        min_similarity: float = 0.0,
        w_recency: float = 0.05,
        w_usefulness: float = 0.2,
        half_life: float = 7 * 24 * 3600.0,
        history_limit: int = HISTORY_LIMIT,
    ) -> None:
        super().__init__()
        check_scalar(k, "k", int, min_val=1)
        check_scalar(budget, "budget", int, min_val=1, allow_none=True)
        check_scalar(half_life, "half_life", float, min_val=0, include_boundaries="neither")
        if embedder is None:
            embedder = default_embedder()
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.per_user = per_user
        self.k = k
        self.budget = budget
        self.min_similarity = min_similarity
        self.w_recency = w_recency
        self.w_usefulness = w_usefulness
        self.half_life = half_life
        self.history_limit = check_scalar(history_limit, "history_limit", int, min_val=0)
        self.items: dict[str, Item] = {}
        self._indexes: dict[ScopeKey, VectorIndex] = {}
        self._retired: dict[ScopeKey, list[str]] = {}  # retired item ids per scope, oldest first

    # ------------------------------------------------------------------ reading

    def scope_key(self, scope: Scope) -> ScopeKey:
        return (scope.tenant, scope.user if self.per_user else None)

    def recall(
        self,
        query: str,
        scope: Scope,
        *,
        k: int | None = None,
        now: float | None = None,
        before: float | None = None,
    ) -> list[Recalled]:
        """The best ``k`` active items of ``scope`` for ``query`` (changes nothing); with ``before``,
        only items created before that time (what was known then: used to replay a logged request)."""
        index = self._indexes.get(self.scope_key(scope))
        if index is None or not len(index):
            return []
        take = k or self.k
        # The priors move a score by at most w_recency + w_usefulness / 2, so only the most similar
        # items can win: re-rank a shortlist of them instead of scoring every item of the scope.
        size = max(RERANK_FACTOR * take, RERANK_MIN)
        keys, sims = index.shortlist(embed_one(self.embedder, query), size)
        shortlist = top_k(sims, size)
        found = [
            Recalled(item, float(sims[i]) + self._prior(item, now), float(sims[i]))
            for i in shortlist
            if sims[i] >= self.min_similarity
            for item in (self.items[keys[i]],)
            if before is None or item.created < before
        ]
        # Ties by id: the answer must not depend on where the index keeps an item (removals move them).
        found.sort(key=lambda r: (-r.score, r.item.id))
        return found[:take]

    def _prior(self, item: Item, now: float | None) -> float:
        recency = 0.5 ** (max(0.0, (now or item.touched) - item.touched) / self.half_life)
        return float(self.w_recency * recency) + self.w_usefulness * (item.usefulness - 0.5)

    def active_items(self, scope: Scope | None = None) -> list[Item]:
        """Active items, of one scope or of all."""
        return self._listed(scope, active=True)

    def history(self, scope: Scope | None = None) -> list[Item]:
        """Items no longer returned by recall (superseded or dropped), kept for inspection."""
        return self._listed(scope, active=False)

    def _listed(self, scope: Scope | None, *, active: bool) -> list[Item]:
        key = None if scope is None else self.scope_key(scope)
        return [
            item
            for item in self.items.values()
            if item.active is active and (key is None or (item.tenant, item.user) == key)
        ]

    def __len__(self) -> int:
        return sum(len(index) for index in self._indexes.values())

    # ------------------------------------------------------------------ learning

    def _learn(self, step: Step) -> bool:
        changed = self._credit(step)
        return self._derive(step) or changed

    def _credit(self, step: Step) -> bool:
        recalled = step.interaction.metadata.get(RECALLED) or {}
        ids = (recalled.get(self.name) or []) if isinstance(recalled, dict) else []
        sign = outcome(step)
        if not ids or sign == 0:
            return False
        changed = False
        for item_id in ids:
            item = self.items.get(item_id)
            if item is None or not item.active:
                continue
            if sign > 0:
                item.wins += 1
            else:
                item.losses += 1
            item.touched = max(item.touched, step.interaction.time)
            self._after_credit(item)
            changed = True
        return changed

    def _after_credit(self, item: Item) -> None:
        """Hook: e.g. lessons drop an item whose recalls keep preceding negative feedback."""

    def _after_evict(self, item: Item) -> None:
        """Hook: ``item`` was evicted to keep the scope within its budget."""

    def _after_forget(self, items: list[Item]) -> None:
        """Hook: ``items`` were deleted because a forgotten user contributed to them."""

    @abstractmethod
    def _derive(self, step: Step) -> bool:
        """Add, merge or supersede items from ``step``; return True when something changed."""

    # ------------------------------------------------------------------ item bookkeeping

    def _new_item(self, step: Step, n: int, text: str, query: str, payload: dict[str, JSON]) -> Item:
        """A new item from ``step`` (its ``n``-th); the id names the interaction, and stays unique when a
        later arrival of feedback on the same interaction derives another (a reject, then its correction)."""
        while f"{step.interaction.id}/{self.name}/{n}" in self.items:
            n += 1
        scope = step.interaction.scope
        tenant, user = self.scope_key(scope)
        now = step.interaction.time
        return Item(
            id=f"{step.interaction.id}/{self.name}/{n}",
            text=text,
            query=query,
            payload=payload,
            tenant=tenant,
            user=user,
            sources=[step.interaction.id],
            source_users=[scope.user],
            created=now,
            touched=now,
        )

    def _insert(self, item: Item, step: Step) -> None:
        self.items[item.id] = item
        key = (item.tenant, item.user)
        self._index(key).add(item.id, embed_one(self.embedder, item.query))
        self.provenance.record(item.id, step)
        self._enforce_budget(key)

    def _index(self, key: ScopeKey) -> VectorIndex:
        """The index of a scope, made on first use."""
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = VectorIndex(self.embedder.dim)
        return index

    def _supersede(self, old: Item, new: Item, step: Step) -> None:
        """``new`` (from ``step``) replaces ``old``, which stays in :meth:`history`."""
        self._retire(old, "superseded", replaced_by=new.id)
        self._insert(new, step)

    def _absorb(self, item: Item, step: Step) -> None:
        """``step`` confirms ``item`` again: add it as a source and refresh it."""
        if step.interaction.id not in item.sources:
            item.sources.append(step.interaction.id)
            if len(item.sources) > MAX_SOURCES:
                del item.sources[1]  # keep the first and the latest
        if step.interaction.scope.user not in item.source_users:
            item.source_users.append(step.interaction.scope.user)
        item.touched = max(item.touched, step.interaction.time)
        self.provenance.record(item.id, step)

    def _retire(self, item: Item, status: str, replaced_by: str | None = None) -> None:
        """Stop returning ``item`` (it stays in :meth:`history`)."""
        item.status = status
        item.replaced_by = replaced_by
        self._unindex(item)
        retired = self._retired.setdefault((item.tenant, item.user), [])
        retired.append(item.id)
        while len(retired) > self.history_limit:  # the oldest leave the history for good
            self.items.pop(retired.pop(0), None)

    def _unindex(self, item: Item) -> None:
        index = self._indexes.get((item.tenant, item.user))
        if index is not None and item.id in index:
            index.remove(item.id)

    def _nearest(self, key: ScopeKey, query: str) -> tuple[Item, float] | None:
        index = self._indexes.get(key)
        if index is None or not len(index):
            return None
        [(item_id, sim)] = index.search(embed_one(self.embedder, query), 1)
        return self.items[item_id], sim

    def _enforce_budget(self, key: ScopeKey) -> None:
        """Over budget: evict the least useful active items (ties: least recently touched)."""
        index = self._indexes[key]
        if self.budget is None or len(index) <= self.budget:
            return
        candidates = sorted((self.items[i] for i in index.ids()), key=_keep_order)
        for item in candidates[: len(index) - self.budget]:
            del self.items[item.id]
            index.remove(item.id)
            self._after_evict(item)

    # ------------------------------------------------------------------ erasure and state

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Delete every item of ``tenant`` (active or in history) derived from any interaction of
        ``user``, or held for them; items of other tenants are never touched. An item that also came
        from other users goes too (a rebuild from the remaining log recreates their part)."""
        doomed = [
            item
            for item in self.items.values()
            if item.tenant == tenant and (user in item.source_users or item.user == user)
        ]
        for item in doomed:
            self._unindex(item)
            del self.items[item.id]
        self._indexes = {
            key: index for key, index in self._indexes.items() if len(index) or key != (tenant, user)
        }
        gone = {item.id for item in doomed}
        self._retired = {key: [i for i in ids if i not in gone] for key, ids in self._retired.items()}
        for item in self.items.values():
            if item.replaced_by in gone:
                item.replaced_by = None  # its successor came from the forgotten user
        self._after_forget(doomed)
        return bool(doomed)

    @classmethod
    def redact_state(
        cls, state: dict[str, Any], interaction_ids: set[str], scope: Scope | None = None
    ) -> dict[str, Any] | None:
        """``state`` (a :meth:`state_dict`) without the items any of ``interaction_ids`` contributed to,
        or that ``scope``'s user (or tenant, when it names no user) is among the sources of: how a version
        store erases a forgotten user from old snapshots of a context learner."""
        inner = state["state"]

        def theirs(item: dict[str, Any]) -> bool:
            if interaction_ids.intersection(item.get("sources") or []):
                return True
            if scope is None or item.get("tenant") != scope.tenant:
                return False
            return (
                scope.user is None
                or scope.user in (item.get("source_users") or [])
                or (item.get("user") == scope.user)
            )

        keep = [row for row, item in enumerate(inner["items"]) if not theirs(item)]
        kept = set(keep)
        gone = {item["id"] for row, item in enumerate(inner["items"]) if row not in kept}
        items = [
            {**item, "replaced_by": None} if item.get("replaced_by") in gone else item
            for item in (inner["items"][row] for row in keep)
        ]
        vectors = np.asarray(inner["vectors"])
        return {
            **state,
            "state": {
                **inner,
                "items": items,
                "vectors": vectors[keep] if len(vectors) else vectors,
            },
        }

    def derived_from(self, interaction_ids: Iterable[str]) -> list[Item]:
        """Items (active or not) that any of ``interaction_ids`` contributed to."""
        wanted = set(interaction_ids)
        return [item for item in self.items.values() if wanted.intersection(item.sources)]

    def _get_state(self) -> dict[str, Any]:
        items = list(self.items.values())
        vectors = (
            np.stack([self._vector(item) for item in items]) if items else np.zeros((0, self.embedder.dim))
        )
        return {"items": [asdict(item) for item in items], "vectors": vectors.astype(np.float32)}

    def _vector(self, item: Item) -> np.ndarray:
        index = self._indexes.get((item.tenant, item.user))
        if index is not None and item.id in index:
            return index.vector(item.id)
        return embed_one(self.embedder, item.query)

    def _set_state(self, state: dict[str, Any]) -> None:
        self.items = {}
        self._indexes = {}
        self._retired = {}
        vectors = np.asarray(state["vectors"], dtype=np.float32)
        for data, vector in zip(state["items"], vectors, strict=True):
            item = Item(**copy.deepcopy(data))  # items grow in place (sources, payloads): not the state's
            self.items[item.id] = item
            if item.active:
                self._index((item.tenant, item.user)).add(item.id, vector)
            else:
                self._retired.setdefault((item.tenant, item.user), []).append(item.id)


def _keep_order(item: Item) -> tuple[float, float]:
    return (item.usefulness, item.touched)
