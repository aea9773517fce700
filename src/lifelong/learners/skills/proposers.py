"""Proposers: who writes the program for a task (Voyager's action agent, §2.2).

Both proposers see the same :class:`Context` — the task, the retrieved skills, the callable skills, the
effect lessons, the last observation, the last error and the critique — and return a :class:`Proposal`:
a program (one function named after the task, over the primitive API of
:class:`lifelong.envs.crafter.Primitives`) or a *sub-goal* to achieve first.

- :class:`ModelFreeProposer` composes retrieved skills and primitives by search guided by the
  environment's feedback. It re-runs a stored skill when one exists; otherwise it looks up the effect
  lesson that unlocked the task and writes a program that first satisfies what the lessons say the action
  needs — a "needs a nearby table" becomes a call to the skill that made a table, or the sub-goal of
  writing one — then repeats the action until the task's counter moves. With no lesson yet it guesses
  from the words the task shares with the actions and things it knows, and otherwise explores: it tries
  the (action, thing) pairs it has not tried, so the feedback teaches it new lessons.
- :class:`LLMProposer` asks a language model (the embedded Gemma 3 270M by default, any
  OpenAI-compatible endpoint through :class:`~lifelong.models.OpenAICompatible`) for the program, with
  Voyager's prompt ingredients, and keeps the first function it finds in the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lifelong.experience.records import Scope
from lifelong.learners.context.base import Item
from lifelong.learners.skills.effects import EffectLessons, Lesson
from lifelong.models.base import Model
from lifelong.utils.validation import check_scalar

#: The task that asks for nothing but new ground: the curriculum's fallback.
EXPLORE = "explore"

API_DOC = """\
act(action) -> str        one of the actions below; returns what happened
approach(thing, max_steps=60, through=[]) -> bool   walk next to the nearest thing seen and face it
                          (through: materials to dig through on the way)
explore(steps=20) -> int  walk toward unseen ground; returns cells newly seen
facing() -> str           what is in front
near(thing) -> bool       thing within one cell
seen(thing) -> bool       thing seen this episode
nearest(thing) -> (dx, dy) or None
inventory(item=None)      the inventory dict, or the count of one item
count(achievement) -> int how often an achievement happened this episode
wait(steps=1)"""


@dataclass(frozen=True)
class Proposal:
    """A program for ``task`` (``code`` defines function ``skill``), or a ``subgoal`` to do first."""

    task: str
    skill: str
    code: str
    description: str
    source: str  # library | synthesised | guess | explore | llm
    item: str | None = None  # the stored skill re-run, if any
    subgoal: str | None = None
    llm_calls: int = 0
    tokens: int = 0

    def to_action(self) -> dict[str, Any]:
        action: dict[str, Any] = {
            "skill": self.skill,
            "task": self.task,
            "code": self.code,
            "description": self.description,
            "source": self.source,
        }
        if self.item is not None:
            action["item"] = self.item
        return action


@dataclass
class Context:
    """What a proposer is given for one attempt at a task."""

    task: str
    scope: Scope
    lessons: EffectLessons
    callable: dict[str, Item]  # skills by function name (promoted, and this episode's candidates)
    retrieved: list[Item]  # the top-k skills by meaning of the task
    actions: tuple[str, ...]
    things: tuple[str, ...]
    seen: list[str]  # things seen this episode
    walkable: tuple[str, ...]
    observation: str = ""
    last_error: str | None = None
    critique: str = ""
    attempt: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # task → failed attempts this episode


#: Words of action and task names that say nothing about what a task needs (a direction is not "wake up").
_EMPTY_WORDS = frozenset({"do", "noop", "move", "collect", "up", "down", "left", "right"})


def _words(name: str) -> set[str]:
    """The content words of a name (``make_wood_pickaxe`` → make, wood, pickaxe)."""
    return set(name.split("_")) - _EMPTY_WORDS


def identifier(task: str) -> str:
    """A task name as a Python function name (``explore`` → ``explore_world``)."""
    name = re.sub(r"\W+", "_", task.strip().lower()).strip("_") or "task"
    if name[0].isdigit():
        name = f"t_{name}"
    return "explore_world" if name == EXPLORE else name


class ModelFreeProposer:
    """Composes skills and primitives from the effect lessons; see the module docstring."""

    name = "model-free"

    def __init__(self, *, repeats: int = 12, explore_steps: int = 25, find_tries: int = 3) -> None:
        self.repeats = check_scalar(repeats, "repeats", int, min_val=1)
        self.explore_steps = check_scalar(explore_steps, "explore_steps", int, min_val=1)
        self.find_tries = check_scalar(find_tries, "find_tries", int, min_val=1)

    def propose(self, ctx: Context) -> Proposal:
        if ctx.task == EXPLORE:
            return self._explore(ctx)
        stored = _stored(ctx)
        if stored is not None and ctx.attempt == 0:
            return stored
        plan = plan_for(ctx.lessons, ctx.scope.tenant, ctx.task, ctx.actions, ctx.things)
        if plan is not None and (plan["kind"] == "known" or ctx.attempt < 2):
            return self._synthesise(ctx, plan, source="synthesised" if plan["kind"] == "known" else "guess")
        return self._explore(ctx)

    def _synthesise(self, ctx: Context, lesson: Lesson, source: str = "synthesised") -> Proposal:
        task, action, target = ctx.task, lesson["action"], lesson["target"]
        name = identifier(task)
        needs = needs_of(ctx.lessons, ctx.scope.tenant, lesson)
        nearby: list[str] = []
        for thing in needs["nearby"]:
            call = self._provider(ctx, makes=thing)
            if isinstance(call, Proposal):
                return call
            nearby += [
                f"if not near({thing!r}) and not (seen({thing!r}) and approach({thing!r}, 30)):",
                *([f"    if not {call}:", "        return False"] if call else ["    return False"]),
            ]
        items: list[str] = []
        for item, amount in sorted(needs["items"].items()):
            call = self._provider(ctx, gives=item)
            if isinstance(call, Proposal):
                return call
            if call is None:
                return self._explore(ctx, hint=item)
            items += [  # bounded: a provider that reports success without the item must not loop forever
                f"for _ in range({2 * int(amount) + 2}):",
                f"    if inventory({item!r}) >= {int(amount)} or not {call}:",
                "        break",
                f"if inventory({item!r}) < {int(amount)}:",
                "    return False",
            ]
        # What is nearby first (placing a table spends wood), then the items, then nearby again: fetching
        # the items may have walked away from the table.
        body = [f"start = count({task!r})", *nearby, *items, *nearby]
        targeted = bool(target) and self._targeted(ctx, action)
        through = self._diggable(ctx)
        repeats = _repeats(lesson, self.repeats)
        loop = [f"for _ in range({repeats}):", f"    if count({task!r}) > start:", "        return True"]
        if targeted:
            loop += self._find(target, through, indent=4)
        loop += [f"    act({action!r})"]
        body += [*loop, f"return count({task!r}) > start"]
        needs_text = ", ".join(
            [f"a nearby {n}" for n in needs["nearby"]] + [f"{k} {v}" for k, v in needs["items"].items()]
        )
        description = f"{action} facing {target or 'anything'}" + (
            f"; needs {needs_text}" if needs_text else ""
        )
        return Proposal(task, name, _function(name, body), description, source)

    def _find(self, target: str, through: list[str], *, indent: int) -> list[str]:
        pad = " " * indent
        dig = f", through={through!r}" if through else ""
        return [
            f"{pad}tries = 0",
            f"{pad}while facing() != {target!r} and not approach({target!r}, 60{dig}):",
            f"{pad}    tries += 1",
            f"{pad}    if tries > {self.find_tries}:",
            f"{pad}        return False",
            f"{pad}    explore({self.explore_steps})",
        ]

    def _provider(
        self, ctx: Context, *, makes: str | None = None, gives: str | None = None
    ) -> str | Proposal | None:
        """The call that provides a need: a callable skill (``"place_table()"``), a sub-goal Proposal
        when a lesson knows the task that provides it but no skill exists yet, or None when unknown."""
        tenant = ctx.scope.tenant
        found = ctx.lessons.producers(tenant, makes=makes, gives=gives)
        for lesson in found:
            for task in sorted(lesson["unlocked"], key=lambda t: -lesson["unlocked"][t]):
                name = identifier(task)
                if name in ctx.callable:
                    return f"{name}()"
        for lesson in found:
            for task in sorted(lesson["unlocked"]):
                if task != ctx.task and ctx.failures.get(task, 0) < 3:
                    return Proposal(
                        ctx.task, identifier(ctx.task), "", f"first: {task}", "synthesised", subgoal=task
                    )
        return None

    def _targeted(self, ctx: Context, action: str) -> bool:
        """Whether the action depends on what is faced: unless it unlocked the task facing two things."""
        worked = {
            lesson["target"]
            for lesson in ctx.lessons.of(ctx.scope.tenant)
            if lesson["action"] == action and lesson["unlocked"].get(ctx.task)
        }
        return len(worked) < 2

    def _diggable(self, ctx: Context) -> list[str]:
        """Materials that ``do`` turned into walkable ground, when what it needed is held (lessons)."""
        found = []
        for lesson in ctx.lessons.of(ctx.scope.tenant):
            if lesson["action"] == "do" and lesson["worked"] and set(lesson["made"]) & set(ctx.walkable):
                found.append(lesson["target"])
        return sorted(set(found) - set(ctx.walkable))

    def _explore(self, ctx: Context, hint: str | None = None) -> Proposal:
        """Try (action, thing) pairs never tried — things seen first — then walk to new ground."""
        tenant = ctx.scope.tenant
        tried = ctx.lessons.tried(tenant)
        pairs = [("do", t) for t in ctx.seen if ("do", t) not in tried and t not in ctx.walkable[1:]]
        pairs += [
            (a, "")
            for a in ctx.actions
            if a not in ("noop", "do") and not a.startswith("move_") and not any(x == a for x, _ in tried)
        ]
        body = []
        if ctx.task != EXPLORE:
            body.append(f"start = count({ctx.task!r})")
        for action, thing in pairs[:4]:
            if thing:
                body += [f"if approach({thing!r}, 40):", f"    act({action!r})"]
            else:
                body += [f"act({action!r})"]
            if ctx.task != EXPLORE:
                body += [f"if count({ctx.task!r}) > start:", "    return True"]
        body.append(f"explore({2 * self.explore_steps})")
        body.append("return True" if ctx.task == EXPLORE else f"return count({ctx.task!r}) > start")
        name = identifier(ctx.task)
        what = ", ".join(f"{a} {t}".strip() for a, t in pairs[:4]) or "new ground"
        description = f"explore: {what}" + (f" (looking for {hint})" if hint else "")
        return Proposal(ctx.task, name, _function(name, body), description, "explore")


def plan_for(
    lessons: EffectLessons, tenant: str, task: str, actions: tuple[str, ...], things: tuple[str, ...]
) -> Lesson | None:
    """How to attempt ``task``: the lesson whose action unlocked it (``kind`` "known"); else a guess from
    its name — the action it names, or ``do`` facing the thing it names — with what the failures of that
    action said it needs (``kind`` "guess"); None when the name points at nothing."""
    known = lessons.producers(tenant, unlocks=task)
    if known:
        return {**known[0], "kind": "known"}
    # The action of the same name (place_table), else ``do`` facing the thing it names (eat_cow), else the
    # action sharing most words with it.
    words = _words(task)
    targets = sorted((t for t in things if _words(t) & words), key=lambda t: (-len(_words(t) & words), t))
    named = sorted((a for a in actions if _words(a) & words), key=lambda a: (-len(_words(a) & words), a))
    if task in actions:
        action, target = task, ""
    elif targets:
        action, target = "do", targets[0]
    elif named:
        action, target = named[0], ""
    else:
        return None
    needs: dict[str, Any] = {"items": {}, "nearby": [], "where": []}
    tries = 0
    for lesson in lessons.of(tenant):
        if lesson["action"] != action or (target and lesson["target"] != target):
            continue
        tries += lesson["tries"]
        for item, amount in lesson["needs"]["items"].items():
            needs["items"][item] = max(amount, needs["items"].get(item, 0))
        needs["nearby"] += [n for n in lesson["needs"]["nearby"] if n not in needs["nearby"]]
    return {
        "action": action,
        "target": target,
        "tries": tries,
        "worked": 0,
        "changes": {},
        "made": {},
        "unlocked": {},
        "needs": needs,
        "kind": "guess",
    }


def target_specific(lessons: EffectLessons, tenant: str, action: str) -> bool:
    """Whether what ``action`` does depends on what it faces: it worked facing different things with
    different results (``do`` on a tree gives wood, on water a drink), or failed asking for different
    things facing different things."""
    mine = [lesson for lesson in lessons.of(tenant) if lesson["action"] == action]
    results = {tuple(sorted(lesson["unlocked"])) for lesson in mine if lesson["worked"]}
    asked = {repr(sorted(lesson["needs"]["items"].items())) for lesson in mine if lesson["needs"]["items"]}
    return len(results) > 1 or len(asked) > 1


def needs_of(lessons: EffectLessons, tenant: str, plan: Lesson) -> dict[str, Any]:
    """What ``plan``'s action needs: its own lesson's needs, joined with those its action reported facing
    other things unless the action is target-specific (the needs of ``make_*`` do not depend on it)."""
    needs: dict[str, Any] = {
        "items": dict(plan["needs"]["items"]),
        "nearby": list(plan["needs"]["nearby"]),
        "where": list(plan["needs"]["where"]),
    }
    if target_specific(lessons, tenant, plan["action"]):
        return needs
    for lesson in lessons.of(tenant):
        if lesson["action"] != plan["action"]:
            continue
        for item, amount in lesson["needs"]["items"].items():
            needs["items"][item] = max(int(amount), needs["items"].get(item, 0))
        needs["nearby"] += [n for n in lesson["needs"]["nearby"] if n not in needs["nearby"]]
    return needs


def providable(
    lessons: EffectLessons, tenant: str, needs: dict[str, Any], inventory: dict[str, int], seen: set[str]
) -> bool:
    """Whether every need is met or a lesson knows what provides it."""
    for item, amount in needs["items"].items():
        if inventory.get(item, 0) < amount and not lessons.producers(tenant, gives=item):
            return False
    return all(n in seen or lessons.producers(tenant, makes=n) for n in needs["nearby"])


def _stored(ctx: Context) -> Proposal | None:
    """The stored skill for the task, unless its re-runs fail more often than not (then it is repaired:
    the proposer writes a new program, which replaces it once verified)."""
    name = identifier(ctx.task)
    item = ctx.callable.get(name)
    if item is None or item.payload.get("task") != ctx.task or item.usefulness < 0.5:
        return None
    return Proposal(
        ctx.task,
        name,
        str(item.payload["code"]),
        str(item.payload.get("description", "")),
        "library",
        item=item.id,
    )


def _repeats(lesson: Lesson, default: int) -> int:
    """How often to repeat an action: the tries it took per unlock so far, with slack."""
    unlocks = max(1, sum(lesson["unlocked"].values()))
    return int(min(200, max(default, 3 * lesson["tries"] / unlocks)))


def _function(name: str, body: list[str]) -> str:
    return "\n".join([f"def {name}():", *("    " + line for line in body)]) + "\n"


# ---------------------------------------------------------------------- the language-model proposer

PROMPT = """You write Python functions that play Crafter (a 2-D Minecraft) through this API:
{api}
Actions: {actions}
Things: {things}

Skills you can call (top {k} by relevance):
{skills}

What you learned about the world:
{lessons}

Observation:
{observation}

Task: {task}
{error}{critique}Write one function `def {name}():` that achieves the task and returns True when it did.
```python
def {name}():
"""


class LLMProposer:
    """The iterative prompting loop's writer: a language model given Voyager's ingredients.

    ``model`` is any :class:`~lifelong.models.base.Model` (the embedded Gemma by default). When the answer
    holds no function, the proposal's code is what the model wrote, so the sandbox's error goes back to
    it on the next attempt.
    """

    name = "llm"

    def __init__(self, model: Model | None = None, *, max_tokens: int = 200, lessons: int = 12) -> None:
        if model is None:
            from lifelong.models.llama_cpp import LlamaCpp

            model = LlamaCpp()
        self.model = model
        self.max_tokens = check_scalar(max_tokens, "max_tokens", int, min_val=8)
        self.n_lessons = check_scalar(lessons, "lessons", int, min_val=0)

    def prompt(self, ctx: Context) -> str:
        name = identifier(ctx.task)
        skills = "\n".join(str(item.payload["code"]) for item in ctx.retrieved) or "(none yet)"
        lessons = "\n".join(ctx.lessons.describe(ctx.scope.tenant, self.n_lessons)) or "(nothing yet)"
        return PROMPT.format(
            api=API_DOC,
            actions=", ".join(ctx.actions),
            things=", ".join(ctx.things),
            k=len(ctx.retrieved),
            skills=skills,
            lessons=lessons,
            observation=ctx.observation[-1200:],
            task=ctx.task,
            error=f"Your last program failed: {ctx.last_error}\n" if ctx.last_error else "",
            critique=f"Critique: {ctx.critique}\n" if ctx.critique else "",
            name=name,
        )

    def propose(self, ctx: Context) -> Proposal:
        stored = _stored(ctx)
        if stored is not None and ctx.attempt == 0:
            return stored
        name = identifier(ctx.task)
        prompt = self.prompt(ctx)
        completion = self.model.complete(prompt, max_tokens=self.max_tokens, stop=("```", "\ndef ", "\n\n\n"))
        code = f"def {name}():\n" + completion.text.rstrip() + "\n"
        tokens = self.model.count_tokens(prompt) + self.model.count_tokens(completion.text)
        return Proposal(
            ctx.task, name, code, f"written by {self.model.name}", "llm", llm_calls=1, tokens=tokens
        )
