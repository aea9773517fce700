"""Lessons: what a mistake taught, so the same mistake is not made twice.

On a rejection or a correction the learner writes a short lesson tied to the kind of input — "for inputs
like X the answer is Y, not Z" (Y is None when only a rejection is known) — found later by the input's
embedding. This is the reflection step of Reflexion (Shinn et al., NeurIPS 2023, §3) and of "learning
from experience" agents, written by rule instead of by the model so a 270M model can learn it too:
the lesson is both shown in the prompt and applied after the model answers (:meth:`Lessons.amend`: an
answer that a very similar input was corrected away from is replaced by the correction).

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

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Step
from lifelong.learners.context import (
    SAME_INPUT,
    ContextLearner,
    Item,
    Recalled,
    judged_action,
    outcome,
    query_text,
)
from lifelong.models.base import Embedder

QUOTE_LIMIT = 120


class Lessons(ContextLearner):
    """Lessons from rejections and corrections; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder,
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
        if drop_after < 1:
            raise InvalidInput(f"must be >= 1, got {drop_after}", field="drop_after")
        self.merge_threshold = merge_threshold
        self.amend_threshold = amend_threshold
        self.drop_after = drop_after

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
                    old.text = _lesson_text(old.query, old.payload["right"], wrongs)
                return True
            if nearest[1] >= SAME_INPUT and right is not None:  # same input, a different right answer now
                self._supersede(old, self._lesson(step, query, right, [wrong]), step)
                return True
        self._insert(self._lesson(step, query, right, [wrong]), step)
        return True

    def _lesson(self, step: Step, query: str, right: JSON, wrong: list[JSON]) -> Item:
        payload: dict[str, JSON] = {"input": step.interaction.observation, "right": right, "wrong": wrong}
        return self._new_item(step, 0, _lesson_text(query, right, wrong), query, payload)

    def _after_credit(self, item: Item) -> None:
        if item.losses - item.wins >= self.drop_after:
            self._retire(item, "dropped")

    def amend(self, answer: JSON, recalled: Sequence[Recalled]) -> JSON:
        """``answer``, or the right answer of a very similar input's lesson that ruled ``answer`` out."""
        for r in recalled:
            payload = r.item.payload
            wrongs = payload.get("wrong")
            if (
                r.similarity >= self.amend_threshold
                and payload.get("right") is not None
                and isinstance(wrongs, list)
                and answer in wrongs
            ):
                return payload["right"]
        return answer

    def config(self) -> dict[str, JSON]:
        return {
            **super().config(),
            "merge_threshold": self.merge_threshold,
            "amend_threshold": self.amend_threshold,
            "drop_after": self.drop_after,
        }


def _quote(value: JSON) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…")


def _lesson_text(query: str, right: JSON, wrong: Sequence[JSON]) -> str:
    nots = " or ".join(_quote(w) for w in wrong)
    if right is None:
        return f"For inputs like {_quote(query)} the answer is not {nots}."
    return f"For inputs like {_quote(query)} the answer is {_quote(right)}, not {nots}."
