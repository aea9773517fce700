"""Forgetting guards for weight-space learners: what keeps an adapter trained on rewards from
forgetting what the base model knew.

A guard adds a penalty to the loss of each update of a
:class:`~lifelong.learners.weights.policy_gradient.PolicyGradient` learner:

- :class:`KLPenalty` — the KL divergence of the adapted policy from the frozen base model at every
  position of every sampled completion, KL(π_θ ‖ π_base), computed exactly over the vocabulary and
  added with weight β (the reference-model term of InstructGPT, Ouyang et al. 2022, eq. 2, and of
  GRPO, Shao et al. 2024, eq. 3). The base model is the same network with the adapter off.
- :class:`Replay` — a small fraction of *earlier* samples, those that did better than the baseline,
  replayed by self-imitation (Oh et al. 2018, eq. 2: −max(R − b, 0)·log π(a|s)), plus the
  language-modelling loss on a chunk of *general text* each update (InstructGPT's "PPO-ptx" term,
  eq. 2, γ·E[log π(x)]).
- :class:`EWC` — elastic weight consolidation (Kirkpatrick et al. 2017, eq. 3): a quadratic pull of
  each adapter parameter towards its value when the guard was prepared, weighted by the diagonal of
  the Fisher information of the language-modelling loss on general text (normalised to mean 1, so
  ``weight`` does not depend on the scale of the gradients). Prepared at the start, where LoRA's B = 0,
  the Fisher entries of A are zero: EWC then anchors B (and so the update B·A), not A.

Retention — how much the model forgot — is measured apart from the guards, as the ratio of the
perplexity of held-out text under the adapted and the base model (:func:`retention_ppl_ratio`); the
learner never trains on that text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON
from lifelong.utils.params import get_params
from lifelong.utils.validation import check_scalar

if TYPE_CHECKING:
    from lifelong.learners.weights.samples import Sample
    from lifelong.models.trainable import TrainableModel

__all__ = ["EWC", "Guard", "KLPenalty", "Replay", "retention_ppl_ratio"]


class Guard:
    """A penalty added to each update's loss. Override the hooks a guard needs."""

    name = "guard"

    def prepare(self, model: TrainableModel) -> None:
        """Called once before the first update, with the adapter as it is then."""

    def observe(self, sample: Sample, advantage: float) -> None:
        """Called for every sample an update learns from, with its advantage."""

    def sample_penalty(self, model: TrainableModel, sample: Sample, log_probs: Any) -> Any:
        """A penalty for one sample, given the adapted policy's log-softmax at the positions of its
        generated tokens (a tensor with gradients); None for no penalty. Not called for abstentions."""
        return None

    def update_penalty(self, model: TrainableModel, rng: np.random.Generator, batch: int) -> Any:
        """A penalty for the whole update (``batch`` samples); None for no penalty."""
        return None

    def config(self) -> dict[str, JSON]:
        """The constructor's settings (:func:`~lifelong.utils.params.get_params`); ``texts`` are data
        to replay or anchor on, not a setting, and are left out."""
        return {k: v for k, v in get_params(self).items() if k != "texts"}


class KLPenalty(Guard):
    """β · KL(π_θ ‖ π_base), averaged over the completion's positions; see the module docstring."""

    name = "kl"

    def __init__(self, weight: float = 0.1) -> None:
        self.weight = check_scalar(weight, "weight", float, min_val=0)

    def sample_penalty(self, model: TrainableModel, sample: Sample, log_probs: Any) -> Any:
        import torch

        tokens = [t for t in sample.completion_ids if t >= 0]
        with torch.no_grad(), model.base():
            reference = model.completion_log_softmax(sample.prompt_ids, tokens, sample.temperature)
        kl = (log_probs.exp() * (log_probs - reference)).sum(dim=-1).mean()
        return self.weight * kl


class Replay(Guard):
    """Replay earlier good samples (self-imitation) and general text (PPO-ptx); see the module docstring.

    Each update replays ``fraction`` × (its batch size) earlier samples drawn from a reservoir of the
    ``capacity`` most recent samples with a positive advantage, and ``text_chunks`` chunks of ``texts``
    with weight ``text_weight``.
    """

    name = "replay"

    def __init__(
        self,
        texts: Sequence[str] = (),
        *,
        fraction: float = 0.25,
        capacity: int = 256,
        text_chunks: int = 1,
        text_weight: float = 0.5,
        max_tokens: int = 128,
    ) -> None:
        check_scalar(fraction, "fraction", float, min_val=0, max_val=1)
        if text_chunks > 0 and not texts:
            raise InvalidInput("general-text replay needs texts (or text_chunks=0)", field="texts")
        self.texts = list(texts)
        self.fraction = fraction
        self.capacity = capacity
        self.text_chunks = text_chunks
        self.text_weight = text_weight
        self.max_tokens = max_tokens
        self.memory: list[tuple[Sample, float]] = []

    def observe(self, sample: Sample, advantage: float) -> None:
        if advantage > 0:
            self.memory.append((sample, advantage))
            del self.memory[: -self.capacity]

    def update_penalty(self, model: TrainableModel, rng: np.random.Generator, batch: int) -> Any:
        terms = []
        n = min(len(self.memory), int(np.ceil(self.fraction * batch))) if self.fraction > 0 else 0
        for i in rng.choice(len(self.memory), size=n, replace=False) if n else ():
            sample, advantage = self.memory[int(i)]
            scored = model.score(sample.prompt_ids, sample.completion_ids, sample.temperature)
            terms.append(-advantage * scored.logprobs.mean() / max(batch, 1))
        for i in rng.choice(len(self.texts), size=min(self.text_chunks, len(self.texts)), replace=False):
            terms.append(self.text_weight * model.text_loss(self.texts[int(i)], max_tokens=self.max_tokens))
        return sum(terms) if terms else None


class EWC(Guard):
    """(λ/2) Σᵢ Fᵢ (θᵢ − θᵢ*)², Fisher diagonal from ``texts``; see the module docstring."""

    name = "ewc"

    def __init__(self, texts: Sequence[str], *, weight: float = 100.0, chunks: int = 8) -> None:
        if not texts:
            raise InvalidInput("EWC estimates the Fisher information on texts; give some", field="texts")
        self.texts = list(texts)[:chunks]
        self.weight = weight
        self.chunks = chunks
        self.anchor: list[Any] = []
        self.fisher: list[Any] = []

    def prepare(self, model: TrainableModel) -> None:
        import torch

        params = model.adapter_parameters()
        squares = [torch.zeros_like(p) for p in params]
        with model.computing():
            for text in self.texts:
                model.network.zero_grad(set_to_none=True)
                model.text_loss(text).backward()
                for s, p in zip(squares, params, strict=True):
                    if p.grad is not None:
                        s += p.grad.detach() ** 2
        model.network.zero_grad(set_to_none=True)
        mean = float(sum(s.sum() for s in squares)) / max(1, sum(s.numel() for s in squares))
        self.fisher = [s / (mean if mean > 0 else 1.0) for s in squares]
        self.anchor = [p.detach().clone() for p in params]

    def update_penalty(self, model: TrainableModel, rng: np.random.Generator, batch: int) -> Any:
        params = model.adapter_parameters()
        total = sum(
            (f * (p - a) ** 2).sum() for f, p, a in zip(self.fisher, params, self.anchor, strict=True)
        )
        return 0.5 * self.weight * total


def retention_ppl_ratio(model: TrainableModel, texts: Sequence[str], *, max_tokens: int = 256) -> float:
    """Perplexity of ``texts`` with the adapter over perplexity with the base model (1.0 = nothing
    forgotten, 1.05 = 5% worse)."""
    adapted = model.perplexity(texts, max_tokens=max_tokens)
    with model.base():
        base = model.perplexity(texts, max_tokens=max_tokens)
    return adapted / base
