"""``lifelong bench weights``: online RL of a LoRA adapter from accept/reject, next to token space.

A simulated developer writes standard-library packages (:class:`~lifelong.envs.code_completion.
CodeCompletion`,
Cursor Tab's rewards: +0.75 accepted, −0.25 rejected, 0 silent); Gemma 3 270M in PyTorch
(:class:`~lifelong.models.trainable.TrainableModel`) completes lines. The variants, all sampling from
the same policy (temperature 0.7, the abstain head at its 10% prior) on the same files and orders:

- ``control`` — the frozen base: the policy never updates (the same system with learning off);
- ``weights`` — :class:`~lifelong.learners.weights.policy_gradient.PolicyGradient` (LoRA lr 5e-4, head lr
  2e-3) with the KL and replay guards, each update gated on a held-out probe (requests from a
  package it never sees, held-out prose and code, each kind checked on its own);
- ``unguarded`` / ``kl`` / ``replay`` / ``ewc`` — the guard ablation (no probe gate, so what the
  guards alone do to retention shows);
- ``token`` — the frozen policy with the token-space learners (example bank, lessons, memory) and the
  suggestion gate; ``both`` — the guarded weight learner with them.

Retention is the held-out perplexity ratio (adapted / base) on prose (the Python language reference)
and on code (``argparse``/``textwrap`` source), text no variant trains on or is gated with.
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path

import numpy as np

from lifelong.agents import Agent, CodeCompletionTask
from lifelong.agents.tasks import code_facts
from lifelong.bench.agents import _headline, run_variants, variant_agent
from lifelong.envs.code_completion import CodeCompletion
from lifelong.envs.texts import code_texts, prose_texts
from lifelong.errors import InvalidInput
from lifelong.eval.agents import AgentTrace
from lifelong.eval.result import Result
from lifelong.experience.log import ExperienceLog
from lifelong.learners.weights.guards import EWC, Guard, KLPenalty, Replay, retention_ppl_ratio
from lifelong.learners.weights.policy_gradient import PolicyGradient, Probe
from lifelong.models.base import CachedEmbedder, Embedder
from lifelong.models.trainable import TrainableModel

VARIANTS = ("control", "weights", "unguarded", "kl", "replay", "ewc", "token", "both")
TRAIN_PACKAGES = ("json", "email", "http")
PROBE_PACKAGES = ("logging",)  # held-out requests for the gate
TEXT_MODULES = ("argparse", "textwrap")  # held-out code text (replay split / probe split)
CONTEXT_LINES = 12
MAX_TOKENS = 24


def probe_requests(n: int, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` (prompt, right line) pairs from the held-out packages, prompts as the task builds them."""
    from lifelong.agents.agent import Context

    env = CodeCompletion.from_stdlib(PROBE_PACKAGES, rate=0.05, limit=n, context_lines=CONTEXT_LINES)
    task = CodeCompletionTask(context_lines=CONTEXT_LINES)
    observation, _ = env.reset(seed=seed)
    pairs = []
    done = False
    while not done:
        prompt = task.prompt(observation, Context())
        observation, _, done, _, info = env.step(None)
        pairs.append((prompt, str(info["correct_action"])))
    return pairs


def guards_for(variant: str) -> list[Guard]:
    replay_texts = prose_texts("replay", limit=40) + code_texts(TEXT_MODULES, "replay", limit=40)
    kl, replay = KLPenalty(0.1), Replay(replay_texts, fraction=0.25, text_chunks=1, text_weight=0.5)
    chosen: dict[str, list[Guard]] = {
        "weights": [kl, replay],
        "both": [kl, replay],
        "unguarded": [],
        "kl": [kl],
        "replay": [replay],
        "ewc": [EWC(replay_texts, weight=100.0)],
    }
    return chosen.get(variant, [])


def weights(args: argparse.Namespace) -> Result:
    requests = args.steps or 200
    lr = float(getattr(args, "lr", None) or 5e-4)  # LoRA matrices
    head_lr = 2e-3  # the abstain head
    chosen = tuple((getattr(args, "variants", None) or "control,weights").split(","))
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        raise InvalidInput(
            f"unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}", field="--variants"
        )
    # EWC is not among the default ablations (time on 2 cores): --variants ewc runs it.
    ablations = () if getattr(args, "variants", None) else ("unguarded", "kl", "replay", "token", "both")
    gate_texts = {"prose": prose_texts("probe", limit=3), "code": code_texts(TEXT_MODULES, "probe", limit=3)}
    retention_prose = prose_texts("probe")[3:9]
    retention_code = code_texts(TEXT_MODULES, "probe")[3:9]
    probe_pairs = probe_requests(16)
    embedder: Embedder | None = None

    def make_env() -> CodeCompletion:
        return CodeCompletion.from_stdlib(
            TRAIN_PACKAGES, rate=0.25, limit=requests, context_lines=CONTEXT_LINES, shuffle_files=True
        )

    task = CodeCompletionTask(context_lines=CONTEXT_LINES)
    task.max_tokens = MAX_TOKENS
    seed_of: dict[str, int] = {}
    update_requests: dict[str, list[list[int]]] = {}  # after which request each promoted update landed

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        nonlocal embedder
        gc.collect()
        seed = seed_of[variant] = seed_of.get(variant, -1) + 1
        model = TrainableModel.gemma(seed=seed)
        gated = variant in ("weights", "both")
        policy = PolicyGradient(
            model,
            lr=lr,
            head_lr=head_lr,
            update_every=8,
            guards=guards_for(variant),
            probe=Probe(probe_pairs, gate_texts) if gated else None,
            seed=seed,
        )
        if variant in ("control", "token"):
            policy.freeze()
        if variant in ("token", "both"):
            if embedder is None:
                from lifelong.models import MiniLM

                embedder = CachedEmbedder(MiniLM(), size=20_000)
            return variant_agent(
                "learner", model, embedder, task, code_facts, log,
                per_user=True, token_budget=768, gated=True, policy=policy,
            )  # fmt: skip
        return Agent(model, task, log, policy=policy, token_budget=4096)

    def measure(variant: str, agent: Agent, trace: AgentTrace) -> dict[str, float]:
        assert agent.policy is not None
        model, policy = agent.policy.model, agent.policy
        history = policy.history
        update_requests.setdefault(variant, []).append([u.seen for u in history if u.promoted])
        seconds = np.cumsum(np.asarray(trace.act_seconds) + np.asarray(trace.learn_seconds))
        update_seconds = [u.seconds for u in history]
        return {
            "updates": float(len(history)),
            "promoted": float(sum(u.promoted for u in history)),
            "retention_ppl_ratio_prose": retention_ppl_ratio(model, retention_prose, max_tokens=192),
            "retention_ppl_ratio_code": retention_ppl_ratio(model, retention_code, max_tokens=192),
            "wall_seconds": float(seconds[-1]) if len(seconds) else 0.0,
            "seconds_per_update": float(np.mean(update_seconds)) if update_seconds else 0.0,
            "update_tokens_per_feedback": sum(u.tokens for u in history) / max(1, len(trace)),
            "abstain_probability_probe": float(
                np.mean([model.abstain_probability(model.encode_prompt(p)) for p, _ in probe_pairs])
            ),
        }

    seeds = list(range(args.seeds))
    result, traces = run_variants(
        "code completion (weight space: LoRA policy gradient)",
        make_env,
        make_agent,
        [v for v in chosen if v not in ablations],
        seeds,
        max(20, requests // 8),
        Path(args.out) / "weights-logs",
        ablations,
        getattr(args, "ablation_steps", None),
        measure,
    )
    result.config = {
        "codebase": f"stdlib: {', '.join(TRAIN_PACKAGES)} (files shuffled per order)",
        "probe": f"{len(probe_pairs)} requests from {', '.join(PROBE_PACKAGES)}; "
        "3 prose + 3 code held-out chunks, each kind checked on its own",
        "retention_texts": f"{len(retention_prose)} prose chunks (pydoc_data), "
        f"{len(retention_code)} code chunks ({', '.join(TEXT_MODULES)})",
        "requests": requests,
        "lr": lr,
        "head_lr": head_lr,
        "update_every": 8,
        "temperature": 0.7,
        "context_lines": CONTEXT_LINES,
        "max_tokens": MAX_TOKENS,
        "model": "Gemma 3 270M (GGUF Q4_K_M dequantised to float32, PyTorch), LoRA r=8 on q/k/v/o",
    }
    _headline(
        result, "reward_per_request", "accept_rate", "suggestion_rate", "right_rate", "updates",
        "retention_ppl_ratio_prose", "retention_ppl_ratio_code", "wall_seconds",
        "learn_seconds_per_request", "tokens_per_request", "update_tokens_per_feedback",
    )  # fmt: skip
    for key in ("reward_per_request", "accept_rate", "suggestion_rate"):
        per_variant = result.extra[key]
        per_variant["learner"], per_variant["control"] = (
            per_variant.get("weights"),
            per_variant.get("control"),
        )
    ratio = result.extra["retention_ppl_ratio_prose"]
    result.extra["retention_ppl_ratio"] = {
        v: {"prose": ratio[v], "code": result.extra["retention_ppl_ratio_code"].get(v)} for v in ratio
    }
    result.extra["update_requests"] = {v: h[0] for v, h in update_requests.items()}  # first order
    result.extra["wall_seconds_curve"] = {
        v: np.round(np.cumsum(np.asarray(t[0].act_seconds) + np.asarray(t[0].learn_seconds)), 2).tolist()
        for v, t in traces.items()
    }
    return result
