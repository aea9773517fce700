"""The model behind the service: any OpenAI-compatible server (``--upstream``) or Gemma in-process.

:class:`HttpUpstream` calls the server through the asynchronous face of
:class:`~lifelong.models.openai_compat.OpenAICompatible` (the library's client, on ``httpx``): a timeout
on every request, a bounded connection pool, and its one retry policy — bounded retries with
exponential back-off and jitter on connection errors, timeouts, HTTP 408, 429 and 5xx, before the first
byte of an answer only, so a stream is never replayed half-way; then 503 ``upstream_unavailable`` when
the server never answered, 502 ``upstream_error`` when it answered but kept failing or refused. One slow
upstream call holds one coroutine, never a worker.

:class:`EmbeddedUpstream` runs the packaged Gemma 3 270M (a *base* model) with llama.cpp in one
dedicated thread; chat messages are rendered as a plain ``User:`` / ``Assistant:`` transcript, since
a base model has no chat template. Its "stream" is the whole answer in one chunk (llama.cpp generates
it in that thread; the wire format is the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from lifelong.errors import InvalidInput
from lifelong.models.base import Completion
from lifelong.models.openai_compat import OpenAICompatible


@dataclass(frozen=True)
class Request:
    """One generation: ``messages`` for chat, ``prompt`` for a completion; ``extra`` holds the other
    OpenAI fields the client sent (``top_p``, ``seed``, ...), passed through to an HTTP upstream."""

    kind: Literal["chat", "completion"]
    max_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    messages: tuple[Mapping[str, Any], ...] = ()
    prompt: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    seconds: float


class Upstream(Protocol):
    name: str

    def count_tokens(self, text: str) -> int: ...

    async def generate(self, request: Request) -> Generated: ...

    def stream(self, request: Request) -> AsyncIterator[str | Generated]:
        """Text deltas, then one :class:`Generated` with the whole answer and its usage."""
        ...

    async def check(self) -> None:
        """Raise BackendUnavailable / InvalidInput when the model cannot serve (checked at start)."""
        ...

    async def aclose(self) -> None: ...


class HttpUpstream:
    """An OpenAI-compatible server over HTTP: an adapter over :class:`OpenAICompatible`'s asynchronous
    face (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.25,
        max_connections: int = 64,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"must start with http:// or https://, got {base_url!r}", field="upstream")
        self.client = OpenAICompatible(
            base_url,
            model=model,
            api_key=api_key,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            backoff=backoff,
            max_connections=max_connections,
        )
        self.base_url = self.client.base_url
        self.name = model or "upstream"

    @property
    def model(self) -> str | None:
        return self.client.model

    def count_tokens(self, text: str) -> int:
        return self.client.count_tokens(text)  # the standard API has no tokenizer: ~4 characters a token

    async def check(self) -> None:
        self.name = await self.client.acheck()

    async def generate(self, request: Request) -> Generated:
        if request.kind == "chat":
            out = await self.client.achat(
                request.messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stop=request.stop,
                extra=request.extra,
            )
        else:
            out = await self.client.acomplete(
                request.prompt,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stop=request.stop,
                extra=request.extra,
            )
        return _generated(out)

    async def stream(self, request: Request) -> AsyncIterator[str | Generated]:
        pieces = self.client.astream(
            request.messages if request.kind == "chat" else request.prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=request.stop,
            extra=request.extra,
        )
        async with contextlib.aclosing(pieces):  # a client that stops reading closes the upstream's stream
            async for piece in pieces:
                yield piece if isinstance(piece, str) else _generated(piece)

    async def aclose(self) -> None:
        await self.client.aclose()


def _generated(out: Completion) -> Generated:
    return Generated(
        out.text, out.prompt_tokens, out.completion_tokens, out.finish_reason or "stop", out.seconds
    )


def transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """Chat messages as a plain transcript a base model can continue."""
    lines: list[str] = []
    for message in messages:
        role = str(message.get("role", "user"))
        content = content_text(message.get("content"))
        if role in ("system", "developer"):
            lines.append(content.strip() + "\n")
        else:
            lines.append(f"{'Assistant' if role == 'assistant' else 'User'}: {content.strip()}")
    return "\n".join(lines) + "\nAssistant:"


def content_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


class EmbeddedUpstream:
    """Gemma 3 270M (or another GGUF) in this process (see the module docstring)."""

    def __init__(self, path: str | None = None, *, n_ctx: int = 2048) -> None:
        from lifelong.models.llama_cpp import LlamaCpp

        self.model = LlamaCpp(path, n_ctx=n_ctx)
        self.name = self.model.name
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    async def check(self) -> None:
        return None

    def _prompt(self, request: Request) -> tuple[str, tuple[str, ...]]:
        if request.kind == "chat":
            return transcript(request.messages), ("\nUser:", *request.stop)
        return request.prompt, request.stop

    async def generate(self, request: Request) -> Generated:
        prompt, stop = self._prompt(request)
        start = time.perf_counter()
        out = await asyncio.get_running_loop().run_in_executor(
            self._thread,
            lambda: self.model.complete(
                prompt, max_tokens=request.max_tokens, stop=stop, temperature=request.temperature
            ),
        )
        finish = "length" if out.completion_tokens >= request.max_tokens else "stop"
        text = out.text.strip() if request.kind == "chat" else out.text
        return Generated(text, out.prompt_tokens, out.completion_tokens, finish, time.perf_counter() - start)

    async def stream(self, request: Request) -> AsyncIterator[str | Generated]:
        out = await self.generate(request)
        if out.text:
            yield out.text
        yield out

    async def aclose(self) -> None:
        self._thread.shutdown(wait=False)
