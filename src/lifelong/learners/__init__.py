"""Learners: everything that learns from steps (see :mod:`lifelong.learners.base` for the contract)."""

from lifelong.learners.bandits import EpsilonGreedy, LinUCB
from lifelong.learners.base import Learner, Link, Predictor, Provenance, replay_into
from lifelong.learners.covisitation import CoVisitation
from lifelong.learners.ella import ELLA
from lifelong.learners.factorization import StreamingFactorization
from lifelong.learners.id_table import IdTable
from lifelong.learners.implicit import ImplicitFactorization
from lifelong.learners.linear import HashedText, OnlineSoftmax
from lifelong.learners.popularity import Popularity
from lifelong.learners.ranking import RankFusion

__all__ = [
    "ELLA",
    "CoVisitation",
    "EpsilonGreedy",
    "HashedText",
    "IdTable",
    "ImplicitFactorization",
    "Learner",
    "LinUCB",
    "Link",
    "OnlineSoftmax",
    "Popularity",
    "Predictor",
    "Provenance",
    "RankFusion",
    "StreamingFactorization",
    "replay_into",
]
