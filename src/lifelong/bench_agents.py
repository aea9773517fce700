"""``lifelong bench intent-stream`` and ``lifelong bench code-completion``: token-space learning, measured.

Each variant is the same frozen model with a different set of context learners, run prequentially on
the same stream orders (:func:`lifelong.eval.agents.run_agent`):

- ``learner`` — example bank + lessons + memory, all learning;
- ``control`` — the same agent frozen from the start (nothing learned: the model alone);
- ``knn`` — no model at all: a similarity-weighted vote of the nearest examples (embedding kNN);
- ``examples`` / ``lessons`` / ``memory`` — one learner alone (the ablation);
- for suggestion tasks (code completion) the learner also has a :class:`SuggestionGate` that learns
  when to stay silent: ``context`` is the three context learners without it, ``gate`` the gate alone;
- ``routed`` (label tasks) — the learner plus a gate with threshold 0 that learns, per request, whether
  to answer with the model's label or with the examples' weighted vote (it never stays silent).

Every variant of a stream order shares one model and one embedder (loaded once).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.agents import Agent, CodeCompletionTask, LabelTask
from lifelong.agents.tasks import code_facts, label_facts
from lifelong.envs.base import Env
from lifelong.envs.code_completion import CodeCompletion
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.eval.agents import AgentTrace, run_agent
from lifelong.eval.metrics import slope_ci, windowed
from lifelong.eval.result import Curve, Result
from lifelong.experience.log import ExperienceLog
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.gate import SuggestionGate
from lifelong.learners.memory import Extractor
from lifelong.learners.policy_gradient import PolicyGradient
from lifelong.models.base import CachedEmbedder, Embedder, Model

VARIANTS = ("learner", "control", "knn", "examples", "lessons", "memory", "context", "gate", "routed")
INTENT_INSTRUCTION = "Classify each banking customer query by its intent."


def build_agent(
    variant: str,
    model: Model | None,
    embedder: Embedder,
    task: Any,
    extract: Extractor,
    log: ExperienceLog,
    *,
    per_user: bool,
    token_budget: int,
    gated: bool = False,
    k: tuple[int, int, int] = (6, 2, 2),
    policy: PolicyGradient | None = None,
) -> Agent:
    """One of :data:`VARIANTS`, with fresh (empty) learners recalling ``k`` = (examples, lessons, memory)
    items per request (small: a 270M model reads ~500 prompt tokens/s on 2 cores)."""
    if variant not in VARIANTS:
        raise InvalidInput(f"must be one of {', '.join(VARIANTS)}, got {variant!r}", field="variant")
    use = {
        "learner": {"examples", "lessons", "memory"},
        "control": {"examples", "lessons", "memory"},
        "knn": {"examples"},
        "examples": {"examples"},
        "lessons": {"lessons"},
        "memory": {"memory"},
        "context": {"examples", "lessons", "memory"},
        "gate": set(),
        "routed": {"examples", "lessons", "memory"},
    }[variant]
    gate = None
    if gated and variant in ("learner", "control", "gate"):
        gate = SuggestionGate()
    elif variant == "routed":
        gate = SuggestionGate(threshold=0.0)
    agent = Agent(
        None if variant == "knn" else model,
        task,
        log,
        examples=ExampleBank(embedder, per_user=per_user, k=k[0]) if "examples" in use else None,
        lessons=Lessons(embedder, per_user=per_user, k=k[1]) if "lessons" in use else None,
        memory=Memory(embedder, extract=extract, per_user=per_user, k=k[2]) if "memory" in use else None,
        gate=gate,
        policy=policy,
        token_budget=token_budget,
    )
    return agent.freeze() if variant == "control" else agent


def run_variants(
    name: str,
    make_env: Callable[[], Env[Any, Any]],
    make_agent: Callable[[str, ExperienceLog], Agent],
    variants: Sequence[str],
    seeds: Sequence[int],
    window: int,
    out: Path,
    ablations: Sequence[str] = (),
    ablation_limit: int | None = None,
    measure: Callable[[str, Agent, AgentTrace], dict[str, float]] | None = None,
) -> tuple[Result, dict[str, list[AgentTrace]]]:
    """Every variant on every stream order, the ablations on the first order only (they cost as much
    as the learner each; ``ablation_limit`` shortens their stream); curves of the right rate (accepted or
    correct per request). ``measure`` adds numbers taken from each agent after its run (as metrics
    ``variant.name``, one value per order)."""
    result = Result(name=name, protocol="prequential agent", seeds=list(seeds))
    traces: dict[str, list[AgentTrace]] = {v: [] for v in [*variants, *ablations]}
    measured: dict[str, list[float]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for n_order, seed in enumerate(seeds):
        for variant in [*variants, *(ablations if n_order == 0 else ())]:
            path = out / f"{variant}-order{seed}.db"
            for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                stale.unlink(missing_ok=True)  # a fresh log per run: never append to an earlier run's
            log = ExperienceLog(path)
            env = make_env()
            if variant in ablations and ablation_limit is not None:
                env.limit = min(ablation_limit, env.limit or ablation_limit)  # type: ignore[attr-defined]
            started = time.perf_counter()
            agent = make_agent(variant, log)
            trace = run_agent(agent, env, seed)
            log.close()
            traces[variant].append(trace)
            for key, value in (measure(variant, agent, trace) if measure is not None else {}).items():
                measured.setdefault(f"{variant}.{key}", []).append(value)
            s = trace.summary()
            print(
                f"  order {seed} {variant:9s} right {s['right_rate']:.3f}  accept {s['accept_rate']:.3f}  "
                f"reward/req {s['reward_per_request']:+.3f}  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    for variant, runs in traces.items():
        n = min(len(t) for t in runs)
        xs, _ = windowed(np.asarray(runs[0].right[:n], dtype=float), window)
        result.curves[variant] = Curve(
            [float(x) for x in xs],
            [windowed(np.asarray(t.right[:n], dtype=float), window)[1].tolist() for t in runs],
            kind="score",
            ylabel="right (accepted / correct) per request",
        )
        summaries = [t.summary() for t in runs]
        for key in summaries[0]:
            result.add_metric(f"{variant}.{key}", [s[key] for s in summaries])
        last = [float(np.mean(t.right[n - window : n])) for t in runs]
        result.add_metric(f"{variant}.last_window", last)
        slopes = [slope_ci(np.arange(n), np.asarray(t.right[:n], dtype=float)).slope for t in runs]
        result.add_metric(f"{variant}.slope_per_1k", [1000 * s for s in slopes])
    for name, values in measured.items():
        result.add_metric(name, values)
    if ablations and ablation_limit is not None:  # the full variants on the ablations' shorter stream
        for variant in variants:
            first = traces[variant][0]
            m = min(ablation_limit, len(first))
            prefix = AgentTrace(**{f: getattr(first, f)[:m] for f in AgentTrace.__dataclass_fields__})
            for key, value in prefix.summary().items():
                result.add_metric(f"{variant}.first_{m}.{key}", [value])
    return result, traces


def _models() -> tuple[Model, Embedder]:
    from lifelong.models import LlamaCpp, MiniLM

    return LlamaCpp(), CachedEmbedder(MiniLM(), size=20_000)


def code_completion(args: argparse.Namespace) -> Result:
    model, embedder = _models()
    source = getattr(args, "source", None)
    packages = tuple((getattr(args, "packages", None) or "json,email,http,logging").split(","))
    requests = args.steps or 1000
    variants, ablations = _variants(args, ("learner", "control", "knn"), ("context", "gate"))

    def make_env() -> CodeCompletion:
        kw: dict[str, Any] = {"rate": 0.25, "limit": requests}
        return (
            CodeCompletion.from_path(source, **kw) if source else CodeCompletion.from_stdlib(packages, **kw)
        )

    task = CodeCompletionTask()

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        return build_agent(
            variant, model, embedder, task, code_facts, log, per_user=True, token_budget=768, gated=True
        )

    seeds = list(range(args.seeds))
    result, _ = run_variants(
        "code completion (token space)",
        make_env,
        make_agent,
        variants,
        seeds,
        max(20, requests // 10),
        Path(args.out) / "code-completion-logs",
        ablations,
        getattr(args, "ablation_steps", None),
    )
    result.config = {
        "codebase": source or f"stdlib: {', '.join(packages)}",
        "requests": requests,
        "rate": 0.25,
    }
    _headline(result, "accept_rate", "reward_per_request", "suggestion_rate", "right_rate", "last_window")
    return result


def intent_stream(args: argparse.Namespace) -> Result:
    model, embedder = _models()
    stream = IntentStream.banking77(args.data)
    items = args.steps or 1000
    variants, ablations = _variants(args, ("learner", "control", "knn"), ("examples", "lessons", "memory"))
    task = LabelTask(stream.labels, instruction=INTENT_INSTRUCTION)

    def make_env() -> IntentStream:
        return IntentStream(stream.texts, stream.labels, limit=items)

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        return build_agent(variant, model, embedder, task, label_facts, log, per_user=False, token_budget=768)

    seeds = list(range(args.seeds))
    window = max(50, items // 10)
    result, _ = run_variants(
        "BANKING77 intent stream (token space)",
        make_env,
        make_agent,
        variants,
        seeds,
        window,
        Path(args.out) / "intent-stream-logs",
        ablations,
        getattr(args, "ablation_steps", None),
    )
    result.config = {
        "items": items,
        "window": window,
        "labels": len(task.labels),
        "ablation_items": getattr(args, "ablation_steps", None) or items,
        "recalled_per_request": {"examples": 6, "lessons": 2, "memory": 2},
        "model": "Gemma 3 270M Q4_K_M (llama.cpp)",
        "embedder": "all-MiniLM-L6-v2",
    }
    _headline(result, "last_window", "repeat_error_rate", "right_rate")
    result.extra["last_window_accuracy"] = result.extra.pop("last_window")
    from lifelong.bench_recall import recall_latency

    result.extra["recall_p95_ms"] = recall_latency(embedder, stream.texts)
    return result


def _variants(
    args: argparse.Namespace, default: Sequence[str], ablations: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The variants to run on every order and the ablations (first order only): ``--variants`` names
    the variants and turns the ablations off."""
    chosen = getattr(args, "variants", None)
    if not chosen:
        return tuple(default), tuple(ablations)
    names = tuple(chosen.split(","))
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise InvalidInput(
            f"unknown {sorted(unknown)}; choose from {', '.join(VARIANTS)}", field="--variants"
        )
    return names, ()


def _headline(result: Result, *keys: str) -> None:
    """Top-level JSON fields {variant: stat} for ``keys``, from the metrics ``variant.key`` (not from the
    prefix metrics ``variant.first_N.key``, which cover one order's first requests only)."""
    for key in keys:
        result.extra[key] = {
            name.split(".")[0]: stat.to_dict()
            for name, stat in result.metrics.items()
            if name.count(".") == 1 and name.endswith("." + key)
        }
