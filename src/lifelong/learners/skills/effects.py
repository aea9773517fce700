"""Effect lessons: what each action does to what, and what it needs — learned from the environment's feedback.

A multi-step agent has to find out how its world works: that ``do`` on a tree gives wood, that
``make_wood_pickaxe`` "needs a nearby table", that ``do`` on stone turns it into a walkable path once a
pickaxe is held. This learner keeps one lesson per *(action, target)* the agent has tried: how often it
was tried and worked, the inventory changes, what it left in the faced cell, the achievements it
unlocked and what the environment said was missing when it had no effect. It is the operator model of a
STRIPS-style planner, learned online (in the spirit of Voyager's environment feedback, Wang et al. 2023
§2.2, and of learned action models, e.g. Wang 1995, "Learning by observation and practice"), and it is
knowledge *inferred from experience*, not written into the code: the model-free proposer
(:mod:`lifelong.learners.skills.proposers`) turns "needs a nearby table" into the sub-goal of placing one
only because a lesson says ``place_table`` made a table.

Steps carry the effects in their outcome feedback: ``Feedback.outcome({"events": [...]})``, each event a
dict with ``action``, ``target``, ``changes``, ``made``, ``unlocked``, ``missing`` and ``n`` (how many
identical events it stands for). Everything is a pure function of the logged steps, so replaying the log
rebuilds the lessons bit for bit; each lesson records the interactions it came from.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner

#: Interaction ids a lesson keeps (the first and the latest); the version store keeps every link.
MAX_SOURCES = 32

Lesson = dict[str, Any]


def events_of(step: Step) -> list[dict[str, Any]]:
    """The effect events a step's outcome feedback carries (none when it carries none)."""
    for fb in reversed(step.feedback):
        if fb.kind == "outcome" and isinstance(fb.value, dict) and isinstance(fb.value.get("events"), list):
            return [e for e in fb.value["events"] if isinstance(e, dict)]
    return []


def compress(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Identical events merged into one with a count ``n`` (first-seen order): a skill run's record."""
    merged: dict[str, dict[str, Any]] = {}
    for event in events:
        key = repr(sorted((k, repr(v)) for k, v in event.items() if k != "n"))
        if key in merged:
            merged[key]["n"] += int(event.get("n", 1))
        else:
            merged[key] = {**event, "n": int(event.get("n", 1))}
    return list(merged.values())


class EffectLessons(Learner):
    """One lesson per (tenant, action, target): tries, effects and needs. See the module docstring."""

    tenancy = "per_tenant"
    erases_in_place = True

    def __init__(self) -> None:
        super().__init__()
        self.lessons: dict[str, Lesson] = {}

    # ------------------------------------------------------------------ learning

    def _learn(self, step: Step) -> bool:
        changed = False
        scope = step.interaction.scope
        for event in events_of(step):
            action, target = event.get("action"), event.get("target")
            if not isinstance(action, str) or not isinstance(target, str):
                continue
            n = int(event.get("n", 1))
            key = f"{scope.tenant}|{action}@{target}"
            lesson = self.lessons.get(key)
            if lesson is None:
                lesson = self.lessons[key] = {
                    "tenant": scope.tenant,
                    "action": action,
                    "target": target,
                    "tries": 0,
                    "worked": 0,
                    "changes": {},
                    "made": {},
                    "unlocked": {},
                    "needs": {"items": {}, "nearby": [], "where": []},
                    "sources": [],
                    "source_users": [],
                }
            lesson["tries"] += n
            changes = event.get("changes") or {}
            made, unlocked = event.get("made"), event.get("unlocked") or []
            if changes or made or unlocked:
                lesson["worked"] += n
            for item, delta in sorted(changes.items()):
                lesson["changes"][item] = lesson["changes"].get(item, 0) + int(delta) * n
            if isinstance(made, str):
                lesson["made"][made] = lesson["made"].get(made, 0) + n
            for name in unlocked:
                lesson["unlocked"][name] = lesson["unlocked"].get(name, 0) + n
            missing = event.get("missing") or {}
            needs = lesson["needs"]
            for item, amount in sorted((missing.get("items") or {}).items()):
                needs["items"][item] = max(int(amount), needs["items"].get(item, 0))
            for name in missing.get("nearby") or []:
                if name not in needs["nearby"]:
                    needs["nearby"].append(name)
            for name in missing.get("where") or []:
                if name not in needs["where"]:
                    needs["where"].append(name)
            if step.interaction.id not in lesson["sources"]:
                lesson["sources"].append(step.interaction.id)
                if len(lesson["sources"]) > MAX_SOURCES:
                    del lesson["sources"][1]
            if scope.user not in lesson["source_users"]:
                lesson["source_users"].append(scope.user)
            self.provenance.record(key, step)
            changed = True
        return changed

    # ------------------------------------------------------------------ reading

    def of(self, tenant: str) -> list[Lesson]:
        """The lessons of ``tenant`` in a stable order."""
        return [self.lessons[k] for k in sorted(self.lessons) if self.lessons[k]["tenant"] == tenant]

    def get(self, tenant: str, action: str, target: str) -> Lesson | None:
        return self.lessons.get(f"{tenant}|{action}@{target}")

    def producers(
        self, tenant: str, *, unlocks: str | None = None, gives: str | None = None, makes: str | None = None
    ) -> list[Lesson]:
        """Lessons whose action unlocked ``unlocks``, raised item ``gives`` or left ``makes`` in the
        faced cell, most reliable first (ties: most tried, then by name)."""
        found = []
        for lesson in self.of(tenant):
            if unlocks is not None and lesson["unlocked"].get(unlocks, 0) <= 0:
                continue
            if gives is not None and lesson["changes"].get(gives, 0) <= 0:
                continue
            if makes is not None and lesson["made"].get(makes, 0) <= 0:
                continue
            found.append(lesson)
        return sorted(found, key=lambda les: (-reliability(les), -les["tries"], les["action"], les["target"]))

    def tried(self, tenant: str) -> set[tuple[str, str]]:
        return {(lesson["action"], lesson["target"]) for lesson in self.of(tenant)}

    def describe(self, tenant: str, limit: int = 40) -> list[str]:
        """The lessons in words (for a language model's prompt), most useful first."""
        rows = sorted(
            self.of(tenant), key=lambda les: (-les["worked"], -les["tries"], les["action"], les["target"])
        )
        return [lesson_text(lesson) for lesson in rows[:limit]]

    # ------------------------------------------------------------------ erasure and state

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop every lesson of ``tenant`` that ``user`` contributed to (a rebuild restores the rest)."""
        doomed = [
            k for k, les in self.lessons.items() if les["tenant"] == tenant and user in les["source_users"]
        ]
        for key in doomed:
            del self.lessons[key]
        return bool(doomed)

    def forget_tenant(self, tenant: str) -> bool:
        doomed = [k for k, les in self.lessons.items() if les["tenant"] == tenant]
        for key in doomed:
            del self.lessons[key]
        return bool(doomed)

    @classmethod
    def redact_state(
        cls, state: dict[str, Any], interaction_ids: set[str], scope: Scope | None = None
    ) -> dict[str, Any] | None:
        def theirs(lesson: Lesson) -> bool:
            if interaction_ids.intersection(lesson["sources"]):
                return True
            return (
                scope is not None
                and lesson["tenant"] == scope.tenant
                and (scope.user is None or scope.user in lesson["source_users"])
            )

        kept = {k: v for k, v in state["state"]["lessons"].items() if not theirs(v)}
        return {**state, "state": {"lessons": kept}}

    def _get_state(self) -> dict[str, Any]:
        return {"lessons": copy.deepcopy(self.lessons)}

    def _set_state(self, state: dict[str, Any]) -> None:
        lessons = state.get("lessons")
        if not isinstance(lessons, dict):
            raise InvalidInput("an EffectLessons state holds a 'lessons' mapping", field="state")
        self.lessons = copy.deepcopy(lessons)


def reliability(lesson: Lesson) -> float:
    """Laplace-smoothed share of tries that did something."""
    return float((lesson["worked"] + 1) / (lesson["tries"] + 2))


def lesson_text(lesson: Lesson) -> str:
    """One lesson in words, e.g. ``make_wood_pickaxe facing grass: needs a nearby table, wood 1; ...``."""
    parts = [f"{lesson['action']} facing {lesson['target']}"]
    effects: list[JSON] = [f"{k} {v / max(1, lesson['worked']):+.0f}" for k, v in lesson["changes"].items()]
    effects += [f"leaves {m}" for m in lesson["made"]]
    effects += [f"unlocks {u}" for u in lesson["unlocked"]]
    needs = lesson["needs"]
    wanted = [f"a nearby {n}" for n in needs["nearby"]] + [f"{k} {v}" for k, v in needs["items"].items()]
    if needs["where"]:
        wanted.append(" or ".join(needs["where"]) + " in front")
    text = parts[0] + f" (worked {lesson['worked']} of {lesson['tries']})"
    if effects:
        text += ": " + ", ".join(str(e) for e in effects)
    if wanted:
        text += "; needs " + ", ".join(wanted)
    return text
