"""``lifelong demo``: the flagship — a code-completion agent learns a codebase as a developer works in it.

A simulated developer writes the files of a real codebase (a standard-library package of the running
Python by default, or any directory given with ``--source``) top to bottom. At sampled line starts the
agent — Gemma 3 270M in-process via llama.cpp, weights frozen — suggests the rest of the line or stays
silent; the developer accepts an exact match and otherwise types the true line, which the agent sees
as a correction. The *learning* agent keeps an example bank, lessons and a memory of definitions
(token space), asks the model both with and without what it learned, and a suggestion gate learns
which candidate to suggest and when to stay silent — without giving up accepted work; its *frozen
control* is the same agent with learning switched off, answering the same requests in lockstep.
Every interaction and its feedback goes to the experience log before anything learns.

The terminal shows both accept rates live; at the end the demo writes the curves (PNG + JSON), commits
and promotes the learned state in a version store next to the log, checks that replaying the log
rebuilds that state exactly, and prints where everything is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.agents import Agent, CodeCompletionTask
from lifelong.agents.tasks import code_facts
from lifelong.envs.code_completion import CodeCompletion
from lifelong.errors import InvalidInput
from lifelong.eval.agents import AgentRun, AgentTrace
from lifelong.eval.loop import progress_bar
from lifelong.eval.result import Curve, Result
from lifelong.experience import ExperienceLog, Scope, new_id
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.context.gate import SuggestionGate
from lifelong.models.base import CachedEmbedder, Embedder, Model
from lifelong.state import VersionStore, digest

DEFAULT_PACKAGE = "email"


def make_agent(model: Model, embedder: Embedder, log: ExperienceLog) -> Agent:
    """The learning agent of the demo (the control is the same agent, frozen)."""
    return Agent(
        model,
        CodeCompletionTask(),
        log,
        examples=ExampleBank(embedder, per_user=True),
        lessons=Lessons(embedder, per_user=True),
        memory=Memory(embedder, extract=code_facts, per_user=True),
        gate=SuggestionGate(),  # objective "keep": reward without losing accepted work
        plain=True,  # the frozen model's own suggestion stays a candidate: nothing it would give is lost
        token_budget=768,
    )


def run_demo(args: argparse.Namespace) -> int:
    if args.requests < 10:
        raise InvalidInput(f"must be >= 10, got {args.requests}", field="--requests")
    from lifelong.models import LlamaCpp, MiniLM

    out = Path(args.out)
    session = time.strftime("run-%Y%m%dT%H%M%S-") + new_id()[:6]  # several runs can share one log
    scope = Scope(tenant="code", user="developer", session=session)

    def make_env() -> CodeCompletion:
        kw: dict[str, Any] = {"rate": args.rate, "limit": args.requests, "scope": scope}
        if args.source:
            return CodeCompletion.from_path(args.source, **kw)
        return CodeCompletion.from_stdlib(args.package.split(","), **kw)

    envs = (make_env(), make_env())  # fails early if the source is missing
    where = args.source or f"the standard library's {args.package}"
    out.mkdir(parents=True, exist_ok=True)
    log_url = args.log or str(out / "experience.db")
    log = ExperienceLog(log_url)
    control_log = ExperienceLog(":memory:")  # the control's interactions are not the product's
    print(f"lifelong demo: a developer writes {where}; {len(envs[0])} completion requests (seed {args.seed})")
    print("loading Gemma 3 270M (llama.cpp) and all-MiniLM-L6-v2 ...", flush=True)
    started = time.perf_counter()
    model, embedder = LlamaCpp(), CachedEmbedder(MiniLM())
    learner = make_agent(model, embedder, log)
    control = make_agent(model, embedder, control_log).freeze()
    runs = {
        "learner": AgentRun(learner, envs[0], args.seed),
        "control": AgentRun(control, envs[1], args.seed),
    }
    print(f"ready in {time.perf_counter() - started:.0f} s; log: {log_url}", flush=True)

    with progress_bar(len(envs[0]), "completing", True, unit="req") as bar:
        while not runs["learner"].done:
            for run in runs.values():
                run.step()
            live = _live(runs["learner"].trace, runs["control"].trace)
            bar.set_postfix_str(live, refresh=False)
            bar.update(1)
            done = len(runs["learner"].trace)
            if bar.disable and (done % 25 == 0 or runs["learner"].done):  # no terminal: a line now and then
                print(f"  {done:4d} requests: {live}", flush=True)

    traces = {name: run.trace for name, run in runs.items()}
    result = _result(traces, args, where)
    store = VersionStore(log_url)
    for name, item_learner in learner.all_learners.items():
        version = store.commit(item_learner, message=f"demo {session}: {name}")
        store.promote(item_learner.name, version.version)
    same = _replay_matches(learner, log, scope, model, embedder)
    result.config["replay_rebuilds_same_state"] = same
    json_path, png_path = result.save(out, "demo")

    print()
    print(_table(traces))
    print(f"\nlog: {log.stats().interactions} interactions in {log_url} (and the learned state)")
    print(f"replay of the log rebuilds the same learned state: {'yes' if same else 'NO'}")
    print(f"curves: {png_path}\nresult: {json_path}")
    print(f"total {time.perf_counter() - started:.0f} s")
    log.close()
    store.close()
    return 0 if same else 1


def _live(learner: AgentTrace, control: AgentTrace) -> str:
    def part(t: AgentTrace) -> str:
        s = t.summary()
        return f"accept {s['accept_rate']:.0%} of {sum(t.suggested)}"

    return f"learner {part(learner)} | control {part(control)}"


def _table(traces: dict[str, AgentTrace]) -> str:
    rows = ["             accept rate  suggestion rate  accepted/request  reward/request  chars saved"]
    for name, trace in traces.items():
        s = trace.summary()
        rows.append(
            f"  {name:9s}  {s['accept_rate']:10.1%}  {s['suggestion_rate']:15.1%}  {s['right_rate']:16.1%}"
            f"  {s['reward_per_request']:+14.3f}  {int(s['chars_saved']):11d}"
        )
    learner, control = (traces[n].summary() for n in ("learner", "control"))
    parts, wins = [], 0
    for key, label in (
        ("accept_rate", "accept rate"),
        ("right_rate", "accepted completions"),
        ("chars_saved", "characters saved"),
    ):
        wins += learner[key] > control[key]
        ratio = f"{learner[key] / control[key]:.2f}x" if control[key] > 0 else "n/a"
        parts.append(f"{label} {ratio}")
    rows.append(f"  learner / control: {', '.join(parts)} — the learner wins on {wins} of 3")
    return "\n".join(rows)


def _result(traces: dict[str, AgentTrace], args: argparse.Namespace, where: str) -> Result:
    result = Result(name=f"demo: code completion on {where}", protocol="prequential agent", seeds=[args.seed])
    n = len(traces["learner"])
    x = np.arange(1, n + 1, dtype=float)
    for name, trace in traces.items():
        suggested = np.cumsum(trace.suggested)
        accepted = np.cumsum(trace.right)
        rate = np.where(suggested > 0, accepted / np.maximum(suggested, 1), np.nan)
        result.curves[f"{name} accept rate"] = Curve(
            x.tolist(), [rate.tolist()], kind="accept rate", ylabel="accepted / suggested (cumulative)"
        )
        reward = np.cumsum(trace.reward) / x
        result.curves[f"{name} reward"] = Curve(
            x.tolist(), [reward.tolist()], kind="reward", ylabel="reward per request (cumulative)"
        )
        for key, value in trace.summary().items():
            result.add_metric(f"{name}.{key}", [value])
    result.config = {"source": where, "requests": n, "rate": args.rate, "seed": args.seed}
    return result


def _replay_matches(
    learner: Agent, log: ExperienceLog, scope: Scope, model: Model, embedder: Embedder
) -> bool:
    """Replay the session's log into a fresh agent: is every learned state the same, bit for bit?"""
    fresh = make_agent(model, embedder, ExperienceLog(":memory:"))
    steps = list(log.replay(scope))
    for name, original in learner.all_learners.items():
        rebuilt = fresh.all_learners[name]
        rebuilt.learn_many(steps)
        if digest(rebuilt.state_dict()) != digest(original.state_dict()):
            return False
    return True
