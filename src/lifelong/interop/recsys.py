"""Peer recommenders behind one small interface, so benchmarks run them on the same stream as ours.

A peer has ``learn_one(user, item, rating)``, ``predict_one(user, item)`` and ``rank(user, k, exclude)``.
Neither river's nor Vowpal Wabbit's factorization models rank items natively, so ``rank`` scores every
item seen so far with one ``predict_one`` call each — slow, which is why benchmarks rank peers on a
sample of events (``rank_every`` in :func:`lifelong.eval.recsys.replay`).

- :class:`RiverRecommender` wraps a river ``reco`` model (``BiasedMF``, ``FunkMF``, ...).
- :class:`VowpalWabbitMF` runs Vowpal Wabbit's low-rank quadratic model (``--rank``) on examples
  ``"<rating> |u <user> |i <item>"``; it needs ``pip install "lifelong[peers]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.errors import BackendUnavailable


class _Peer:
    def __init__(self) -> None:
        self.items: dict[str, None] = {}  # insertion-ordered set of items seen

    def predict_one(self, user: str, item: str) -> float:
        raise NotImplementedError

    def _remember(self, item: str) -> None:
        self.items.setdefault(item, None)

    def rank(self, user: str, k: int = 10, exclude: Sequence[str] = ()) -> list[str]:
        banned = set(exclude)
        keys = [item for item in self.items if item not in banned]
        scores = np.array([self.predict_one(user, item) for item in keys])
        return [keys[n] for n in np.argsort(-scores, kind="stable")[:k]]


class RiverRecommender(_Peer):
    """A river ``reco`` model (``learn_one(user, item, y)``)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def learn_one(self, user: str, item: str, rating: float) -> None:
        self._remember(item)
        self.model.learn_one(user, item, rating)

    def predict_one(self, user: str, item: str) -> float:
        return float(self.model.predict_one(user, item))


class VowpalWabbitMF(_Peer):
    """Vowpal Wabbit with a rank-``rank`` user × item interaction (``--rank``)."""

    def __init__(self, rank: int = 10, options: str = "--l2 0.001 --learning_rate 0.05 --power_t 0") -> None:
        super().__init__()
        try:
            from vowpalwabbit import Workspace
        except ImportError as error:
            raise BackendUnavailable(
                "the vowpalwabbit package", 'it is not installed: pip install "lifelong[peers]"'
            ) from error
        self.arguments = f"--quiet --rank {rank} -q ui {options}"
        self.workspace = Workspace(self.arguments)

    def learn_one(self, user: str, item: str, rating: float) -> None:
        self._remember(item)
        self.workspace.learn(f"{rating} |u {user} |i {item}")

    def predict_one(self, user: str, item: str) -> float:
        return float(self.workspace.predict(f"|u {user} |i {item}"))
