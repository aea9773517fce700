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

Recall scores blend the relevance of an item to the query with recency and usefulness (the blend of
Park et al., "Generative Agents", UIST 2023, §4.1, with usefulness in place of an LLM-rated importance)::

    score = relevance + w_recency * 0.5 ** (age / half_life) + w_usefulness * (usefulness - 0.5)
    usefulness = (wins + 1) / (max(wins + losses, surfaced) + 2)   # Laplace-smoothed rate of help

computed for a shortlist of the most relevant items (the priors are bounded, so far-off items cannot win).
Relevance has two channels:

- **dense** — the cosine similarity of the query's and the item's embeddings. An item that is a turn of
  a thread (a conversation; :attr:`Item.before` / :attr:`Item.after` link its neighbours) has three
  *views*: its text, its text with the turn before, and with the turn after; the dense score is the
  mean of the three cosines — an answer ("Yes, last Saturday!") is found by the question it answers;
- **lexical** (``lexical=True``, the default) — Okapi BM25 over the same views
  (:mod:`lifelong.learners.context.lexical`), which finds the names and rare words a question shares
  with its evidence.

The channels are fused by reciprocal rank (Cormack, Clarke & Büttcher, SIGIR 2009, eq. 1)::

    relevance = Σ_channel 1 / (fusion_k + rank_channel)   /   (channels / (fusion_k + 1))

scaled so that an item first in every channel has relevance 1. Without the lexical channel (or when
the query has no searchable word) relevance is the dense score itself. Each view's contribution
respects ``before=``: a neighbour created at or after that time is not seen (the view falls back to
the item alone). Measured on LoCoMo (``lifelong bench memory``, docs/benchmarks.md): evidence recall@5
40.9 with the cosine alone, 48.4 with the views, 64.2 fused with BM25.

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
from lifelong.learners.context.lexical import VIEWS, LexicalIndex
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

#: The constant of reciprocal-rank fusion (Cormack et al. 2009 use 60; on LoCoMo's dev conversations
#: 10 gave recall@5 64.2 against 60.1 at 60 — a small constant trusts the top of each channel more).
FUSION_K = 10

#: How fast the recall channels' trust follows their losses: weights ∝ exp(-TRUST_RATE · loss), where
#: each loss is discounted by TRUST_DISCOUNT per judged step (an effective memory of ~100 steps).
TRUST_RATE = 1.0
TRUST_DISCOUNT = 0.99

#: Retired (superseded or dropped) items kept per scope for inspection, by default.
HISTORY_LIMIT = 100

#: The status of an item a user retired (with a reason): never recalled again, nor its duplicates.
RETIRED = "retired"

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
    wins: int = 0  # recalls followed by positive feedback (it helped)
    losses: int = 0  # recalls followed by negative feedback
    surfaced: int = 0  # recalls followed by any feedback (positive, negative or neutral)
    status: str = "active"  # active | superseded | dropped | retired
    replaced_by: str | None = None
    before: str | None = None  # the item before this one in its thread (a conversation turn)
    after: str | None = None  # the item after it
    valid_to: float | None = None  # when it stopped holding (superseded, dropped, retired); from: created
    reason: str | None = None  # why it was retired

    @property
    def usefulness(self) -> float:
        """Laplace-smoothed share of its judged recalls that helped: a recall followed by neutral
        feedback counts as not helping, so an item surfaced again and again without helping sinks."""
        return (self.wins + 1) / (max(self.wins + self.losses, self.surfaced) + 2)

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
    #: Whether :meth:`_right_for` can tell a right item from a wrong one (then the channels earn trust).
    judges_items = False

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
        lexical: bool = True,
        fusion_k: int = FUSION_K,
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
        self.lexical = check_scalar(lexical, "lexical", bool)
        self.fusion_k = check_scalar(fusion_k, "fusion_k", int, min_val=1)
        self.items: dict[str, Item] = {}
        self._indexes: dict[ScopeKey, VectorIndex] = {}
        # Per scope: the vector of each linked pair of turns (before-text + text), keyed by the later
        # item — its "before" view and its predecessor's "after" view; and the lexical index.
        self._pairs: dict[ScopeKey, VectorIndex] = {}
        self._lexicons: dict[ScopeKey, LexicalIndex] = {}
        self._channel_losses: dict[str, list[float]] = {}  # per tenant: [dense, lexical]
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
        as_of: float | None = None,
    ) -> list[Recalled]:
        """The best ``k`` active items of ``scope`` for ``query`` (changes nothing); with ``before``,
        only items created before that time (what was known then: used to replay a logged request).

        ``as_of`` asks what held at that time (Graphiti's bi-temporal facts): the items created before it
        that were active then — a fact superseded later is found, one superseded earlier is not. Items a
        user retired are never found. (History items are ranked by the dense channel only: the lexical
        index holds active items.)"""
        key = self.scope_key(scope)
        history = [] if as_of is None else self._held_at(key, as_of)
        if as_of is not None:
            before = as_of if before is None else min(before, as_of)
        take = k or self.k
        # The priors move a score by at most w_recency + w_usefulness / 2, so only the most relevant
        # items can win: re-rank a shortlist of them instead of scoring every item of the scope.
        found, own, dense, words = self._scored(
            query, key, max(RERANK_FACTOR * take, RERANK_MIN), before, history
        )
        if not found:
            return []
        relevance = (
            self._fused(found, dense, words, self.channel_weights(key[0])) if words is not None else dense
        )
        recalled = [
            Recalled(item, float(relevance[n]) + self._prior(item, now), float(own[n]))
            for n, item in enumerate(found)
        ]
        # Ties by id: the answer must not depend on where the index keeps an item (removals move them).
        recalled.sort(key=lambda r: (-r.score, r.item.id))
        return recalled[:take]

    def _scored(
        self, query: str, key: ScopeKey, size: int, before: float | None, history: list[Item]
    ) -> tuple[list[Item], np.ndarray, np.ndarray, np.ndarray | None]:
        """The candidates for ``query`` — the ``size`` best of each channel and view — with, per item,
        its own cosine, its dense score and its lexical score (None: no lexical channel or no match)."""
        index = self._indexes.get(key)
        if (index is None or not len(index)) and not history:
            return [], np.zeros(0), np.zeros(0), None
        index = index if index is not None else VectorIndex(self.embedder.dim)
        vector = embed_one(self.embedder, query)
        keys, sims = index.shortlist(vector, size)
        candidates = {keys[i] for i in top_k(sims, size)}
        pairs = self._pairs.get(key)
        if pairs is not None and len(pairs):
            pair_keys, pair_sims = pairs.shortlist(vector, size)
            for row in top_k(pair_sims, size):
                later = pair_keys[row]
                candidates.add(later)
                earlier = self.items[later].before
                if earlier is not None:
                    candidates.add(earlier)
        lexicon = self._lexicons.get(key) if self.lexical else None
        lexical = lexicon.search(query, size) if lexicon is not None else {}
        candidates.update(lexical)
        found = [
            item
            for item_id in candidates
            for item in (self.items[item_id],)
            if item.active and (before is None or item.created < before)
        ] + history
        if not found:
            return [], np.zeros(0), np.zeros(0), None
        # Each item's thread neighbours as known at ``before`` (None: not seen), shared by both channels.
        neighbours = [(self._seen(i.before, before), self._seen(i.after, before)) for i in found]
        own, dense = self._dense(found, neighbours, vector)
        keep = own >= self.min_similarity
        found = [item for item, kept in zip(found, keep, strict=True) if kept]
        neighbours = [pair for pair, kept in zip(neighbours, keep, strict=True) if kept]
        own, dense = own[keep], dense[keep]
        if not lexical:
            return found, own, dense, None
        words = np.array(
            [_lexical_score(lexical.get(item.id), pair) for item, pair in zip(found, neighbours, strict=True)]
        )
        return found, own, dense, words

    def _held_at(self, key: ScopeKey, time: float) -> list[Item]:
        """The items of a scope's history that held at ``time`` (created before, retired after)."""
        return [
            item
            for item_id in self._retired.get(key, [])
            for item in (self.items[item_id],)
            if item.created < time and item.valid_to is not None and item.valid_to > time
        ]

    def _seen(self, neighbour: str | None, before: float | None) -> Item | None:
        """The neighbour item, if it exists and was known at ``before``."""
        item = self.items.get(neighbour) if neighbour is not None else None
        if item is None or not item.active or (before is not None and item.created >= before):
            return None
        return item

    def _dense(
        self, items: list[Item], neighbours: list[tuple[Item | None, Item | None]], vector: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per item: the cosine of its own text, and the mean over its views (module docstring); a view
        whose neighbour is not seen (None) counts as the item alone."""
        own = np.array([float(self._vector(item) @ vector) for item in items], dtype=np.float64)
        dense = own.copy()
        for n, (item, (earlier, later)) in enumerate(zip(items, neighbours, strict=True)):
            if earlier is None and later is None:
                continue
            pairs = self._pairs[(item.tenant, item.user)]
            view_before = float(pairs.vector(item.id) @ vector) if earlier is not None else own[n]
            view_after = float(pairs.vector(later.id) @ vector) if later is not None else own[n]
            dense[n] = (own[n] + view_before + view_after) / 3
        return own, dense

    def _fused(
        self, items: list[Item], dense: np.ndarray, words: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """Reciprocal-rank fusion of the dense and lexical channels, each weighted by its learned trust
        (module docstring); 1.0 for an item first in every channel."""
        ids = [item.id for item in items]
        k = self.fusion_k
        fused = weights[0] / (k + _ranks(dense, ids))
        total = weights[0]
        if np.any(words > 0):
            fused = fused + weights[1] * np.where(words > 0, 1.0 / (k + _ranks(words, ids)), 0.0)
            total += weights[1]
        return np.asarray(fused * (k + 1) / total, dtype=np.float64)

    def channel_weights(self, tenant: str) -> np.ndarray:
        """The trust of the dense and the lexical channel for ``tenant``: exponential weights of their
        discounted losses (Hedge; Freund & Schapire 1997, with discounting), equal until feedback that
        judges recalled items arrives (:meth:`_right_for`)."""
        losses = self._channel_losses.get(tenant)
        if losses is None:
            return np.ones(2)
        weights = np.exp(-TRUST_RATE * (np.asarray(losses, dtype=np.float64) - min(losses)))
        return np.asarray(weights / weights.max(), dtype=np.float64)

    def _right_for(self, item: Item, step: Step) -> bool | None:
        """Whether ``item`` would have been right for ``step`` (None: this learner cannot tell). A
        learner that can tell learns how much to trust each recall channel (:meth:`channel_weights`)."""
        return None

    def _learn_trust(self, step: Step) -> bool:
        """Before learning ``step``: judge the best item of each channel for its query, as recall saw
        them at the step's time, and update the channels' discounted losses."""
        if not self.lexical or not self.judges_items or right_answer(step) is None:
            return False
        try:
            query = query_text(step.interaction.observation)
        except InvalidInput:
            return False
        key = self.scope_key(step.interaction.scope)
        found, _, dense, words = self._scored(query, key, RERANK_MIN, step.interaction.time, [])
        if words is None or not found:
            return False
        ids = [item.id for item in found]
        tops = [found[int(np.argmin(_ranks(scores, ids)))] for scores in (dense, words)]
        verdicts = [self._right_for(item, step) for item in tops]
        if any(v is None for v in verdicts) or verdicts[0] == verdicts[1]:
            return False  # no verdict, or both alike: nothing tells the channels apart
        losses = self._channel_losses.setdefault(key[0], [0.0, 0.0])
        for channel, right in enumerate(verdicts):
            losses[channel] = TRUST_DISCOUNT * losses[channel] + (0.0 if right else 1.0)
        return True

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
        changed = self._learn_trust(step)
        changed = self._credit(step) or changed
        return self._derive(step) or changed

    def _credit(self, step: Step) -> bool:
        recalled = step.interaction.metadata.get(RECALLED) or {}
        ids = (recalled.get(self.name) or []) if isinstance(recalled, dict) else []
        sign = outcome(step)
        if not ids:
            return False
        changed = False
        for item_id in ids:
            item = self.items.get(item_id)
            if item is None or not item.active:
                continue
            item.surfaced += 1
            changed = True
            if sign == 0:
                continue
            if sign > 0:
                item.wins += 1
            else:
                item.losses += 1
            item.touched = max(item.touched, step.interaction.time)
            self._after_credit(item)
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
        """Add ``item`` to its scope; when it names an active item ``before`` it in a thread, link the
        two (the pair's text is embedded once: the later item's before-view, the earlier's after-view)."""
        self.items[item.id] = item
        key = (item.tenant, item.user)
        self._index(key).add(item.id, embed_one(self.embedder, item.query))
        earlier = self.items.get(item.before) if item.before is not None else None
        if earlier is not None and earlier.active and earlier.after is None:
            earlier.after = item.id
            self._scope_pairs(key).add(item.id, embed_one(self.embedder, _pair(earlier, item)))
            self._put_lexical(earlier)
        else:
            item.before = None
        self._put_lexical(item)
        self.provenance.record(item.id, step)
        self._enforce_budget(key)

    def _reindex(self, item: Item) -> None:
        """``item``'s query changed: embed it again (and the pairs it is part of)."""
        key = (item.tenant, item.user)
        self._index(key).add(item.id, embed_one(self.embedder, item.query))
        linked = ((self.items.get(item.before or ""), item), (item, self.items.get(item.after or "")))
        for earlier, later in linked:
            if earlier is not None and later is not None:
                self._scope_pairs(key).add(later.id, embed_one(self.embedder, _pair(earlier, later)))
                self._put_lexical(earlier if later is item else later)
        self._put_lexical(item)

    def _put_lexical(self, item: Item) -> None:
        if not self.lexical:
            return
        key = (item.tenant, item.user)
        lexicon = self._lexicons.get(key)
        if lexicon is None:
            lexicon = self._lexicons[key] = LexicalIndex()
        earlier = self.items.get(item.before) if item.before is not None else None
        later = self.items.get(item.after) if item.after is not None else None
        lexicon.put(
            item.id,
            item.query,
            _pair(earlier, item) if earlier is not None else None,
            _pair(item, later) if later is not None else None,
        )

    def _scope_pairs(self, key: ScopeKey) -> VectorIndex:
        """The index of a scope's linked pairs of turns, made on first use."""
        return self._made(self._pairs, key)

    def _index(self, key: ScopeKey) -> VectorIndex:
        """The index of a scope, made on first use."""
        return self._made(self._indexes, key)

    def _made(self, indexes: dict[ScopeKey, VectorIndex], key: ScopeKey) -> VectorIndex:
        """``indexes[key]``, made empty on first use."""
        index = indexes.get(key)
        if index is None:
            index = indexes[key] = VectorIndex(self.embedder.dim)
        return index

    def _supersede(self, old: Item, new: Item, step: Step) -> None:
        """``new`` (from ``step``) replaces ``old``, which stays in :meth:`history`, valid until then."""
        self._retire(old, "superseded", replaced_by=new.id, at=step.interaction.time)
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

    def _retire(
        self, item: Item, status: str, replaced_by: str | None = None, at: float | None = None
    ) -> None:
        """Stop returning ``item``; it stays in :meth:`history`, valid until ``at`` (default: when it was
        last touched). Items retired by a user (status ``"retired"``) stay for good — they keep their
        duplicates out — the others leave the history past ``history_limit``."""
        item.status = status
        item.replaced_by = replaced_by
        item.valid_to = at if at is not None else item.touched
        self._unindex(item)
        if status == RETIRED:
            return
        retired = self._retired.setdefault((item.tenant, item.user), [])
        retired.append(item.id)
        while len(retired) > self.history_limit:  # the oldest leave the history for good
            self.items.pop(retired.pop(0), None)

    def _unindex(self, item: Item) -> None:
        """Stop finding ``item``; its thread neighbours lose the view they shared with it."""
        key = (item.tenant, item.user)
        index = self._indexes.get(key)
        if index is not None and item.id in index:
            index.remove(item.id)
        lexicon = self._lexicons.get(key)
        if lexicon is not None:
            lexicon.remove(item.id)
        pairs = self._pairs.get(key)
        earlier = self.items.get(item.before) if item.before is not None else None
        later = self.items.get(item.after) if item.after is not None else None
        if pairs is not None:
            for later_id in (item.id, item.after):
                if later_id is not None and later_id in pairs:
                    pairs.remove(later_id)
        item.before = item.after = None
        if earlier is not None:
            earlier.after = None
            if earlier.active:
                self._put_lexical(earlier)
        if later is not None:
            later.before = None
            if later.active:
                self._put_lexical(later)

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
            self._unindex(item)
            del self.items[item.id]
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
        self._pairs = {
            key: pairs for key, pairs in self._pairs.items() if len(pairs) or key != (tenant, user)
        }
        self._lexicons = {
            key: lexicon for key, lexicon in self._lexicons.items() if len(lexicon) or key != (tenant, user)
        }
        gone = {item.id for item in doomed}
        if doomed:  # the channels' trust counted the user's steps too: it starts again from equal weights
            self._channel_losses.pop(tenant, None)
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
        items = [
            {**item, **{side: None for side in ("before", "after") if item.get(side) in gone}}
            for item in items
        ]
        vectors = np.asarray(inner["vectors"])
        redacted = {**inner, "items": items, "vectors": vectors[keep] if len(vectors) else vectors}
        if "pair_vectors" in inner:
            pairs = np.asarray(inner["pair_vectors"])
            redacted["pair_vectors"] = pairs[keep] if len(pairs) else pairs
        return {**state, "state": redacted}

    def derived_from(self, interaction_ids: Iterable[str]) -> list[Item]:
        """Items (active or not) that any of ``interaction_ids`` contributed to."""
        wanted = set(interaction_ids)
        return [item for item in self.items.values() if wanted.intersection(item.sources)]

    def _get_state(self) -> dict[str, Any]:
        items = list(self.items.values())
        dim = self.embedder.dim
        vectors = np.stack([self._vector(item) for item in items]) if items else np.zeros((0, dim))
        # The vector of the pair (item before, item), zeros where the item has no predecessor.
        pairs = np.zeros((len(items), dim), dtype=np.float32)
        for row, item in enumerate(items):
            scope_pairs = self._pairs.get((item.tenant, item.user))
            if item.before is not None and scope_pairs is not None and item.id in scope_pairs:
                pairs[row] = scope_pairs.vector(item.id)
        return {
            "items": [asdict(item) for item in items],
            "vectors": vectors.astype(np.float32),
            "pair_vectors": pairs,
            "channel_losses": {tenant: list(losses) for tenant, losses in self._channel_losses.items()},
        }

    def _vector(self, item: Item) -> np.ndarray:
        index = self._indexes.get((item.tenant, item.user))
        if index is not None and item.id in index:
            return index.vector(item.id)
        return embed_one(self.embedder, item.query)

    def _set_state(self, state: dict[str, Any]) -> None:
        self.items = {}
        self._indexes = {}
        self._pairs = {}
        self._lexicons = {}
        self._retired = {}
        self._channel_losses = {t: list(v) for t, v in (state.get("channel_losses") or {}).items()}
        vectors = np.asarray(state["vectors"], dtype=np.float32)
        pairs = np.asarray(state.get("pair_vectors", np.zeros_like(vectors)), dtype=np.float32)
        for data, vector, pair in zip(state["items"], vectors, pairs, strict=True):
            item = Item(**copy.deepcopy(data))  # items grow in place (sources, payloads): not the state's
            self.items[item.id] = item
            if item.active:
                self._index((item.tenant, item.user)).add(item.id, vector)
                if item.before is not None:
                    self._scope_pairs((item.tenant, item.user)).add(item.id, pair)
            elif item.status != RETIRED:
                self._retired.setdefault((item.tenant, item.user), []).append(item.id)
        for item in self.items.values():
            if item.active:
                self._put_lexical(item)


def _lexical_score(views: list[float] | None, neighbours: tuple[Item | None, Item | None]) -> float:
    """The mean of an item's lexical view scores; a view whose neighbour is not seen (None) counts as
    the item's own text."""
    if views is None:
        return 0.0
    text, with_before, with_after = views
    earlier, later = neighbours
    return (
        text + (with_before if earlier is not None else text) + (with_after if later is not None else text)
    ) / len(VIEWS)


def _pair(earlier: Item, later: Item) -> str:
    """The text of two neighbouring turns: a view of each."""
    return f"{earlier.query}\n{later.query}"


def _ranks(scores: np.ndarray, ids: list[str]) -> np.ndarray:
    """1-based ranks by descending score, ties broken by id (so the order is the same however the
    candidates were gathered)."""
    order = sorted(range(len(ids)), key=lambda n: (-float(scores[n]), ids[n]))
    ranks = np.empty(len(ids), dtype=np.float64)
    ranks[order] = np.arange(1, len(ids) + 1)
    return ranks


def _keep_order(item: Item) -> tuple[float, float]:
    return (item.usefulness, item.touched)
