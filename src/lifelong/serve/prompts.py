"""Putting what was learned into a request: a system message for chat, a preamble for completions.

The recalled items of each learner (memory, examples, lessons) are written as short bullet lists; the
weakest items (lowest recall score) are dropped until the context fits ``budget`` tokens, so a tenant
with 100K items costs the same prompt as one with ten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lifelong.learners.context.base import Recalled

HEADINGS = {
    "memory": "What you know about this user:",
    "examples": "Answers that were right before (question => answer):",
    "lessons": "Mistakes not to repeat:",
}


def context_text(recalled: Mapping[str, Sequence[Recalled]]) -> str:
    """The recalled items as headed bullet lists ("" when nothing was recalled)."""
    blocks = []
    for name, heading in HEADINGS.items():
        items = recalled.get(name) or ()
        if items:
            blocks.append(heading + "\n" + "\n".join(f"- {r.item.text}" for r in items))
    return "\n\n".join(blocks)


def fit(
    recalled: Mapping[str, Sequence[Recalled]], budget: int, count_tokens: Callable[[str], int]
) -> dict[str, list[Recalled]]:
    """``recalled`` without its weakest items, until its text fits ``budget`` tokens."""
    kept = {name: list(items) for name, items in recalled.items()}
    while True:
        text = context_text(kept)
        if not text or count_tokens(text) <= budget:
            return kept
        pools = [items for items in kept.values() if items]
        min(pools, key=lambda items: items[-1].score).pop()


def chat_with_context(messages: Sequence[Mapping[str, Any]], context: str) -> list[dict[str, Any]]:
    """The messages with ``context`` added to the first system message (or as a new one first)."""
    out = [dict(m) for m in messages]
    if not context:
        return out
    note = "Use what was learned from this user's earlier feedback where it helps.\n\n" + context
    if out and out[0].get("role") in ("system", "developer") and isinstance(out[0].get("content"), str):
        out[0]["content"] = out[0]["content"].rstrip() + "\n\n" + note
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def completion_with_context(prompt: str, context: str) -> str:
    """The prompt with ``context`` before it."""
    return f"{context}\n\n{prompt}" if context else prompt
