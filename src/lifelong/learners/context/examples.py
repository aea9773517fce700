"""Example bank: past (input, correct output) pairs, retrieved as the nearest demonstrations.

This is streaming in-context learning (StreamICL; Wu et al., "StreamBench", NeurIPS 2024 D&B, §3.2): the
model stays frozen and every input whose right answer became known — because the response was accepted
or rewarded, or because a correction said what it should have been — becomes a demonstration for later
inputs like it. An input seen again with a different right answer supersedes the old example (the newer
correction wins; the old pair stays in history). Recall returns the ``k`` most similar inputs, which the
agent renders as few-shot demonstrations, nearest last (closest to the query in the prompt).

>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> from lifelong.models.base import HashingEmbedder
>>> bank = ExampleBank(HashingEmbedder(), per_user=False)
>>> i = Interaction(Scope(), "my card has not arrived", action="lost_or_stolen_card")
>>> bank.learn(Step(i, (Feedback.correction(i.id, "card_arrival"),)))
True
>>> [r.item.payload["output"] for r in bank.recall("card still not arrived", Scope())]
['card_arrival']
"""

from __future__ import annotations

from typing import Any

from lifelong.experience.records import JSON, Step
from lifelong.learners.context.base import SAME_INPUT, ContextLearner, Item, query_text, right_answer
from lifelong.learners.context.gate import same_answer
from lifelong.models.base import Embedder


class ExampleBank(ContextLearner):
    """(input, right output) pairs from positive feedback and corrections; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        per_user: bool = False,
        k: int = 8,
        budget: int | None = None,
        dedupe: bool = True,
        lexical: bool = False,
        **recall: Any,
    ) -> None:
        # Dense recall only by default: on intents BM25 gained nothing even with learned channel trust
        # (docs/benchmarks.md, examples-recall); lexical=True fuses it and learns the channels' trust.
        super().__init__(embedder, per_user=per_user, k=k, budget=budget, lexical=lexical, **recall)
        #: False skips the search for the same input before each insert (O(items) per step): for seeding
        #: a bank in bulk from inputs known to be distinct.
        self.dedupe = dedupe

    judges_items = True

    def _right_for(self, item: Item, step: Step) -> bool | None:
        """An example is right for a step whose right answer is its output."""
        return same_answer(item.payload["output"], right_answer(step))

    def _derive(self, step: Step) -> bool:
        output = right_answer(step)
        if output is None:
            return False
        query = query_text(step.interaction.observation)
        nearest = self._nearest(self.scope_key(step.interaction.scope), query) if self.dedupe else None
        if nearest is not None and nearest[1] >= SAME_INPUT and nearest[0].query == query:
            old = nearest[0]
            if old.payload["output"] == output:
                self._absorb(old, step)
                return True
            self._supersede(old, self._example(step, query, output), step)
            return True
        self._insert(self._example(step, query, output), step)
        return True

    def _example(self, step: Step, query: str, output: JSON) -> Item:
        payload: dict[str, JSON] = {"input": step.interaction.observation, "output": output}
        return self._new_item(step, 0, f"{query} => {output}", query, payload)
