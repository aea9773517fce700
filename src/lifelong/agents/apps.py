"""Apps: what a tenant declares it asks, so that every request of the app gets the learners that fit.

An :class:`App` is declared once — a name and a task kind — and every request that names it is answered
by the app's own :class:`~lifelong.agents.Agent`, built here by :func:`build_agent`. The library's
benchmarks build their learning agents with the same function, so "the service runs the library's
agent" is true by construction, not by a copy.

- ``label`` — one label of a fixed set (intents, routing, moderation). The experts — the model with
  learned context (constrained to the labels), the examples' similarity vote, the nearest example, an
  online softmax on hashed text, the nearest class mean and a softmax on the embeddings — are combined
  by an :class:`~lifelong.learners.experts.mixture.ExpertMixture` that learns from every correction
  which to trust; a :class:`~lifelong.agents.harness.HarnessSearch` tunes the prompt in the background.
- ``chat`` — free text. Memory, examples and lessons go into the system message, and a *direct answer*
  — the corrected answer the experts recall for requests like this one (the vote, the nearest example,
  the class means and the softmax on embeddings, combined by a mixture) — competes with the model's
  answer and the frozen model's plain answer in a :class:`~lifelong.learners.context.gate.SuggestionGate`
  whose ``answer`` objective charges a recalled answer served to a question it does not answer (a
  misapplied correction). So a corrected mistake does not recur even when the model ignores its
  context, and a correction is not served where the evidence says it does not fit.
- ``completion`` — the rest of a line of code: examples, lessons and a memory of the codebase's
  definitions in the prompt, the plain answer as a candidate, and a gate that learns when to suggest
  (objective ``keep``: reward without losing accepted work).

A request that names no app (``app=None``) is answered as before apps existed: memory, examples and
lessons in the prompt of any chat or completion request, nothing else.

>>> app = App("support", "label", labels=("card_arrival", "lost_card"))
>>> App.from_dict(app.to_dict()) == app
True
>>> App("support", "label")
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: labels: a label app needs at least 2 labels, got 0
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lifelong.agents.agent import Agent
from lifelong.agents.harness import HarnessConfig, HarnessSearch, chars_if_right, exact_match
from lifelong.agents.tasks import ChatTask, CodeCompletionTask, LabelTask, code_facts, label_facts
from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.learners.context.examples import ExampleBank
from lifelong.learners.context.gate import SuggestionGate
from lifelong.learners.context.lessons import Lessons
from lifelong.learners.context.memory import Memory
from lifelong.learners.experts.linear import OnlineSoftmax
from lifelong.learners.experts.mixture import ExpertMixture
from lifelong.learners.experts.scoring import EmbeddingSoftmax, Prototypes
from lifelong.models.base import Embedder, Model
from lifelong.utils.validation import check_scalar

#: The task kinds an app can declare.
TASKS = ("chat", "label", "completion")

#: An app's name: what requests say in ``model`` (or ``X-Lifelong-App``) and the store's names hold.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Most labels one app may declare, and the longest label.
MAX_LABELS, MAX_LABEL = 10_000, 200

LABEL_INSTRUCTION = "Label each query."


@dataclass(frozen=True)
class App:
    """A declared app: ``name``, the ``task`` kind, the ``labels`` of a label app, an ``instruction``
    (the label prompt's first line, or a chat app's system message when the client sends none),
    whether the harness search runs (``harness``), and for chat apps the most share of requests that
    may get a recalled answer to another question, by the gate's estimate (``misapply_budget``, see the
    gate's ``answer`` objective)."""

    name: str
    task: str
    labels: tuple[str, ...] = ()
    instruction: str | None = None
    harness: bool = True
    misapply_budget: float = 0.05
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise InvalidInput(
                f"must be 1-64 letters, digits, '.', '_' or '-' (not first), got {self.name!r}", field="name"
            )
        if self.task not in TASKS:
            raise InvalidInput(f"must be one of {', '.join(TASKS)}, got {self.task!r}", field="task")
        labels = tuple(self.labels)
        if any(not isinstance(label, str) or not label.strip() for label in labels):
            raise InvalidInput("every label is a non-blank string", field="labels")
        if any(len(label) > MAX_LABEL for label in labels):
            raise InvalidInput(f"a label has at most {MAX_LABEL} characters", field="labels")
        if len(set(labels)) != len(labels):
            raise InvalidInput("labels must be unique", field="labels")
        if self.task == "label" and not 2 <= len(labels) <= MAX_LABELS:
            raise InvalidInput(f"a label app needs at least 2 labels, got {len(labels)}", field="labels")
        if self.task != "label" and labels:
            raise InvalidInput(f"only a label app has labels, not a {self.task} app", field="labels")
        if self.instruction is not None and (
            not isinstance(self.instruction, str) or len(self.instruction) > 4000
        ):
            raise InvalidInput("must be a string of at most 4,000 characters", field="instruction")
        check_scalar(self.misapply_budget, "misapply_budget", float, min_val=0, max_val=1)
        object.__setattr__(self, "labels", labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "labels": list(self.labels),
            "instruction": self.instruction,
            "harness": self.harness,
            "misapply_budget": self.misapply_budget,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> App:
        known = ("name", "task", "labels", "instruction", "harness", "misapply_budget")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInput(f"unknown field(s) {unknown}; an app has {', '.join(known)}", field=unknown[0])
        labels = data.get("labels", ())
        if isinstance(labels, str) or not isinstance(labels, list | tuple):
            raise InvalidInput("must be a list of labels", field="labels")
        return cls(
            data.get("name"),  # type: ignore[arg-type]  # checked by __post_init__
            data.get("task"),  # type: ignore[arg-type]
            labels=tuple(labels),
            instruction=data.get("instruction"),
            harness=data.get("harness", True),
            misapply_budget=data.get("misapply_budget", 0.05),
        )


def build_agent(
    app: App | None,
    model: Model | None,
    embedder: Embedder,
    log: ExperienceLog,
    *,
    token_budget: int | None = 768,
    context_budget: int | None = None,
    objective: str = "keep",
    search: bool | None = None,
    recall: tuple[int, int, int] | None = None,
) -> Agent:
    """The learning agent of ``app`` (``None``: an undeclared request; see the module docstring).

    ``search`` overrides the app's ``harness`` setting; ``recall`` the (examples, lessons, memory) items
    an undeclared request recalls; ``objective`` is the completion gate's (see
    :class:`~lifelong.learners.context.gate.SuggestionGate`).
    """
    if app is None:
        examples_k, lessons_k, memory_k = recall or (4, 3, 4)
        return Agent(
            model,
            ChatTask(),
            log,
            examples=ExampleBank(embedder, k=examples_k),
            lessons=Lessons(embedder, k=lessons_k),
            memory=Memory(embedder, k=memory_k, budget=1000),
            token_budget=token_budget,
            context_budget=context_budget,
        )
    harness: HarnessSearch | HarnessConfig = HarnessConfig(examples=6, lessons=2, memory=2)
    if app.harness if search is None else search:
        harness = HarnessSearch(
            HarnessConfig(examples=6, lessons=2, memory=2),
            label_task=app.task == "label",
            every=100 if app.task == "completion" else 250,  # code requests cost ~3x a label: shorter streams
            replay=16 if app.task == "completion" else 24,
            budget=2,
            watch=40,
            objective=chars_if_right if app.task == "completion" else exact_match,
        )
    if app.task == "label":
        return Agent(
            model,
            LabelTask(app.labels, instruction=app.instruction or LABEL_INSTRUCTION),
            log,
            examples=ExampleBank(embedder, k=6),
            lessons=Lessons(embedder, k=2),
            memory=Memory(embedder, extract=label_facts, per_user=False, k=2),
            experts=[OnlineSoftmax(), Prototypes(embedder), EmbeddingSoftmax(embedder)],
            combiner=ExpertMixture(),
            harness=harness,
            token_budget=token_budget,
            context_budget=context_budget,
        )
    if app.task == "completion":
        return Agent(
            model,
            CodeCompletionTask(),
            log,
            examples=ExampleBank(embedder, per_user=True, k=6),
            lessons=Lessons(embedder, per_user=True, k=2),
            memory=Memory(embedder, extract=code_facts, per_user=True, k=2),
            gate=SuggestionGate(objective=objective),
            harness=harness,
            plain=True,
            token_budget=token_budget,
            context_budget=context_budget,
        )
    return Agent(
        model,
        ChatTask(instruction=app.instruction),
        log,
        examples=ExampleBank(embedder, k=6),
        lessons=Lessons(embedder, k=2),
        memory=Memory(embedder, k=2, budget=1000),
        experts=[Prototypes(embedder), EmbeddingSoftmax(embedder)],
        combiner=ExpertMixture(),
        gate=SuggestionGate(objective="answer", misapply_budget=app.misapply_budget),
        harness=harness,
        plain=True,
        token_budget=token_budget,
        context_budget=context_budget,
    )
