"""Learners: everything that learns from steps (see :mod:`lifelong.learners.base` for the contract)."""

from lifelong.learners.bandits import EpsilonGreedy, LinUCB
from lifelong.learners.base import Learner, Link, Predictor, Provenance, TenantMismatch, replay_into
from lifelong.learners.context import ContextLearner, Item, Recalled
from lifelong.learners.covisitation import CoVisitation
from lifelong.learners.ella import ELLA
from lifelong.learners.examples import ExampleBank
from lifelong.learners.factorization import StreamingFactorization
from lifelong.learners.id_table import IdTable
from lifelong.learners.implicit import ImplicitFactorization
from lifelong.learners.lessons import Lessons
from lifelong.learners.linear import HashedText, OnlineSoftmax
from lifelong.learners.memory import Fact, Memory
from lifelong.learners.popularity import Popularity
from lifelong.learners.ranking import RankFusion
from lifelong.learners.tenancy import PerTenant, tenant_part

__all__ = [
    "ELLA",
    "CoVisitation",
    "ContextLearner",
    "EpsilonGreedy",
    "ExampleBank",
    "Fact",
    "HashedText",
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
    "Provenance",
    "RankFusion",
    "Recalled",
    "StreamingFactorization",
    "TenantMismatch",
    "replay_into",
    "tenant_part",
]
