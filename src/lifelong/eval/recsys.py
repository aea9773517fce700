"""Prequential replay of a rating log for recommenders: predict and recommend, then learn.

For every event (user, item, rating, time), in time order:

1. the model predicts the rating (squared and absolute error → RMSE, MAE), if it predicts ratings;
2. if the event is positive (rating ≥ ``threshold``), the model recommends its top ``k`` items for the
   user, excluding items the user rated before: a *hit* when the event's item is in the list (HR@k), with
   NDCG@k = 1 / log2(position + 2) for a hit at 0-based position;
3. the model learns from the event (unless it is frozen).

This is the test-then-train protocol of :mod:`lifelong.eval.protocols` specialised to recommendation,
where each event needs a ranking as well as a prediction.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.envs.recsys import MovieLens
from lifelong.errors import InvalidInput
from lifelong.experience.records import Feedback, Interaction, Scope, Step


@dataclass
class ReplayTrace:
    squared_errors: list[float] = field(default_factory=list)
    absolute_errors: list[float] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    learn_seconds: float = 0.0
    rank_seconds: float = 0.0
    events: int = 0

    def summary(self) -> dict[str, float]:
        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else math.nan

        return {
            "rmse": math.sqrt(mean(self.squared_errors)) if self.squared_errors else math.nan,
            "mae": mean(self.absolute_errors),
            "hr_at_k": mean(self.hits),
            "ndcg_at_k": mean(self.ndcg),
            "events_per_second": self.events / self.learn_seconds if self.learn_seconds else math.nan,
            "rank_ms": 1000 * self.rank_seconds / max(1, len(self.hits)),
        }


def replay(
    model: Any,
    data: MovieLens,
    *,
    n_events: int | None = None,
    k: int = 10,
    threshold: float = 4.0,
    predicts_ratings: bool = True,
) -> ReplayTrace:
    """Run the protocol of the module docstring over the first ``n_events`` events of ``data``."""
    if k < 1:
        raise InvalidInput(f"must be >= 1, got {k}", field="k")
    total = len(data) if n_events is None else min(n_events, len(data))
    seen: dict[str, set[str]] = defaultdict(set)
    trace = ReplayTrace()
    for n in range(total):
        user, item = f"u{data.user[n]}", f"i{data.item[n]}"
        rating, stamp = float(data.rating[n]), float(data.time[n])
        observation = {"user": user, "item": item}
        if predicts_ratings:
            error = float(model.predict(observation)) - rating
            trace.squared_errors.append(error * error)
            trace.absolute_errors.append(abs(error))
        if rating >= threshold:
            started = time.perf_counter()
            top = model.rank(user, k=k, exclude=seen[user])
            trace.rank_seconds += time.perf_counter() - started
            position = top.index(item) if item in top else -1
            trace.hits.append(1.0 if position >= 0 else 0.0)
            trace.ndcg.append(1.0 / math.log2(position + 2) if position >= 0 else 0.0)
        interaction = Interaction(Scope(tenant="movielens", user=user), observation, None, time=stamp)
        step = Step(interaction, (Feedback.rating(interaction.id, rating, time=stamp),))
        started = time.perf_counter()
        model.learn(step)
        trace.learn_seconds += time.perf_counter() - started
        trace.events += 1
        seen[user].add(item)
    return trace
