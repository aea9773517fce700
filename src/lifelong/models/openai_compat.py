"""Any OpenAI-compatible HTTP server as a :class:`~lifelong.models.base.Model`.

Works with vLLM, Ollama, the llama.cpp server (``python -m llama_cpp.server``), OpenAI and others that
serve ``/v1/completions`` and ``/v1/chat/completions``. Only the standard library is used (``urllib``).

Every request has a timeout; connection failures, timeouts, HTTP 429 and 5xx are retried a bounded
number of times with exponential backoff and jitter, then raise :class:`BackendUnavailable` naming the
URL and what to start — or, when the server did answer but kept failing (5xx), :class:`ModelError`
with its last message. Other HTTP errors and malformed answers raise :class:`ModelError` with the
server's message. The standard API cannot constrain output to a label set, so with ``choices`` the
answer is projected onto the closest label (difflib ratio); servers that can constrain (vLLM's
``guided_choice``, llama.cpp's ``grammar``) can be sent the extra fields with ``extra_body``.

>>> model = OpenAICompatible("http://127.0.0.1:9", retries=0, timeout=0.5)
>>> model.complete("hello")
Traceback (most recent call last):
...
lifelong.errors.BackendUnavailable: cannot reach http://127.0.0.1:9/v1/completions: ...
"""

from __future__ import annotations

import difflib
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from lifelong.errors import BackendUnavailable, InvalidInput, ModelError
from lifelong.models.base import Completion
from lifelong.utils.validation import check_scalar

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class OpenAICompatible:
    """Completions and chat over HTTP; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"must start with http:// or https://, got {base_url!r}", field="base_url")
        check_scalar(timeout, "timeout", float, min_val=0, include_boundaries="neither")
        check_scalar(retries, "retries", int, min_val=0)
        check_scalar(backoff, "backoff", float, min_val=0)
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})

    def count_tokens(self, text: str) -> int:
        """An estimate (4 characters per token): the standard API has no tokenizer endpoint."""
        return max(1, (len(text) + 3) // 4)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
    ) -> Completion:
        start = time.perf_counter()
        data = self._post("/completions", self._body(max_tokens, temperature, stop, prompt=prompt))
        text = _first(data, "text")
        return self._completion(data, closest(text, choices) if choices else text, start)

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Completion:
        """One chat turn: ``messages`` as ``[{"role": "user", "content": "..."}]``."""
        start = time.perf_counter()
        body = self._body(max_tokens, temperature, stop, messages=[dict(m) for m in messages])
        data = self._post("/chat/completions", body)
        message = _first(data, "message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ModelError(f"{self.base_url}/chat/completions answered without a message content")
        return self._completion(data, message["content"], start)

    def _body(
        self, max_tokens: int, temperature: float, stop: Sequence[str], **fields: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            **fields,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = list(stop)
        return body

    def _completion(self, data: dict[str, Any], text: str, start: float) -> Completion:
        usage = data.get("usage") or {}
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - start,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        payload = json.dumps({**body, **self.extra_body}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        answered = False  # the server was reached (it answered with an HTTP error)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + random.random()))
            request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", errors="replace")[:300]
                if exc.code in RETRYABLE_STATUS:
                    last, answered = f"HTTP {exc.code}: {detail}", True
                    continue
                raise ModelError(f"{url} refused the request (HTTP {exc.code}): {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last, answered = str(getattr(exc, "reason", exc)), False
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                raise ModelError(f"{url} answered with something that is not JSON: {raw[:200]!r}") from None
            if not isinstance(data, dict):
                raise ModelError(f"{url} answered with JSON that is not an object")
            return data
        if answered:
            raise ModelError(f"{url} kept failing ({self.retries + 1} attempts), last answer {last}")
        raise BackendUnavailable(
            url,
            f"{last} (after {self.retries + 1} attempts); start an OpenAI-compatible server there, e.g. "
            "`python -m llama_cpp.server --model MODEL.gguf`, or check the base URL",
        )


def _first(data: dict[str, Any], field: str) -> Any:
    try:
        value = data["choices"][0][field]
    except (KeyError, IndexError, TypeError):
        raise ModelError(f"the server's answer has no choices[0].{field}: {str(data)[:200]}") from None
    if field == "text" and not isinstance(value, str):
        raise ModelError("the server's choices[0].text is not a string")
    return value


def closest(text: str, choices: Sequence[str]) -> str:
    """The choice closest to ``text`` (exact match first, then difflib's similarity ratio)."""
    if not choices:
        raise InvalidInput("must not be empty", field="choices")
    stripped = text.strip()
    if stripped in choices:
        return stripped
    first_line = stripped.splitlines()[0] if stripped else ""
    return max(choices, key=lambda c: difflib.SequenceMatcher(None, first_line, c).ratio())
