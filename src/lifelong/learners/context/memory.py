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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, FeedbackKind, Scope, Step
from lifelong.learners.context.base import RETIRED, ContextLearner, Item, Recalled, ScopeKey
from lifelong.learners.context.vector_index import VectorIndex
from lifelong.models.base import Embedder, embed_one
from lifelong.utils.text import normalise
from lifelong.utils.validation import check_scalar


@dataclass(frozen=True, slots=True)
class Fact:
    """Something to remember. Facts with the same ``key`` contradict each other when their texts differ."""

    text: str
    key: str | None = None
    query: str | None = None  # the text the fact is found by (default: its text)
    thread: str | None = None  # a conversation this fact is a turn of: kept verbatim, linked in order


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
                key, thread = entry.get("key"), entry.get("thread")
                facts.append(
                    Fact(
                        entry["text"].strip(),
                        key=str(key) if key is not None else None,
                        thread=str(thread) if thread is not None else None,
                    )
                )
    return facts


def retirements(step: Step) -> list[tuple[str, str]]:
    """The (item id, reason) pairs that outcome feedback retires: ``{"retire": {"id", "reason"}}``."""
    out = []
    for feedback in step.feedback:
        if feedback.kind is FeedbackKind.OUTCOME and isinstance(feedback.value, dict):
            value = feedback.value.get("retire")
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                out.append((str(value["id"]), str(value.get("reason") or "")))
    return out


def turn_text(message: Mapping[str, Any], n: int) -> str:
    """A chat message as a memory: ``"name: content"`` (the role when it has no name). Raises
    :class:`InvalidInput` naming ``messages[n]`` when it is not a message with some text."""
    if not isinstance(message, Mapping):
        raise InvalidInput("a message is an object with 'role' and 'content'", field=f"messages[{n}]")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InvalidInput("a message needs some text content", field=f"messages[{n}].content")
    speaker = message.get("name") or message.get("role")
    if speaker is not None and (not isinstance(speaker, str) or not speaker.strip()):
        raise InvalidInput("a speaker name is a non-empty string", field=f"messages[{n}].name")
    return f"{speaker.strip()}: {content.strip()}" if speaker else content.strip()


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
        self._tails: dict[tuple[ScopeKey, str], str] = {}  # the last turn of each thread
        self._blocked: dict[ScopeKey, VectorIndex] = {}  # the vectors of retired items, per scope

    def add(
        self,
        text: str,
        scope: Scope | None = None,
        *,
        key: str | None = None,
        log: ExperienceLog | None = None,
    ) -> Item:
        """Remember ``text`` for ``scope`` (mem0's ``add``): logged first, then learned; returns the
        item that now holds it (or, when it repeats a retired memory, that retired item: not kept).
        A ``key`` names what the fact is about: a later fact with the same key and other words
        supersedes it."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("a memory needs some text", field="text")
        if self.frozen:
            raise InvalidInput(f"{self.name} is frozen: it learns nothing", field="frozen")
        step = self.learn_one(
            "remember", scope=scope, outcome={"remember": {"text": text, "key": key}}, log=log
        )
        held = next(
            (item for item in self.items.values() if item.active and step.interaction.id in item.sources),
            None,
        )
        if held is not None:
            return held
        # a retired memory said the same: it is not remembered; the retired item says why
        twin = self._retired_twin(self.scope_key(scope or Scope()), text)
        if twin is None:
            raise KeyError(f"no memory holds {text!r}")
        return twin

    def add_many(
        self,
        messages: Sequence[Mapping[str, Any]],
        scope: Scope | None = None,
        *,
        thread: str = "conversation",
        time: float | None = None,
        log: ExperienceLog | None = None,
    ) -> list[Item]:
        """Remember a conversation (mem0's ``add(messages, user_id=)``): each chat message
        ``{"role", "content", "name"?}`` becomes one memory, kept verbatim, in order, linked to the
        turns around it in ``thread`` (so recall sees each turn with its neighbours). One logged
        interaction (at ``time``) holds them all — its id is every turn's provenance — and the texts
        are embedded in batches. Returns the items, in the messages' order."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
            raise InvalidInput("messages is a non-empty list of chat messages", field="messages")
        if not isinstance(thread, str) or not thread.strip():
            raise InvalidInput("a thread is a non-empty name", field="thread")
        if self.frozen:
            raise InvalidInput(f"{self.name} is frozen: it learns nothing", field="frozen")
        texts = [turn_text(message, n) for n, message in enumerate(messages)]
        entries: list[JSON] = [{"text": text, "thread": thread} for text in texts]
        step = self.learn_one("remember", scope=scope, outcome={"remember": entries}, log=log, time=time)
        made = {
            _turn_number(item.id): item for item in self.items.values() if step.interaction.id in item.sources
        }
        return [made[n] for n in sorted(made)]

    def retire(
        self, item_id: str, scope: Scope | None = None, *, reason: str, log: ExperienceLog | None = None
    ) -> Item:
        """Retire a wrong memory for good: it is never recalled again (not even ``as_of`` a time when
        it held), and a later fact that says the same is not remembered. Logged first, like every
        change, with the ``reason``; the item keeps it and the time (``valid_to``)."""
        scope = scope or Scope()
        item = self.items.get(item_id)
        if item is None or (item.tenant, item.user) != self.scope_key(scope):
            raise NotFound(f"no memory {item_id!r} for this user")
        if not item.active:
            raise InvalidInput(f"memory {item_id!r} is {item.status}, not active", field="id")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput("say why the memory is wrong", field="reason")
        if self.frozen:
            raise InvalidInput(f"{self.name} is frozen: it learns nothing", field="frozen")
        self.learn_one(
            "retire", scope=scope, outcome={"retire": {"id": item_id, "reason": reason.strip()}}, log=log
        )
        return item

    def search(
        self, query: str, scope: Scope | None = None, *, k: int | None = None, as_of: float | None = None
    ) -> list[Recalled]:
        """The memories of ``scope`` best matching ``query`` (mem0's ``search``; :meth:`recall`): the
        active ones, or with ``as_of`` those that held at that time."""
        return self.recall(query, scope or Scope(), k=k, as_of=as_of)

    def _derive(self, step: Step) -> bool:
        retired = self._retire_from(step)
        facts = self.extract(step)
        self._embed_ahead(facts)
        for n, fact in enumerate(facts):
            self._rewrite(step, n, fact)
        return bool(facts) or retired

    def _retire_from(self, step: Step) -> bool:
        """Retire the items the step's feedback names — of the step's own scope only."""
        key = self.scope_key(step.interaction.scope)
        changed = False
        for item_id, reason in retirements(step):
            item = self.items.get(item_id)
            if item is None or not item.active or (item.tenant, item.user) != key:
                continue
            vector = self._vector(item)
            self._retire(item, RETIRED, at=step.interaction.time)
            item.reason = reason
            self._blocked_index(key).add(item.id, vector)
            self.provenance.record(item.id, step)
            changed = True
        return changed

    def _blocked_index(self, key: ScopeKey) -> VectorIndex:
        return self._made(self._blocked, key)

    def _retired_twin(self, key: ScopeKey, query: str) -> Item | None:
        """The retired memory of the scope that ``query`` repeats (a near-duplicate by meaning), if any."""
        index = self._blocked.get(key)
        if index is None or not len(index):
            return None
        [(item_id, similarity)] = index.search(embed_one(self.embedder, query), 1)
        item = self.items[item_id]
        return item if similarity >= self.merge_threshold or _same_text(item.query, query) else None

    def _after_forget(self, items: list[Item]) -> None:
        for item in items:
            index = self._blocked.get((item.tenant, item.user))
            if index is not None and item.id in index:
                index.remove(item.id)

    def _embed_ahead(self, facts: list[Fact]) -> None:
        """Embed the facts' texts (and, for turns, the pairs of neighbours) in batches: the cache then
        answers every single lookup that follows."""
        texts: list[str] = []
        previous: dict[str, str] = {}
        for fact in facts:
            query = fact.query or fact.text
            texts.append(query)
            if fact.thread is not None:
                if fact.thread in previous:
                    texts.append(f"{previous[fact.thread]}\n{query}")
                previous[fact.thread] = query
        for start in range(0, len(texts), 1024):  # the embedder's cache holds 4,096 texts
            self.embedder.embed(list(dict.fromkeys(texts[start : start + 1024])))

    def _rewrite(self, step: Step, n: int, fact: Fact) -> None:
        key = self.scope_key(step.interaction.scope)
        query = fact.query or fact.text
        if self._retired_twin(key, query) is not None:  # a user said it is wrong: it does not come back
            return
        if fact.thread is not None and fact.key is None:  # a turn of a conversation: kept as said
            self._add_turn(step, n, fact, query, key)
            return
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
                self._reindex(item)
            return
        self._insert(self._make(step, n, fact, query), step)

    def _make(self, step: Step, n: int, fact: Fact, query: str) -> Item:
        payload: dict[str, JSON] = {"key": fact.key}
        if fact.thread is not None:
            payload["thread"] = fact.thread
        return self._new_item(step, n, fact.text, query, payload)

    def _add_turn(self, step: Step, n: int, fact: Fact, query: str, key: ScopeKey) -> None:
        """A conversation turn: never merged with a similar one, linked after its thread's last turn."""
        item = self._make(step, n, fact, query)
        assert fact.thread is not None
        item.before = self._tails.get((key, fact.thread))
        self._insert(item, step)
        if item.id in self.items:  # not evicted at once by the budget
            self._tails[(key, fact.thread)] = item.id

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._blocked = {}
        for data, vector in zip(state["items"], state["vectors"], strict=True):
            if data.get("status") == RETIRED:
                self._blocked_index((data["tenant"], data["user"])).add(data["id"], vector)
        self._tails = {
            ((item.tenant, item.user), str(item.payload["thread"])): item.id
            for item in self.items.values()
            if item.active and item.after is None and item.payload.get("thread") is not None
        }

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


def _turn_number(item_id: str) -> int:
    return int(item_id.rsplit("/", 1)[1])


def _same_text(a: str, b: str) -> bool:
    return normalise(a).casefold() == normalise(b).casefold()
