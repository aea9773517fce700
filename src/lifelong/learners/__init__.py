"""Learners: everything that learns from steps (see :mod:`lifelong.learners.base` for the contract).

One folder per family; every public learner is importable from here too:

- :mod:`~lifelong.learners.base` — :class:`Learner` (the template method), :class:`Provenance`,
  :func:`replay_into`; :mod:`~lifelong.learners.tenancy` — :class:`PerTenant`;
- :mod:`~lifelong.learners.context` — token space: memory, example bank, lessons, suggestion gate;
- :mod:`~lifelong.learners.experts` — experts and the combiners that learn which to trust;
- :mod:`~lifelong.learners.recsys` — recommenders with per-user and per-item fast weights;
- :mod:`~lifelong.learners.multitask` — ELLA and its batch baselines;
- :mod:`~lifelong.learners.weights` — the policy gradient on a LoRA adapter and its guards
  (imported on demand: ``from lifelong.learners.weights import PolicyGradient``).
"""

from lifelong.learners.base import Learner, Link, Predictor, Provenance, TenantMismatch, replay_into
from lifelong.learners.context import (
    ContextLearner,
    ExampleBank,
    Fact,
    Item,
    Lessons,
    Memory,
    Recalled,
    SuggestionGate,
)
from lifelong.learners.experts import EmbeddingSoftmax, ExpertMixture, Hedge, OnlineSoftmax, Prototypes
from lifelong.learners.multitask import ELLA
from lifelong.learners.recsys import (
    CoVisitation,
    EpsilonGreedy,
    IdTable,
    ImplicitFactorization,
    LinUCB,
    Popularity,
    RankFusion,
    StreamingFactorization,
)
from lifelong.learners.tenancy import PerTenant, tenant_part
from lifelong.utils.text import HashedText

__all__ = [
    "ELLA",
    "CoVisitation",
    "ContextLearner",
    "EmbeddingSoftmax",
    "EpsilonGreedy",
    "ExampleBank",
    "ExpertMixture",
    "Fact",
    "HashedText",
    "Hedge",
    "IdTable",
    "ImplicitFactorization",
    "Item",
    "Learner",
    "Lessons",
    "LinUCB",
    "Link",
    "Memory",
    "OnlineSoftmax",
    "PerTenant",
    "Popularity",
    "Predictor",
    "Prototypes",
    "Provenance",
    "RankFusion",
    "Recalled",
    "StreamingFactorization",
    "SuggestionGate",
    "TenantMismatch",
    "replay_into",
    "tenant_part",
]
