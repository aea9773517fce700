"""``lifelong bench consolidation``: weight space learns *what* — corrections consolidated into the adapter.

A simulated developer writes a standard-library package (:class:`~lifelong.envs.code_completion.
CodeCompletion`; Cursor Tab's rewards +0.75 / −0.25 / 0); a quarter of the package's files are held out
of the stream. Gemma 3 270M in PyTorch (:class:`~lifelong.models.trainable.TrainableModel`) completes
lines, every variant sampling from the same policy (temperature ``TEMPERATURE``, the abstain head at its
10% prior) on the same files and stream orders:

- ``control`` — the frozen base (the same system with learning off);
- ``policy`` — :class:`~lifelong.learners.weights.policy_gradient.PolicyGradient` alone (reward only:
  *whether*), gated and guarded as in ``lifelong bench weights``;
- ``consolidation`` — :class:`~lifelong.learners.weights.consolidation.Consolidation`: supervised
  updates on each correction / accepted line in sleep-time (one gradient step in the idle window after
  each request), gated on a held-out probe;
- ``both`` — consolidation with the policy-gradient term (supervision: *what*; reward: *when*);
- ``token`` — the frozen policy with the token-space learners (example bank, lessons, memory) and the
  suggestion gate; ``token_weights`` — the same with consolidation training on the *bare* prompts (no
  recalled examples), which distils what the example bank shows into the weights.

``control`` and ``consolidation`` run on every order; the others on the first (``--ablation-steps``).
After each run: exact match (greedy, teacher-forced) on held-out lines of the package, retention as
held-out perplexity (prose: the language reference; code: ``argparse``/``textwrap``), and the cost of a
learning event. Distillation: on ``token_weights``'s held-out lines, exact match against prompt tokens
with 0, 2 and 6 recalled examples, with and without the adapter.

Part ``users``: three simulated developers write the same files in their own conventions
(:mod:`~lifelong.envs.code_styles`: pep8, camelCase, other quotes), interleaved; consolidation with the
shared adapter alone against shared + per-user fast weights (``user_rank``), per style: accepted
completions per request on the stream and exact match on that style's held-out lines; the cost per
user (bytes, ms per update, swap time).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.agents import Agent, CodeCompletionTask
from lifelong.agents.agent import Context
from lifelong.agents.harness import HarnessConfig
from lifelong.agents.tasks import code_facts
from lifelong.bench.agents import _headline, fresh_log, run_variants, variant_agent
from lifelong.bench.weights import TEXT_MODULES, guards_for
from lifelong.envs.code_completion import CodeCompletion, stdlib_files
from lifelong.envs.code_styles import STYLES
from lifelong.envs.texts import code_texts, prose_texts
from lifelong.errors import InvalidInput
from lifelong.eval.agents import AgentRun, AgentTrace
from lifelong.eval.result import Result
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Scope
from lifelong.learners.weights.consolidation import Consolidation
from lifelong.learners.weights.guards import Replay, retention_ppl_ratio
from lifelong.learners.weights.policy_gradient import PolicyGradient, Probe
from lifelong.models.base import CachedEmbedder, Embedder
from lifelong.models.trainable import TrainableModel

VARIANTS = ("control", "policy", "consolidation", "both", "token", "token_weights")
PACKAGE = "email"
CONTEXT_LINES = 12
MAX_TOKENS = 24
TEMPERATURE = 0.3
HELDOUT_LINES = 48
DISTIL_K = (0, 2, 6)


def split_files(packages: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """The packages' files for the stream, and every fourth one (in path order) held out."""
    files = stdlib_files(packages)
    if len(files) < 4:
        raise InvalidInput(
            f"{', '.join(packages)} has {len(files)} files; need 4 or more", field="--packages"
        )
    held = files[1::4]
    return [f for f in files if f not in held], held


def line_pairs(
    files: Sequence[Path], n: int, seed: int, *, style: str = "pep8", scope: Scope | None = None
) -> list[tuple[dict[str, str], str]]:
    """``n`` (observation, right line) pairs sampled from ``files`` written in ``style``."""
    env = CodeCompletion(
        files, rate=0.1, limit=n, context_lines=CONTEXT_LINES, shuffle_files=True, style=STYLES[style],
        scope=scope,
    )  # fmt: skip
    observation, _ = env.reset(seed=seed)
    pairs = []
    done = False
    while not done:
        current = observation
        observation, _, done, _, info = env.step(None)
        pairs.append((current, str(info["correct_action"])))
    return pairs


def exact_match(model: TrainableModel, prompts: Sequence[tuple[str, str]], *, base: bool = False) -> float:
    """Share of held-out lines greedy decoding writes exactly (teacher-forced, one forward each)."""
    hits = 0
    with model.base() if base else contextlib.nullcontext():
        for prompt, right in prompts:
            ids = model.encode_prompt(prompt)[-192:]
            hits += model.line_match(ids, model.tokenizer.encode(right.strip() + "\n"))[0]
    return hits / max(1, len(prompts))


class _Setup:
    """What every run of one benchmark shares: files, held-out lines, probe, texts, the embedder."""

    def __init__(self, packages: Sequence[str], requests: int) -> None:
        self.packages = tuple(packages)
        self.requests = requests
        self.stream_files, self.held_files = split_files(packages)
        self.task = CodeCompletionTask(context_lines=CONTEXT_LINES)
        self.task.max_tokens = MAX_TOKENS
        bare = Context()
        self.heldout_observations = line_pairs(self.held_files, HELDOUT_LINES, 11)
        self.heldout = [(self.task.prompt(o, bare), r) for o, r in self.heldout_observations]
        self.probe_pairs = [
            (self.task.prompt(o, bare), r) for o, r in line_pairs(self.held_files, 12, 23)
        ]  # the gate's requests: held-out files, other lines than the measured ones (seed 23 vs 11)
        self.gate_texts = {
            "prose": prose_texts("probe", limit=2),
            "code": code_texts(TEXT_MODULES, "probe", limit=2),
        }
        self.retention_prose = prose_texts("probe")[3:9]
        self.retention_code = code_texts(TEXT_MODULES, "probe")[3:9]
        self.replay_texts = prose_texts("replay", limit=40) + code_texts(TEXT_MODULES, "replay", limit=40)
        self.embedder: Embedder | None = None

    def bare_prompt(self, observation: Any) -> str:
        return self.task.prompt(observation, Context())

    def probe(self) -> Probe:
        return Probe(self.probe_pairs, self.gate_texts)

    def embed(self) -> Embedder:
        if self.embedder is None:
            from lifelong.models import MiniLM

            self.embedder = CachedEmbedder(MiniLM(), size=20_000)
        return self.embedder

    def consolidation(self, model: TrainableModel, seed: int, **kw: Any) -> Consolidation:
        return Consolidation(
            model,
            temperature=TEMPERATURE,
            prompt=self.bare_prompt,
            batch=4,
            replay=1.0,
            update_every=16,
            guards=[Replay(self.replay_texts, fraction=0.0, text_chunks=1, text_weight=0.5, max_tokens=96)],
            probe=self.probe(),
            seed=seed,
            **kw,
        )


def _sleep_after_each_request(agent: Agent) -> Callable[[AgentTrace], None]:
    """The idle window after each request: one sleep of the consolidating learner (its seconds are
    added to the request's learning time: on 2 cores idle time is not free)."""

    def after(trace: AgentTrace) -> None:
        policy = agent.policy
        if isinstance(policy, Consolidation):
            trace.learn_seconds[-1] += policy.sleep().seconds

    return after


def consolidation(args: argparse.Namespace) -> Result:
    requests = args.steps or 96
    packages = tuple((getattr(args, "packages", None) or PACKAGE).split(","))
    named = getattr(args, "variants", None)
    chosen = tuple((named or "control,consolidation").split(","))
    unknown = set(chosen) - set(VARIANTS)
    if unknown:
        raise InvalidInput(
            f"unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}", field="--variants"
        )
    parts = tuple((getattr(args, "parts", None) or "main,users").split(","))
    if set(parts) - {"main", "users"}:
        raise InvalidInput(f"unknown part in {parts}; choose from main, users", field="--parts")
    ablations = () if named else ("policy", "both", "token", "token_weights")
    setup = _Setup(packages, requests)
    base_match = 0.0
    seed_of: dict[str, int] = {}
    agents: dict[str, list[Agent]] = {}
    out = Path(args.out)

    def make_env() -> CodeCompletion:
        return CodeCompletion(
            setup.stream_files, rate=0.25, limit=requests, context_lines=CONTEXT_LINES, shuffle_files=True
        )

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        gc.collect()
        seed = seed_of[variant] = seed_of.get(variant, -1) + 1
        model = TrainableModel.gemma(seed=seed)
        learner: PolicyGradient
        if variant in ("consolidation", "token_weights"):
            learner = setup.consolidation(model, seed)
        elif variant == "both":
            learner = setup.consolidation(model, seed, policy_weight=1.0)
        else:
            learner = PolicyGradient(
                model,
                lr=5e-4,
                head_lr=2e-3,
                temperature=TEMPERATURE,
                update_every=8,
                guards=guards_for("weights"),
                probe=setup.probe() if variant == "policy" else None,
                seed=seed,
            )
            if variant in ("control", "token"):
                learner.freeze()
        if variant in ("token", "token_weights"):
            agent = variant_agent(
                "legacy", model, setup.embed(), setup.task, code_facts, log,
                per_user=True, token_budget=768, gated=True, policy=learner,
            )  # fmt: skip
        else:
            agent = Agent(model, setup.task, log, policy=learner, token_budget=4096)
        agents.setdefault(variant, []).append(agent)
        return agent

    def measure(variant: str, agent: Agent, trace: AgentTrace) -> dict[str, float]:
        assert agent.policy is not None
        policy, model = agent.policy, agent.policy.model
        learn_events = max(1, len(trace))
        frozen = policy.version == 0  # the base adapter (B = 0): measured once, for the base
        row = {
            "exact_match_heldout": base_match if frozen else exact_match(model, setup.heldout),
            "retention_ppl_ratio_prose": 1.0
            if frozen
            else retention_ppl_ratio(model, setup.retention_prose, max_tokens=192),
            "retention_ppl_ratio_code": 1.0
            if frozen
            else retention_ppl_ratio(model, setup.retention_code, max_tokens=192),
            "updates": float(len(policy.history)),
            "promoted": float(sum(u.promoted for u in policy.history)),
            "learn_seconds_per_event": float(np.sum(trace.learn_seconds)) / learn_events,
            "wall_seconds": float(np.sum(trace.act_seconds) + np.sum(trace.learn_seconds)),
        }
        if isinstance(policy, Consolidation):
            row["sleep_seconds_per_event"] = policy.sleep_seconds / learn_events
            row["trained_tokens_per_event"] = (
                float(sum(len(p.prompt_ids) + len(p.target_ids) for p in policy.reservoir))
                * (1 + policy.replay)
                / learn_events
            )
        if variant == "token_weights" and len(agents[variant]) == 1:
            row.update(_distillation(setup, agent))
        return row

    seeds = list(range(args.seeds))
    result = Result("code completion (weight space: consolidation)", "prequential agent", seeds)
    if "main" in parts:
        base = TrainableModel.gemma(seed=0)
        base_match = exact_match(base, setup.heldout, base=True)
        del base
        result, _ = run_variants(
            "code completion (weight space: consolidation)",
            make_env,
            make_agent,
            [v for v in chosen if v not in ablations],
            seeds,
            max(20, requests // 4),
            out / "consolidation-logs",
            ablations,
            getattr(args, "ablation_steps", None),
            measure,
            after_step=lambda agent: _sleep_after_each_request(agent),
        )
        result.add_metric("base.exact_match_heldout", [base_match])
        _headline(
            result, "right_rate", "chars_saved", "accept_rate", "suggestion_rate", "reward_per_request",
            "last_window", "exact_match_heldout", "retention_ppl_ratio_prose", "retention_ppl_ratio_code",
            "learn_seconds_per_event", "sleep_seconds_per_event", "tokens_per_request", "updates", "promoted",
        )  # fmt: skip
        accepted = result.extra["right_rate"]
        accepted["learner"], accepted["control"] = accepted.get("consolidation"), accepted.get("control")
    if "users" in parts:
        result.extra["users"] = per_user(setup, getattr(args, "user_steps", None) or 32, out)
    result.config = {
        "codebase": f"stdlib {', '.join(packages)}: {len(setup.stream_files)} files streamed (shuffled per "
        f"order), {len(setup.held_files)} held out",
        "requests": requests,
        "temperature": TEMPERATURE,
        "context_lines": CONTEXT_LINES,
        "heldout_lines": HELDOUT_LINES,
        "probe": f"{len(setup.probe_pairs)} held-out requests; 3 prose + 3 code chunks, each kind on its own",
        "model": "Gemma 3 270M (GGUF Q4_K_M dequantised to float32, PyTorch), LoRA r=8 on q/k/v/o",
        "consolidation": "lr 5e-4, one step per idle window (the new pairs + as many replayed), a gate "
        "every 16 pairs, general-text replay 0.5 (one 96-token chunk per step)",
    }
    return result


def _distillation(setup: _Setup, agent: Agent) -> dict[str, float]:
    """Exact match on the held-out lines against prompt tokens, with k recalled examples, adapter on/off."""
    assert agent.policy is not None and agent.model is not None
    model = agent.policy.model
    row: dict[str, float] = {}
    scope = Scope("code", user="developer")
    for k in DISTIL_K:
        config = HarnessConfig(examples=k, lessons=0, memory=0)
        prompts, tokens = [], 0
        for observation, right in setup.heldout_observations:
            context = agent.recall(observation, scope, config=config)
            prompt = setup.task.prompt(observation, context)
            prompts.append((prompt, right))
            tokens += model.count_tokens(prompt)
        row[f"distil_k{k}_prompt_tokens"] = tokens / max(1, len(prompts))
        row[f"distil_k{k}_exact_match_adapter"] = exact_match(model, prompts)
        row[f"distil_k{k}_exact_match_base"] = exact_match(model, prompts, base=True)
    return row


def per_user(setup: _Setup, steps_per_user: int, out: Path) -> dict[str, Any]:
    """Three styles interleaved, shared adapter alone vs shared + per-user fast weights."""
    styles = list(STYLES)
    heldout = {
        style: [
            (setup.bare_prompt(o), r)
            for o, r in line_pairs(setup.held_files, HELDOUT_LINES // 2, 11, style=style)
        ]
        for style in styles
    }
    report: dict[str, Any] = {"styles": styles, "requests_per_user": steps_per_user}
    for variant, user_rank in (("shared", None), ("per_user", 4)):
        gc.collect()
        model = TrainableModel.gemma(seed=0)
        learner = setup.consolidation(model, 0, user_rank=user_rank)
        log = fresh_log(out / "consolidation-logs" / f"users-{variant}.db")
        agent = Agent(model, setup.task, log, policy=learner, token_budget=4096)
        runs = {
            style: AgentRun(
                agent,
                CodeCompletion(
                    setup.stream_files, rate=0.25, limit=steps_per_user, context_lines=CONTEXT_LINES,
                    shuffle_files=True, style=STYLES[style], scope=Scope("code", user=style),
                ),
                seed=0,
            )
            for style in styles
        }  # fmt: skip
        started = time.perf_counter()
        while not all(run.done for run in runs.values()):
            for run in runs.values():
                if not run.done:
                    run.step()  # two steps per idle window: the shared adapter, then the user's
                    run.trace.learn_seconds[-1] += learner.sleep(steps=2).seconds
        while learner.queued:  # what is still queued at the end is consolidated (not measured)
            learner.sleep(steps=16)
        row: dict[str, Any] = {"wall_seconds": time.perf_counter() - started}
        for style, run in runs.items():
            learner.serve(Scope("code", user=style))
            summary = run.trace.summary()
            row[style] = {
                "right_rate": summary["right_rate"],
                "accept_rate": summary["accept_rate"],
                "chars_saved": summary["chars_saved"],
                "exact_match_heldout": exact_match(model, heldout[style]),
            }
        if user_rank is not None:
            swap = []
            for style in styles * 5:
                t0 = time.perf_counter()
                learner.serve(Scope("code", user=style))
                swap.append(time.perf_counter() - t0)
            row["cost"] = {
                "bytes_per_user": float(np.mean([learner.user_bytes(s) for s in styles])),
                "optimizer_bytes_per_user": 2.0 * float(np.mean([learner.user_bytes(s) for s in styles])),
                "ms_per_user_step": 1000 * float(np.mean(learner.user_step_seconds or [0.0])),
                "swap_ms": 1000 * float(np.mean(swap)),
                "parameters_per_user": float(sum(p.numel() for p in model.user_parameters())),
                "user_versions": dict(learner._user_versions),
                "user_rejected": learner._user_rejected,
            }
        log.close()
        report[variant] = row
        scores = [
            f"{s} right {row[s]['right_rate']:.3f} held-out {row[s]['exact_match_heldout']:.3f}"
            for s in styles
        ]
        print(f"  users {variant}: " + ", ".join(scores), flush=True)
        del agent, learner, model
    return report
