"""Tasks: how one kind of request is put to a model and read back — labels, code lines, free text.

A base model continues text, so the label and code tasks write a document whose natural continuation is
the answer:
few-shot ``Query:/Intent:`` pairs for labelling (nearest demonstration last, closest to the query, as
in Liu et al., "What Makes Good In-Context Examples for GPT-3?", DeeLIO 2022), and plain code for code
completion (retrieved snippets first, then the current file — the layout of retrieval-augmented code
completion, Zhang et al., "RepoCoder", EMNLP 2023). Free text (:class:`ChatTask`) is the client's own
chat turn or prompt, with what was learned written into its system message or before its prompt —
what the service sends any OpenAI-compatible model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lifelong.agents.agent import Context
from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Step
from lifelong.learners.context.base import Recalled, query_text, right_answer
from lifelong.learners.context.memory import Fact
from lifelong.models.base import Message


class LabelTask:
    """Label a text with one of a fixed set of labels (output constrained to the set)."""

    max_tokens = 16
    stop: Sequence[str] = ("\n",)

    def __init__(
        self, labels: Sequence[str], *, instruction: str = "Label each query.", narrow: bool = False
    ) -> None:
        if not labels:
            raise InvalidInput("must not be empty", field="labels")
        self.labels = sorted(set(labels))
        self.instruction = instruction
        self.narrow = narrow
        self.name = "label"
        self._choices = [" " + label for label in self.labels]

    def prompt(self, observation: JSON, context: Context) -> str:
        parts = [self.instruction, ""]
        if context.memory:
            parts += [f"Known: {r.item.text}" for r in reversed(context.memory)] + [""]
        for r in reversed(context.lessons):
            parts.append(f"Note: {r.item.text}")
        if context.lessons:
            parts.append("")
        for r in reversed(context.examples):  # nearest last
            parts += [
                f"Query: {query_text(r.item.payload['input'])}",
                f"Intent: {r.item.payload['output']}",
                "",
            ]
        parts += [f"Query: {query_text(observation)}", "Intent:"]
        return "\n".join(parts)

    def choices(self, observation: JSON, context: Context) -> Sequence[str]:
        """Every label; narrowed (``narrow=True``, or the harness configuration's ``narrow``) to the
        labels the evidence points at — the recalled demonstrations' and the other experts' proposals —
        when there are any. Narrowing to the demonstrations alone was worse on BANKING77 here (0.377 vs
        0.410 accuracy over 300 queries); the harness search decides it per deployment."""
        if self.narrow or context.config.narrow:
            evidence = [str(r.item.payload["output"]) for r in [*context.examples, *context.neighbours]]
            evidence += [str(a) for a in context.hints]
            narrowed = sorted({" " + a for a in evidence} & set(self._choices))
            if narrowed:
                return narrowed
        return self._choices

    def parse(self, text: str, observation: JSON) -> JSON:
        label = text.strip()
        return label if label in self.labels else None


class CodeCompletionTask:
    """Suggest the rest of a line of code from the file so far and retrieved snippets."""

    max_tokens = 48
    stop: Sequence[str] = ("\n",)

    def __init__(self, *, context_lines: int = 24) -> None:
        self.context_lines = context_lines
        self.name = "code-completion"

    def prompt(self, observation: JSON, context: Context) -> str:
        if not isinstance(observation, dict):
            raise InvalidInput(
                "a code-completion observation is a dict (path, context, indent)", field="observation"
            )
        parts: list[str] = []
        if context.memory:
            parts += ["# Definitions seen in this codebase:"]
            parts += [f"# {r.item.text}" for r in reversed(context.memory)] + [""]
        for r in reversed([*context.lessons, *context.examples]):  # nearest last
            snippet = _snippet(r)
            if snippet:
                parts += [snippet, ""]
        shown = context.config.context_lines or self.context_lines
        lines = str(observation.get("context", "")).splitlines()[-shown:]
        parts += [f"# file: {observation.get('path', '?')}", *lines]
        return "\n".join(parts) + "\n" + str(observation.get("indent", ""))

    def choices(self, observation: JSON, context: Context) -> None:
        return None

    def parse(self, text: str, observation: JSON) -> JSON:
        suggestion = text.rstrip()
        return suggestion if suggestion.strip() else None


#: How each learner's recalls are headed in a free-text request, in the order they are written.
HEADINGS = {
    "memory": "What you know about this user:",
    "examples": "Answers that were right before (question => answer):",
    "lessons": "Mistakes not to repeat:",
}


class ChatTask:
    """Free text: the client's chat messages (``observation["messages"]``) or prompt
    (``observation["prompt"]``), with the recalled context written into the first system message (a
    new one first if there is none), or before the prompt. ``instruction`` is the app's system
    message, used when the client sends none."""

    max_tokens = 256
    stop: Sequence[str] = ()

    def __init__(self, *, instruction: str | None = None) -> None:
        self.instruction = instruction
        self.name = "chat"

    def prompt(self, observation: JSON, context: Context) -> str | tuple[Message, ...]:
        if not isinstance(observation, dict) or not isinstance(
            observation.get("messages", observation.get("prompt")), list | str
        ):
            raise InvalidInput(
                "a free-text observation is a dict with messages or a prompt", field="observation"
            )
        learned = context_text(context)
        if "messages" in observation:
            messages = [_message(m) for m in observation["messages"]]
            if self.instruction and not any(m["role"] == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": self.instruction})
            return tuple(_with_context(messages, learned))
        prompt = str(observation["prompt"])
        return f"{learned}\n\n{prompt}" if learned else prompt

    def choices(self, observation: JSON, context: Context) -> None:
        return None

    def parse(self, text: str, observation: JSON) -> JSON:
        """The text as the model wrote it; None when it wrote nothing (no candidate to serve)."""
        return text if text.strip() else None


def context_text(context: Context) -> str:
    """The recalled items as headed bullet lists ("" when nothing was recalled)."""
    blocks = []
    for name, heading in HEADINGS.items():
        items: list[Recalled] = getattr(context, name)
        if items:
            blocks.append(heading + "\n" + "\n".join(f"- {r.item.text}" for r in items))
    return "\n\n".join(blocks)


def _message(message: Any) -> dict[str, str]:
    if not isinstance(message, Mapping):
        raise InvalidInput("each message is a dict with a role and a content", field="messages")
    return {"role": str(message.get("role", "user")), "content": str(message.get("content") or "")}


def _with_context(messages: list[dict[str, str]], learned: str) -> list[dict[str, str]]:
    if not learned:
        return messages
    note = "Use what was learned from this user's earlier feedback where it helps.\n\n" + learned
    if messages and messages[0]["role"] == "system":
        messages[0] = {"role": "system", "content": messages[0]["content"].rstrip() + "\n\n" + note}
    else:
        messages.insert(0, {"role": "system", "content": note})
    return messages


def _snippet(r: Recalled) -> str:
    """A recalled example or lesson as code: the lines before, then the line that was right."""
    payload = r.item.payload
    right = payload.get("output", payload.get("right"))
    observation = payload.get("input")
    if right is None or not isinstance(observation, dict):
        return ""
    before = str(observation.get("context", "")).splitlines()[-3:]
    return "\n".join([*before, str(observation.get("indent", "")) + str(right)])


_DEFINITION = re.compile(r"^(?:async\s+)?(def|class)\s+([A-Za-z_]\w*)")
_IMPORT = re.compile(r"^(?:from\s+[\w.]+\s+)?import\s+(.+)$")
_CONSTANT = re.compile(r"^([A-Z_][A-Z0-9_]*)\s*=\s*\S")


def code_facts(step: Step) -> list[Fact]:
    """Definitions the developer typed (``def``/``class``/imports/module constants), keyed by name.

    A name defined again with a different line supersedes the older definition in memory.
    """
    line = step.correction
    if not isinstance(line, str):
        return []
    line = line.strip()
    match = _DEFINITION.match(line)
    if match:
        return [Fact(line, key=f"{match.group(1)} {match.group(2)}")]
    match = _IMPORT.match(line)
    if match:
        return [Fact(line, key=f"import {match.group(1).strip()}")]
    observation = step.interaction.observation
    if isinstance(observation, dict) and not observation.get("indent"):
        match = _CONSTANT.match(line)
        if match:
            return [Fact(line, key=f"constant {match.group(1)}")]
    return []


def label_facts(step: Step) -> list[Fact]:
    """For labelling: remember the right label of this exact query (a later correction supersedes it)."""
    label = right_answer(step)
    if label is None:
        return []
    query = query_text(step.interaction.observation)
    return [Fact(f"{query!r} is {label}", key=" ".join(query.casefold().split()), query=query)]
