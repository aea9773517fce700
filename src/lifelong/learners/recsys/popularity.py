"""Time-decayed popularity: the control every recommender has to beat.

Each item keeps an exponentially decayed count of positive events,

    c_i(t) = Σ_{positive events e on i} 2^{−(t − t_e) / half_life},

updated in O(1) per event by decaying the stored count to the event's time before adding 1 (the
stored value is the count at the item's last event). ``rank`` orders items by their count decayed to the
latest time seen. An event is positive when its rating reaches ``threshold``, its reward is above 0, or
it was accepted.
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


class Popularity(Predictor):
    """Most-popular items by a decayed count of positive events (``half_life`` in seconds)."""

    def __init__(self, half_life: float = math.inf, threshold: float = 4.0) -> None:
        super().__init__()
        if not half_life > 0:
            raise InvalidInput(f"must be > 0 seconds, got {half_life}", field="half_life")
        self.half_life, self.threshold = float(half_life), float(threshold)
        self.items = IdTable()
        self.items.register("count", 0)
        self.items.register("time", 0)
        self.now = -math.inf

    def config(self) -> dict[str, JSON]:
        return {
            "half_life": None if math.isinf(self.half_life) else self.half_life,
            "threshold": self.threshold,
        }

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
        self.now = max(self.now, t)
        if not positive:
            return False
        row = self.items.row(str(observation["item"]), t)
        assert row is not None  # min_count is 1
        a = self.items.arrays
        elapsed = max(0.0, t - a["time"][row]) if a["count"][row] > 0 else 0.0
        a["count"][row] = a["count"][row] * self._decay(elapsed) + 1.0
        a["time"][row] = max(a["time"][row], t)
        self.provenance.record(f"item:{observation['item']}", step)
        return True

    def scores(self, user: str | None = None, *, scope: Scope | None = None) -> tuple[list[str], np.ndarray]:
        """Every item and its decayed count (the same for every user)."""
        self.check_scope(scope)
        keys = list(self.items.rows)
        rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
        a = self.items.arrays
        elapsed = np.maximum(0.0, self.now - a["time"][rows]) if keys else np.zeros(0)
        return keys, a["count"][rows] * self._decay(elapsed)

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
        self.check_scope(scope)
        """The k items with the largest decayed counts (the same list for every user)."""
        keys, scores = self.scores()
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
