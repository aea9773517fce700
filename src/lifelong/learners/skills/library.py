"""The skill library: verified programs, found by the meaning of their description (Voyager §2.3).

Voyager (Wang et al., "Voyager: An Open-Ended Embodied Agent with Large Language Models", 2023) keeps
every program that self-verification judged successful in a library keyed by an embedding of its
description, and retrieves the top-5 for each new task, so complex skills are composed from simpler
ones and nothing learned has to be re-discovered. Here a skill is a :class:`~lifelong.learners.context.
base.Item` of a context learner: ``text`` is the program, ``query`` its description, ``payload`` holds
``skill`` (the function name other skills call it by), ``task``, ``code``, ``stage`` and the evidence.

Every skill goes through stages, so nothing unverified is served:

- ``candidate`` — a program whose run achieved its task in the episode that wrote it (the critic said
  so). It is callable in that episode only.
- ``promoted`` — it also achieved its task in ``gate_passes`` fresh worlds (the gate runs, logged as
  interactions with ``metadata["gate"]`` naming the skill). Only promoted skills are retrieved.
- ``rejected`` — it failed ``gate_fails`` gate runs; it stays in the history, never retrieved.

A repaired program for the same task is a new candidate; it replaces the promoted one only when it is
promoted itself (the old one is then superseded and kept in :meth:`history`). With ``verify=False`` (the
"no self-verification" ablation) every program that ran without an error is kept and promoted at once.

The library learns only from logged steps — the program is the interaction's action, the verdict its
outcome feedback — so replaying the log rebuilds it bit for bit. Each skill records the episodes and
interactions that created and verified it (``sources`` and the provenance links).
"""

from __future__ import annotations

from typing import Any

from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.context.base import ContextLearner, Item, Recalled
from lifelong.models.base import Embedder
from lifelong.utils.validation import check_scalar

#: Metadata key of a gate run: the id of the skill it verifies in a fresh world.
GATE = "gate"

STAGES = ("candidate", "promoted", "rejected")


def verdict(step: Step) -> dict[str, Any]:
    """The step's outcome feedback (the critic's verdict), or {}."""
    for fb in reversed(step.feedback):
        if fb.kind == "outcome" and isinstance(fb.value, dict):
            return fb.value
    return {}


class SkillLibrary(ContextLearner):
    """Verified programs by task and meaning; see the module docstring.

    Steps it learns from: the interaction's ``action`` is ``{"skill", "task", "code", "description",
    "source"}`` (``source`` "library" when a stored skill was re-run), the outcome feedback
    ``{"success": bool, "error": str | None, ...}``.
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        k: int = 5,
        verify: bool = True,
        gate_passes: int = 1,
        gate_fails: int = 2,
        **recall: Any,
    ) -> None:
        super().__init__(embedder, per_user=False, k=k, **recall)
        self.verify = verify
        self.gate_passes = check_scalar(gate_passes, "gate_passes", int, min_val=1)
        self.gate_fails = check_scalar(gate_fails, "gate_fails", int, min_val=1)

    # ------------------------------------------------------------------ reading

    def retrieve(self, query: str, scope: Scope, *, k: int | None = None) -> list[Recalled]:
        """The ``k`` (default 5) promoted skills most relevant to ``query``; candidates never."""
        found = self.recall(query, scope, k=max(4 * (k or self.k), 20))
        return [r for r in found if r.item.payload.get("stage") == "promoted"][: k or self.k]

    def skills(self, scope: Scope, *, session: str | None = None) -> dict[str, Item]:
        """The callable skills by function name: the promoted ones and, for ``session``, the candidates
        it wrote (an episode may use its own verified programs before any gate has run)."""
        found: dict[str, Item] = {}
        for item in sorted(self.active_items(scope), key=lambda i: (i.created, i.id)):
            stage = item.payload.get("stage")
            name = str(item.payload["skill"])
            if stage == "promoted" or (stage == "candidate" and item.payload.get("session") == session):
                held = found.get(name)
                # A promoted skill wins over a candidate of another session; the newest candidate of
                # this session over an older promoted one (it is the repair this episode verified).
                if held is None or stage == "candidate" or held.payload.get("stage") != "promoted":
                    found[name] = item
        return found

    def for_task(self, task: str, scope: Scope, *, session: str | None = None) -> Item | None:
        """The skill to run for ``task``: the callable one written for it, if any."""
        found = [i for i in self.skills(scope, session=session).values() if i.payload.get("task") == task]
        return max(
            found,
            key=lambda i: (i.payload.get("stage") == "candidate", i.usefulness, i.created, i.id),
            default=None,
        )

    def pending(self, scope: Scope, session: str) -> list[Item]:
        """Candidates written in ``session`` that no gate has judged yet."""
        return sorted(
            (
                i
                for i in self.active_items(scope)
                if i.payload.get("stage") == "candidate" and i.payload.get("session") == session
            ),
            key=lambda i: (i.created, i.id),
        )

    # ------------------------------------------------------------------ learning

    def _credit(self, step: Step) -> bool:
        """A re-run stored skill is credited by the critic's verdict (a win or a loss)."""
        action = step.interaction.action
        if (
            not isinstance(action, dict)
            or action.get("source") != "library"
            or GATE in step.interaction.metadata
        ):
            return False
        item = self.items.get(str(action.get("item")))
        if item is None or not item.active:
            return False
        if verdict(step).get("success"):
            item.wins += 1
        else:
            item.losses += 1
        item.touched = max(item.touched, step.interaction.time)
        self.provenance.record(item.id, step)
        return True

    def _derive(self, step: Step) -> bool:
        gate = step.interaction.metadata.get(GATE)
        if isinstance(gate, str):
            return self._judge(gate, step)
        action = step.interaction.action
        result = verdict(step)
        if not isinstance(action, dict) or action.get("source") == "library" or not action.get("code"):
            return False
        ok = bool(result.get("success")) if self.verify else result.get("error") is None
        if not ok:
            return False
        task, name, code = str(action["task"]), str(action["skill"]), str(action["code"])
        scope = step.interaction.scope
        same = [
            i
            for i in self.active_items(scope)
            if i.payload.get("skill") == name and i.payload.get("code") == code
        ]
        if same:  # the same program verified again: one more source
            if same[0].payload.get("stage") == "candidate":
                # A candidate of an earlier episode that no gate has settled: this episode verified it
                # again, so it is this episode's to call, and its gate runs at this episode's end.
                same[0].payload["session"] = scope.session
            self._absorb(same[0], step)
            return True
        description = str(action.get("description") or task)
        payload: dict[str, JSON] = {
            "skill": name,
            "task": task,
            "code": code,
            "description": description,
            "stage": "candidate" if self.verify else "promoted",
            "session": scope.session,
            "passes": 0,
            "fails": 0,
            "revision": 1
            + sum(
                1
                for i in self.items.values()
                if i.payload.get("skill") == name and (i.tenant, i.user) == self.scope_key(scope)
            ),
        }
        item = self._new_item(step, 0, code, f"{task}: {description}", payload)
        self._insert(item, step)
        if not self.verify:
            self._retire_older(item)
        return True

    def _judge(self, item_id: str, step: Step) -> bool:
        item = self.items.get(item_id)
        if item is None or not item.active or item.payload.get("stage") != "candidate":
            return False
        if verdict(step).get("success"):
            item.payload["passes"] = int(item.payload["passes"]) + 1
        else:
            item.payload["fails"] = int(item.payload["fails"]) + 1
        self._absorb(item, step)
        if int(item.payload["passes"]) >= self.gate_passes:
            item.payload["stage"] = "promoted"
            self._retire_older(item)
        elif int(item.payload["fails"]) >= self.gate_fails:
            item.payload["stage"] = "rejected"
            self._retire(item, "dropped")
        return True

    def _retire_older(self, item: Item) -> None:
        """``item`` is promoted: the earlier promoted versions of its skill leave the library."""
        for other in list(self.active_items()):
            if (
                other.id != item.id
                and (other.tenant, other.user) == (item.tenant, item.user)
                and other.payload.get("skill") == item.payload.get("skill")
                and other.payload.get("stage") == "promoted"
            ):
                self._retire(other, "superseded", replaced_by=item.id)

    # ------------------------------------------------------------------ erasure

    def forget_interactions(self, interaction_ids: set[str]) -> list[str]:
        """Drop the skills created by any of ``interaction_ids`` (e.g. a forgotten episode's); a skill
        they only confirmed keeps its other sources. Returns the dropped skill ids."""
        created = [i for i in self.items.values() if i.sources and i.sources[0] in interaction_ids]
        for item in created:
            self._unindex(item)
            del self.items[item.id]
        gone = {i.id for i in created}
        for item in self.items.values():
            item.sources = [s for s in item.sources if s not in interaction_ids]
            if item.replaced_by in gone:
                item.replaced_by = None
        self._retired = {key: [i for i in ids if i not in gone] for key, ids in self._retired.items()}
        return sorted(gone)
