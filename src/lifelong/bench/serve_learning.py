"""``lifelong bench serve-learning``: what ``lifelong serve`` learns, measured through its API.

A real ``lifelong serve`` process (Gemma 3 270M in-process, MiniLM, a SQLite log in OUT) per stream
order, and this process as the app: it declares its app (``POST /v1/apps``), sends every request with
the official ``openai`` client and the feedback a real app would send with ``httpx``. Two streams, both
built from a folder in the BANKING77 layout (``--data``; default the shared BANKING77):

- **labels** — an intent-routing app (``task: label``, the data set's categories as its labels). Each
  query is answered, then corrected with its true intent. Variants: ``learner`` (what the service
  served), ``shadow`` (the frozen model's answer to the same request, which the service computes beside
  it), every expert alone (``llm``, ``knn``, ``nearest``, ``OnlineSoftmax``, ``Prototypes``,
  ``EmbeddingSoftmax``: each expert's proposal is logged with every request and no expert's learning
  depends on what was served, so these are the runs each would have had alone, read from the service's
  log), and ``library`` — the library's :class:`~lifelong.agents.Agent` built for the same app by the
  same function, on the same order, in this process (``--variants`` drops it).
- **support** — a support-answer app (``task: chat``): each intent gets one answer text, which the
  simulated support agent writes as the correction whenever the served answer is not it (and accepts it
  when it is). Requests are the data set's queries. Measured: right answers served, the shadow's,
  *repeat error by intent* (a request whose intent's answer was corrected before, not answered with
  it), and *misapplied corrections* (another intent's answer served). The answer texts are written
  from the intent's name by this benchmark (the data set has none): what is measured is whether a
  corrected answer comes back for the paraphrases of its question and stays away from other questions,
  not the answers' quality.

Every variant runs on the same ``--seeds`` orders; curves are the right rate per window.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from lifelong.agents.agent import PLAIN_ANSWER
from lifelong.agents.apps import App
from lifelong.bench.agents import (
    INTENT_INSTRUCTION,
    LABEL_EXPERTS,
    answer_in,
    fresh_log,
    learning_agent,
    summarise,
    top_answer_of,
)
from lifelong.bench.serve import _process, free_port
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.eval.agents import AgentTrace, run_agent, trace_of_answers
from lifelong.eval.result import Result
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Step
from lifelong.learners.context.gate import same_answer
from lifelong.serve.keys import KeyStore

STREAMS = ("labels", "support")
TENANT = "bench"


def answer_text(intent: str) -> str:
    """The support answer of ``intent``: one fixed text per intent, written from its name."""
    words = intent.replace("_", " ").replace("-", " ").strip()
    return f"About {words}: here is what to do — see the help article '{intent}', or reply to reach an agent."


# ------------------------------------------------------------------------------------------ the service


@contextmanager
def embedded_service(folder: Path, name: str, *flags: str) -> Iterator[tuple[str, str]]:
    """``lifelong serve`` on the embedded defaults (Gemma in-process, MiniLM, SQLite in ``folder``) and an
    API key of the benchmark's tenant: (base URL, key)."""
    data = folder / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    log = ExperienceLog(f"sqlite:///{data / 'lifelong.db'}")
    key = KeyStore(log.db).create(TENANT).key
    log.close()
    port = free_port()
    lifelong = str(Path(sysconfig.get_path("scripts")) / "lifelong")
    command = [lifelong, "serve", "--data-dir", str(data), "--port", str(port), "--rate-limit", "0", *flags]
    with _process(command, f"http://127.0.0.1:{port}/healthz", folder / f"{name}.log"):
        yield f"http://127.0.0.1:{port}", key


def _steps(db: Path) -> list[Step]:
    """The service's logged answers, in the order they were served."""
    log = ExperienceLog(f"sqlite:///{db}")
    try:
        return [s for s in log.replay() if s.interaction.metadata.get("endpoint") in ("chat", "completion")]
    finally:
        log.close()


class SimulatedApp:
    """The simulated app's side of the wire: the official client for requests, httpx for feedback."""

    def __init__(self, url: str, key: str, app: App) -> None:
        from openai import OpenAI

        self.app = app
        self.client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=600)
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
        declared = self.http.post("/v1/apps", json=app.to_dict())
        if declared.status_code != 200:
            raise InvalidInput(f"declaring the app failed: {declared.text}", field="app")

    def ask(self, text: str, user: str, max_tokens: int) -> tuple[str, str, float]:
        """The served answer, its interaction id and the service's overhead (ms)."""
        raw = self.client.chat.completions.with_raw_response.create(
            model=self.app.name,
            messages=[{"role": "user", "content": text}],
            max_tokens=max_tokens,
            user=user,
        )
        reply = raw.parse()
        return reply.choices[0].message.content or "", reply.id, float(raw.headers["x-lifelong-overhead-ms"])

    def feedback(self, interaction_id: str, **fields: Any) -> None:
        done = self.http.post("/v1/feedback", json={"interaction_id": interaction_id, **fields})
        if done.status_code != 200:
            raise InvalidInput(f"feedback failed: {done.text}", field="feedback")

    def close(self) -> None:
        self.http.close()
        self.client.close()


# ------------------------------------------------------------------------------------------ the streams


def run_stream(
    url: str,
    key: str,
    app: App,
    env: IntentStream,
    seed: int,
    max_tokens: int,
    judge: Callable[[str, str], tuple[bool, dict[str, Any]]],
) -> tuple[AgentTrace, list[float]]:
    """One stream order through the service: ask, let ``judge(served, intent)`` say whether it was right
    and what feedback the app sends, send it; the trace (pattern: the intent) and the service's
    overhead per request."""
    client = SimulatedApp(url, key, app)
    trace, overhead = AgentTrace(), []
    text, _ = env.reset(seed=seed)
    done = False
    try:
        while not done:
            start = time.perf_counter()
            served, interaction_id, ms = client.ask(text, "customer", max_tokens)
            seconds = time.perf_counter() - start
            asked = text
            text, _, done, _, info = env.step(served or None)
            intent = str(info["correct_action"])
            right, feedback = judge(served, intent)
            client.feedback(interaction_id, **feedback)
            _record(trace, right, asked, intent, seconds)
            overhead.append(ms)
    finally:
        client.close()
    return trace, overhead


def label_judge(served: str, intent: str) -> tuple[bool, dict[str, Any]]:
    """The intent stream's app: the right intent comes back as a correction (and the reward)."""
    right = served == intent
    return right, {"reward": float(right), "correction": intent}


def support_judge(served: str, intent: str) -> tuple[bool, dict[str, Any]]:
    """The support agent: accepts the intent's answer, else writes it as the correction."""
    answer = answer_text(intent)
    if same_answer(served, answer):
        return True, {"accept": True}
    return False, {"accept": False, "correction": answer}


def _record(trace: AgentTrace, right: bool, text: str, pattern: str, seconds: float) -> None:
    trace.reward.append(float(right))
    trace.suggested.append(True)
    trace.right.append(right)
    trace.chars_saved.append(0)
    trace.prompt_tokens.append(0)
    trace.completion_tokens.append(0)
    trace.model_calls.append(0)
    trace.act_seconds.append(seconds)
    trace.learn_seconds.append(0.0)
    trace.pattern.append(pattern)
    trace.inputs.append(text)


# ------------------------------------------------------------------------------------------ measures


def repeat_error_by_intent(pattern: Sequence[str], right: Sequence[bool], corrected: Sequence[bool]) -> float:
    """Of the requests whose intent's answer was corrected before, the share not answered right."""
    known: set[str] = set()
    misses = []
    for p, r, c in zip(pattern, right, corrected, strict=True):
        if p in known:
            misses.append(not r)
        if c:
            known.add(p)
    return float(np.mean(misses)) if misses else float("nan")


def misapplied(answers: Sequence[Any], pattern: Sequence[str], texts: dict[str, str]) -> float:
    """The share of requests served another intent's answer (a correction misapplied)."""
    by_text = {" ".join(t.split()): intent for intent, t in texts.items()}
    wrong = 0
    for answer, intent in zip(answers, pattern, strict=True):
        owner = by_text.get(" ".join(str(answer).split())) if isinstance(answer, str) else None
        wrong += owner is not None and owner != intent
    return wrong / max(1, len(answers))


# ------------------------------------------------------------------------------------------ the suite


def serve_learning(args: argparse.Namespace) -> Result:
    from lifelong.bench.intents import load_data

    seeds = list(range(args.seeds))
    if not seeds:
        raise InvalidInput("must be >= 1", field="--seeds")
    steps = args.steps or 1000
    streams = tuple((getattr(args, "streams", None) or ",".join(STREAMS)).split(","))
    unknown = set(streams) - set(STREAMS)
    if unknown:
        raise InvalidInput(f"unknown {sorted(unknown)}; choose from {', '.join(STREAMS)}", field="--streams")
    variants = tuple((getattr(args, "variants", None) or "service,library").split(","))
    if set(variants) - {"service", "library"} or "service" not in variants:
        raise InvalidInput("must be service or service,library", field="--variants")
    support_tokens = getattr(args, "support_tokens", None) or 48
    data = load_data(args, holdout=0.0)  # missing or malformed data: before anything starts
    stream = IntentStream.from_data(data)
    out = Path(args.out) / "serve-learning"
    out.mkdir(parents=True, exist_ok=True)
    labels = App("intents", "label", labels=tuple(sorted(set(stream.labels))), instruction=INTENT_INSTRUCTION)
    support = App("support", "chat", instruction="You are a bank's support assistant. Answer briefly.")
    texts = {intent: answer_text(intent) for intent in sorted(set(stream.labels))}
    result = Result(name=f"{data.name} through lifelong serve", protocol="prequential service", seeds=seeds)
    traces: dict[str, dict[str, list[AgentTrace]]] = {s: {} for s in streams}
    measured: dict[str, list[float]] = {}
    overheads: dict[str, list[float]] = {s: [] for s in streams}

    def keep(stream_name: str, variant: str, trace: AgentTrace) -> None:
        traces[stream_name].setdefault(variant, []).append(trace)

    for seed in seeds:
        folder = out / f"order{seed}"
        if folder.exists():
            for stale in folder.glob("**/lifelong.db*"):
                stale.unlink()
        with embedded_service(folder, "serve") as (url, key):
            if "labels" in streams:
                started = time.perf_counter()
                env = IntentStream(stream.texts, stream.labels, limit=steps)
                trace, ms = run_stream(url, key, labels, env, seed, 16, label_judge)
                overheads["labels"] += ms
                keep("labels", "learner", trace)
                print(
                    f"  order {seed} labels  service {np.mean(trace.right):.3f}",
                    f"({time.perf_counter() - started:.0f} s)",
                )
            if "support" in streams:
                started = time.perf_counter()
                env = IntentStream(stream.texts, stream.labels, limit=steps)
                trace, ms = run_stream(url, key, support, env, seed, support_tokens, support_judge)
                overheads["support"] += ms
                keep("support", "learner", trace)
                print(
                    f"  order {seed} support service {np.mean(trace.right):.3f}",
                    f"({time.perf_counter() - started:.0f} s)",
                )
        logged = _steps(folder / "serve-data" / "lifelong.db")
        for stream_name in streams:
            app = labels if stream_name == "labels" else support
            mine = [s for s in logged if s.interaction.metadata.get("app") == app.name]
            like = traces[stream_name]["learner"][-1]
            if stream_name == "labels":
                keep(
                    "labels",
                    "shadow",
                    trace_of_answers(mine, answer_in(PLAIN_ANSWER), like, suggestions=False),
                )
                for name in LABEL_EXPERTS:
                    keep("labels", name, trace_of_answers(mine, top_answer_of(name), like, suggestions=False))
            else:
                if len(mine) != len(like):
                    raise InvalidInput(
                        f"the log holds {len(mine)} answers of {len(like)} requests", field="log"
                    )
                truths = [texts[p] for p in like.pattern]
                plain = [s.interaction.metadata.get(PLAIN_ANSWER) for s in mine]
                shadow = _judged(plain, truths, like)
                keep("support", "shadow", shadow)
                served = [s.interaction.action for s in mine]
                corrected = [not r for r in like.right]
                for variant, answers, trace in (("learner", served, like), ("shadow", plain, shadow)):
                    measured.setdefault(f"support.{variant}.misapplied_rate", []).append(
                        misapplied(answers, like.pattern, texts)
                    )
                    measured.setdefault(f"support.{variant}.repeat_error_by_intent", []).append(
                        repeat_error_by_intent(like.pattern, trace.right, corrected)
                    )
                    measured.setdefault(f"support.{variant}.right_answers", []).append(
                        float(sum(trace.right))
                    )
        if "library" in variants and "labels" in streams:
            started = time.perf_counter()
            trace = _library(labels, stream, steps, seed, out)
            keep("labels", "library", trace)
            print(
                f"  order {seed} labels  library {np.mean(trace.right):.3f}",
                f"({time.perf_counter() - started:.0f} s)",
            )

    for stream_name in streams:
        window = max(50, steps // 10)
        summarise(result, traces[stream_name], window, len(seeds), prefix=f"{stream_name}.")
    for name, values in measured.items():
        result.add_metric(name, values)
    for stream_name, ms in overheads.items():
        if ms:
            result.add_metric(f"{stream_name}.overhead_p50_ms", [float(np.percentile(ms, 50))])
            result.add_metric(f"{stream_name}.overhead_p99_ms", [float(np.percentile(ms, 99))])
    result.config = {
        "dataset": data.name,
        "data": data.describe(),
        "steps": steps,
        "streams": list(streams),
        "variants": list(variants),
        "model": "Gemma 3 270M Q4_K_M (llama.cpp, in the service)",
        "embedder": "all-MiniLM-L6-v2",
        "support_max_tokens": support_tokens,
    }
    for stream_name in streams:
        result.extra[f"{stream_name}_last_window_accuracy"] = {
            name.split(".")[1]: stat.to_dict()
            for name, stat in result.metrics.items()
            if name.startswith(f"{stream_name}.") and name.endswith(".last_window") and name.count(".") == 2
        }
    if "labels" in streams:
        result.extra["last_window_accuracy"] = result.extra["labels_last_window_accuracy"]
    (out / "traces.json").write_text(
        json.dumps({s: {v: [t.right for t in runs] for v, runs in by.items()} for s, by in traces.items()})
    )
    return result


def _judged(answers: Sequence[Any], truths: Sequence[str], like: AgentTrace) -> AgentTrace:
    trace = AgentTrace()
    for n, (answer, truth) in enumerate(zip(answers, truths, strict=True)):
        _record(
            trace, answer is not None and same_answer(answer, truth), like.inputs[n], like.pattern[n], 0.0
        )
    return trace


def _library(app: App, stream: IntentStream, steps: int, seed: int, out: Path) -> AgentTrace:
    """The library's agent for the same app on the same order (the bench's learning agent)."""
    from lifelong.bench.agents import models

    model, embedder = models()
    log = fresh_log(out / f"library-order{seed}.db")
    try:
        agent = learning_agent(model, embedder, app, log)
        return run_agent(agent, IntentStream(stream.texts, stream.labels, limit=steps), seed)
    finally:
        log.close()
