"""What the top-N rankers share, and :class:`RankFusion`, which combines them.

A ranker here is a :class:`Predictor` with ``scores(user) -> (item ids, scores)`` over every item it
knows and ``rank(user, k, exclude)``. :class:`RankFusion` feeds every event to each member and merges
their rankings by reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009, eq. 1):

    RRF(i) = Σ_m w_m / (k + rank_m(i)),   k = 60,

which needs no calibration between members whose scores live on different scales (a factor model's
logits, co-visit counts) and rewards items that several members rank well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar


def user_item(observation: JSON) -> tuple[str, str]:
    """The (user, item) ids of a ``{"user": ..., "item": ...}`` observation."""
    if not isinstance(observation, dict) or "user" not in observation or "item" not in observation:
        raise InvalidInput('expected {"user": ..., "item": ...}', field="observation")
    return str(observation["user"]), str(observation["item"])


def positive_event(step: Step, threshold: float | None) -> bool | None:
    """Is ``step`` a positive? Rating ≥ threshold (any rating when None), reward > 0, or accepted."""
    if step.rating is not None:
        return threshold is None or step.rating >= threshold
    if step.reward is not None:
        return step.reward > 0
    return step.accepted


class RankFusion(Predictor):
    """Reciprocal rank fusion of several rankers that all learn every event (module docstring)."""

    def __init__(
        self, members: Mapping[str, Predictor], *, weights: Mapping[str, float] | None = None, k: int = 60
    ) -> None:
        super().__init__()
        if not members:
            raise InvalidInput("needs at least one member ranker", field="members")
        for name, member in members.items():
            if not callable(getattr(member, "scores", None)):
                raise InvalidInput(f"member {name!r} has no scores(user) method", field="members")
        self.members = dict(members)
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.members}
        self.k = check_scalar(k, "k", int, min_val=1)

    def scores(
        self, user: str, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> tuple[list[str], np.ndarray]:
        """Every item any member knows with its fused score; ``exclude`` is left out of the members'
        rankings (and scores −inf)."""
        self.check_scope(scope)
        banned = set(map(str, exclude))
        per_member = [(name, *member.scores(user)) for name, member in self.members.items()]  # type: ignore[attr-defined]
        universe = list(dict.fromkeys(key for _, keys, _ in per_member for key in keys))
        position = {key: n for n, key in enumerate(universe)}
        banned_at = [position[key] for key in banned if key in position]
        fused = np.zeros(len(universe))
        for name, keys, scores in per_member:
            # Members usually know the same items in the same order: then no re-indexing is needed.
            same = keys == universe
            at = np.arange(len(keys)) if same else np.array([position[key] for key in keys], dtype=np.int64)
            scores = scores.astype(np.float64, copy=True)
            scores[banned_at if same else [n for n, key in enumerate(keys) if key in banned]] = -np.inf
            ranks = np.empty(len(keys))
            ranks[np.argsort(-scores, kind="stable")] = np.arange(len(keys))
            fused[at] += self.weights[name] / (self.k + ranks)
        fused[banned_at] = -np.inf
        return universe, fused

    def predict(self, observation: JSON, scope: Scope | None = None) -> float:
        self.check_scope(scope)
        user, item = user_item(observation)
        keys, fused = self.scores(user)
        return float(fused[keys.index(item)]) if item in keys else 0.0

    def rank(
        self, user: str, k: int = 10, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> list[str]:
        self.check_scope(scope)
        if k < 1:
            raise InvalidInput(f"must be >= 1, got {k}", field="k")
        keys, fused = self.scores(user, exclude)
        return [keys[n] for n in top_k(fused, k) if np.isfinite(fused[n])]

    def _learn(self, step: Step) -> bool:
        changed = False
        for member in self.members.values():
            if member.learn(step):
                changed = True
                self.provenance.extend(member.provenance.drain())
        return changed

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Forget ``user`` of ``tenant`` in every member that keeps per-user state."""
        dropped = [getattr(m, "forget_user", lambda *_: False)(user, tenant) for m in self.members.values()]
        return any(dropped)

    def _get_state(self) -> dict[str, Any]:
        return {name: member.state_dict() for name, member in self.members.items()}

    def _set_state(self, state: dict[str, Any]) -> None:
        for name, member in self.members.items():
            member.load_state_dict(state[name])
