"""What a model and an embedder are, to the rest of ``lifelong``.

A :class:`Model` turns a prompt into text. Every backend (llama.cpp in-process, any OpenAI-compatible
HTTP server) answers :meth:`Model.complete` with a :class:`Completion` that counts the tokens it read and
wrote, so benchmarks can report the cost of each interaction. When the answer must be one of a known set
of labels, pass ``choices``: the backend constrains its output to them (a grammar in llama.cpp, the
closest label for servers that cannot constrain).

An :class:`Embedder` turns texts into unit vectors; context learners search their items with them.
:class:`CachedEmbedder` remembers recent texts so the agent's recall and the learners' writes embed each
text once. :class:`HashingEmbedder` needs no model (hashed word and character n-grams): cheap, exact,
deterministic — for tests and for a first run before a neural embedder is installed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lifelong.utils.text import HashedText
from lifelong.utils.validation import check_scalar


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer: the text, and how many tokens it read (prompt) and wrote (completion)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float = 0.0
    #: Log-probability of each generated token under the decoding policy (empty when the backend gives none).
    token_logprobs: tuple[float, ...] = ()
    #: The generated token ids (trainable backends: what a policy-gradient update scores again).
    token_ids: tuple[int, ...] = ()
    #: The version of the adapter that generated the text (trainable backends), else None.
    model_version: int | None = None
    #: Why generation stopped, as the server said ("stop", "length", ...); None when the backend does not say.
    finish_reason: str | None = None


@runtime_checkable
class Model(Protocol):
    """A text generator."""

    name: str

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
    ) -> Completion:
        """Continue ``prompt``; with ``choices``, the text is exactly one of them."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in this model's vocabulary."""
        ...


#: A chat message as every OpenAI-compatible server takes it: ``{"role": ..., "content": "..."}``.
Message = Mapping[str, str]


@dataclass(frozen=True)
class Call:
    """One model call: a completion of ``prompt`` (a string) or a chat turn (a tuple of messages).

    ``choices`` constrains the answer to one of them (a label); ``extra`` holds other OpenAI fields
    (``top_p``, ``seed``, ...) that an HTTP backend passes on.
    """

    prompt: str | tuple[Message, ...]
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    choices: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def chat(self) -> bool:
        return not isinstance(self.prompt, str)

    def text(self) -> str:
        """What the call's prompt says, as one text (what a token budget counts)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(content_text(m.get("content")) for m in self.prompt)


def generate(model: Model, call: Call) -> Completion:
    """Run ``call`` on any :class:`Model`: a chat turn goes to the model's own ``chat`` when it has one
    (an OpenAI-compatible server), else to ``complete`` as a plain transcript (a base model has no chat
    template), the answer stripped."""
    if not call.chat:
        assert isinstance(call.prompt, str)
        return model.complete(
            call.prompt,
            max_tokens=call.max_tokens,
            stop=call.stop,
            temperature=call.temperature,
            choices=call.choices,
        )
    assert not isinstance(call.prompt, str)
    messages = call.prompt
    chat = getattr(model, "chat", None)
    if callable(chat):
        out: Completion = chat(
            messages, max_tokens=call.max_tokens, temperature=call.temperature, stop=call.stop
        )
        return out
    out = model.complete(
        transcript(messages),
        max_tokens=call.max_tokens,
        stop=("\nUser:", *call.stop),
        temperature=call.temperature,
    )
    return Completion(
        out.text.strip(),
        out.prompt_tokens,
        out.completion_tokens,
        out.seconds,
        out.token_logprobs,
        out.token_ids,
        out.model_version,
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


@runtime_checkable
class Embedder(Protocol):
    """Texts → unit vectors of ``dim`` dimensions."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 array of shape (len(texts), dim), each row of length 1."""
        ...


def embed_one(embedder: Embedder, text: str) -> np.ndarray:
    return np.asarray(embedder.embed([text])[0], dtype=np.float32)


class HashingEmbedder:
    """Signed feature hashing of words, word bigrams and character n-grams into ``dim`` dense slots."""

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim
        self._features = HashedText(n_features=dim)  # validates dim (a power of two >= 16)
        self.name = f"hashing-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            index, value = self._features(text)
            out[row, index] = value
        return out


class CachedEmbedder:
    """Wraps an embedder with an LRU cache of the last ``size`` texts."""

    def __init__(self, embedder: Embedder, size: int = 4096) -> None:
        check_scalar(size, "size", int, min_val=1)
        self.inner = embedder
        self.dim = embedder.dim
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.name = getattr(embedder, "name", type(embedder).__name__)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._cache[text] = np.asarray(vector, dtype=np.float32)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._cache[text]
            self._cache.move_to_end(text)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return out

    def holds(self, text: str) -> bool:
        return text in self._cache

    def forget(self, texts: Iterable[str]) -> int:
        """Drop the cached vectors of ``texts`` (an erased user's); returns how many were cached."""
        return sum(self._cache.pop(text, None) is not None for text in texts)
