"""Learners: everything that learns from steps (see :mod:`lifelong.learners.base` for the contract)."""

from lifelong.learners.base import Learner, Link, Predictor, Provenance, replay_into
from lifelong.learners.ella import ELLA
from lifelong.learners.linear import HashedText, OnlineSoftmax

__all__ = [
    "ELLA",
    "HashedText",
    "Learner",
    "Link",
    "OnlineSoftmax",
    "Predictor",
    "Provenance",
    "replay_into",
]
