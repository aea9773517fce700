"""Exploration for recommendation: choose which item to show so new users and items get explored.

Both policies sit on a :class:`~lifelong.learners.recsys.factorization.StreamingFactorization` that learns the
click (accept = 1, reject = 0) of every shown item, and act on observations ``{"user": u, "items": n}``
from :class:`~lifelong.envs.recsys.SimulatedUsers` (items are indices 0..n−1):

- :class:`EpsilonGreedy` shows the factorization's best item, or with probability ε a uniformly random
  one (Sutton & Barto 2018, §2.2);
- :class:`LinUCB` adds an optimism bonus on the learned embeddings: score = b_i + p_uᵀq_i +
  α √(p_uᵀ A_i⁻¹ p_u), with A_i = I + Σ p_u p_uᵀ over the users item i was shown to (Li, Chu, Langford &
  Schapire, WWW 2010, Algorithm 1, disjoint model, with the user embedding as context). A_i⁻¹ is kept up
  to date by the Sherman–Morrison formula in O(d²) per event.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Interaction, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.recsys.factorization import StreamingFactorization
from lifelong.utils.validation import check_scalar


def _context(observation: JSON) -> tuple[str, int]:
    if not isinstance(observation, dict) or "user" not in observation or "items" not in observation:
        raise InvalidInput('expected {"user": ..., "items": n}', field="observation")
    n = int(observation["items"])
    if n < 1:
        raise InvalidInput(f"needs at least one item, got {n}", field="observation")
    return str(observation["user"]), n


class _ItemPolicy(Predictor):
    """Shared plumbing: the click model, scoring every item for a user, learning from shown items."""

    def __init__(self, model: StreamingFactorization | None, seed: int) -> None:
        super().__init__()
        self.model = model if model is not None else StreamingFactorization(dim=8, learning_rate=0.1)
        self.seed = seed
        self._acts = 0

    def estimates(self, user: str, n_items: int) -> np.ndarray:
        """The click model's score of every item index for ``user`` (new items score the global mean)."""
        return self.model.score_many(user, [str(i) for i in range(n_items)])

    def _rng(self, user: str) -> np.random.Generator:
        # Seeded by the act count and user, so a replay of the same decisions is reproducible.
        return np.random.default_rng([self.seed, self._acts, zlib.crc32(user.encode())])

    def _inner_step(self, step: Step) -> Step:
        user, _ = _context(step.interaction.observation)
        item = step.interaction.action
        if not isinstance(item, int):
            raise InvalidInput(f"the action must be an item index, got {item!r}", field="action")
        i = step.interaction
        inner = Interaction(i.scope, {"user": user, "item": str(item)}, None, id=i.id, time=i.time)
        return Step(inner, step.feedback)

    def _learn(self, step: Step) -> bool:
        changed = self.model.learn(self._inner_step(step))
        if changed:
            self.provenance.extend(self.model.provenance.drain())
        return changed

    def _get_state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "seed": self.seed, "acts": self._acts}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.seed, self._acts = int(state["seed"]), int(state["acts"])


class EpsilonGreedy(_ItemPolicy):
    """Best estimated item, or a random one with probability ``epsilon``."""

    def __init__(
        self, epsilon: float = 0.1, model: StreamingFactorization | None = None, seed: int = 0
    ) -> None:
        check_scalar(epsilon, "epsilon", float, min_val=0, max_val=1)
        super().__init__(model, seed)
        self.epsilon = epsilon

    def predict(self, observation: JSON, scope: Scope | None = None) -> int:
        self.check_scope(scope)
        user, n = _context(observation)
        rng = self._rng(user)
        self._acts += 1
        if rng.random() < self.epsilon:
            return int(rng.integers(n))
        return int(np.argmax(self.estimates(user, n)))


class LinUCB(_ItemPolicy):
    """Optimism on the learned embeddings (see the module docstring); ``alpha`` scales the bonus."""

    def __init__(
        self, alpha: float = 1.0, model: StreamingFactorization | None = None, seed: int = 0
    ) -> None:
        check_scalar(alpha, "alpha", float, min_val=0)
        super().__init__(model, seed)
        self.alpha = alpha
        self.a_inv: dict[int, np.ndarray] = {}

    def _user_vector(self, user: str) -> np.ndarray:
        row = self.model.users.get(user)
        return self.model.users.arrays["vec"][row].copy() if row is not None else np.zeros(self.model.dim)

    def predict(self, observation: JSON, scope: Scope | None = None) -> int:
        self.check_scope(scope)
        user, n = _context(observation)
        self._acts += 1
        x = self._user_vector(user)
        # An item never shown has A = I: its bonus is the full ‖x‖ (plus 1 so untried items come first).
        bonus = np.full(n, np.sqrt(x @ x) + 1.0)
        shown = [i for i in self.a_inv if i < n]
        if shown:
            stacked = np.stack([self.a_inv[i] for i in shown])
            bonus[shown] = np.sqrt(np.maximum(0.0, np.einsum("i,nij,j->n", x, stacked, x)))
        return int(np.argmax(self.estimates(user, n) + self.alpha * bonus))

    def _learn(self, step: Step) -> bool:
        user, _ = _context(step.interaction.observation)
        x = self._user_vector(user)
        changed = super()._learn(step)
        item = step.interaction.action
        if changed and isinstance(item, int):
            a_inv = self.a_inv.get(item, np.eye(self.model.dim))
            v = a_inv @ x  # Sherman–Morrison: (A + x xᵀ)⁻¹ = A⁻¹ − A⁻¹x xᵀA⁻¹ / (1 + xᵀA⁻¹x)
            self.a_inv[item] = a_inv - np.outer(v, v) / (1.0 + x @ v)
        return changed

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        state["a_inv"] = {str(i): m.copy() for i, m in self.a_inv.items()}
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.a_inv = {int(i): np.array(m) for i, m in state["a_inv"].items()}
