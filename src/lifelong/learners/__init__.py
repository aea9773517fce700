"""Learners: everything that learns from steps (see :mod:`lifelong.learners.base` for the contract)."""

from lifelong.learners.base import Learner, Link, Predictor, Provenance, replay_into
from lifelong.learners.ella import ELLA
from lifelong.learners.factorization import StreamingFactorization
from lifelong.learners.id_table import IdTable
from lifelong.learners.linear import HashedText, OnlineSoftmax
from lifelong.learners.popularity import Popularity

__all__ = [
    "ELLA",
    "HashedText",
    "IdTable",
    "Learner",
    "Link",
    "OnlineSoftmax",
    "Popularity",
    "Predictor",
    "Provenance",
    "StreamingFactorization",
    "replay_into",
]
