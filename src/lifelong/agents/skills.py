"""The episodic agent: Voyager's four roles over a game, every decision in the experience log.

One episode is one session scope (``Scope(tenant, user=agent, session="episode-N")``). In it the agent
repeats Voyager's loop (Wang et al. 2023, Fig. 2):

1. the **curriculum** proposes a task (:mod:`lifelong.learners.skills.curriculum`);
2. the top-5 skills relevant to it are **retrieved** from the library, and the **proposer** writes a
   program — or names a sub-goal to achieve first (:mod:`lifelong.learners.skills.proposers`);
3. the program runs in the **sandbox** (:mod:`lifelong.learners.skills.sandbox`) against the game's
   primitive API, with a step budget; an error, a loop or a broken rule ends the run, not the episode;
4. the **critic** (self-verification) judges it — did the task's achievement counter move? — and the
   attempt is logged: the interaction (task, observation, program, what was retrieved) and its feedback
   (the verdict with the run's effects as ``Feedback.outcome``, the game's reward as ``Feedback.reward``);
   then the learners learn the step. A failure goes back to the proposer with its error and critique,
   up to ``attempts`` times (the iterative prompting loop).

At the end of an episode every candidate skill it wrote is **verified in a fresh world** (a new seed;
each run logged with ``metadata["gate"]``); the library promotes those that pass, and with a
:class:`~lifelong.state.VersionStore` the library is committed and promoted through
:func:`library_gate`, so a version that would serve an unverified skill is never served and any version
can be rolled back.

``carry=False`` is the frozen control of the new-game protocol: the same primitives, proposer and
curriculum, but nothing kept between episodes (the library and the lessons start empty each time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.envs.crafter import (
    ACHIEVEMENTS,
    ACTIONS,
    CREATURES,
    MATERIALS,
    WALKABLE,
    CrafterText,
    Hurt,
    OutOfSteps,
    Primitives,
)
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Feedback, Interaction, Scope, Step
from lifelong.learners.context.base import RECALLED
from lifelong.learners.skills.curriculum import AutoCurriculum, Curriculum, State
from lifelong.learners.skills.effects import EffectLessons, compress
from lifelong.learners.skills.library import GATE, SkillLibrary
from lifelong.learners.skills.proposers import EXPLORE, Context, ModelFreeProposer, Proposal
from lifelong.learners.skills.sandbox import Sandbox, SkillRun
from lifelong.state.store import GateResult, VersionStore
from lifelong.utils.validation import check_scalar

#: Seeds of the fresh worlds skills are verified in (far from any seed a protocol plays).
GATE_SEED_BASE = 1_000_000


class SkillFailed(Exception):
    """A skill called by another skill failed; the caller's run fails with this message."""


@dataclass
class EpisodeReport:
    """What one episode did."""

    episode: int
    seed: int
    unlocked: list[str]
    reward: float
    steps: int  # environment steps of the episode
    gate_steps: int  # environment steps spent verifying skills in fresh worlds
    decisions: int
    failures: int
    errors: list[str] = field(default_factory=list)
    llm_calls: int = 0
    tokens: int = 0
    skills: int = 0  # promoted skills after the episode
    unlocked_at: dict[str, int] = field(default_factory=dict)  # achievement → episode step

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "seed": self.seed,
            "unlocked": self.unlocked,
            "achievements": len(self.unlocked),
            "reward": self.reward,
            "steps": self.steps,
            "gate_steps": self.gate_steps,
            "decisions": self.decisions,
            "failures": self.failures,
            "errors": self.errors[:5],
            "llm_calls": self.llm_calls,
            "tokens": self.tokens,
            "skills": self.skills,
            "unlocked_at": self.unlocked_at,
        }


def library_gate(candidate: dict[str, Any], current: dict[str, Any] | None) -> GateResult:
    """The :class:`~lifelong.state.VersionStore` gate of a library version: every skill it would serve
    passed verification in a fresh world."""
    items = candidate["state"]["items"]
    served = [i for i in items if i["status"] == "active" and i["payload"].get("stage") == "promoted"]
    unverified = sorted(str(i["payload"]["skill"]) for i in served if int(i["payload"].get("passes", 0)) < 1)
    return GateResult(
        passed=not unverified,
        metrics={"skills": len(served), "unverified": len(unverified)},
        reason="" if not unverified else "unverified skills would be served: " + ", ".join(unverified),
    )


class SkillAgent:
    """Plays Crafter episodes with Voyager's loop; see the module docstring."""

    def __init__(
        self,
        log: ExperienceLog,
        *,
        library: SkillLibrary | None = None,
        lessons: EffectLessons | None = None,
        proposer: Any = None,
        curriculum: Curriculum | None = None,
        sandbox: Sandbox | None = None,
        make_library: Callable[[], SkillLibrary] | None = None,
        tenant: str = "default",
        agent: str = "agent",
        carry: bool = True,
        keep_library: bool = True,
        verify: bool = True,
        attempts: int = 3,
        skill_steps: int = 400,
        gate_steps: int = 800,
        store: VersionStore | None = None,
        max_decisions: int | None = None,
    ) -> None:
        self.log = log
        self.make_library = make_library or (lambda: SkillLibrary(verify=verify))
        self.library = library if library is not None else self.make_library()
        self.lessons = lessons if lessons is not None else EffectLessons()
        self.proposer = proposer if proposer is not None else ModelFreeProposer()
        self.curriculum = curriculum if curriculum is not None else AutoCurriculum()
        self.sandbox = sandbox if sandbox is not None else Sandbox(max_lines=200_000, timeout_s=20.0)
        self.tenant = tenant
        self.agent = agent
        self.carry = carry
        self.keep_library = keep_library and carry
        self.verify = verify
        self.attempts = check_scalar(attempts, "attempts", int, min_val=1)
        self.skill_steps = check_scalar(skill_steps, "skill_steps", int, min_val=1)
        self.gate_steps = check_scalar(gate_steps, "gate_steps", int, min_val=0)
        self.store = store
        #: Attempts per episode at most (None: until the episode ends). A language-model proposer whose
        #: programs fail at once spends no steps, so its episodes are bounded by calls instead.
        self.max_decisions = check_scalar(max_decisions, "max_decisions", int, min_val=1, allow_none=True)
        self.tasks: tuple[str, ...] = ACHIEVEMENTS

    # ------------------------------------------------------------------ one episode

    def play(self, seed: int, *, episode: int, steps: int = 10_000) -> EpisodeReport:
        """One episode in world ``seed`` (at most ``steps`` environment steps), then the gate."""
        if not self.carry:  # the frozen control: nothing kept between episodes
            self.lessons = EffectLessons()
        if not self.keep_library:  # ... or (the ablation) no skill library kept
            self.library = self.make_library()
        env = CrafterText(length=steps)
        env.reset(seed=seed)
        api = Primitives(env, np.random.default_rng(seed))
        scope = Scope(self.tenant, user=self.agent, session=f"episode-{episode}")
        report = EpisodeReport(episode, seed, [], 0.0, 0, 0, 0, 0)
        failures: dict[str, int] = {}
        stack: list[str] = []
        rng = np.random.default_rng([seed, episode])
        while not env.over and (self.max_decisions is None or report.decisions < self.max_decisions):
            task = (
                stack.pop() if stack else self.curriculum.propose(self._state(env, api, scope, failures, rng))
            )
            if self._attempt(env, api, scope, task, failures, stack, report, episode) is None:
                continue
        report.unlocked = list(env.unlocked)
        report.unlocked_at = dict(env.unlocked_at)
        report.steps = env.steps
        report.reward = api.reward
        if self.keep_library and self.verify:
            report.gate_steps = self._gate(scope, episode)
        self._commit(episode)
        report.skills = sum(
            1 for i in self.library.active_items(scope) if i.payload.get("stage") == "promoted"
        )
        return report

    def _state(
        self,
        env: CrafterText,
        api: Primitives,
        scope: Scope,
        failures: dict[str, int],
        rng: np.random.Generator,
    ) -> State:
        threat = api.threat if api.threat is not None and api.nearest(api.threat) is not None else None
        return State(
            threat=threat,
            seen=set(_seen(env)),
            actions=ACTIONS,
            things=MATERIALS + CREATURES,
            tasks=self.tasks,
            tenant=self.tenant,
            lessons=self.lessons,
            skills=set(self.library.skills(scope, session=scope.session)),
            unlocked=set(env.unlocked),
            failures=failures,
            inventory=env.inventory(),
            rng=rng,
        )

    def _attempt(
        self,
        env: CrafterText,
        api: Primitives,
        scope: Scope,
        task: str,
        failures: dict[str, int],
        stack: list[str],
        report: EpisodeReport,
        episode: int,
    ) -> bool | None:
        """Up to ``attempts`` tries at ``task``; True/False: verified or not; None: a sub-goal came first."""
        last_error: str | None = None
        critique = ""
        vital = _low_vital(env)
        defending = api.threat is not None and task in _answers(
            self.lessons, self.tenant, api.threat, self.tasks
        )
        for attempt in range(self.attempts):
            if env.over:
                return False
            callable_ = self.library.skills(scope, session=scope.session)
            retrieved = [r.item for r in self.library.retrieve(task, scope)]
            ctx = Context(
                task=task,
                scope=scope,
                lessons=self.lessons,
                callable=callable_,
                retrieved=retrieved,
                actions=ACTIONS,
                things=MATERIALS + CREATURES,
                seen=_seen(env),
                walkable=tuple(sorted(WALKABLE)),
                observation=env.describe(),
                last_error=last_error,
                critique=critique,
                attempt=attempt,
                failures=failures,
            )
            proposal = self.proposer.propose(ctx)
            report.llm_calls += proposal.llm_calls
            report.tokens += proposal.tokens
            if proposal.subgoal is not None:
                detour = f"{task}>{proposal.subgoal}"  # how often this task sent the agent there
                failures[detour] = failures.get(detour, 0) + 1
                fresh = failures[detour] <= self.attempts
                if fresh and len(stack) < 8 and proposal.subgoal not in stack and proposal.subgoal != task:
                    stack.extend([task, proposal.subgoal])
                    return None
                failures[task] = failures.get(task, 0) + 1
                return False
            api.defending = defending
            run, success, critique, before = self._run(env, api, proposal, callable_, task)
            api.defending = False
            step = self._record(scope, env, proposal, retrieved, run, success, api, before, episode)
            self._learn(step)
            report.decisions += 1
            if success:
                return True
            report.failures += 1
            if run.error:
                report.errors.append(f"{task}: {run.error}")
            last_error = run.error
            if run.error is not None and run.error.startswith("Hurt"):  # also: a vital fell low
                return False  # the world interrupted: the curriculum answers the threat first
        # A task tried to answer a threat or raise a low vital counts against that use only (the
        # curriculum reads those keys).
        surviving = vital is not None and task in _producers_of(self.lessons, self.tenant, vital)
        key = f"{task}#threat" if defending else f"{task}#{vital}" if surviving else task
        failures[key] = failures.get(key, 0) + 1
        return False

    def _run(
        self, env: CrafterText, api: Primitives, proposal: Proposal, callable_: dict[str, Any], task: str
    ) -> tuple[SkillRun, bool, str, dict[str, Any]]:
        before = {
            "count": env.achievements().get(task, 0),
            "seen": int((env.known >= 0).sum()),
            "events": len(api.events),
        }
        api.run_budget(self.skill_steps)
        functions = self._functions(api, callable_, exclude=proposal.skill)
        run = self._sandboxed(proposal.code, proposal.skill, functions)
        success, critique = self._critic(env, task, before, run)
        return run, success, critique, before

    def _sandboxed(self, code: str, entry: str, functions: dict[str, Callable[..., Any]]) -> SkillRun:
        """Run a program; the world's interruptions (hurt, out of steps) end it like an error would."""
        started = time.perf_counter()
        try:
            return self.sandbox.run(code, entry, functions, name=entry)
        except (Hurt, OutOfSteps) as exc:  # raised by the API, so the sandbox lets them through
            return SkillRun(False, None, f"{type(exc).__name__}: {exc}", 0, time.perf_counter() - started)

    def _functions(
        self, api: Primitives, callable_: dict[str, Any], exclude: str
    ) -> dict[str, Callable[..., Any]]:
        """The primitives and every callable skill, each skill run in the same (shared-budget) sandbox."""
        functions: dict[str, Callable[..., Any]] = dict(api.functions())

        def bind(name: str, code: str) -> Callable[..., Any]:
            def call(*args: Any) -> Any:
                # The world's interruptions (Hurt, OutOfSteps) pass through the caller as themselves.
                run = self.sandbox.run(code, name, functions, args, name=name)
                if not run.ok:
                    raise SkillFailed(f"{name} failed: {run.error}")
                return run.value

            return call

        for name, item in callable_.items():
            if name != exclude:
                functions[name] = bind(name, str(item.payload["code"]))
        return functions

    def _critic(self, env: CrafterText, task: str, before: dict[str, Any], run: SkillRun) -> tuple[bool, str]:
        """Self-verification: did the run achieve the task? And if not, why (the critique)."""
        if task == EXPLORE:
            gained = int((env.known >= 0).sum()) - before["seen"]
            return gained > 0, "" if gained > 0 else "no new ground was seen"
        done = env.achievements().get(task, 0) > before["count"]
        if done:
            return True, ""
        last = env.last.note if env.last is not None else "nothing happened"
        if run.error:
            return False, f"the program stopped with an error; the last feedback was: {last}"
        return False, f"{task} did not happen; the last feedback was: {last}"

    def _record(
        self,
        scope: Scope,
        env: CrafterText,
        proposal: Proposal,
        retrieved: list[Any],
        run: SkillRun,
        success: bool,
        api: Primitives,
        before: dict[str, Any],
        episode: int,
        gate: str | None = None,
    ) -> Step:
        """Log the attempt (the log first), then return its step."""
        metadata: dict[str, Any] = {
            RECALLED: {self.library.name: [item.id for item in retrieved]},
            "episode": episode,
            "env_step": env.steps,
            "world_seed": env.seed,
            "proposer": getattr(self.proposer, "name", type(self.proposer).__name__),
        }
        if gate is not None:
            metadata[GATE] = gate
        interaction = Interaction(
            scope,
            {"query": proposal.task, "task": proposal.task, "text": env.describe()[:2000]},
            proposal.to_action(),
            metadata=metadata,
        )
        events = compress(api.events[before["events"] :])
        outcome = {
            "success": success,
            "error": run.error,
            "lines": run.lines,
            "unlocked": sorted({u for e in events for u in e["unlocked"]}),
            "events": events[:64],
        }
        feedback = (
            Feedback.outcome(interaction.id, outcome),
            Feedback.reward(interaction.id, 1.0 if success else 0.0),
        )
        self.log.append_many([interaction, *feedback])
        return Step(interaction, feedback)

    def _learn(self, step: Step) -> None:
        self.lessons.learn(step)
        self.library.learn(step)

    def solve(self, task: str, seed: int, *, steps: int = 500, session: str = "transfer") -> bool:
        """Pose ``task`` in a fresh world ``seed`` (at most ``steps`` steps): True when it is achieved.

        The transfer test: the agent works on this one task (its sub-goals included) with what it has.
        """
        env = CrafterText(length=steps)
        env.reset(seed=seed)
        api = Primitives(env, np.random.default_rng(seed))
        scope = Scope(self.tenant, user=self.agent, session=session)
        report = EpisodeReport(-1, seed, [], 0.0, 0, 0, 0, 0)
        failures: dict[str, int] = {}
        stack: list[str] = []
        tries = 0
        while not env.over and task not in env.unlocked and tries < 4 * self.attempts:
            current = stack.pop() if stack else task
            if current == task:
                tries += 1
            self._attempt(env, api, scope, current, failures, stack, report, -1)
        return task in env.unlocked

    # ------------------------------------------------------------------ verification in fresh worlds

    def _gate(self, scope: Scope, episode: int) -> int:
        """Run each candidate the episode wrote in a fresh world; the library judges them. Returns steps."""
        used = 0
        if self.gate_steps == 0:
            return 0
        for j, item in enumerate(self.library.pending(scope, str(scope.session))):
            seed = GATE_SEED_BASE + 1000 * episode + j
            env = CrafterText(length=self.gate_steps)
            env.reset(seed=seed)
            api = Primitives(env, np.random.default_rng(seed))
            gate_scope = Scope(self.tenant, user=self.agent, session=f"gate-{episode}")
            task, name = str(item.payload["task"]), str(item.payload["skill"])
            proposal = Proposal(
                task, name, str(item.payload["code"]), str(item.payload["description"]), "gate", item=item.id
            )
            callable_ = self.library.skills(scope, session=scope.session)
            api.run_budget(self.gate_steps)
            api.interrupt = False  # a verification runs the skill to its end
            before = {"count": 0, "seen": int((env.known >= 0).sum()), "events": 0}
            run = self._sandboxed(proposal.code, name, self._functions(api, callable_, exclude=name))
            success, _ = self._critic(env, task, before, run)
            self._learn(
                self._record(gate_scope, env, proposal, [], run, success, api, before, episode, gate=item.id)
            )
            used += env.steps
        return used

    def _commit(self, episode: int) -> None:
        if self.store is None or not self.keep_library:
            return
        info = self.store.commit(self.library, message=f"after episode {episode}")
        self.store.promote(self.library.name, info.version, gate=library_gate if self.verify else None)

    # ------------------------------------------------------------------ the log is the truth

    def rebuild(self, scope: Scope | None = None) -> tuple[SkillLibrary, EffectLessons]:
        """Fresh learners that learned every logged step (in ``scope``) in order."""
        library, lessons = self.make_library(), EffectLessons()
        for step in self.log.replay(scope):
            lessons.learn(step)
            library.learn(step)
        return library, lessons

    def forget(self, scope: Scope) -> list[str]:
        """Forget ``scope`` (e.g. one episode's session): its interactions leave the log and the learners
        are rebuilt from what remains, so what it alone produced is gone. Returns the dropped skill ids."""
        before = {i.id for i in self.library.items.values()}
        self.log.forget(scope)
        self.library, self.lessons = self.rebuild()
        return sorted(before - set(self.library.items))


def _seen(env: CrafterText) -> list[str]:
    ids = sorted({int(v) for v in np.unique(env.known) if v >= 0})
    names = [str(env.world._mat_names[i]) for i in ids]
    names += sorted({name for name, _, _ in env.view() if name in CREATURES})
    return names


def _low_vital(env: CrafterText, low: int = 3) -> str | None:
    inv = env.inventory()
    for vital in ("drink", "food", "energy"):
        if inv[vital] <= low:
            return vital
    return None


def _producers_of(lessons: EffectLessons, tenant: str, vital: str) -> set[str]:
    return {t for lesson in lessons.producers(tenant, gives=vital) for t in lesson["unlocked"]}


def _answers(lessons: EffectLessons, tenant: str, threat: str, tasks: tuple[str, ...]) -> set[str]:
    """Tasks that deal with ``threat``: those a lesson facing it unlocked, else those named after it."""
    known = {t for lesson in lessons.of(tenant) if lesson["target"] == threat for t in lesson["unlocked"]}
    return known or {t for t in tasks if threat in t.split("_")}
