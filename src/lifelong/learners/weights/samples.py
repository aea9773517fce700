"""What the policy learns from: one rewarded completion as the behaviour policy produced it.

A :class:`Sample` holds the token ids and per-token log-probabilities the agent logged with the
interaction (:func:`sample_metadata`), so the policy gradient and the guards that read samples
(:mod:`~lifelong.learners.weights.guards`) work from the log alone, and a replay rebuilds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifelong.experience.records import JSON
from lifelong.models.base import Completion

__all__ = ["SAMPLE", "Sample", "sample_metadata"]

#: Interaction metadata key of the sampled completion (written by the agent, read by the learner).
SAMPLE = "sample"


@dataclass(frozen=True, slots=True)
class Sample:
    """One rewarded completion, as the policy produced it."""

    interaction_id: str
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # per token, under the behaviour policy
    version: int  # the adapter version that sampled it
    temperature: float
    reward: float


def sample_metadata(prompt: str, completion: Completion, temperature: float) -> dict[str, JSON]:
    """What an agent logs with an interaction so the policy can learn from it (and replay it)."""
    return {
        "prompt": prompt,
        "completion_ids": list(completion.token_ids),
        "logprobs": [round(float(x), 6) for x in completion.token_logprobs],
        "version": completion.model_version,
        "temperature": temperature,
    }
