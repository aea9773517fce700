"""The environment contract: where interactions come from.

Modelled on gymnasium's ``Env`` so standard environments plug in (:mod:`lifelong.interop.gymnasium`):
``reset(seed=...)`` returns ``(observation, info)`` and ``step(action)`` returns
``(observation, reward, terminated, truncated, info)``. ``lifelong`` reads a few optional keys of the
step ``info`` to build richer feedback than a bare reward:

- ``"correct_action"`` — the right answer, logged as a correction;
- ``"accepted"`` — True/False, logged as accept/reject;
- ``"best_reward"`` — the reward the best action would have earned here, for regret;
- ``"scope"`` (in reset or step info) — whose turn the *next* observation is (multi-user environments).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from lifelong.experience.records import Feedback, Scope

ObsT = TypeVar("ObsT")
ActT = TypeVar("ActT")

StepResult = tuple[Any, float, bool, bool, dict[str, Any]]


class Env(ABC, Generic[ObsT, ActT]):
    """A source of observations that judges the actions taken on them."""

    #: The scope of the interactions this environment produces, unless an info dict says otherwise.
    scope: Scope = Scope()

    @abstractmethod
    def reset(self, *, seed: int | None = None) -> tuple[ObsT, dict[str, Any]]:
        """Start (or restart) the stream; the same seed gives the same order."""

    @abstractmethod
    def step(self, action: ActT) -> StepResult:
        """Judge ``action`` on the current observation and move on."""

    def close(self) -> None:
        """Release resources."""


#: Scores a predictor on held-out data without letting it learn (e.g. accuracy on a test split).
Probe = Callable[[Any], float]


def feedback_from(
    interaction_id: str, reward: float, info: Mapping[str, Any], *, time: float | None = None
) -> tuple[Feedback, ...]:
    """The feedback an environment's step result carries, in the log's vocabulary."""
    kw: dict[str, Any] = {} if time is None else {"time": time}
    feedback = [Feedback.reward(interaction_id, float(reward), **kw)]
    accepted = info.get("accepted")
    if accepted is True:
        feedback.append(Feedback.accept(interaction_id, **kw))
    elif accepted is False:
        feedback.append(Feedback.reject(interaction_id, **kw))
    if info.get("correct_action") is not None:
        feedback.append(Feedback.correction(interaction_id, info["correct_action"], **kw))
    return tuple(feedback)
