"""``lifelong demo``: the product — ``lifelong serve`` learns from an app's feedback beside its frozen shadow.

The demo starts the service in this process on the embedded defaults (a SQLite log in ``OUT/service``,
Gemma 3 270M in-process through llama.cpp, MiniLM embeddings) and plays a support desk's routing app
against it: the app declares itself once (``POST /v1/apps``: a label app whose labels are the data set's
intents), then sends customer queries with the official ``openai`` client and, for each answer, the
feedback a real app would send — the intent a human agent routed the query to (a correction). The
service answers every request with the app's learning agent (examples, lessons and memory in the prompt,
five more experts and a mixture that learns whom to trust, a prompt search in idle time) and, beside it,
with its *frozen shadow* — the same model asked the same request with nothing learned.

The queries come from BANKING77 (``--data``, default ``../shared/data/banking77``); where it is missing,
from the docstrings of Python's own standard library (the routing question of a developer assistant:
which module does this?), written to ``OUT/stdlib-intents`` first, so the demo runs on any machine.

At the end it prints the user-value table (right answers served by the learner and by the shadow, and
their ratio), checks that replaying the service's log into a fresh agent rebuilds the learned state
(every learner but the prompt search, whose evidence is model calls, not the log), writes the curves
(PNG + JSON), and says where the log and the dashboard are.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from lifelong.agents.apps import App, build_agent
from lifelong.agents.harness import HarnessSearch
from lifelong.data import IntentData, load_intents
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput, NotFound
from lifelong.eval.metrics import windowed
from lifelong.eval.result import Curve, Result
from lifelong.experience import ExperienceLog, Scope
from lifelong.serve.run import in_process
from lifelong.state import digest

TENANT = "demo"
APP = "support-routing"
INSTRUCTION = "Route each customer query to the team that handles its intent."


def run_demo(args: argparse.Namespace) -> int:
    if args.requests < 10:
        raise InvalidInput(f"must be >= 10, got {args.requests}", field="--requests")
    out = Path(args.out)
    data = _data(args.data, out)
    out.mkdir(parents=True, exist_ok=True)
    stream = IntentStream(*_texts(data), limit=args.requests)
    labels = tuple(sorted(set(stream.labels)))
    app = App(APP, "label", labels=labels, instruction=INSTRUCTION)
    print(
        f"lifelong demo: a support desk routes {args.requests} customer queries ({data.name}, {len(labels)} "
        f"intents, order {args.seed}) through lifelong serve; each answer is corrected by a human agent",
        flush=True,
    )
    started = time.perf_counter()
    with in_process(out / "service", TENANT, name="lifelong demo") as (url, key, svc):
        print(
            f"service ready in {time.perf_counter() - started:.0f} s at {url} (Gemma 3 270M, MiniLM, SQLite)"
        )
        served, shadow = _play(url, key, app, stream, args.seed)
        # on the learner thread: nothing else touches the learners while they are compared
        same, compared = svc.thread.submit(lambda: _replay_matches(svc, app)).result()
        curve = httpx.get(
            url + "/v1/learning",
            params={"app": APP, "window": max(10, args.requests // 10)},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        log_url = svc.config.log_url
    result = _result(served, shadow, args, data.name, same, curve)
    json_path, png_path = result.save(out, "demo")
    print()
    print(_table(served, shadow))
    rebuilt = "yes" if same else "NO"
    print(f"\nreplay of the log rebuilds the same learned state: {rebuilt} ({compared} learners)")
    print(f"log: {log_url}")
    print(
        f"dashboard: lifelong serve --data-dir {out / 'service'}  then open http://127.0.0.1:8000/dashboard"
    )
    print(f"curves: {png_path}\nresult: {json_path}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0 if same else 1


# ------------------------------------------------------------------------------------------ the service


def _play(
    url: str, key: str, app: App, stream: IntentStream, seed: int
) -> tuple[list[bool], list[bool | None]]:
    """The app: declare itself, ask every query with the official client, send the right intent back."""
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=300)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
    declared = http.post("/v1/apps", json=app.to_dict())
    if declared.status_code != 200:
        raise InvalidInput(f"the service refused the app: {declared.text}", field="app")
    served: list[bool] = []
    shadow: list[bool | None] = []
    text, _ = stream.reset(seed=seed)
    done = False
    while not done:
        reply = client.chat.completions.create(
            model=app.name, messages=[{"role": "user", "content": text}], max_tokens=16, user="customer"
        )
        label = reply.choices[0].message.content or ""
        text, _, done, _, info = stream.step(label or None)
        http.post("/v1/feedback", json={"interaction_id": reply.id, "correction": info["correct_action"]})
        served.append(label == info["correct_action"])
        logged = http.get(f"/v1/interactions/{reply.id}").json()
        shadow.append(None if logged.get("shadow_score") is None else bool(logged["shadow_score"]))
        if len(served) % 25 == 0 or done:
            print(f"  {len(served):4d} requests: {_live(served, shadow)}", flush=True)
    http.close()
    client.close()
    return served, shadow


def _live(served: list[bool], shadow: list[bool | None]) -> str:
    judged = [s for s in shadow if s is not None]
    return (
        f"learner right {sum(served)} ({np.mean(served):.0%})  |  frozen shadow right {sum(judged)} "
        f"({np.mean(judged) if judged else 0:.0%})"
    )


def _table(served: list[bool], shadow: list[bool | None]) -> str:
    n = len(served)
    judged = [s for s in shadow if s is not None]
    half = n // 2
    rows = ["                  right answers served   rate     last half"]
    rows.append(
        f"  learner         {sum(served):20d}   {np.mean(served):5.1%}   {np.mean(served[half:]):8.1%}"
    )
    rows.append(
        f"  frozen shadow   {sum(judged):20d}   {np.mean(judged) if judged else 0:5.1%}   "
        f"{np.mean([s for s in shadow[half:] if s is not None] or [False]):8.1%}"
    )
    ratio = sum(served) / sum(judged) if sum(judged) else float("inf")
    verdict = "at least 2x" if ratio >= 2 else "less than 2x"
    rows.append(
        f"  the learner served {ratio:.2f}x the shadow's right answers ({verdict}); the shadow answered "
        f"{len(judged)} of {n} requests"
    )
    return "\n".join(rows)


def _replay_matches(svc: Any, app: App) -> tuple[bool, int]:
    """Replay the service's log into a fresh agent for the app: is every learned state the same as the
    service's (all but the prompt search, whose evidence is model calls)? And how many were compared."""
    engine = svc.engine
    engine.catch_up()
    live = {
        name: learner
        for name, learner in engine.state(TENANT, APP).learners.items()
        if not isinstance(learner, HarnessSearch)
    }
    fresh = build_agent(app, engine.model, engine.embedder, ExperienceLog(":memory:"))
    steps = [
        s
        for s in svc.log.replay(Scope(TENANT), order="feedback")
        if s.interaction.metadata.get("app") == app.name
    ]
    for name, original in live.items():
        rebuilt = fresh.all_learners[name]
        rebuilt.name = original.name
        rebuilt.learn_many(steps)
        if digest(rebuilt.state_dict()) != digest(original.state_dict()):
            print(f"  {name}: the replayed state differs", flush=True)
            return False, len(live)
    return True, len(live)


def _result(
    served: list[bool], shadow: list[bool | None], args: argparse.Namespace, name: str, same: bool, curve: Any
) -> Result:
    result = Result(name=f"demo: {name} via lifelong serve", protocol="prequential", seeds=[args.seed])
    window = max(10, len(served) // 10)
    for variant, values in (
        ("learner", [float(s) for s in served]),
        ("frozen shadow", [float(bool(s)) for s in shadow]),
    ):
        xs, ys = windowed(np.asarray(values), window)
        result.curves[variant] = Curve(
            [float(x) for x in xs], [ys.tolist()], kind="score", ylabel="right answers per request (window)"
        )
    judged = [s for s in shadow if s is not None]
    result.add_metric("learner.right", [float(sum(served))])
    result.add_metric("learner.right_rate", [float(np.mean(served))])
    result.add_metric("shadow.right", [float(sum(judged))])
    result.add_metric("shadow.right_rate", [float(np.mean(judged)) if judged else 0.0])
    result.extra["right_ratio"] = sum(served) / sum(judged) if sum(judged) else None
    result.extra["learning"] = curve
    result.config = {
        "data": name,
        "requests": len(served),
        "seed": args.seed,
        "replay_rebuilds_same_state": same,
        "shadow_judged": len(judged),
    }
    return result


# ------------------------------------------------------------------------------------------ data


def _data(path: str | None, out: Path) -> IntentData:
    """BANKING77 (or ``path``); the standard library's docstrings when no data folder is found."""
    try:
        return load_intents(path, holdout=0.0)
    except NotFound:
        if path is not None:
            raise
    from lifelong.bench.make_stdlib_intents import main as make_stdlib_intents

    folder = out / "stdlib-intents"
    if not (folder / "train.csv").is_file():
        print(
            "no BANKING77 here: routing the standard library's docstrings to their modules instead",
            flush=True,
        )
        make_stdlib_intents(["--out", str(folder)])
    return load_intents(str(folder), holdout=0.0)


def _texts(data: IntentData) -> tuple[list[str], list[str]]:
    return list(data.train.texts), list(data.train.labels)
