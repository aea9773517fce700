"""Experts, and learning online which of them to trust.

An agent usually has several ways to answer the same request: the LLM reading its learned context, the
similarity vote of the example bank, a fast learned classifier on hashed text, the nearest class mean of
the embeddings. Each is an *expert*; its *proposal* is a short list of answers with scores in [0, 1],
best first. Which expert is right depends on the request (a near-duplicate of a corrected query: the
nearest example; a phrasing never seen: maybe the LLM), so the agent learns, from every piece of
feedback, how to combine them. Two combiners, both full-information learners (the correction reveals
the right answer whatever was served, so every expert's loss is known on every request):

- :class:`Hedge` — exponential weights over the experts (the weighted majority algorithm, Littlestone &
  Warmuth, Inf. & Comp. 1994; Hedge, Freund & Schapire, JCSS 1997). With the anytime learning rate
  ``eta_t = sqrt(8 ln N / t)`` its expected 0/1 regret against the best single expert in hindsight is at
  most ``2 sqrt(T ln N / 2) + sqrt(ln N / 8)`` (Cesa-Bianchi & Lugosi, *Prediction, Learning, and
  Games*, 2006, Thm 2.3). It can at best match the best expert.
- :class:`ExpertMixture` — a contextual combiner that can beat every expert: a conditional logit over the
  candidate answers (the union of the proposals), scoring each candidate ``a`` by ``w . phi(a)`` where
  ``phi`` holds each expert's score for ``a``, whether ``a`` is its top answer, how many experts agree,
  and request features (the nearest example's similarity, the LLM's confidence). ``w`` is learned by
  AdaGrad on the log loss of the right answer (Duchi, Hazan & Singer, JMLR 2011, Thm 5: regret
  ``O(sqrt(T))`` against the best fixed ``w`` in hindsight, for this convex loss). "Follow expert e" is
  one such ``w`` (a large weight on ``e.top``), so the mixture's log loss is at most that of the best
  (softened) single expert plus ``O(sqrt(T))`` — and any weighting that depends on the features, such
  as "trust the nearest example when it is a near-duplicate, the classifier otherwise", is in its class.

The scoring experts themselves (class means and a softmax on embeddings) are in
:mod:`~lifelong.learners.experts.scoring`; the online softmax on hashed text in
:mod:`~lifelong.learners.experts.linear`.

The proposals and every candidate's features are logged with the interaction
(``metadata["experts"]``), so a combiner learns — and replays — from the log alone.

>>> mixture = ExpertMixture()
>>> candidates = mixture.candidates({"knn": [("card_arrival", 0.9)], "llm": [("lost_card", 0.6)]})
>>> [a for a, _ in candidates]
['card_arrival', 'lost_card']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner
from lifelong.learners.context.base import right_answer
from lifelong.utils.arrays import softmax
from lifelong.utils.validation import check_scalar

#: Key of the interaction metadata holding ``{"proposals": {expert: [[answer, score], ...]},
#: "candidates": [{"action": answer, "features": {...}}]}``.
EXPERTS = "experts"

#: Inputs at least this similar to a past input are near-duplicates of it.
NEAR_DUPLICATE = 0.9

Proposal = list[tuple[JSON, float]]


@runtime_checkable
class Expert(Protocol):
    """A learner that proposes answers for an observation (best first, scores in [0, 1]).

    :class:`Prototypes` and :class:`~lifelong.learners.OnlineSoftmax` are experts; an agent's own LLM
    and example bank are experts it consults itself."""

    name: str

    def propose(self, observation: JSON, scope: Scope, k: int = 3) -> Proposal: ...

    def learn(self, step: Step) -> bool: ...


def top(scores: Mapping[str, float], k: int) -> Proposal:
    """The ``k`` best (answer, score) pairs of a score table, best first (ties: the earlier key)."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    return [(answer, float(score)) for answer, score in ranked[:k]]


def logged_proposals(step: Step) -> dict[str, Proposal]:
    """The proposals an interaction logged, by expert (empty when it logged none)."""
    block = step.interaction.metadata.get(EXPERTS)
    proposals = block.get("proposals") if isinstance(block, dict) else None
    if not isinstance(proposals, dict):
        return {}
    return {
        str(name): [(pair[0], float(pair[1])) for pair in rows if isinstance(pair, list) and len(pair) == 2]
        for name, rows in proposals.items()
        if isinstance(rows, list)
    }


def logged_candidates(step: Step) -> list[tuple[JSON, dict[str, float]]]:
    block = step.interaction.metadata.get(EXPERTS)
    rows = block.get("candidates") if isinstance(block, dict) else None
    if not isinstance(rows, list):
        return []
    return [
        (row.get("action"), {str(k): float(v) for k, v in row["features"].items()})
        for row in rows
        if isinstance(row, dict) and isinstance(row.get("features"), dict)
    ]


# ---------------------------------------------------------------------------------------- combiners


class ExpertMixture(Learner):
    """Conditional logit over the experts' candidate answers; see the module docstring.

    Parameters
    ----------
    lr
        AdaGrad base step size.
    l2
        L2 penalty on the weights (keeps them in the bounded set the regret bound assumes).
    per_expert
        How many answers of each proposal become candidates.
    """

    name = "ExpertMixture"

    def __init__(self, *, lr: float = 0.3, l2: float = 1e-4, per_expert: int = 3) -> None:
        super().__init__()
        check_scalar(lr, "lr", float, min_val=0, include_boundaries="neither")
        check_scalar(l2, "l2", float, min_val=0)
        check_scalar(per_expert, "per_expert", int, min_val=1)
        self.lr = lr
        self.l2 = l2
        self.per_expert = per_expert
        self.weights: dict[str, float] = {}
        self._g2: dict[str, float] = {}
        self.seen = 0
        self.covered = 0  # steps whose right answer was among the candidates

    def candidates(
        self,
        proposals: Mapping[str, Proposal],
        request: Mapping[str, float] | None = None,
        scores: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[tuple[JSON, dict[str, float]]]:
        """Every answer some expert proposes, with its features ``phi`` (request features included).

        ``scores`` holds the full score table of the experts that have one (class probabilities): each
        candidate then also gets every such expert's log-probability for it, scaled to [0, 1]
        (``1 + log10(max(p, 1e-3)) / 3``) — summed with weights, a product of experts (Hinton 2002).
        """
        answers: dict[str, JSON] = {}
        for rows in proposals.values():
            for answer, _ in rows[: self.per_expert]:
                if answer is not None:
                    answers.setdefault(repr(answer), answer)
        n_experts = max(1, len(proposals))
        out: list[tuple[JSON, dict[str, float]]] = []
        for key, answer in answers.items():
            phi: dict[str, float] = {}
            agree = 0
            for name, rows in proposals.items():
                for rank, (proposed, score) in enumerate(rows[: self.per_expert]):
                    if repr(proposed) == key:
                        phi[f"{name}.score"] = score
                        if rank == 0:
                            phi[f"{name}.top"] = 1.0
                            agree += 1
                        break
            phi["agree"] = agree / n_experts
            for name, table in (scores or {}).items():
                p = table.get(answer, 0.0) if isinstance(answer, str) else 0.0
                phi[f"{name}.logp"] = 1.0 + math.log10(max(p, 1e-3)) / 3.0
            for name, value in (request or {}).items():
                if f"{name.split('.')[0]}.top" in phi:  # request features of the expert this answer tops
                    phi[name] = value
            out.append((answer, phi))
        return out

    def logits(self, candidates: Sequence[tuple[JSON, Mapping[str, float]]]) -> np.ndarray:
        w = self.weights
        return np.array([sum(w.get(k, 0.0) * v for k, v in phi.items()) for _, phi in candidates])

    def choose(self, candidates: Sequence[tuple[JSON, Mapping[str, float]]]) -> tuple[JSON, float]:
        """The most probable candidate and its probability (None, 0.0 when there is none)."""
        if not candidates:
            return None, 0.0
        p = softmax(self.logits(candidates))
        best = int(np.argmax(p))  # ties: the earlier candidate
        return candidates[best][0], float(p[best])

    def _learn(self, step: Step) -> bool:
        candidates = logged_candidates(step)
        truth = right_answer(step)
        if not candidates or truth is None:
            return False
        self.seen += 1
        hits = [n for n, (answer, _) in enumerate(candidates) if answer == truth]
        if not hits:  # nothing to rank: no expert proposed the right answer (counted in `seen`)
            self.provenance.record("weights", step)
            return True
        self.covered += 1
        p = softmax(self.logits(candidates))
        grads: dict[str, float] = {}
        for n, (_, phi) in enumerate(candidates):
            coef = p[n] - (1.0 if n == hits[0] else 0.0)  # d(-log p_y) / d(logit_n)
            for k, v in phi.items():
                grads[k] = grads.get(k, 0.0) + coef * v
        for k, g in grads.items():
            g += self.l2 * self.weights.get(k, 0.0)
            self._g2[k] = self._g2.get(k, 0.0) + g * g
            self.weights[k] = self.weights.get(k, 0.0) - self.lr * g / math.sqrt(self._g2[k] + 1e-8)
        self.provenance.record("weights", step)
        return True

    def _get_state(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "g2": dict(self._g2),
            "seen": self.seen,
            "covered": self.covered,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        self._g2 = {k: float(v) for k, v in state["g2"].items()}
        self.seen = int(state["seen"])
        self.covered = int(state["covered"])


class Hedge(Learner):
    """Exponential weights over experts, voting with their top answers; see the module docstring.

    An expert that proposes nothing on a request takes loss 1 on it (abstaining is not free).
    """

    name = "Hedge"

    def __init__(self) -> None:
        super().__init__()
        self.losses: dict[str, float] = {}
        self.t = 0

    def eta(self) -> float:
        n = max(2, len(self.losses))
        return math.sqrt(8.0 * math.log(n) / max(1, self.t))

    def weights(self) -> dict[str, float]:
        if not self.losses:
            return {}
        best = min(self.losses.values())
        eta = self.eta()
        raw = {e: math.exp(-eta * (loss - best)) for e, loss in self.losses.items()}
        total = sum(raw.values())
        return {e: w / total for e, w in raw.items()}

    def choose(self, proposals: Mapping[str, Proposal]) -> tuple[JSON, float]:
        """The answer with the largest total weight of experts whose top answer it is."""
        weights = self.weights()
        votes: dict[str, tuple[float, JSON]] = {}
        for name, rows in proposals.items():
            if not rows or rows[0][0] is None:
                continue
            answer = rows[0][0]
            w = weights.get(name, 1.0 / max(1, len(proposals)))  # unseen experts: a uniform share
            total, _ = votes.get(repr(answer), (0.0, answer))
            votes[repr(answer)] = (total + w, answer)
        if not votes:
            return None, 0.0
        weight, answer = max(votes.values(), key=lambda v: v[0])
        return answer, weight

    def _learn(self, step: Step) -> bool:
        proposals = logged_proposals(step)
        truth = right_answer(step)
        if not proposals or truth is None:
            return False
        for name, rows in proposals.items():
            wrong = not rows or rows[0][0] != truth
            self.losses[name] = self.losses.get(name, 0.0) + float(wrong)
        self.t += 1
        self.provenance.record("weights", step)
        return True

    def _get_state(self) -> dict[str, Any]:
        return {"losses": dict(self.losses), "t": self.t}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.losses = {k: float(v) for k, v in state["losses"].items()}
        self.t = int(state["t"])
