"""The learning curve of a tenant or an app: the served answers against the frozen shadow control's, in
what the user got — right answers served, accepted completions — per window of judged requests.

A served answer is judged by its feedback: a rating (on its scale), an accept or reject, a correction
(right when the answer was the corrected one), else a reward. The shadow — the same model answering the
same request with nothing learned (``metadata["plain_answer"]``) — is judged when it gave the served
answer, or by a correction; an accept or reject of a different answer says nothing about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lifelong.agents.agent import PLAIN_ANSWER
from lifelong.experience.records import FeedbackKind, Step
from lifelong.learners.context.gate import same_answer

#: The endpoints whose interactions are answers (the memories endpoint's are not).
ANSWERS = ("chat", "completion")


def scores(step: Step) -> tuple[float | None, float | None]:
    """How the served answer and the frozen shadow's answer did (None: not judged); see the module
    docstring."""
    served: float | None = None
    rating = step.last(FeedbackKind.RATING)
    if rating is not None and rating.scale is not None:
        low, high = rating.scale
        served = (float(rating.value) - low) / (high - low) if high > low else None
    elif step.accepted is not None:
        served = float(step.accepted)
    elif step.corrected:
        served = float(same_answer(step.interaction.action, step.correction))
    elif step.reward is not None:
        served = float(step.reward)
    metadata = step.interaction.metadata
    if PLAIN_ANSWER not in metadata:
        return served, None
    plain = metadata[PLAIN_ANSWER]
    if (
        plain is not None
        and step.interaction.action is not None
        and same_answer(plain, step.interaction.action)
    ):
        return served, served
    if step.corrected:
        return served, float(plain is not None and same_answer(plain, step.correction))
    if plain is None and step.interaction.action is None:  # both stayed silent: judged alike
        return served, served
    return served, None


def learning_curve(steps: Iterable[Step], window: int) -> dict[str, Any]:
    """The served answers' score against the frozen shadow's, per window of judged requests, oldest
    first; ``served`` and ``shadow`` are also summed (right answers served, of all judged requests)."""
    judged = []
    for step in steps:
        if step.interaction.metadata.get("endpoint") not in ANSWERS:
            continue
        served, shadow = scores(step)
        if served is not None:
            judged.append((step.interaction.time, served, shadow))
    points = []
    for start in range(0, len(judged), window):
        part = judged[start : start + window]
        paired = [(a, b) for _, a, b in part if b is not None]
        points.append(
            {
                "end": part[-1][0],
                "requests": len(part),
                "served": sum(a for _, a, _ in part) / len(part),
                "paired": len(paired),
                "served_paired": sum(a for a, _ in paired) / len(paired) if paired else None,
                "shadow": sum(b for _, b in paired) / len(paired) if paired else None,
            }
        )
    paired_all = [(a, b) for _, a, b in judged if b is not None]
    return {
        "window": window,
        "judged": len(judged),
        "paired": len(paired_all),
        "served": sum(a for _, a, _ in judged) / len(judged) if judged else None,
        "served_paired": sum(a for a, _ in paired_all) / len(paired_all) if paired_all else None,
        "shadow": sum(b for _, b in paired_all) / len(paired_all) if paired_all else None,
        "right_served": sum(a for _, a, _ in judged),
        "right_shadow": sum(b for _, b in paired_all),
        "points": points,
    }
