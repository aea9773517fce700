"""Weight-space learners: the model itself learns (a LoRA adapter and an abstain head).

- :mod:`~lifelong.learners.weights.policy_gradient` — :class:`PolicyGradient`, online updates from
  accept/reject rewards, gated on a held-out :class:`Probe`;
- :mod:`~lifelong.learners.weights.guards` — :class:`KLPenalty`, :class:`Replay`, :class:`EWC`, guards
  against forgetting;
- :mod:`~lifelong.learners.weights.samples` — :class:`Sample`, what the policy learns from.

Importing this package does not load torch; building a :class:`~lifelong.models.TrainableModel` does.
"""

from lifelong.learners.weights.guards import EWC, Guard, KLPenalty, Replay, retention_ppl_ratio
from lifelong.learners.weights.policy_gradient import PolicyGradient, Probe, ProbeResult, Update
from lifelong.learners.weights.samples import SAMPLE, Sample, sample_metadata

__all__ = [
    "EWC",
    "SAMPLE",
    "Guard",
    "KLPenalty",
    "PolicyGradient",
    "Probe",
    "ProbeResult",
    "Replay",
    "Sample",
    "Update",
    "retention_ppl_ratio",
    "sample_metadata",
]
