"""Intent stream: customer-service queries arrive one by one; the agent names each one's intent.

Built on BANKING77 (77 fine-grained intents), or any CSV of text and label (:meth:`IntentStream.from_data`
with :func:`lifelong.data.load_intents`). Each step the environment shows a query; the action is an
intent name (or None to abstain); the reward is 1 for the right intent and 0 otherwise, and the info
carries the right intent as a correction, so the learner sees what it should have said.

>>> from lifelong.envs.intent_stream import IntentStream
>>> env = IntentStream(["card lost", "top up failed"], ["lost_card", "top_up_failed"])
>>> query, _ = env.reset(seed=0)
>>> _, reward, done, _, info = env.step("lost_card")
>>> reward in (0.0, 1.0), info["correct_action"] in ("lost_card", "top_up_failed")
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import IntentData, load_banking77
from lifelong.envs.base import Env, StepResult
from lifelong.errors import InvalidInput
from lifelong.experience.records import Scope
from lifelong.utils.validation import check_choice, check_scalar


class IntentStream(Env[str, str | None]):
    """A shuffled stream of (query, intent) pairs; reward 1 for naming the right intent."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        limit: int | None = None,
        scope: Scope | None = None,
    ) -> None:
        if len(texts) != len(labels):
            raise InvalidInput(f"{len(texts)} texts but {len(labels)} labels", field="labels")
        if not texts:
            raise InvalidInput("the stream is empty", field="texts")
        check_scalar(limit, "limit", int, min_val=1, allow_none=True)
        self.texts = list(texts)
        self.labels = list(labels)
        self.limit = min(limit, len(texts)) if limit is not None else len(texts)
        self.scope = scope or Scope(tenant="intents")
        self._order: np.ndarray = np.arange(len(texts))
        self._rng = np.random.default_rng()
        self._t = 0

    @classmethod
    def banking77(
        cls, path: str | Path | None = None, *, split: str = "train", limit: int | None = None
    ) -> IntentStream:
        train, test, _ = load_banking77(path)
        data = {"train": train, "test": test}[check_choice(split, "split", ("train", "test"))]
        return cls(data.texts, data.labels, limit=limit, scope=Scope(tenant="banking77"))

    @classmethod
    def from_data(cls, data: IntentData, *, split: str = "train", limit: int | None = None) -> IntentStream:
        """A stream of one split of :func:`~lifelong.data.load_intents`'s data (a folder or a CSV file)."""
        rows = {"train": data.train, "test": data.test}[check_choice(split, "split", ("train", "test"))]
        if not rows.texts:
            raise InvalidInput(
                f"{data.source} has no {split} split (--holdout 0 holds out nothing)", field="split"
            )
        return cls(rows.texts, rows.labels, limit=limit, scope=Scope(tenant=data.tenant))

    def __len__(self) -> int:
        return self.limit

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        if seed is not None:  # gymnasium's rule: without a seed, carry on with the same generator
            self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(self.texts))[: self.limit]
        self._t = 0
        return self._current(), {"scope": self.scope}

    def _current(self) -> str:
        return self.texts[int(self._order[self._t])]

    def step(self, action: str | None) -> StepResult:
        if self._t >= self.limit:
            raise InvalidInput("the stream has ended; call reset()", field="step")
        truth = self.labels[self._order[self._t]]
        reward = 1.0 if action == truth else 0.0
        self._t += 1
        done = self._t >= self.limit
        observation = None if done else self._current()
        info = {"correct_action": truth, "best_reward": 1.0, "scope": self.scope}
        return observation, reward, done, False, info


def accuracy_probe(texts: Sequence[str], labels: Sequence[str]) -> Callable[[Any], float]:
    """A probe that scores a predictor's accuracy on held-out (text, label) pairs, learning nothing."""
    pairs = list(zip(texts, labels, strict=True))

    def probe(predictor: Any) -> float:
        return float(np.mean([predictor.predict(text) == label for text, label in pairs]))

    return probe
