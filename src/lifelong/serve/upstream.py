"""The model behind the service: any OpenAI-compatible server (``--upstream``) or Gemma in-process.

:class:`HttpUpstream` calls the server with ``httpx``'s async client: a timeout on every request, a
bounded connection pool, and bounded retries with exponential back-off and jitter on connection errors,
timeouts, HTTP 429 and 5xx — before the first byte of an answer only, so a stream is never replayed
half-way. One slow upstream call holds one coroutine, never a worker.

:class:`EmbeddedUpstream` runs the packaged Gemma 3 270M (a *base* model) with llama.cpp in one
dedicated thread; chat messages are rendered as a plain ``User:`` / ``Assistant:`` transcript, since
a base model has no chat template. Its "stream" is the whole answer in one chunk (llama.cpp generates
it in that thread; the wire format is the same).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from lifelong.errors import BackendUnavailable, InvalidInput, ModelError
from lifelong.models.openai_compat import RETRYABLE_STATUS

RETRYABLE = RETRYABLE_STATUS  # the same statuses the synchronous OpenAI-compatible backend retries


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
    """An OpenAI-compatible server over HTTP (see the module docstring)."""

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
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = model or "upstream"
        self.retries = retries
        self.backoff = backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def count_tokens(self, text: str) -> int:
        return max(1, (len(text) + 3) // 4)  # the standard API has no tokenizer: ~4 characters a token

    async def check(self) -> None:
        try:
            response = await self._client.get("/models", timeout=10.0)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                self.base_url, f"{type(exc).__name__}: {exc}; is the model server up?"
            ) from None
        if response.status_code != 200:
            raise BackendUnavailable(self.base_url, f"GET /models answered HTTP {response.status_code}")
        try:
            served = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{self.base_url}/models did not answer with an OpenAI model list") from None
        if self.model is None:
            if len(served) != 1:
                raise InvalidInput(
                    f"the upstream serves {len(served)} models ({', '.join(served) or 'none'}); "
                    "say which with --model",
                    field="--model",
                )
            self.model = self.name = served[0]
        elif self.model not in served:
            raise InvalidInput(
                f"the upstream does not serve {self.model!r}; it serves {', '.join(served) or 'nothing'}",
                field="--model",
            )

    def _body(self, request: Request, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            **request.extra,
            "model": self.model or "default",
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        if request.kind == "chat":
            body["messages"] = [dict(m) for m in request.messages]
        else:
            body["prompt"] = request.prompt
        if stream:
            body["stream"] = True
        return body

    def _path(self, request: Request) -> str:
        return "/chat/completions" if request.kind == "chat" else "/completions"

    async def _send(self, request: Request, stream: bool) -> httpx.Response:
        body = self._body(request, stream)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random()))
            try:
                sent = self._client.build_request("POST", self._path(request), json=body)
                response = await self._client.send(sent, stream=stream)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRYABLE:
                detail = (await response.aread()).decode("utf-8", "replace")[:300]
                await response.aclose()
                last = f"HTTP {response.status_code}: {detail}"
                continue
            if response.status_code != 200:
                detail = (await response.aread()).decode("utf-8", "replace")[:300]
                await response.aclose()
                raise ModelError(f"the upstream refused the request (HTTP {response.status_code}): {detail}")
            return response
        raise BackendUnavailable(
            self.base_url + self._path(request), f"{last} after {self.retries + 1} attempts"
        )

    async def generate(self, request: Request) -> Generated:
        start = time.perf_counter()
        response = await self._send(request, stream=False)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if request.kind == "chat" else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError("the upstream answered without choices[0] text") from None
        usage = data.get("usage") or {}
        return Generated(
            str(text or ""),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            str(choice.get("finish_reason") or "stop"),
            time.perf_counter() - start,
        )

    async def stream(self, request: Request) -> AsyncIterator[str | Generated]:
        start = time.perf_counter()
        response = await self._send(request, stream=True)
        parts: list[str] = []
        finish = "stop"
        usage: dict[str, Any] = {}
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    raise ModelError(
                        f"the upstream streamed something that is not JSON: {payload[:100]!r}"
                    ) from None
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = (
                        (choice.get("delta") or {}).get("content")
                        if request.kind == "chat"
                        else choice.get("text")
                    )
                    if delta:
                        parts.append(str(delta))
                        yield str(delta)
                    finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            raise ModelError(f"the upstream stream broke: {type(exc).__name__}: {exc}") from None
        finally:
            await response.aclose()
        text = "".join(parts)
        yield Generated(
            text,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or len(parts)),
            finish,
            time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


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
