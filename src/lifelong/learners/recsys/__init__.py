"""Recommenders: per-user and per-item fast weights updated on every event.

- :mod:`~lifelong.learners.recsys.factorization` — :class:`StreamingFactorization` (explicit ratings);
- :mod:`~lifelong.learners.recsys.implicit` — :class:`ImplicitFactorization` (BPR / FPMC on clicks);
- :mod:`~lifelong.learners.recsys.covisitation` — :class:`CoVisitation` (items seen together);
- :mod:`~lifelong.learners.recsys.popularity` — :class:`Popularity` (time-decayed counts);
- :mod:`~lifelong.learners.recsys.ranking` — :class:`RankFusion` (reciprocal rank fusion of the above);
- :mod:`~lifelong.learners.recsys.bandits` — :class:`EpsilonGreedy`, :class:`LinUCB` (exploration);
- :mod:`~lifelong.learners.recsys.id_table` — :class:`IdTable`, growing embedding rows for unseen ids;
- :mod:`~lifelong.learners.recsys._kernels` — the numba-compiled SGD / AdaGrad steps.
"""

from lifelong.learners.recsys.bandits import EpsilonGreedy, LinUCB
from lifelong.learners.recsys.covisitation import CoVisitation
from lifelong.learners.recsys.factorization import StreamingFactorization
from lifelong.learners.recsys.id_table import IdTable
from lifelong.learners.recsys.implicit import ImplicitFactorization
from lifelong.learners.recsys.popularity import Popularity
from lifelong.learners.recsys.ranking import RankFusion

__all__ = [
    "CoVisitation",
    "EpsilonGreedy",
    "IdTable",
    "ImplicitFactorization",
    "LinUCB",
    "Popularity",
    "RankFusion",
    "StreamingFactorization",
]
