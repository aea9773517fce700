"""Any OpenAI-compatible HTTP server: one client with a synchronous and an asynchronous face.

Works with vLLM, Ollama, the llama.cpp server (``python -m llama_cpp.server``), OpenAI and others that
serve ``/v1/completions``, ``/v1/chat/completions`` and ``/v1/models``. :class:`OpenAICompatible` is a
:class:`~lifelong.models.base.Model` for the library (``complete``, ``chat``, ``check``) and the
service's upstream (``acomplete``, ``achat``, ``astream``, ``acheck``; the service's
:class:`~lifelong.serve.upstream.HttpUpstream` is a thin adapter over them). Both faces run on ``httpx``
— a ``Client`` and an ``AsyncClient``, each made on first use and closed by :meth:`~OpenAICompatible.close`
/ :meth:`~OpenAICompatible.aclose` — with connect and read timeouts on every request and a bounded
connection pool.

Both faces follow one :class:`RetryPolicy`: connection failures, timeouts and HTTP 408, 429 and 5xx are
tried again a bounded number of times with exponential back-off and jitter (a stream only before its
first byte, so it is never replayed half-way), then raise :class:`BackendUnavailable` naming the URL and
what to start — or, when the server did answer but kept failing, :class:`ModelError` with its last
answer. Other HTTP errors, refusals and malformed answers raise :class:`ModelError` with the server's
message. The standard API cannot constrain output to a label set, so with ``choices`` the answer is
projected onto the closest label (difflib ratio); servers that can constrain (vLLM's ``guided_choice``,
llama.cpp's ``grammar``) can be sent the extra fields, with ``extra_body`` (every call) or ``extra``
(one call: ``top_p``, ``seed``, ...). Neither overrides the fields the call itself sets.

>>> model = OpenAICompatible("http://127.0.0.1:9", retries=0, timeout=0.5)
>>> model.complete("hello")
Traceback (most recent call last):
...
lifelong.errors.BackendUnavailable: cannot reach http://127.0.0.1:9/v1/completions: ...
>>> model.close()
"""

from __future__ import annotations

import asyncio
import difflib
import json
import random
import threading
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from lifelong.errors import BackendUnavailable, InvalidInput, ModelError
from lifelong.models.base import Completion
from lifelong.utils.validation import check_scalar

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
START_A_SERVER = (
    "start an OpenAI-compatible server there, e.g. `python -m llama_cpp.server --model MODEL.gguf`, "
    "or check the base URL"
)

Messages = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Failure:
    """One failed try: the HTTP status the server answered with (None: no answer at all — a connection
    error or a timeout) and what it said."""

    status: int | None
    detail: str


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a request again, how long to wait, and which error ends it — for both faces."""

    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubled for each next one, times 1 to 2 (jitter)
    statuses: frozenset[int] = RETRYABLE_STATUS

    def __post_init__(self) -> None:
        check_scalar(self.retries, "retries", int, min_val=0)
        check_scalar(self.backoff, "backoff", float, min_val=0)

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number ``attempt`` (from 1): exponential back-off with jitter."""
        return self.backoff * 2.0 ** (attempt - 1) * (1 + random.random())

    def after(self, url: str, attempt: int, failure: Failure) -> float:
        """The decision once try number ``attempt`` (from 1) of ``url`` failed with ``failure``: the
        seconds to wait before the next try; else :class:`ModelError` when the server refused (a status
        not retried) or kept failing, :class:`BackendUnavailable` when the last try got no answer."""
        if failure.status is not None and failure.status not in self.statuses:
            raise ModelError(f"{url} refused the request (HTTP {failure.status}): {failure.detail}")
        if attempt < self.attempts:
            return self.delay(attempt)
        tries = f"{self.attempts} attempt{'s' if self.attempts > 1 else ''}"
        if failure.status is not None:
            raise ModelError(
                f"{url} kept failing ({tries}), last answer HTTP {failure.status}: {failure.detail}"
            )
        raise BackendUnavailable(url, f"{failure.detail} (after {tries}); {START_A_SERVER}")


class OpenAICompatible:
    """Completions and chat over HTTP, synchronous and asynchronous; see the module docstring.

    ``model`` is the name sent to the server; None sends ``"default"`` until :meth:`check` /
    :meth:`acheck` picks the one model the server serves.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_connections: int = 64,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"must start with http:// or https://, got {base_url!r}", field="base_url")
        check_scalar(timeout, "timeout", float, min_val=0, include_boundaries="neither")
        check_scalar(connect_timeout, "connect_timeout", float, min_val=0, include_boundaries="neither")
        check_scalar(max_connections, "max_connections", int, min_val=1)
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = model or "default"
        self.policy = RetryPolicy(retries, backoff)
        self.extra_body = dict(extra_body or {})
        self.timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    def count_tokens(self, text: str) -> int:
        """An estimate (4 characters per token): the standard API has no tokenizer endpoint."""
        return max(1, (len(text) + 3) // 4)

    # ------------------------------------------------------------------ the synchronous face

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """Continue ``prompt`` (``/completions``); with ``choices``, the text is the closest of them."""
        start = time.perf_counter()
        path, body = self._request(prompt, max_tokens, temperature, stop, extra)
        return self._completion(path, self._send("POST", path, body), start, choices)

    def chat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One chat turn: ``messages`` as ``[{"role": "user", "content": "..."}]``."""
        start = time.perf_counter()
        path, body = self._request(messages, max_tokens, temperature, stop, extra)
        return self._completion(path, self._send("POST", path, body), start, None)

    def check(self) -> str:
        """The model this client will ask for, read from ``GET /models`` (see :meth:`acheck`)."""
        return self._choose(self._send("GET", "/models", None))

    def close(self) -> None:
        """Close the synchronous client's connections (a later call opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> OpenAICompatible:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the asynchronous face

    async def acomplete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """:meth:`complete`, awaited."""
        start = time.perf_counter()
        path, body = self._request(prompt, max_tokens, temperature, stop, extra)
        return self._completion(path, await self._asend("POST", path, body), start, choices)

    async def achat(
        self,
        messages: Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Completion:
        """:meth:`chat`, awaited."""
        start = time.perf_counter()
        path, body = self._request(messages, max_tokens, temperature, stop, extra)
        return self._completion(path, await self._asend("POST", path, body), start, None)

    async def astream(
        self,
        prompt: str | Messages,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[str | Completion, None]:
        """The answer's text deltas as the server sends them (server-sent events), then one
        :class:`Completion` with the whole text and its usage (the server's, else the number of deltas
        as completion tokens). ``prompt`` is a completion prompt or chat messages. Retried only until
        the server starts answering; a stream that breaks after that raises :class:`ModelError`."""
        start = time.perf_counter()
        path, body = self._request(prompt, max_tokens, temperature, stop, extra, stream=True)
        response = await self._asend("POST", path, body, stream=True)
        events = _Events(self.base_url + path, chat=not isinstance(prompt, str))
        try:
            async for line in response.aiter_lines():
                for delta in events.feed(line):
                    yield delta
                if events.done:
                    break
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.base_url}{path}: the stream broke: {_describe(exc)}") from None
        finally:
            await response.aclose()
        yield events.completion(start)

    async def acheck(self) -> str:
        """The model this client will ask for, read from ``GET /models``: the one named (InvalidInput
        naming the served models when the server does not serve it), else the only one served."""
        return self._choose(await self._asend("GET", "/models", None))

    async def aclose(self) -> None:
        """Close both clients' connections (a later call opens new ones)."""
        client, self._aclient, self._aloop = self._aclient, None, None
        if client is not None:
            await client.aclose()
        self.close()

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ one request, two transports

    def _request(
        self,
        prompt: str | Messages,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str],
        extra: Mapping[str, Any] | None,
        *,
        stream: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The path and the JSON body of a completion (``prompt`` a string) or a chat turn (messages)."""
        body: dict[str, Any] = {
            **self.extra_body,
            **(extra or {}),
            "model": self.model or "default",
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}  # usage in a last chunk; ignored by some
        if isinstance(prompt, str):
            return "/completions", {**body, "prompt": prompt}
        return "/chat/completions", {**body, "messages": [dict(m) for m in prompt]}

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(headers=self._headers, timeout=self.timeout, limits=self._limits)
            return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            # A client's pooled connections belong to the event loop that opened them: a new loop
            # (another asyncio.run) gets a new client.
            self._aclient = httpx.AsyncClient(
                headers=self._headers, timeout=self.timeout, limits=self._limits
            )
            self._aloop = loop
        return self._aclient

    def _send(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """A 2xx response, read whole; the policy decides on every failure."""
        url = self.base_url + path
        client = self._sync_client()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = client.request(method, url, json=body)
            except httpx.TransportError as exc:
                failure = Failure(None, _describe(exc))
            else:
                if response.is_success:
                    return response
                failure = Failure(response.status_code, _detail(response.content))
            time.sleep(self.policy.after(url, attempt, failure))

    async def _asend(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool = False
    ) -> httpx.Response:
        """:meth:`_send`, awaited; with ``stream``, the 2xx response's body is left to be read."""
        url = self.base_url + path
        client = self._async_client()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await client.send(client.build_request(method, url, json=body), stream=stream)
            except httpx.TransportError as exc:
                failure = Failure(None, _describe(exc))
            else:
                if response.is_success:
                    return response
                content = await response.aread()
                await response.aclose()
                failure = Failure(response.status_code, _detail(content))
            await asyncio.sleep(self.policy.after(url, attempt, failure))

    # ------------------------------------------------------------------ reading the answers

    def _completion(
        self, path: str, response: httpx.Response, start: float, choices: Sequence[str] | None
    ) -> Completion:
        url = self.base_url + path
        data = _json_object(url, response)
        try:
            choice = data["choices"][0]
            if not isinstance(choice, dict):
                raise TypeError
        except (KeyError, IndexError, TypeError):
            raise ModelError(f"{url} answered without choices[0]: {str(data)[:200]}") from None
        text = _chat_text(url, choice) if path == "/chat/completions" else choice.get("text")
        if not isinstance(text, str):
            raise ModelError(f"{url} answered with a choices[0].text that is not a string")
        prompt_tokens, completion_tokens = _usage(url, data.get("usage"))
        return Completion(
            text=closest(text, choices) if choices else text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=time.perf_counter() - start,
            finish_reason=_finish(choice, None),
        )

    def _choose(self, response: httpx.Response) -> str:
        url = self.base_url + "/models"
        data = _json_object(url, response)
        try:
            served = [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError):
            raise ModelError(f"{url} did not answer with an OpenAI model list: {str(data)[:200]}") from None
        if self.model is None:
            if len(served) != 1:
                raise InvalidInput(
                    f"{self.base_url} serves {len(served)} models ({', '.join(served) or 'none'}); "
                    "say which with --model",
                    field="--model",
                )
            self.model = self.name = served[0]
        elif self.model not in served:
            raise InvalidInput(
                f"{self.base_url} does not serve {self.model!r}; it serves {', '.join(served) or 'nothing'}",
                field="--model",
            )
        return self.model


class _Events:
    """Reads an OpenAI stream (server-sent events), one line at a time."""

    def __init__(self, url: str, *, chat: bool) -> None:
        self.url, self.chat = url, chat
        self.parts: list[str] = []
        self.usage: Any = None
        self.finish: str | None = None
        self.done = False

    def feed(self, line: str) -> list[str]:
        """The text deltas of one line (none for comments, keep-alives and ``[DONE]``)."""
        if not line.startswith("data:"):
            return []
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return []
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ModelError(f"{self.url} streamed something that is not JSON: {payload[:100]!r}") from None
        if not isinstance(chunk, dict):
            raise ModelError(f"{self.url} streamed JSON that is not an object: {payload[:100]!r}")
        if chunk.get("error"):
            raise ModelError(f"{self.url} stopped its stream with an error: {str(chunk['error'])[:300]}")
        self.usage = chunk.get("usage") or self.usage
        deltas: list[str] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                raise ModelError(f"{self.url} streamed a choice that is not an object: {payload[:100]!r}")
            delta = choice.get("delta") if self.chat else choice
            piece = delta.get("content" if self.chat else "text") if isinstance(delta, dict) else None
            if piece:
                deltas.append(str(piece))
            self.finish = _finish(choice, self.finish)
        self.parts += deltas
        return deltas

    def completion(self, start: float) -> Completion:
        prompt_tokens, completion_tokens = _usage(self.url, self.usage)
        return Completion(
            text="".join(self.parts),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens if self.usage else len(self.parts),
            seconds=time.perf_counter() - start,
            finish_reason=self.finish,
        )


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _detail(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")[:300]


def _json_object(url: str, response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except ValueError:
        raise ModelError(
            f"{url} answered with something that is not JSON: {response.content[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"{url} answered with JSON that is not an object")
    return data


def _chat_text(url: str, choice: dict[str, Any]) -> Any:
    """The message's content; None (a model that said nothing) is ""; a refusal is a ModelError."""
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ModelError(f"{url} answered without choices[0].message")
    content = message.get("content")
    if content is None:
        if message.get("refusal"):
            raise ModelError(f"{url}: the model refused: {str(message['refusal'])[:300]}")
        return ""
    return content


def _usage(url: str, usage: Any) -> tuple[int, int]:
    if not usage:
        return 0, 0
    try:
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (AttributeError, TypeError, ValueError):
        raise ModelError(
            f"{url} answered with a usage that is not token counts: {str(usage)[:200]}"
        ) from None


def _finish(choice: dict[str, Any], default: str | None) -> str | None:
    reason = choice.get("finish_reason")
    return str(reason) if reason else default


def closest(text: str, choices: Sequence[str]) -> str:
    """The choice closest to ``text`` (exact match first, then difflib's similarity ratio)."""
    if not choices:
        raise InvalidInput("must not be empty", field="choices")
    stripped = text.strip()
    if stripped in choices:
        return stripped
    first_line = stripped.splitlines()[0] if stripped else ""
    return max(choices, key=lambda c: difflib.SequenceMatcher(None, first_line, c).ratio())
