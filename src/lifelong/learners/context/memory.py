"""Memory: what an agent knows about a user (or a codebase), rewritten after every interaction.

Each step may yield :class:`Fact` s — from an extractor the application gives (``extract``), by default
the facts the feedback asks to remember (an ``outcome`` feedback ``{"remember": "text"}``, a list of
texts, or ``{"text": ..., "key": ...}`` dicts). Each fact rewrites the scope's memory (the update rule of
mem0, Chhikara et al. 2025, §2.1 — ADD / UPDATE / DELETE / NOOP — decided here by keys and similarity
instead of an LLM call, so it is fast, exact and replayable):

- **supersede** — a fact with the same ``key`` as an active item but different text contradicts it: the
  new item is added and the old one is kept as history, marked superseded, and no longer recalled;
- **merge** — a fact whose text is a near-duplicate (cosine ≥ ``merge_threshold``) of an active item
  refreshes that item: its text becomes the newer wording and the step joins its sources;
- **add** — anything else is a new item; past the ``budget`` of the scope, the least useful items
  (Laplace-smoothed rate of positive feedback after they were recalled; ties: least recently touched)
  are evicted.

Recall blends similarity with recency and usefulness (:mod:`lifelong.learners.context.base`).

>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> from lifelong.models.base import HashingEmbedder
>>> memory = Memory(HashingEmbedder())
>>> def tell(text, key=None):
...     i = Interaction(Scope(user="ada"), "chat")
...     return memory.learn(Step(i, (Feedback.outcome(i.id, {"remember": {"text": text, "key": key}}),)))
>>> tell("Ada lives in Paris", key="city"), tell("Ada prefers tea")
(True, True)
>>> tell("Ada lives in Berlin", key="city")
True
>>> sorted(item.text for item in memory.active_items())
['Ada lives in Berlin', 'Ada prefers tea']
>>> [(item.text, item.status) for item in memory.history()]
[('Ada lives in Paris', 'superseded')]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, FeedbackKind, Scope, Step
from lifelong.learners.context.base import ContextLearner, Item, Recalled, ScopeKey
from lifelong.models.base import Embedder, embed_one
from lifelong.utils.text import normalise
from lifelong.utils.validation import check_scalar


@dataclass(frozen=True, slots=True)
class Fact:
    """Something to remember. Facts with the same ``key`` contradict each other when their texts differ."""

    text: str
    key: str | None = None
    query: str | None = None  # the text the fact is found by (default: its text)


Extractor = Callable[[Step], list[Fact]]


def remembered(step: Step) -> list[Fact]:
    """The facts that outcome feedback asks to remember: ``{"remember": text | {text, key} | [...]}``."""
    facts: list[Fact] = []
    for feedback in step.feedback:
        if feedback.kind is not FeedbackKind.OUTCOME or not isinstance(feedback.value, dict):
            continue
        value = feedback.value.get("remember")
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, str) and entry.strip():
                facts.append(Fact(entry.strip()))
            elif isinstance(entry, dict) and isinstance(entry.get("text"), str) and entry["text"].strip():
                key = entry.get("key")
                facts.append(Fact(entry["text"].strip(), key=str(key) if key is not None else None))
    return facts


class Memory(ContextLearner):
    """Scoped facts with supersede/merge/evict rules (see the module docstring)."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        extract: Extractor = remembered,
        merge_threshold: float = 0.92,
        budget: int | None = 200,
        per_user: bool = True,
        k: int = 4,
        **recall: Any,
    ) -> None:
        super().__init__(embedder, per_user=per_user, k=k, budget=budget, **recall)
        check_scalar(
            merge_threshold, "merge_threshold", float, min_val=0, max_val=1, include_boundaries="right"
        )
        self.extract = extract
        self.merge_threshold = merge_threshold

    def add(
        self,
        text: str,
        scope: Scope | None = None,
        *,
        key: str | None = None,
        log: ExperienceLog | None = None,
    ) -> Item:
        """Remember ``text`` for ``scope`` (mem0's ``add``): logged first, then learned; returns the
        item that now holds it. A ``key`` names what the fact is about: a later fact with the same key
        and other words supersedes it."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("a memory needs some text", field="text")
        if self.frozen:
            raise InvalidInput(f"{self.name} is frozen: it learns nothing", field="frozen")
        step = self.learn_one(
            "remember", scope=scope, outcome={"remember": {"text": text, "key": key}}, log=log
        )
        return next(
            item for item in self.items.values() if item.active and step.interaction.id in item.sources
        )

    def search(self, query: str, scope: Scope | None = None, *, k: int | None = None) -> list[Recalled]:
        """The active memories of ``scope`` best matching ``query`` (mem0's ``search``; :meth:`recall`)."""
        return self.recall(query, scope or Scope(), k=k)

    def _derive(self, step: Step) -> bool:
        facts = self.extract(step)
        for n, fact in enumerate(facts):
            self._rewrite(step, n, fact)
        return bool(facts)

    def _rewrite(self, step: Step, n: int, fact: Fact) -> None:
        key = self.scope_key(step.interaction.scope)
        query = fact.query or fact.text
        same_key = self._keyed(key, fact.key)
        if same_key is not None:
            if _same_text(same_key.text, fact.text):
                self._absorb(same_key, step)
                return
            self._supersede(same_key, self._make(step, n, fact, query), step)
            return
        nearest = self._nearest(key, query)
        if nearest is not None and nearest[1] >= self.merge_threshold and nearest[0].payload["key"] is None:
            item = nearest[0]
            self._absorb(item, step)
            if item.text != fact.text:  # the memory is rewritten in the newer words
                item.text, item.query = fact.text, query
                self._indexes[key].add(item.id, embed_one(self.embedder, query))
            return
        self._insert(self._make(step, n, fact, query), step)

    def _make(self, step: Step, n: int, fact: Fact, query: str) -> Item:
        payload: dict[str, JSON] = {"key": fact.key}
        return self._new_item(step, n, fact.text, query, payload)

    def _keyed(self, key: ScopeKey, fact_key: str | None) -> Item | None:
        if fact_key is None:
            return None
        index = self._indexes.get(key)
        if index is None:
            return None
        for item_id in index.ids():  # linear in the scope's budget (hundreds), not in all items
            item = self.items[item_id]
            if item.payload.get("key") == fact_key:
                return item
        return None


def _same_text(a: str, b: str) -> bool:
    return normalise(a).casefold() == normalise(b).casefold()
