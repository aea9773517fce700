"""Running an :class:`~lifelong.agents.Agent` through an environment, and what to measure on the way.

:func:`run_agent` is the prequential protocol for agents: each observation is answered *before* its
feedback is known, the environment judges the answer, and the feedback (reward, accept/reject, the
right answer as a correction) goes back through :meth:`Agent.feedback` — logged, then learned from —
before the next observation. The :class:`AgentTrace` keeps one row per request: reward, whether a
suggestion was made and accepted, the cost (model calls, tokens, seconds) and the ``pattern`` of the
request (the intent, or the normalised code line) for :func:`repeat_error_rate`.

**Why not** :func:`~lifelong.eval.loop.run_stream`: the order of the loop is the same (act, judge,
log, learn), but an :class:`Agent` is not one learner — it owns its log and a dozen learners, writes the
interaction with its recall and gate metadata itself in :meth:`Agent.act`, and logs-then-learns the
feedback itself in :meth:`Agent.feedback`. Driving it through ``run_stream`` would log every
interaction twice and lose the per-request cost (model calls, tokens, seconds) the trace keeps.
:class:`AgentRun` steps one request at a time so that a learner and its control go in lockstep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.agents.agent import Agent
from lifelong.envs.base import Env
from lifelong.envs.code_completion import ACCEPT_REWARD, REJECT_REWARD
from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.context.base import query_text
from lifelong.learners.context.gate import same_answer


@dataclass
class AgentTrace:
    """Per-request records of one run."""

    reward: list[float] = field(default_factory=list)
    suggested: list[bool] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)  # accepted / correct label
    chars_saved: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    model_calls: list[int] = field(default_factory=list)
    act_seconds: list[float] = field(default_factory=list)
    learn_seconds: list[float] = field(default_factory=list)
    pattern: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # the text each request is searched by

    def __len__(self) -> int:
        return len(self.reward)

    def summary(self) -> dict[str, float]:
        n = max(1, len(self))
        suggestions = max(1, sum(self.suggested))
        return {
            "requests": float(len(self)),
            "accept_rate": sum(self.right) / suggestions,  # of the suggestions made
            "right_rate": sum(self.right) / n,  # of all requests (accuracy for labelling)
            "suggestion_rate": sum(self.suggested) / n,
            "reward_per_request": sum(self.reward) / n,
            "chars_saved": float(sum(self.chars_saved)),
            "repeat_error_rate": repeat_error_rate(self.pattern, self.right, self.suggested),
            "model_calls_per_request": sum(self.model_calls) / n,
            "tokens_per_request": (sum(self.prompt_tokens) + sum(self.completion_tokens)) / n,
            "act_seconds_per_request": sum(self.act_seconds) / n,
            "learn_seconds_per_request": sum(self.learn_seconds) / n,
        }


class AgentRun:
    """One agent going through one stream order, a request per :meth:`step` (for lockstep runs)."""

    def __init__(self, agent: Agent, env: Env[Any, Any], seed: int) -> None:
        self.agent = agent
        self.env = env
        self.trace = AgentTrace()
        self.observation, info = env.reset(seed=seed)
        self.scope: Scope = info.get("scope", env.scope)
        self.done = False

    def step(self) -> AgentTrace:
        """Answer the current request, let the environment judge it, and learn from the feedback."""
        if self.done:
            raise InvalidInput("this run has ended", field="step")
        trace, agent = self.trace, self.agent
        now = 1.7e9 + len(trace)  # the stream's own clock: one second per request, the same on every run
        observation = self.observation
        response = agent.act(observation, self.scope, now=now)
        self.observation, reward, self.done, _, info = self.env.step(response.action)
        accepted = info.get("accepted")
        correct = info.get("correct_action")
        start = time.perf_counter()
        agent.feedback(
            response.id,
            reward=float(reward),
            accept=accepted if isinstance(accepted, bool) else None,
            correction=correct,
            now=now + 0.5,
        )
        trace.learn_seconds.append(time.perf_counter() - start)
        trace.reward.append(float(reward))
        trace.suggested.append(response.action is not None)
        trace.right.append(bool(accepted) if "accepted" in info else response.action == correct)
        trace.chars_saved.append(int(info.get("chars_saved", 0)))
        trace.prompt_tokens.append(response.prompt_tokens)
        trace.completion_tokens.append(response.completion_tokens)
        trace.model_calls.append(response.model_calls)
        trace.act_seconds.append(response.seconds)
        trace.pattern.append(str(info.get("pattern", correct)))
        trace.inputs.append(query_text(observation))
        self.scope = info.get("scope", self.scope)
        return trace


def run_agent(
    agent: Agent,
    env: Env[Any, Any],
    seed: int,
    *,
    on_step: Callable[[AgentTrace], None] | None = None,
) -> AgentTrace:
    """Run ``agent`` through ``env`` (one stream order, ``seed``) and return its trace."""
    run = AgentRun(agent, env, seed)
    while not run.done:
        run.step()
        if on_step is not None:
            on_step(run.trace)
    return run.trace


def repeat_error_rate(pattern: list[str], right: list[bool], suggested: list[bool] | None = None) -> float:
    """Of the corrected mistakes whose pattern comes again later, the share still not right next time.

    A mistake is a request answered wrongly (for suggestions: a rejected one); its correction is the
    right answer. The next request with the same pattern (the same intent, the same code line) counts
    as a repeat error unless it is right. NaN when no corrected mistake ever recurs.
    """
    suggested = suggested if suggested is not None else [True] * len(right)
    next_seen: dict[str, int] = {}
    following = np.full(len(pattern), -1)
    for t in range(len(pattern) - 1, -1, -1):
        following[t] = next_seen.get(pattern[t], -1)
        next_seen[pattern[t]] = t
    repeats = [
        not right[following[t]]
        for t in range(len(pattern))
        if suggested[t] and not right[t] and following[t] >= 0
    ]
    return float(np.mean(repeats)) if repeats else float("nan")


def near_duplicate_repeat_rate(vectors: np.ndarray, right: list[bool], threshold: float = 0.9) -> float:
    """Of the requests whose input is a near-duplicate (cosine >= ``threshold``) of an earlier input
    that was answered wrongly — and then corrected — the share answered wrongly again. NaN when none.

    This is the repeat error a learner from experience should essentially never make (the same
    question, re-typed); :func:`repeat_error_rate` counts the looser "same intent / same line" kind.
    """
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    wrong_before = np.zeros((0, v.shape[1]))
    repeats: list[bool] = []
    for t in range(len(right)):
        if len(wrong_before) and float(np.max(wrong_before @ v[t])) >= threshold:
            repeats.append(not right[t])
        if not right[t]:
            wrong_before = np.vstack([wrong_before, v[t]])
    return float(np.mean(repeats)) if repeats else float("nan")


def trace_of_answers(
    steps: list[Step], answer_of: Callable[[Step], JSON], like: AgentTrace, *, suggestions: bool
) -> AgentTrace:
    """The trace an expert would have had serving its own answers on the same stream.

    Exact whenever the expert's learning does not depend on what was served — true of the agent's
    experts, which learn from the right answer every step reveals (a full-information stream). Costs
    are not counted (they are the serving agent's). ``suggestions`` scores like code completion
    (accept on an exact match up to whitespace, Cursor's rewards, characters saved), else like labels.
    """
    trace = AgentTrace()
    for n, step in enumerate(steps):
        truth = step.correction
        answer = answer_of(step)
        right = answer is not None and (same_answer(answer, truth) if suggestions else answer == truth)
        trace.suggested.append(answer is not None)
        trace.right.append(right)
        if suggestions:
            trace.reward.append(0.0 if answer is None else ACCEPT_REWARD if right else REJECT_REWARD)
            trace.chars_saved.append(len(str(truth).strip()) if right else 0)
        else:
            trace.reward.append(float(right))
            trace.chars_saved.append(0)
        for name in ("prompt_tokens", "completion_tokens", "model_calls"):
            getattr(trace, name).append(0)
        trace.act_seconds.append(0.0)
        trace.learn_seconds.append(0.0)
        trace.pattern.append(like.pattern[n])
        trace.inputs.append(like.inputs[n])
    return trace


def logged_steps(log: ExperienceLog) -> list[Step]:
    """Every step of a (one-run) log, in interaction order."""
    return list(log.replay())
