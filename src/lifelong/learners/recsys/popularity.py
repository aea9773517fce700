"""Time-decayed popularity: the control every recommender has to beat.

Each item keeps an exponentially decayed count of positive events,

    c_i(t) = Σ_{positive events e on i} 2^{−(t − t_e) / half_life},

updated in O(1) per event by decaying the stored count to the event's time before adding 1 (the
stored value is the count at the item's last event); an event older than the item's last one (late
feedback, a replay out of order) adds its own weight 2^{−(t_i − t_e) / half_life} instead. ``rank`` orders
items by their count decayed to the latest time seen, compared as log2 c_i so that counts many half-lives
old still order by recency and count instead of underflowing to ties at 0. An event is positive when its
rating reaches ``threshold``, its reward is above 0, or it was accepted.
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
from lifelong.learners.recsys.ranking import positive_event
from lifelong.utils.validation import check_scalar


class Popularity(Predictor):
    """Most-popular items by a decayed count of positive events (``half_life`` in seconds)."""

    def __init__(self, half_life: float = math.inf, threshold: float = 4.0) -> None:
        super().__init__()
        check_scalar(half_life, "half_life", float, min_val=0, include_boundaries="neither")
        self.half_life, self.threshold = float(half_life), float(threshold)
        self.items = IdTable()
        self.items.register("count", 0)
        self.items.register("time", 0)
        self.now = -math.inf

    def _decay(self, elapsed: np.ndarray | float) -> np.ndarray | float:
        if math.isinf(self.half_life):
            return np.ones_like(elapsed) if isinstance(elapsed, np.ndarray) else 1.0
        return (
            np.exp2(-np.asarray(elapsed) / self.half_life)
            if isinstance(elapsed, np.ndarray)
            else 2 ** (-elapsed / self.half_life)
        )

    def _learn(self, step: Step) -> bool:
        positive = positive_event(step, self.threshold)
        if positive is None:
            return False
        observation = step.interaction.observation
        if not isinstance(observation, dict) or "item" not in observation:
            raise InvalidInput('expected {"item": ...} in the observation', field="observation")
        t = step.interaction.time
        moved = t > self.now
        self.now = max(self.now, t)
        if not positive:  # no count to add, but a later clock decays every count: the state changed
            if moved:
                self.provenance.record("clock", step)
            return moved
        row = self.items.row(str(observation["item"]), t)
        assert row is not None  # min_count is 1
        a = self.items.arrays
        if a["count"][row] > 0 and t < a["time"][row]:  # late: it adds its own decayed weight
            a["count"][row] += self._decay(a["time"][row] - t)
        else:
            elapsed = t - a["time"][row] if a["count"][row] > 0 else 0.0
            a["count"][row] = a["count"][row] * self._decay(elapsed) + 1.0
            a["time"][row] = t
        self.provenance.record(f"item:{observation['item']}", step)
        return True

    def scores(self, user: str | None = None, *, scope: Scope | None = None) -> tuple[list[str], np.ndarray]:
        """Every item and log2 of its decayed count (the same for every user).

        In log2, log2 c_i(now) = log2 c_i(t_i) − (now − t_i) / half_life: a count thousands of half-lives
        old is a large negative number, not 2^−(now − t_i)/half_life underflowing to 0.0 — on a log that
        spans many half-lives (years at a half-life of days) most counts would otherwise tie at 0 and the
        ranking would fall back to the order items were first seen.
        """
        self.check_scope(scope)
        keys = list(self.items.rows)
        rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
        a = self.items.arrays
        if not keys:
            return keys, np.zeros(0)
        logs = np.log2(a["count"][rows])
        if math.isinf(self.half_life):
            return keys, logs
        return keys, logs - np.maximum(0.0, self.now - a["time"][rows]) / self.half_life

    def predict(self, observation: JSON, scope: Scope | None = None) -> float:
        self.check_scope(scope)
        if not isinstance(observation, dict) or "item" not in observation:
            raise InvalidInput('expected {"item": ...}', field="observation")
        row = self.items.get(str(observation["item"]))
        if row is None:
            return 0.0
        a = self.items.arrays
        return float(a["count"][row] * self._decay(max(0.0, self.now - a["time"][row])))

    def rank(
        self,
        user: str | None = None,
        k: int = 10,
        exclude: Sequence[str] = (),
        *,
        scope: Scope | None = None,
    ) -> list[str]:
        """The k items with the largest decayed counts (the same list for every user)."""
        self.check_scope(scope)
        keys, scores = self.scores()  # log2: the same order as the counts, and no ties at 0
        banned = set(map(str, exclude))
        order = np.argsort(-scores, kind="stable")
        return [keys[n] for n in order if keys[n] not in banned][:k]

    def _get_state(self) -> dict[str, Any]:
        return {
            "config": self.config(),
            "now": None if math.isinf(self.now) else self.now,
            "items": self.items.state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        c = state["config"]
        self.half_life = math.inf if c["half_life"] is None else float(c["half_life"])
        self.threshold = float(c["threshold"])
        self.now = -math.inf if state["now"] is None else float(state["now"])
        self.items = IdTable.from_state(state["items"])
