"""Curricula: which task to try next (Voyager's automatic curriculum, §2.1).

Voyager asks GPT-4 for "the next task, as hard as still feasible, to discover as much as possible". The
:class:`AutoCurriculum` here works from the experience alone (no language model needed): it keeps the
agent alive first (a vital running low turns into the task whose lesson raised it), then proposes the
*frontier* — tasks not achieved yet in this episode, those the agent can already do or knows how to
attempt first, the ones it knows nothing about last, each dropped for the episode after repeated
failures — and explores new ground when nothing is left. :class:`FixedCurriculum` (the task list in its
given order) and :class:`RandomCurriculum` (uniformly at random) are the controls of the ablation
"without the curriculum".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lifelong.learners.skills.effects import EffectLessons
from lifelong.learners.skills.proposers import EXPLORE, identifier, needs_of, plan_for, providable
from lifelong.utils.validation import check_scalar


@dataclass
class State:
    """What a curriculum sees when it proposes."""

    tasks: Sequence[str]  # what the environment can judge (Crafter: its 22 achievements)
    tenant: str
    lessons: EffectLessons
    skills: set[str]  # function names of the callable skills
    unlocked: set[str]  # achieved in this episode
    failures: dict[str, int] = field(default_factory=dict)  # failed attempts this episode
    inventory: dict[str, int] = field(default_factory=dict)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    threat: str | None = None  # a creature that hurt the agent and is still in view
    seen: set[str] = field(default_factory=set)  # things seen this episode (creatures: in view now)
    actions: tuple[str, ...] = ()  # the environment's action and thing names (what a task name can point at)
    things: tuple[str, ...] = ()


class Curriculum(Protocol):
    name: str

    def propose(self, state: State) -> str: ...


class AutoCurriculum:
    """Survive, then the feasible frontier, then the unknown, then new ground (module docstring)."""

    name = "auto"

    def __init__(
        self, *, max_failures: int = 3, low: int = 3, vitals: Sequence[str] = ("drink", "food", "energy")
    ) -> None:
        self.max_failures = check_scalar(max_failures, "max_failures", int, min_val=1)
        self.low = check_scalar(low, "low", int, min_val=0)
        self.vitals = tuple(vitals)

    def propose(self, state: State) -> str:
        survive = self._survive(state)
        if survive is not None:
            return survive
        open_tasks = [
            t for t in state.tasks if t not in state.unlocked and state.failures.get(t, 0) < self.max_failures
        ]
        if not open_tasks:
            return EXPLORE
        order = {t: i for i, t in enumerate(state.tasks)}
        return min(open_tasks, key=lambda t: (self._known(state, t), state.failures.get(t, 0), order[t]))

    def _known(self, state: State, task: str) -> int:
        """How ready the agent is for ``task``, from experience: 0 a skill does it and what it acts on is
        at hand; 1 a lesson says which action unlocks it, at hand, its needs providable; 2 a guess from
        its name with no need known to be out of reach; 3 a need nothing known provides, or nothing at
        hand; 4 nothing points at it."""
        plan = plan_for(state.lessons, state.tenant, task, state.actions, state.things)
        if plan is None:
            return 4
        at_hand = not plan["target"] or plan["target"] in state.seen
        needs = needs_of(state.lessons, state.tenant, plan)
        ready = at_hand and providable(state.lessons, state.tenant, needs, state.inventory, state.seen)
        if not ready:
            return 3
        if identifier(task) in state.skills:
            return 0
        return 1 if plan["kind"] == "known" else 2

    def _survive(self, state: State) -> str | None:
        if state.threat is not None:  # what a lesson facing it unlocked, else a task named after it
            known = sorted(
                t
                for lesson in state.lessons.of(state.tenant)
                if lesson["target"] == state.threat
                for t in lesson["unlocked"]
            )
            named = [t for t in state.tasks if state.threat in t.split("_")]
            for task in known or named:
                if state.failures.get(f"{task}#threat", 0) < 2 * self.max_failures:
                    return str(task)
        for vital in self.vitals:
            if state.inventory.get(vital, self.low + 1) > self.low:
                continue
            for lesson in state.lessons.producers(state.tenant, gives=vital):
                for task in sorted(lesson["unlocked"]):
                    if state.failures.get(f"{task}#{vital}", 0) < self.max_failures:
                        return str(task)
        return None


class FixedCurriculum:
    """The tasks in their listed order, skipping those achieved this episode (a control)."""

    name = "fixed"

    def __init__(self, max_failures: int = 3) -> None:
        self.max_failures = check_scalar(max_failures, "max_failures", int, min_val=1)

    def propose(self, state: State) -> str:
        for task in state.tasks:
            if task not in state.unlocked and state.failures.get(task, 0) < self.max_failures:
                return task
        return EXPLORE


class RandomCurriculum:
    """A task drawn uniformly at random (a control: "without the curriculum")."""

    name = "random"

    def propose(self, state: State) -> str:
        return str(state.tasks[int(state.rng.integers(len(state.tasks)))])
