"""Token-space learners: the model stays frozen, its context learns.

- :mod:`~lifelong.learners.context.base` — :class:`ContextLearner`, the template every one of them
  follows (items with provenance, recall by embedding, per-tenant bounds, forgetting);
- :mod:`~lifelong.learners.context.memory` — :class:`Memory`, per-user facts rewritten each interaction;
- :mod:`~lifelong.learners.context.examples` — :class:`ExampleBank`, past right answers as demonstrations;
- :mod:`~lifelong.learners.context.lessons` — :class:`Lessons`, what went wrong, as ACE-style deltas;
- :mod:`~lifelong.learners.context.gate` — :class:`SuggestionGate`, when to suggest and when to stay silent;
- :mod:`~lifelong.learners.context.vector_index` — :class:`VectorIndex`, the exact cosine index recall uses.
"""

from lifelong.learners.context.base import ContextLearner, Item, Recalled
from lifelong.learners.context.examples import ExampleBank
from lifelong.learners.context.gate import SuggestionGate
from lifelong.learners.context.lessons import Lessons
from lifelong.learners.context.memory import Fact, Memory
from lifelong.learners.context.vector_index import VectorIndex

__all__ = [
    "ContextLearner",
    "ExampleBank",
    "Fact",
    "Item",
    "Lessons",
    "Memory",
    "Recalled",
    "SuggestionGate",
    "VectorIndex",
]
