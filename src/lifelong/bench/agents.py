"""``lifelong bench intent-stream`` and ``lifelong bench code-completion``: token-space learning, measured.

Each variant is the same frozen model with a different set of learners, run prequentially on the same
stream orders (:func:`lifelong.eval.agents.run_agent`):

- ``learner`` — the whole agent: example bank + lessons + memory recalled into the prompt under a
  harness configuration that :class:`~lifelong.agents.harness.HarnessSearch` learns in the background;
  for labels, experts (the LLM, the examples' similarity vote, the nearest example, an online softmax on
  hashed text, the nearest class mean of the embeddings) combined by an
  :class:`~lifelong.learners.experts.mixture.ExpertMixture`; for suggestions, a gate with an explicit
  objective (``--objective``, default ``keep``: reward without losing accepted work);
- every expert alone (``llm``, ``knn``, ``nearest``, ``OnlineSoftmax``, ``Prototypes``) and ``hedge``
  (exponential weights over the same experts) — read from the learner's log: each expert's proposal is
  logged on every request and every expert learns from the right answer whatever was served, so these
  are exactly the runs each would have had alone (see :func:`~lifelong.eval.agents.trace_of_answers`);
- ``legacy`` — the agent as it was before expert selection (examples + lessons + memory, fixed sizes);
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
from lifelong.agents.agent import PLAIN_ANSWER
from lifelong.agents.apps import App
from lifelong.agents.apps import build_agent as build_app_agent
from lifelong.agents.tasks import code_facts, label_facts
from lifelong.envs.base import Env
from lifelong.envs.code_completion import CodeCompletion
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.eval.agents import (
    AgentTrace,
    logged_steps,
    near_duplicate_repeat_rate,
    run_agent,
    trace_of_answers,
)
from lifelong.eval.metrics import slope_ci, windowed
from lifelong.eval.result import Curve, Result
from lifelong.experience.log import ExperienceLog
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.context.base import MODEL_ANSWER
from lifelong.learners.context.gate import SuggestionGate
from lifelong.learners.context.memory import Extractor
from lifelong.learners.experts.mixture import Hedge, logged_proposals
from lifelong.learners.weights.policy_gradient import PolicyGradient
from lifelong.models.base import CachedEmbedder, Embedder, Model

VARIANTS = (
    "learner",
    "control",
    "knn",
    "legacy",
    "examples",
    "lessons",
    "memory",
    "context",
    "gate",
    "routed",
)
INTENT_INSTRUCTION = "Classify each customer query by its intent."
#: The experts read from the learner's log (label tasks), and the combiner replayed over them.
LABEL_EXPERTS = ("llm", "knn", "nearest", "OnlineSoftmax", "Prototypes", "EmbeddingSoftmax")


def learning_agent(
    model: Model | None,
    embedder: Embedder,
    app: App,
    log: ExperienceLog,
    *,
    token_budget: int = 768,
    objective: str = "keep",
    search: bool = True,
) -> Agent:
    """The whole learning agent of the benchmarks (``learner``) — the agent ``lifelong serve`` runs for
    ``app`` (:func:`lifelong.agents.apps.build_agent`); frozen, it is the ``control``."""
    return build_app_agent(
        app, model, embedder, log, token_budget=token_budget, objective=objective, search=search
    )


def variant_agent(
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
        "legacy": {"examples", "lessons", "memory"},
        "knn": {"examples"},
        "examples": {"examples"},
        "lessons": {"lessons"},
        "memory": {"memory"},
        "context": {"examples", "lessons", "memory"},
        "gate": set(),
        "routed": {"examples", "lessons", "memory"},
    }[variant]
    if variant in ("learner", "control"):
        raise InvalidInput("the learner and its control are built by learning_agent", field="variant")
    gate = None
    if gated and variant in ("legacy", "gate"):
        gate = SuggestionGate()
    elif variant == "routed":
        gate = SuggestionGate(objective="reward", threshold=0.0)
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
    return agent


def fresh_log(path: Path) -> ExperienceLog:
    """A new log at ``path``: an earlier run's file (and its WAL) is removed, never appended to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    return ExperienceLog(path)


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
    derive: Callable[[str, ExperienceLog, AgentTrace], dict[str, AgentTrace]] | None = None,
    after_step: Callable[[Agent], Callable[[AgentTrace], None]] | None = None,
) -> tuple[Result, dict[str, list[AgentTrace]]]:
    """Every variant on every stream order, the ablations on the first order only (they cost as much
    as the learner each; ``ablation_limit`` shortens their stream); curves of the right rate (accepted or
    correct per request). ``measure`` adds numbers taken from each agent after its run (as metrics
    ``variant.name``, one value per order); ``derive`` adds traces read from a variant's log (the
    experts alone), as variants of their own; ``after_step(agent)`` gives what runs after each request
    (e.g. a sleep-time learner's idle window)."""
    result = Result(name=name, protocol="prequential agent", seeds=list(seeds))
    traces: dict[str, list[AgentTrace]] = {v: [] for v in [*variants, *ablations]}
    measured: dict[str, list[float]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for n_order, seed in enumerate(seeds):
        for variant in [*variants, *(ablations if n_order == 0 else ())]:
            log = fresh_log(out / f"{variant}-order{seed}.db")
            env = make_env()
            if variant in ablations and ablation_limit is not None:
                env.limit = min(ablation_limit, env.limit or ablation_limit)  # type: ignore[attr-defined]
            started = time.perf_counter()
            agent = make_agent(variant, log)
            trace = run_agent(agent, env, seed, on_step=after_step(agent) if after_step is not None else None)
            for name, derived in (derive(variant, log, trace) if derive is not None else {}).items():
                traces.setdefault(name, []).append(derived)
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
    summarise(result, traces, window, len(seeds), keep=ablations)
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


def summarise(
    result: Result,
    traces: dict[str, list[AgentTrace]],
    window: int,
    orders: int,
    *,
    keep: Sequence[str] = (),
    prefix: str = "",
) -> None:
    """Each variant's curve of the right rate per ``window`` and its metrics (every trace summary key,
    ``last_window``, ``slope_per_1k``) as ``<prefix><variant>.<key>``, one value per order. A variant
    with fewer than ``orders`` traces is left out (derived from one that did not run on every order),
    unless named in ``keep`` (the ablations, run on the first order only)."""
    for variant, runs in traces.items():
        if len(runs) < orders and variant not in keep:
            continue
        n = min(len(t) for t in runs)
        xs, _ = windowed(np.asarray(runs[0].right[:n], dtype=float), window)
        result.curves[prefix + variant] = Curve(
            [float(x) for x in xs],
            [windowed(np.asarray(t.right[:n], dtype=float), window)[1].tolist() for t in runs],
            kind="score",
            ylabel="right (accepted / correct) per request",
        )
        summaries = [t.summary() for t in runs]
        for key in summaries[0]:
            result.add_metric(f"{prefix}{variant}.{key}", [s[key] for s in summaries])
        last = [float(np.mean(t.right[n - window : n])) for t in runs]
        result.add_metric(f"{prefix}{variant}.last_window", last)
        slopes = [slope_ci(np.arange(n), np.asarray(t.right[:n], dtype=float)).slope for t in runs]
        result.add_metric(f"{prefix}{variant}.slope_per_1k", [1000 * s for s in slopes])


def models() -> tuple[Model, Embedder]:
    from lifelong.models import LlamaCpp, MiniLM

    return LlamaCpp(), CachedEmbedder(MiniLM(), size=20_000)


def make_variant(
    variant: str,
    model: Model,
    embedder: Embedder,
    app: App,
    log: ExperienceLog,
    *,
    token_budget: int,
    objective: str = "keep",
) -> Agent:
    """``variant`` of the agent for ``app``: the learner or its frozen control (the app's agent), or one
    of the ablations (:func:`variant_agent`)."""
    if variant in ("learner", "control"):
        agent = learning_agent(model, embedder, app, log, token_budget=token_budget, objective=objective)
        return agent.freeze() if variant == "control" else agent
    label_task = app.task == "label"
    task = (
        LabelTask(app.labels, instruction=app.instruction or INTENT_INSTRUCTION)
        if label_task
        else CodeCompletionTask()
    )
    return variant_agent(
        variant,
        model,
        embedder,
        task,
        label_facts if label_task else code_facts,
        log,
        per_user=not label_task,
        token_budget=token_budget,
        gated=not label_task,
    )


def harness_metrics(variant: str, agent: Agent, trace: AgentTrace) -> dict[str, float]:
    """The harness search's cost and outcome on one order (learner only)."""
    search = agent.harness
    if variant != "learner" or search is None:
        return {}
    rounds = search.rounds
    watched = [r["watch"] for r in rounds if "watch" in r]
    out = {
        "harness_calls": float(search.calls),
        "harness_calls_per_request": search.calls / max(1, len(trace)),
        "harness_rounds": float(len(rounds)),
        "harness_promotions": float(sum(1 for r in rounds if r.get("promoted"))),
        "harness_rollbacks": float(sum(1 for r in rounds if r.get("rolled_back"))),
    }
    if watched:
        new = sum(w["promoted"] * w["requests"] for w in watched)
        old = sum(w["previous"] * w["requests"] for w in watched)
        n = sum(w["requests"] for w in watched)
        out["harness_watch_promoted"] = new / n
        out["harness_watch_previous"] = old / n
        out["harness_watch_wins"] = float(new > old)
    return out


def code_completion(args: argparse.Namespace) -> Result:
    source = getattr(args, "source", None)
    packages = tuple((getattr(args, "packages", None) or "json,email,http,logging").split(","))
    requests = args.steps or 1000
    objective = getattr(args, "objective", None) or "keep"
    variants, ablations = _variants(args, ("learner", "control", "knn"), ("legacy", "context"))

    def make_env() -> CodeCompletion:
        kw: dict[str, Any] = {"rate": 0.25, "limit": requests}
        return (
            CodeCompletion.from_path(source, **kw) if source else CodeCompletion.from_stdlib(packages, **kw)
        )

    make_env()  # a missing source fails before any model is loaded
    model, embedder = models()
    app = App("code", "completion")

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        return make_variant(variant, model, embedder, app, log, token_budget=768, objective=objective)

    def derive(variant: str, log: ExperienceLog, trace: AgentTrace) -> dict[str, AgentTrace]:
        if variant != "learner":
            return {}
        steps = logged_steps(log)
        experts = {"llm": MODEL_ANSWER, "plain": PLAIN_ANSWER}  # with / without the learned context
        out = {
            name: trace_of_answers(steps, answer_in(key), trace, suggestions=True)
            for name, key in experts.items()
        }
        if "control" not in variants:  # the frozen control is asked exactly the plain prompt
            out["control"] = out["plain"]
        return out

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
        measure=harness_metrics,
        derive=derive,
    )
    result.config = {
        "codebase": source or f"stdlib: {', '.join(packages)}",
        "requests": requests,
        "rate": 0.25,
        "objective": objective,
        "control": "run"
        if "control" in variants
        else "read from the learner's plain answers (the same prompt)",
    }
    _headline(
        result,
        "accept_rate",
        "reward_per_request",
        "suggestion_rate",
        "right_rate",
        "chars_saved",
        "last_window",
    )
    _ratios(result, ("accept_rate", "right_rate", "chars_saved"))
    return result


def intent_stream(args: argparse.Namespace) -> Result:
    from lifelong.bench.intents import load_data

    # A folder in BANKING77 layout streams its train.csv; a single CSV streams all its rows (no probe here).
    data = load_data(args, holdout=0.0)  # missing or malformed data fails before a model loads
    stream = IntentStream.from_data(data)
    model, embedder = models()
    dataset = data.name
    items = args.steps or 1000
    variants, ablations = _variants(args, ("learner", "control"), ("legacy", "examples"))
    app = App("intents", "label", labels=tuple(sorted(set(stream.labels))), instruction=INTENT_INSTRUCTION)

    def make_env() -> IntentStream:
        return IntentStream(stream.texts, stream.labels, limit=items)

    def make_agent(variant: str, log: ExperienceLog) -> Agent:
        return make_variant(variant, model, embedder, app, log, token_budget=768)

    def derive(variant: str, log: ExperienceLog, trace: AgentTrace) -> dict[str, AgentTrace]:
        if variant != "learner":
            return {}
        steps = logged_steps(log)
        out = {}
        for name in LABEL_EXPERTS:
            out[name] = trace_of_answers(steps, top_answer_of(name), trace, suggestions=False)
        hedge = Hedge()

        def hedged(step: Any) -> Any:
            answer, _ = hedge.choose(logged_proposals(step))
            hedge.learn(step)
            return answer

        out["hedge"] = trace_of_answers(steps, hedged, trace, suggestions=False)
        return out

    seeds = list(range(args.seeds))
    window = max(50, items // 10)
    result, traces = run_variants(
        f"{dataset} intent stream (token space)",
        make_env,
        make_agent,
        variants,
        seeds,
        window,
        Path(args.out) / "intent-stream-logs",
        ablations,
        getattr(args, "ablation_steps", None),
        measure=harness_metrics,
        derive=derive,
    )
    for name, runs in traces.items():
        if len(runs) < len(seeds):
            continue
        rates = [near_duplicate_repeat_rate(embedder.embed(t.inputs), t.right) for t in runs]
        result.add_metric(f"{name}.repeat_error_near_duplicate", rates)
    result.config = {
        "dataset": dataset,
        "data": data.describe(),
        "items": items,
        "window": window,
        "labels": len(app.labels),
        "ablation_items": getattr(args, "ablation_steps", None) or items,
        "recalled_per_request": {"examples": 6, "lessons": 2, "memory": 2, "vote": 6},
        "model": "Gemma 3 270M Q4_K_M (llama.cpp)",
        "embedder": "all-MiniLM-L6-v2",
    }
    _headline(result, "last_window", "repeat_error_rate", "repeat_error_near_duplicate", "right_rate")
    result.extra["last_window_accuracy"] = result.extra.pop("last_window")
    from lifelong.bench.recall import recall_latency

    result.extra["recall_p95_ms"] = recall_latency(embedder, stream.texts)
    return result


def answer_in(key: str) -> Callable[[Any], Any]:
    """The answer a step's interaction logged under metadata ``key`` (what an expert alone served)."""

    def answer(step: Any) -> Any:
        return step.interaction.metadata.get(key)

    return answer


def top_answer_of(name: str) -> Callable[[Any], Any]:
    """The top answer expert ``name`` proposed on a step (what it would have served alone)."""

    def answer(step: Any) -> Any:
        rows = logged_proposals(step).get(name)
        return rows[0][0] if rows else None

    return answer


def _ratios(result: Result, keys: Sequence[str]) -> None:
    """``learner / control`` of each key's mean, as top-level JSON fields ``<key>_ratio``."""
    for key in keys:
        learner, control = result.metrics.get(f"learner.{key}"), result.metrics.get(f"control.{key}")
        if learner is not None and control is not None and control.mean > 0:
            result.extra[f"{key}_ratio"] = learner.mean / control.mean


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
