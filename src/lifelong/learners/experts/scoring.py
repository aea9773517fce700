"""Experts that score every known answer from the request's embedding, per tenant.

- :class:`Prototypes` — the nearest class mean of the embeddings (Mensink et al., "Distance-based image
  classification", TPAMI 2013, eq. 9), which learns a new class from one example and never forgets one;
- :class:`EmbeddingSoftmax` — a softmax layer on the embeddings, trained online.

Both propose the top of their score table (:class:`ScoringExpert`), for a combiner in
:mod:`~lifelong.learners.experts.mixture` to weigh against the other experts.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.context.base import query_text, right_answer
from lifelong.learners.experts.mixture import Proposal, top
from lifelong.models.base import CachedEmbedder, Embedder, embed_one
from lifelong.utils.arrays import softmax
from lifelong.utils.validation import check_scalar

__all__ = ["EmbeddingSoftmax", "Prototypes", "ScoringExpert"]


class ScoringExpert(Predictor):
    """An expert whose proposal is the top of its score table (class probabilities per tenant)."""

    @abstractmethod
    def scores(self, observation: JSON, scope: Scope | None = None) -> dict[str, float]: ...

    def propose(self, observation: JSON, scope: Scope, k: int = 3) -> Proposal:
        return top(self.scores(observation, scope), k)

    def predict(self, observation: JSON, scope: Scope | None = None) -> JSON:
        best = self.propose(observation, scope or Scope(), 1)
        return best[0][0] if best else None


class Prototypes(ScoringExpert):
    """Nearest class mean of the embeddings, per tenant; see the module docstring.

    ``score(a) = softmax_a(cos(x, mean_a) / temperature)`` over the classes of the request's tenant; a
    class mean is the running sum of the embeddings of the inputs whose right answer was ``a`` (a text
    label). Tenants never share a class mean.
    """

    tenancy = "per_tenant"

    name = "Prototypes"

    def __init__(self, embedder: Embedder, *, temperature: float = 0.05) -> None:
        super().__init__()
        check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.temperature = temperature
        self._labels: dict[str, list[str]] = {}
        self._sums: dict[str, np.ndarray] = {}

    def scores(self, observation: JSON, scope: Scope | None = None) -> dict[str, float]:
        tenant = (scope or Scope()).tenant
        sums = self._sums.get(tenant)
        if sums is None:
            return {}
        x = embed_one(self.embedder, query_text(observation)).astype(np.float64)
        means = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        p = softmax(means @ x / self.temperature)
        return dict(zip(self._labels[tenant], p.tolist(), strict=True))

    def _learn(self, step: Step) -> bool:
        label = right_answer(step)
        if not isinstance(label, str):
            return False
        tenant = step.interaction.scope.tenant
        x = embed_one(self.embedder, query_text(step.interaction.observation)).astype(np.float64)
        labels = self._labels.setdefault(tenant, [])
        if label not in labels:
            labels.append(label)
            old = self._sums.get(tenant, np.zeros((0, x.shape[0])))
            self._sums[tenant] = np.vstack([old, np.zeros((1, x.shape[0]))])
        self._sums[tenant][labels.index(label)] += x
        self.provenance.record(f"prototype:{tenant}:{label}", step)
        return True

    def _get_state(self) -> dict[str, Any]:
        return {
            "labels": {t: list(v) for t, v in self._labels.items()},
            "sums": {t: v.copy() for t, v in self._sums.items()},
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._labels = {str(t): [str(a) for a in v] for t, v in state["labels"].items()}
        # Copies: the sums grow in place, and must not write into the state they came from.
        self._sums = {str(t): np.array(v, dtype=np.float64) for t, v in state["sums"].items()}


class EmbeddingSoftmax(ScoringExpert):
    """Online multinomial logistic regression on the embeddings, with experience replay, per tenant.

    Each step takes one AdaGrad step (Duchi et al. 2011) on the new example and on ``replay`` examples
    drawn from a reservoir of past ones (reservoir sampling, Vitter, ACM TOMS 1985: a uniform sample of
    at most ``memory`` examples of the whole stream), so a step costs the same however long the stream
    and the few examples per class of a young stream are seen several times (rehearsal, as in
    experience replay; Rolnick et al., NeurIPS 2019). Draws come from a generator seeded by the step
    count: replaying the log rebuilds the same weights.
    """

    tenancy = "per_tenant"

    name = "EmbeddingSoftmax"

    def __init__(
        self,
        embedder: Embedder,
        *,
        lr: float = 0.5,
        replay: int = 8,
        memory: int = 5000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_scalar(lr, "lr", float, min_val=0, include_boundaries="neither")
        check_scalar(replay, "replay", int, min_val=0)
        check_scalar(memory, "memory", int, min_val=1)
        self.embedder = embedder if isinstance(embedder, CachedEmbedder) else CachedEmbedder(embedder)
        self.lr = lr
        self.replay = replay
        self.memory = memory
        self.seed = seed
        self._tenants: dict[str, dict[str, Any]] = {}

    def scores(self, observation: JSON, scope: Scope | None = None) -> dict[str, float]:
        state = self._tenants.get((scope or Scope()).tenant)
        if state is None:
            return {}
        x = self._x(observation)
        p = softmax(x @ state["w"] + state["b"])
        return dict(zip(state["labels"], p.tolist(), strict=True))

    def _x(self, observation: JSON) -> np.ndarray:
        x = embed_one(self.embedder, query_text(observation)).astype(np.float64)
        return x / max(float(np.linalg.norm(x)), 1e-12)

    def _learn(self, step: Step) -> bool:
        label = right_answer(step)
        if not isinstance(label, str):
            return False
        tenant = step.interaction.scope.tenant
        x = self._x(step.interaction.observation)
        state = self._tenants.get(tenant)
        if state is None:
            dim = x.shape[0]
            state = self._tenants[tenant] = {
                "labels": [],
                "w": np.zeros((dim, 0)),
                "b": np.zeros(0),
                "g2w": np.zeros((dim, 0)),
                "g2b": np.zeros(0),
                "xs": np.zeros((0, dim)),
                "ys": np.zeros(0, dtype=np.int64),
                "t": 0,
            }
        labels: list[str] = state["labels"]
        if label not in labels:
            labels.append(label)
            for key in ("w", "g2w"):
                state[key] = np.hstack([state[key], np.zeros((state[key].shape[0], 1))])
            for key in ("b", "g2b"):
                state[key] = np.append(state[key], 0.0)
        y = labels.index(label)
        rng = np.random.default_rng((self.seed, state["t"]))
        batch = [(x, y)]
        if self.replay and len(state["ys"]):
            for j in rng.integers(0, len(state["ys"]), size=self.replay):
                batch.append((state["xs"][j], int(state["ys"][j])))
        for xj, yj in batch:
            self._step(state, xj, yj)
        # reservoir sampling (Vitter's algorithm R): keep a uniform sample of the stream
        if len(state["ys"]) < self.memory:
            state["xs"] = np.vstack([state["xs"], x])
            state["ys"] = np.append(state["ys"], y)
        else:
            j = int(rng.integers(0, state["t"] + 1))
            if j < self.memory:
                state["xs"][j], state["ys"][j] = x, y
        state["t"] += 1
        self.provenance.record(f"weights:{tenant}", step)
        return True

    def _step(self, state: dict[str, Any], x: np.ndarray, y: int) -> None:
        g = softmax(x @ state["w"] + state["b"])
        g[y] -= 1.0  # d(-log p_y)/dz
        gw = np.outer(x, g)
        state["g2w"] += gw * gw
        state["w"] -= self.lr * gw / np.sqrt(state["g2w"] + 1e-8)
        state["g2b"] += g * g
        state["b"] -= self.lr * g / np.sqrt(state["g2b"] + 1e-8)

    def _get_state(self) -> dict[str, Any]:
        return {
            t: {
                k: (v.copy() if isinstance(v, np.ndarray) else list(v) if isinstance(v, list) else v)
                for k, v in state.items()
            }
            for t, state in self._tenants.items()
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._tenants = {}
        for tenant, data in state.items():
            self._tenants[str(tenant)] = {
                "labels": [str(a) for a in data["labels"]],
                # copies: the weights are updated in place
                **{k: np.array(data[k], dtype=np.float64) for k in ("w", "b", "g2w", "g2b", "xs")},
                "ys": np.array(data["ys"], dtype=np.int64),
                "t": int(data["t"]),
            }
