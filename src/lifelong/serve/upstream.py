"""The model behind the service: any OpenAI-compatible server (``--upstream``) or Gemma in-process.

An :class:`Upstream` runs the turn's :class:`~lifelong.models.base.Call`\\ s asynchronously (the requests'
own calls) and offers its synchronous face as ``model`` (token counts, the background search's
replays): the same model either way.

:class:`HttpUpstream` is the asynchronous face of :class:`~lifelong.models.openai_compat.OpenAICompatible`
(the library's client, on ``httpx``): a timeout on every request, a bounded connection pool, and its one
retry policy — bounded retries with exponential back-off and jitter on connection errors, timeouts,
HTTP 408, 429 and 5xx, before the first byte of an answer only, so a stream is never replayed half-way.
One slow upstream call holds one coroutine, never a worker.

:class:`EmbeddedUpstream` runs the packaged Gemma 3 270M (a *base* model) with llama.cpp in one
dedicated thread; chat messages are rendered as a plain ``User:`` / ``Assistant:`` transcript, since
a base model has no chat template. Its "stream" is the whole answer in one chunk (llama.cpp generates
it in that thread; the wire format is the same).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from lifelong.errors import InvalidInput
from lifelong.models.base import Call, Completion, Model, generate
from lifelong.models.openai_compat import OpenAICompatible


class Upstream(Protocol):
    name: str

    @property
    def model(self) -> Model:
        """The synchronous face of the same model (token counts, background replays)."""
        ...

    async def complete(self, call: Call) -> Completion: ...

    def stream(self, call: Call) -> AsyncIterator[str | Completion]:
        """Text deltas, then one :class:`Completion` with the whole answer and its usage."""
        ...

    async def check(self) -> None:
        """Raise BackendUnavailable / InvalidInput when the model cannot serve (checked at start)."""
        ...

    async def aclose(self) -> None: ...


class HttpUpstream:
    """An OpenAI-compatible server over HTTP (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.25,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"must start with http:// or https://, got {base_url!r}", field="upstream")
        self.client = OpenAICompatible(
            base_url, model=model, api_key=api_key, timeout=timeout, retries=retries, backoff=backoff
        )
        self.model: Model = self.client
        self.name = model or "upstream"

    async def check(self) -> None:
        self.name = await self.client.acheck()

    async def complete(self, call: Call) -> Completion:
        if isinstance(call.prompt, str):
            return await self.client.acomplete(
                call.prompt,
                max_tokens=call.max_tokens,
                stop=call.stop,
                temperature=call.temperature,
                choices=call.choices,
                extra=call.extra,
            )
        return await self.client.achat(
            call.prompt,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            stop=call.stop,
            extra=call.extra,
        )

    def stream(self, call: Call) -> AsyncIterator[str | Completion]:
        return self.client.astream(
            call.prompt,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            stop=call.stop,
            extra=call.extra,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class EmbeddedUpstream:
    """Gemma 3 270M (or another GGUF) in this process (see the module docstring)."""

    def __init__(self, path: str | None = None, *, n_ctx: int = 2048) -> None:
        from lifelong.models.llama_cpp import LlamaCpp

        self.model = LlamaCpp(path, n_ctx=n_ctx)
        self.name = self.model.name
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    async def check(self) -> None:
        return None

    async def complete(self, call: Call) -> Completion:
        out = await asyncio.get_running_loop().run_in_executor(
            self._thread, lambda: generate(self.model, call)
        )
        return replace(out, finish_reason="length" if out.completion_tokens >= call.max_tokens else "stop")

    async def stream(self, call: Call) -> AsyncIterator[str | Completion]:
        out = await self.complete(call)
        if out.text:
            yield out.text
        yield out

    async def aclose(self) -> None:
        self._thread.shutdown(wait=False)
