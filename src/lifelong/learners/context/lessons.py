"""Lessons: what a mistake taught, so the same mistake is not made twice.

On a rejection or a correction the learner writes a short lesson tied to the kind of input — "for inputs
like X the answer is Y, not Z" (Y is None when only a rejection is known) — found later by the input's
embedding. This is the reflection step of Reflexion (Shinn et al., NeurIPS 2023, §3) and of "learning
from experience" agents, written by rule instead of by the model so a 270M model can learn it too:
the lesson is both shown in the prompt and applied after the model answers (:meth:`Lessons.amend`: an
answer that a very similar input was corrected away from is replaced by the correction).

The lessons grow like a playbook (ACE, Zhang et al., "Agentic Context Engineering", 2025, §3): every
change is a *delta* on one lesson — ``add``, ``merge`` (one more wrong answer it rules out),
``supersede`` or ``retire`` — recorded in :attr:`Lessons.deltas` with the lesson's usefulness counts at
that moment, and the set is never rewritten wholesale (ACE measured "context collapse" when a
monolithic rewrite shrank an 18,282-token context to 122 tokens and accuracy fell from 66.7 to 57.1).

Lessons are checked by their consequences: each recall followed by negative feedback is a loss, and a
lesson whose losses outnumber its wins by ``drop_after`` is demoted — marked dropped and never recalled
again. A new mistake on the same input with a different right answer supersedes the old lesson.

>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> from lifelong.models.base import HashingEmbedder
>>> lessons = Lessons(HashingEmbedder(), per_user=False)
>>> i = Interaction(Scope(), "where is my new card", action="lost_or_stolen_card")
>>> lessons.learn(Step(i, (Feedback.reject(i.id), Feedback.correction(i.id, "card_arrival"))))
True
>>> recalled = lessons.recall("where is my new card", Scope())
>>> recalled[0].item.text
"For inputs like 'where is my new card' the answer is 'card_arrival', not 'lost_or_stolen_card'."
>>> lessons.amend("lost_or_stolen_card", recalled)
'card_arrival'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.context.base import (
    SAME_INPUT,
    ContextLearner,
    Item,
    Recalled,
    judged_action,
    outcome,
    query_text,
)
from lifelong.learners.context.gate import same_answer
from lifelong.models.base import Embedder
from lifelong.utils.validation import check_scalar

QUOTE_LIMIT = 120


#: Deltas kept in the state (the newest); every delta can be rebuilt from the log.
MAX_DELTAS = 1000

#: Wrong answers one lesson rules out (the latest).
MAX_WRONGS = 16


class Lessons(ContextLearner):
    """Lessons from rejections and corrections; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        per_user: bool = False,
        k: int = 3,
        budget: int | None = None,
        min_similarity: float = 0.5,
        merge_threshold: float = 0.95,
        amend_threshold: float = 0.9,
        drop_after: int = 2,
        **recall: Any,
    ) -> None:
        super().__init__(
            embedder, per_user=per_user, k=k, budget=budget, min_similarity=min_similarity, **recall
        )
        self.merge_threshold = merge_threshold
        self.amend_threshold = amend_threshold
        self.drop_after = check_scalar(drop_after, "drop_after", int, min_val=1)
        self.deltas: list[dict[str, JSON]] = []

    def _delta(self, op: str, item: Item, step: Step | None = None) -> None:
        if len(self.deltas) >= MAX_DELTAS:  # the log is the full record; the state keeps the latest
            del self.deltas[: len(self.deltas) - MAX_DELTAS + 1]
        self.deltas.append(
            {
                "op": op,
                "item": item.id,
                "time": step.interaction.time if step is not None else item.touched,
                "source": step.interaction.id if step is not None else None,
                "wins": item.wins,
                "losses": item.losses,
            }
        )

    def _derive(self, step: Step) -> bool:
        wrong = judged_action(step)  # the model's own mistake when the agent logged it
        if outcome(step) >= 0 or wrong is None:
            return False
        right = step.correction if step.corrected else None
        query = query_text(step.interaction.observation)
        nearest = self._nearest(self.scope_key(step.interaction.scope), query)
        if nearest is not None and nearest[1] >= self.merge_threshold:
            old = nearest[0]
            if old.payload["right"] == right:  # the same lesson again: one more wrong answer it rules out
                self._absorb(old, step)
                wrongs = old.payload["wrong"]
                assert isinstance(wrongs, list)
                if wrong not in wrongs:
                    wrongs.append(wrong)
                    del wrongs[:-MAX_WRONGS]  # a lesson names the latest wrong answers it rules out
                    old.text = _lesson_text(old.query, old.payload["right"], wrongs)
                self._delta("merge", old, step)
                return True
            if nearest[1] >= SAME_INPUT and right is not None:  # same input, a different right answer now
                new = self._lesson(step, query, right, [wrong])
                self._supersede(old, new, step)
                self._delta("supersede", old, step)
                self._delta("add", new, step)
                return True
        new = self._lesson(step, query, right, [wrong])
        self._insert(new, step)
        self._delta("add", new, step)
        return True

    def _lesson(self, step: Step, query: str, right: JSON, wrong: list[JSON]) -> Item:
        payload: dict[str, JSON] = {"input": step.interaction.observation, "right": right, "wrong": wrong}
        return self._new_item(step, 0, _lesson_text(query, right, wrong), query, payload)

    def _after_credit(self, item: Item) -> None:
        if item.losses - item.wins >= self.drop_after:
            self._retire(item, "dropped")
            self._delta("retire", item)

    def _after_evict(self, item: Item) -> None:
        self._delta("evict", item)

    def _after_forget(self, items: list[Item]) -> None:
        removed = {item.id for item in items}
        sources = {source for item in items for source in item.sources}
        self.deltas = [d for d in self.deltas if d["item"] not in removed and d["source"] not in sources]

    @classmethod
    def redact_state(
        cls, state: dict[str, Any], interaction_ids: set[str], scope: Scope | None = None
    ) -> dict[str, Any] | None:
        redacted = super().redact_state(state, interaction_ids, scope)
        assert redacted is not None
        kept = {item["id"] for item in redacted["state"]["items"]}
        dropped = {item["id"] for item in state["state"]["items"]} - kept
        inner = redacted["state"]
        inner["deltas"] = [
            d
            for d in inner.get("deltas", [])
            if d["item"] not in dropped and d["source"] not in interaction_ids
        ]
        return redacted

    def _get_state(self) -> dict[str, Any]:
        return {**super()._get_state(), "deltas": [dict(d) for d in self.deltas]}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.deltas = [dict(d) for d in state.get("deltas", [])]

    def amend(self, answer: JSON, recalled: Sequence[Recalled]) -> JSON:
        """``answer``, or the right answer of a very similar input's lesson that ruled ``answer`` out."""
        for r in recalled:
            payload = r.item.payload
            wrongs = payload.get("wrong")
            if (
                r.similarity >= self.amend_threshold
                and payload.get("right") is not None
                and isinstance(wrongs, list)
                and any(same_answer(answer, wrong) for wrong in wrongs)
            ):
                return payload["right"]
        return answer


def _quote(value: JSON) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…")


def _lesson_text(query: str, right: JSON, wrong: Sequence[JSON]) -> str:
    nots = " or ".join(_quote(w) for w in wrong)
    if right is None:
        return f"For inputs like {_quote(query)} the answer is not {nots}."
    return f"For inputs like {_quote(query)} the answer is {_quote(right)}, not {nots}."
