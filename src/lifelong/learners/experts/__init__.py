"""Experts that propose answers, and the combiners that learn which of them to trust.

- :mod:`~lifelong.learners.experts.mixture` — :class:`ExpertMixture` (a contextual conditional logit
  over the candidates) and :class:`Hedge` (exponential weights);
- :mod:`~lifelong.learners.experts.scoring` — :class:`Prototypes` and :class:`EmbeddingSoftmax`,
  scoring experts on embeddings;
- :mod:`~lifelong.learners.experts.linear` — :class:`OnlineSoftmax`, logistic regression on hashed text.
"""

from lifelong.learners.experts.linear import OnlineSoftmax
from lifelong.learners.experts.mixture import Expert, ExpertMixture, Hedge
from lifelong.learners.experts.scoring import EmbeddingSoftmax, Prototypes, ScoringExpert

__all__ = [
    "EmbeddingSoftmax",
    "Expert",
    "ExpertMixture",
    "Hedge",
    "OnlineSoftmax",
    "Prototypes",
    "ScoringExpert",
]
