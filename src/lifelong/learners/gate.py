"""Suggestion gate: learns from accept/reject which suggestion to make — and when to stay silent.

An agent may have several candidate answers (the model's completion, the answer of the nearest past
example). For each it computes a few features — the model's token log-probabilities, the similarity of
the nearest example, whether the candidates agree, whether the text already appears in the file — and
the gate estimates the probability that the user accepts it with an online logistic regression
(AdaGrad, Duchi et al. 2011). The agent suggests the most probable candidate if its expected reward is
positive. Under Cursor Tab's rewards (+0.75 accepted, -0.25 rejected, 0 silent)::

    E[reward | suggest] = 0.75 p - 0.25 (1 - p) > 0   <=>   p > 0.25 = threshold

and stays silent otherwise — the behaviour Cursor reports from its online RL (fewer suggestions, a
higher accept rate), here from a 12-weight model that learns in microseconds.

Every candidate and its features are logged with the interaction (``metadata["gate"]``), and the right
answer arrives as a correction even when the agent stayed silent, so the gate learns from every
candidate of every request (full information: no exploration needed) and replays exactly from the log.
Before it has learned anything the gate suggests everything (p = 0.5), as the frozen control does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Step
from lifelong.learners.base import Learner

#: Key of the interaction metadata that holds the candidates: ``[{"action": ..., "features": {...}}]``.
GATE = "gate"


def normalise(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space and the ends stripped."""
    return " ".join(text.split())


def same_answer(a: JSON, b: JSON) -> bool:
    """Equal up to whitespace (strings) or exactly (other JSON values)."""
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    return bool(a == b)


class SuggestionGate(Learner):
    """Online logistic regression over candidate features; see the module docstring."""

    def __init__(
        self,
        *,
        threshold: float = 0.25,
        lr: float = 0.5,
        l2: float = 1e-4,
    ) -> None:
        super().__init__()
        if not 0.0 <= threshold < 1.0:
            raise InvalidInput(f"must be in [0, 1), got {threshold}", field="threshold")
        if lr <= 0:
            raise InvalidInput(f"must be > 0, got {lr}", field="lr")
        self.threshold = threshold
        self.lr = lr
        self.l2 = l2
        self.weights: dict[str, float] = {}
        self._g2: dict[str, float] = {}
        self.seen = 0

    def probability(self, features: Mapping[str, float]) -> float:
        """Estimated probability that a candidate with these features is accepted."""
        z = self.weights.get("bias", 0.0) + sum(self.weights.get(k, 0.0) * v for k, v in features.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def choose(self, candidates: list[tuple[JSON, dict[str, float]]]) -> tuple[JSON, float]:
        """The candidate to suggest and its probability; (None, p) when staying silent pays more."""
        if not candidates:
            return None, 0.0
        scored = [(self.probability(features), n) for n, (_, features) in enumerate(candidates)]
        p, best = max(scored, key=lambda s: (s[0], -s[1]))  # ties: the earlier candidate
        return (candidates[best][0] if p > self.threshold else None), p

    def _learn(self, step: Step) -> bool:
        gate = step.interaction.metadata.get(GATE)
        if not isinstance(gate, list) or not gate:
            return False
        has_truth = step.corrected
        truth = step.correction
        accepted = step.accepted
        changed = False
        for candidate in gate:
            action, features = candidate.get("action"), candidate.get("features")
            if not isinstance(features, dict):
                continue
            if has_truth:
                label = same_answer(action, truth)
            elif accepted is not None and same_answer(action, step.interaction.action):
                label = accepted
            else:
                continue
            self._sgd(features, 1.0 if label else 0.0)
            changed = True
        return changed

    def _sgd(self, features: Mapping[str, Any], y: float) -> None:
        grad = self.probability(features) - y  # d(log loss)/dz
        for key, value in [("bias", 1.0), *features.items()]:
            g = grad * float(value) + self.l2 * self.weights.get(key, 0.0)
            self._g2[key] = self._g2.get(key, 0.0) + g * g
            self.weights[key] = self.weights.get(key, 0.0) - self.lr * g / math.sqrt(self._g2[key] + 1e-8)
        self.seen += 1

    def _get_state(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "g2": dict(self._g2), "seen": self.seen}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        self._g2 = {k: float(v) for k, v in state["g2"].items()}
        self.seen = int(state["seen"])

    def config(self) -> dict[str, JSON]:
        return {"threshold": self.threshold, "lr": self.lr, "l2": self.l2}
