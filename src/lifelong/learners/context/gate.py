"""Suggestion gate: learns from accept/reject which suggestion to make — and when to stay silent.

An agent may have several candidate answers (the model's completion, the answer of the nearest past
example). For each it computes a few features — the model's token log-probabilities, the similarity of
the nearest example, whether the candidates agree, whether the text already appears in the file — and
the gate estimates the probability that the user accepts it with an online logistic regression
(AdaGrad, Duchi et al. 2011). The agent suggests the most probable candidate if its expected reward is
positive. Under Cursor Tab's rewards (+0.75 accepted, -0.25 rejected, 0 silent)::

    E[reward | suggest] = 0.75 p - 0.25 (1 - p) > 0   <=>   p > 0.25 = threshold

and stays silent otherwise — the behaviour Cursor reports from its online RL (fewer suggestions, a
higher accept rate), here from a 12-weight model that learns in microseconds.

The *objective* says what "pays" and is the user's choice — a gate can always raise its accept rate by
saying less, which is no win for a user who then types more:

- ``"reward"`` — the expected reward above: suggest iff ``p > threshold``;
- ``"chars"`` — expected characters saved: suggest the candidate with the largest
  ``p * len(text) - (1 - p) * reject_chars`` iff it is positive (a rejection costs the user about
  ``reject_chars`` characters of attention);
- ``"answer"`` — for free-text answers: serve the candidate most likely right, where a *recalled* one
  (the corrected answer of an earlier request, ``direct`` or ``example``) must also clear the *answer
  cut*: a recalled answer served to a question it does not answer (a correction misapplied) costs the
  user more than a generated answer that misses, so at most ``misapply_budget`` of the requests may get
  one, by the gate's own estimate. Over the recent ``window`` requests, the cut is the lowest
  probability such that serving every recalled candidate at or above it would have misapplied
  ``sum(1 - p)`` ≤ ``misapply_budget`` × requests (a Neyman–Pearson-style constraint on the expected
  misapplications, with the current probabilities). Until ``min_right`` recalled candidates have been
  seen to be right, no recalled answer clears it (a fresh gate's probabilities are no estimate); as its
  probabilities separate right recalled answers from wrong ones, more do;
- ``"keep"`` (the default) — reward *subject to not losing accepted work*: the threshold is the reward
  threshold, lowered to the ``keep_loss`` quantile of the current probabilities of the candidates that
  were right over the last ``window`` requests, so that (on recent evidence) at most a ``keep_loss``
  share of the suggestions that would have been accepted is silenced (none of them, while fewer than
  ``min_right`` are known; while none is, it suggests everything for the first ``warmup`` candidates,
  as the frozen control does, then falls back to the reward threshold).

When the frozen model's own answer is among the candidates (``plain``, see
:class:`~lifelong.agents.Agent`), which candidate to serve is chosen conservatively: the plain answer,
unless another source has beaten it where the two disagreed, by a margin its lower confidence bound
clears — so learning never serves worse answers than the control; it only adds good ones and silence.

The features of every candidate are computed here, in one place (:func:`candidates`), from the
candidate's answer and the request's :class:`Evidence`; agents and tests only say which candidates there
are. Every candidate and its features are logged with the interaction (``metadata["gate"]``), and the right
answer arrives as a correction even when the agent stayed silent, so the gate learns from every
candidate of every request (full information: no exploration needed) and replays exactly from the log.
Before it has learned anything the gate suggests everything (p = 0.5), as the frozen control does.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.experience.records import JSON, Step
from lifelong.learners.base import Learner
from lifelong.utils.text import normalise
from lifelong.utils.validation import check_choice, check_scalar

#: What a gate can optimise (see the module docstring).
OBJECTIVES = ("keep", "reward", "chars", "answer")

#: Key of the interaction metadata that holds the candidates: ``[{"action": ..., "features": {...}}]``.
GATE = "gate"


#: The source of a candidate is named by its indicator feature: ``plain`` is the frozen model's answer,
#: ``model`` the model's answer with the learned context, ``direct`` the answer the experts recall for
#: the request (the corrected answer of earlier requests like it), ``example`` the nearest example's.
PLAIN = "plain"
SOURCES = (PLAIN, "model", "direct", "example")

#: Sources whose answer was given to an earlier request (served to another question, it is misapplied).
RECALLED_SOURCES = ("direct", "example")


def source_of(features: Mapping[str, Any]) -> str:
    """Which expert a gate candidate came from (its indicator feature)."""
    if "agrees_with_plain" in features:  # the model said with its context what it says without
        return PLAIN
    return next((s for s in SOURCES if s in features), "other")


def same_answer(a: JSON, b: JSON) -> bool:
    """Equal up to whitespace (strings) or exactly (other JSON values)."""
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    return bool(a == b)


@dataclass(frozen=True)
class Evidence:
    """What a request's candidates are judged against, besides their own answers.

    ``similarity`` is the nearest past example's similarity to the request and ``example_answer`` its
    answer (for label tasks: the recalled examples' similarity vote, with its ``vote_share``);
    ``seen`` the normalised lines already in the request's context (code being repeated); ``novelty``
    the share of the request's words the nearest example's input lacks (a question that only *looks*
    like an earlier one: "production" where it said "staging").
    """

    similarity: float = 0.0
    example_answer: JSON = None
    example_usefulness: float = 0.5
    vote_share: float | None = None
    seen: frozenset[str] = frozenset()
    novelty: float | None = None


def candidates(
    evidence: Evidence,
    *,
    model: tuple[JSON, Sequence[float]] | None = None,
    amended: bool = False,
    plain: tuple[JSON, Sequence[float]] | None = None,
    direct: tuple[JSON, float] | None = None,
) -> list[tuple[JSON, dict[str, float]]]:
    """The candidates a :class:`SuggestionGate` chooses from, with their features.

    ``model`` is the model's answer with the learned context and its token log-probabilities
    (``amended`` when a lesson replaced it); ``plain`` the model's answer without any recalled context
    (the frozen control's), offered when it differs; ``direct`` the answer the experts recall for the
    request with the combiner's probability, offered when it differs from both; the evidence's
    ``example_answer`` comes last, when no candidate gives it already.
    """
    extra = {"vote_share": evidence.vote_share} if evidence.vote_share is not None else {}
    example_answer = evidence.example_answer
    options: list[tuple[JSON, dict[str, float]]] = []

    def agrees(answer: JSON, other: JSON) -> float:
        return float(other is not None and same_answer(answer, other))

    def common(answer: JSON) -> dict[str, float]:
        return {
            "example_similarity": evidence.similarity,
            "agrees_with_example": agrees(answer, example_answer),
            "in_context": float(normalise(str(answer)) in evidence.seen),
        }

    def generated(lp: Sequence[float]) -> dict[str, float]:
        logprobs = list(lp) or [0.0]
        return {
            "logprob_mean": sum(logprobs) / len(logprobs),
            "p_mean": math.exp(sum(logprobs) / len(logprobs)),  # geometric mean of the token probabilities
            "logprob_min": min(logprobs),
            "tokens": len(lp) / 10.0,
        }

    def length(answer: JSON) -> float:
        return min(len(str(answer)), 80) / 40.0

    if model is not None and model[0] is not None:
        answer = model[0]
        options.append(
            (
                answer,
                {
                    "model": 1.0,
                    **generated(model[1]),
                    **common(answer),
                    "amended_by_lesson": float(amended),
                    **({"agrees_with_plain": 1.0} if plain is not None and agrees(answer, plain[0]) else {}),
                    "length": length(answer),
                    **extra,
                },
            )
        )
    taken = [a for a, _ in options]
    if plain is not None and plain[0] is not None and not any(same_answer(a, plain[0]) for a in taken):
        options.append(
            (plain[0], {"plain": 1.0, **generated(plain[1]), **common(plain[0]), "length": length(plain[0])})
        )
    taken = [a for a, _ in options]
    if direct is not None and direct[0] is not None and not any(same_answer(a, direct[0]) for a in taken):
        answer, p = direct
        options.append(
            (
                answer,
                {
                    "direct": 1.0,
                    "combined_p": p,
                    **common(answer),
                    **({"novelty": evidence.novelty} if evidence.novelty is not None else {}),
                    "length": length(answer),
                },
            )
        )
    taken = [a for a, _ in options]
    if example_answer is not None and not any(same_answer(a, example_answer) for a in taken):
        options.append(
            (
                example_answer,
                {
                    "example": 1.0,
                    "example_similarity": evidence.similarity,
                    "example_usefulness": evidence.example_usefulness,
                    "in_context": float(normalise(str(example_answer)) in evidence.seen),
                    **({"novelty": evidence.novelty} if evidence.novelty is not None else {}),
                    "length": length(example_answer),
                    **extra,
                },
            )
        )
    return options


class SuggestionGate(Learner):
    """Online logistic regression over candidate features; see the module docstring."""

    def __init__(
        self,
        *,
        objective: str = "keep",
        threshold: float = 0.25,
        reject_chars: float = 4.0,
        misapply_budget: float = 0.05,
        keep_loss: float = 0.02,
        window: int = 200,
        min_right: int = 20,
        warmup: int = 50,
        z: float = 1.0,
        min_duels: int = 20,
        lr: float = 0.5,
        l2: float = 1e-4,
    ) -> None:
        super().__init__()
        check_choice(objective, "objective", OBJECTIVES)
        check_scalar(threshold, "threshold", float, min_val=0, max_val=1, include_boundaries="left")
        check_scalar(reject_chars, "reject_chars", float, min_val=0)
        check_scalar(misapply_budget, "misapply_budget", float, min_val=0, max_val=1)
        check_scalar(keep_loss, "keep_loss", float, min_val=0, max_val=1, include_boundaries="left")
        check_scalar(window, "window", int, min_val=1)
        check_scalar(min_right, "min_right", int, min_val=1)
        check_scalar(lr, "lr", float, min_val=0, include_boundaries="neither")
        self.objective = objective
        self.threshold = threshold
        self.reject_chars = reject_chars
        self.misapply_budget = misapply_budget
        self.keep_loss = keep_loss
        self.window = window
        self.min_right = min_right
        self.warmup = warmup
        self.z = z
        self.min_duels = min_duels
        self.duels: dict[str, tuple[int, float, float]] = {}  # source -> (n, sum d, sum d^2)
        self.lr = lr
        self.l2 = l2
        self.weights: dict[str, float] = {}
        self._g2: dict[str, float] = {}
        self.seen = 0
        self._right: deque[dict[str, float]] = deque(maxlen=window)  # features of right candidates
        self.cut = 0.0 if objective == "keep" else threshold
        # answer objective: per recent request, the features of its best recalled candidate (or None),
        # and how many recalled candidates were right so far
        self._recalled: deque[dict[str, float] | None] = deque(maxlen=window)
        self._recalled_right = 0
        self.answer_cut = 1.0

    def probability(self, features: Mapping[str, float]) -> float:
        """Estimated probability that a candidate with these features is accepted."""
        z = self.weights.get("bias", 0.0) + sum(self.weights.get(k, 0.0) * v for k, v in features.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def value(self, answer: JSON, p: float, source: str = "model") -> float:
        """The objective's expected value of suggesting ``answer`` (accepted with probability ``p``)
        from ``source``; staying silent is worth 0 (under ``answer``, a recalled candidate below the
        answer cut is worth -1: never served)."""
        if self.objective == "chars":
            return p * len(str(answer).strip()) - (1.0 - p) * self.reject_chars
        if self.objective == "answer":
            return -1.0 if source in RECALLED_SOURCES and p < self.answer_cut else p
        return p - self.cut  # reward and keep: suggest above the (current) threshold

    def choose(self, candidates: list[tuple[JSON, dict[str, float]]]) -> tuple[JSON, float]:
        """The candidate to suggest and its probability; (None, p) when staying silent pays more.

        With a ``plain`` candidate (the frozen model's own answer) the choice is conservative: that
        answer is served unless another source has been shown, with confidence, to beat it where the
        two disagree (:meth:`trusted_source`); the objective then decides between it and silence.
        """
        if not candidates:
            return None, 0.0
        sources = [source_of(features) for _, features in candidates]
        if self.objective == "answer":  # the likeliest answer; a recalled one only above the answer cut
            values = [
                (self.value(a, self.probability(f), src), n)
                for n, ((a, f), src) in enumerate(zip(candidates, sources, strict=True))
            ]
            value, best = max(values, key=lambda v: (v[0], -v[1]))
            p = self.probability(candidates[best][1])
            return (candidates[best][0] if value >= 0 else None), p
        if PLAIN in sources:
            trusted = self.trusted_source()
            n = sources.index(trusted) if trusted in sources else sources.index(PLAIN)
            answer, features = candidates[n]
            p = self.probability(features)
            return (answer if self.value(answer, p) > 0 else None), p
        scored = []
        for n, (answer, features) in enumerate(candidates):
            p = self.probability(features)
            scored.append((self.value(answer, p), p, n))
        value, p, best = max(scored, key=lambda s: (s[0], -s[2]))  # ties: the earlier candidate
        return (candidates[best][0] if value > 0 else None), p

    def utility(self, action: JSON, truth: JSON) -> float:
        """What ``action`` was worth under the objective once the right answer ``truth`` is known."""
        if action is None:
            return 0.0
        right = same_answer(action, truth)
        if self.objective == "answer":
            return 1.0 if right else 0.0
        if self.objective == "chars":
            return float(len(str(truth).strip())) if right else -self.reject_chars
        return 0.75 if right else -0.25

    def trusted_source(self) -> str:
        """The source to serve over the plain answer: the one whose advantage where they disagree
        (right minus plain right, per disagreement) has the largest lower confidence bound
        ``mean - z sd / sqrt(n)`` above 0 — a conservative improvement on the frozen model, in the spirit
        of conservative bandits (Wu et al., NeurIPS 2016); the plain answer otherwise."""
        best, best_bound = PLAIN, 0.0
        for source, (n, total, squares) in self.duels.items():
            if n < self.min_duels:
                continue
            mean = total / n
            sd = math.sqrt(max(squares / n - mean * mean, 0.0))
            bound = mean - self.z * sd / math.sqrt(n)
            if bound > best_bound:
                best, best_bound = source, bound
        return best

    def _duel(self, gate: list[Any], truth: JSON) -> None:
        """Record, for each other source, whether it beat the plain answer where they disagreed."""
        rows = [
            (source_of(c["features"]), c.get("action")) for c in gate if isinstance(c.get("features"), dict)
        ]
        plain = [a for s, a in rows if s == PLAIN]
        if not plain:
            return
        plain_right = float(same_answer(plain[0], truth))
        for source, action in rows:
            if source == PLAIN:
                continue
            d = float(same_answer(action, truth)) - plain_right
            n, total, squares = self.duels.get(source, (0, 0.0, 0.0))
            self.duels[source] = (n + 1, total + d, squares + d * d)

    def _learn(self, step: Step) -> bool:
        gate = step.interaction.metadata.get(GATE)
        if not isinstance(gate, list) or not gate:
            return False
        has_truth = step.corrected
        truth = step.correction
        accepted = step.accepted
        if self.objective == "answer" and not has_truth and accepted is True:
            # a free-text answer accepted is *the* right answer: every candidate is judged against it
            has_truth, truth = True, step.interaction.action
        if has_truth:
            self._duel(gate, truth)
        changed = False
        for candidate in gate:
            action, features = candidate.get("action"), candidate.get("features")
            if not isinstance(features, dict):
                continue
            if has_truth:
                label = same_answer(action, truth)
            elif accepted is not None and same_answer(action, step.interaction.action):
                label = accepted
            else:
                continue
            self._sgd(features, 1.0 if label else 0.0)
            if label:
                self._right.append({str(k): float(v) for k, v in features.items()})
            changed = True
        if changed and self.objective == "keep":
            self.cut = self._keep_cut()
        if changed and self.objective == "answer":
            recalled = [
                {str(k): float(v) for k, v in c["features"].items()}
                for c in gate
                if isinstance(c.get("features"), dict) and source_of(c["features"]) in RECALLED_SOURCES
            ]
            self._recalled.append(max(recalled, key=self.probability) if recalled else None)
            if has_truth:
                self._recalled_right += sum(
                    1
                    for c in gate
                    if isinstance(c.get("features"), dict)
                    and source_of(c["features"]) in RECALLED_SOURCES
                    and same_answer(c.get("action"), truth)
                )
            self.answer_cut = self._answer_cut()
        if changed:
            self.provenance.record("weights", step)  # what an erasure of this interaction must find
        return changed

    def _keep_cut(self) -> float:
        """The reward threshold, lowered so that at most ``keep_loss`` of the recent right candidates
        fall below it (below all of them while fewer than ``min_right`` are known; while none is, 0 for
        the first ``warmup`` candidates and then the plain reward threshold)."""
        if not self._right:  # no accepted work seen yet: like the control at first, then the reward rule
            return 0.0 if self.seen < self.warmup else self.threshold
        p = np.array([self.probability(f) for f in self._right])
        loss = self.keep_loss if len(self._right) >= self.min_right else 0.0
        return float(min(self.threshold, np.quantile(p, loss, method="lower") - 1e-9))

    def _answer_cut(self) -> float:
        """The least probability a recalled candidate needs (module docstring): the lowest cut at which
        the recent requests' recalled candidates above it add up to at most ``misapply_budget`` × requests
        expected misapplications (1.0, nothing recalled is served, while that allows none)."""
        if self._recalled_right < self.min_right:  # a fresh gate's probabilities are no estimate yet
            return 1.0 + 1e-9
        allowed = self.misapply_budget * len(self._recalled)
        spent, cut = 0.0, 1.0 + 1e-9
        for p in sorted((self.probability(f) for f in self._recalled if f is not None), reverse=True):
            if spent + (1.0 - p) > allowed:
                break
            spent, cut = spent + (1.0 - p), p
        return cut

    def _sgd(self, features: Mapping[str, Any], y: float) -> None:
        grad = self.probability(features) - y  # d(log loss)/dz
        for key, value in [("bias", 1.0), *features.items()]:
            g = grad * float(value) + self.l2 * self.weights.get(key, 0.0)
            self._g2[key] = self._g2.get(key, 0.0) + g * g
            self.weights[key] = self.weights.get(key, 0.0) - self.lr * g / math.sqrt(self._g2[key] + 1e-8)
        self.seen += 1

    def _get_state(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "g2": dict(self._g2),
            "seen": self.seen,
            "right": [dict(f) for f in self._right],
            "cut": self.cut,
            "duels": {k: list(v) for k, v in self.duels.items()},
            "recalled": [None if f is None else dict(f) for f in self._recalled],
            "recalled_right": self._recalled_right,
            "answer_cut": self.answer_cut,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.weights = {k: float(v) for k, v in state["weights"].items()}
        self._g2 = {k: float(v) for k, v in state["g2"].items()}
        self.seen = int(state["seen"])
        self._right = deque(
            ({str(k): float(v) for k, v in f.items()} for f in state.get("right", [])), maxlen=self.window
        )
        self.cut = float(state.get("cut", self.threshold))
        self.duels = {
            str(k): (int(v[0]), float(v[1]), float(v[2])) for k, v in state.get("duels", {}).items()
        }
        self._recalled = deque(
            (
                None if f is None else {str(k): float(v) for k, v in f.items()}
                for f in state.get("recalled", [])
            ),
            maxlen=self.window,
        )
        self._recalled_right = int(state.get("recalled_right", 0))
        self.answer_cut = float(state.get("answer_cut", 1.0))
