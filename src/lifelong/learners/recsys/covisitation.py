"""Item-to-item co-visitation: "people who picked X around the same time also picked Y".

Every positive event (u, i) adds one co-visit between i and each of the user's last ``window`` items,
in both directions; a user's next item is scored from their last ``context`` items l as

    s(i) = Σ_l c(l, i) / (c(l) + 1)^α,

with c(l, i) the co-visit count and c(l) how often l was picked: the relatedness score of YouTube's
recommender (Davidson et al., RecSys 2010, §2.2, with the normalisation f(c_l) = c_l^α). The counts are
fast weights in the plainest form — updated in O(window) per event and used at the very next ``rank`` —
and they capture the short-term sequence that factor models smooth away. Memory grows with the number of
distinct co-visited pairs (≈ events × window in the worst case); ids expire with their table rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.recsys.id_table import IdTable
from lifelong.learners.recsys.ranking import positive_event, user_item
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar


class CoVisitation(Predictor):
    """Co-visitation counts over users' recent items (see the module docstring).

    Parameters
    ----------
    window
        Each new item is linked to the user's previous ``window`` items.
    context
        How many of the user's latest items vote when ranking.
    alpha
        Exponent of the popularity normalisation of a voting item (0: raw counts, 1: conditional
        frequency).
    threshold
        Ratings at or above it are positives; None counts every rated item (a watch).
    """

    def __init__(
        self,
        window: int = 5,
        context: int = 5,
        *,
        alpha: float = 0.5,
        threshold: float | None = None,
        ttl: float = math.inf,
    ) -> None:
        super().__init__()
        check_scalar(window, "window", int, min_val=1)
        check_scalar(context, "context", int, min_val=1)
        check_scalar(alpha, "alpha", float, min_val=0, max_val=1)
        self.window, self.context, self.alpha, self.threshold = window, context, alpha, threshold
        self.items = IdTable(ttl=ttl)
        self.items.register("count", 0)
        self.pairs: dict[int, dict[int, float]] = {}  # row → {row: co-visits}
        self.history: dict[str, list[str]] = {}  # user → latest max(window, context) items

    @property
    def ttl(self) -> float:
        """Seconds unseen before an item's row is dropped (kept by the id table; ``config()`` reports it)."""
        return self.items.ttl

    # -- prediction ---------------------------------------------------------------------------------
    def scores(self, user: str, *, scope: Scope | None = None) -> tuple[list[str], np.ndarray]:
        """Every known item and its co-visitation score for ``user``'s latest items."""
        self.check_scope(scope)
        keys = list(self.items.rows)
        rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
        by_row = np.full(self.items.capacity, -1, dtype=np.int64)
        by_row[rows] = np.arange(len(keys))
        scores = np.zeros(len(keys))
        counts = self.items.arrays["count"]
        for key in self.history.get(str(user), [])[-self.context :]:
            row = self.items.get(key)
            linked = self.pairs.get(row, {}) if row is not None else {}
            if not linked:
                continue
            assert row is not None
            targets = by_row[np.fromiter(linked.keys(), dtype=np.int64, count=len(linked))]
            values = np.fromiter(linked.values(), dtype=np.float64, count=len(linked))
            np.add.at(scores, targets, values / (counts[row] + 1.0) ** self.alpha)
        return keys, scores

    def predict(self, observation: JSON, scope: Scope | None = None) -> float:
        self.check_scope(scope)
        user, item = user_item(observation)
        keys, scores = self.scores(user)
        return float(scores[keys.index(item)]) if item in self.items else 0.0

    def rank(
        self, user: str, k: int = 10, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> list[str]:
        self.check_scope(scope)
        """The k items most co-visited with ``user``'s latest ones (ties: more popular first)."""
        if k < 1:
            raise InvalidInput(f"must be >= 1, got {k}", field="k")
        keys, scores = self.scores(user)
        rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
        # A tie-break far below one co-visit: with no history this is plain popularity.
        scores = scores + 1e-6 * self.items.arrays["count"][rows] / (1.0 + self.items.arrays["count"].max())
        banned = set(map(str, exclude))
        scores[[n for n, key in enumerate(keys) if key in banned]] = -np.inf
        return [keys[n] for n in top_k(scores, k) if np.isfinite(scores[n])]

    # -- learning -----------------------------------------------------------------------------------
    def _learn(self, step: Step) -> bool:
        if not positive_event(step, self.threshold):
            return False
        user, item = user_item(step.interaction.observation)
        row = self.items.row(item, step.interaction.time)
        assert row is not None  # min_count is 1
        self.items.arrays["count"][row] += 1.0
        history = self.history.setdefault(user, [])
        for previous in history[-self.window :]:
            other = self.items.get(previous)
            if other is None or other == row:
                continue
            for a, b in ((row, other), (other, row)):
                linked = self.pairs.setdefault(a, {})
                linked[b] = linked.get(b, 0.0) + 1.0
        history.append(item)
        del history[: -max(self.window, self.context)]
        self.provenance.record(f"item:{item}", step)
        self.provenance.record(f"user:{user}", step)
        return True

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop the user's recent items. Their co-visits stay in the shared counts until a rebuild."""
        if self.tenant is not None and tenant != self.tenant:
            return False  # this learner holds nothing of that tenant
        return self.history.pop(str(user), None) is not None

    def expire(self, now: float) -> list[str]:
        """Evict items unseen for longer than ``ttl`` with their co-visits; returns them."""
        rows = {
            self.items.rows[key]
            for key in self.items.rows
            if now - self.items.last_seen[key] > self.items.ttl
        }
        expired = self.items.expire(now)
        for row in rows:
            for other in self.pairs.pop(row, {}):
                self.pairs.get(other, {}).pop(row, None)
        return expired

    # -- state --------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        src = [a for a, linked in self.pairs.items() for _ in linked]
        dst = [b for linked in self.pairs.values() for b in linked]
        values = [v for linked in self.pairs.values() for v in linked.values()]
        return {
            "config": self.config(),
            "items": self.items.state(),
            "pairs": np.array([src, dst], dtype=np.int64).reshape(2, -1),
            "pair_counts": np.array(values, dtype=np.float64),
            "history": {user: list(items) for user, items in self.history.items()},
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        c = state["config"]
        self.window, self.context, self.alpha = int(c["window"]), int(c["context"]), float(c["alpha"])
        self.threshold = None if c["threshold"] is None else float(c["threshold"])
        self.items = IdTable.from_state(state["items"])
        self.pairs = {}
        src, dst = np.asarray(state["pairs"]).tolist()
        for a, b, v in zip(src, dst, np.asarray(state["pair_counts"]).tolist(), strict=True):
            self.pairs.setdefault(int(a), {})[int(b)] = float(v)
        self.history = {str(u): [str(i) for i in items] for u, items in state["history"].items()}
