"""OpenAI's wire format, built in one place: replies, stream chunks and error bodies.

Every proxied answer carries the interaction id in ``id`` (what feedback is sent to) and what the
service did in a ``lifelong`` field the official clients keep in ``model_extra``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from fastapi.responses import JSONResponse

Kind = Literal["chat", "completion"]


def reply(
    kind: Kind,
    interaction_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: Mapping[str, int],
    info: Mapping[str, Any],
) -> dict[str, Any]:
    """A whole answer: ``chat.completion`` or ``text_completion``."""
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
    return {
        "id": interaction_id,
        "object": "chat.completion" if kind == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
        },
        "lifelong": dict(info),
    }


def chunk(
    kind: Kind,
    interaction_id: str,
    created: int,
    model: str,
    delta: str | None,
    finish_reason: str | None = None,
    *,
    role: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """One server-sent event of a stream (``role`` marks a chat stream's first chunk)."""
    if kind == "chat":
        content: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
        if delta is not None:
            content["content"] = delta
        choice: dict[str, Any] = {
            "index": 0,
            "delta": content,
            "finish_reason": finish_reason,
            "logprobs": None,
        }
    else:
        choice = {"index": 0, "text": delta or "", "finish_reason": finish_reason, "logprobs": None}
    data = {
        "id": interaction_id,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        **(extra or {}),
    }
    return f"data: {json.dumps(data)}\n\n"


DONE = "data: [DONE]\n\n"


def error_body(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error(
    status: int, message: str, kind: str, param: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer in OpenAI's shape."""
    return JSONResponse(
        error_body(status, message, kind, param), status_code=status, headers=dict(headers or {})
    )


def stream_error(status: int, message: str, kind: str) -> str:
    """An error that happened after a stream started: one event with the error, then the end."""
    return f"data: {json.dumps(error_body(status, message, kind))}\n\n" + DONE
