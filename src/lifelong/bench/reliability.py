"""Reliability campaign: bad inputs, kill -9, erasure scans and cross-tenant probes, counted.

    python -m lifelong.bench.reliability --fuzz 3000 --kills 10 --erasures 20 --out runs/reliability.json

1. **Bad inputs.** Mutations of a valid step record that are invalid by construction (a required field
   missing or of the wrong type, NaN/inf numbers, control characters and lone surrogates in ids and
   scopes, nesting past the limit, unknown kinds, ratings off their scale, blank corrections, feedback
   timed before its interaction) go through ``Step.from_dict`` and, one bad line hidden among good ones,
   through ``lifelong log import``. Outcomes: *typed* (a ``LifelongError``; the CLI exits 2 and the log
   is unchanged), *traceback* (any other exception, or a CLI exit other than 2), *silent accept*.
2. **kill -9.** A writer process appends (single records or batches) and prints each id once its append
   returned; it is killed mid-stream at a random moment; every acknowledged id must be in the log.
3. **Erasure.** A multi-tenant log (two tenants with the same user names) feeds the context learners and a
   per-tenant softmax with versions committed along the way; random users are forgotten one after
   another; every erasure's scan must find 0 leftovers, and no other user may lose an event.
4. **Cross-tenant probes.** Every learner learns a secret in tenant A and is then asked, from tenant B
   (same user name), every read it has; a *leak* is an answer holding the secret.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from lifelong.cli import main as cli
from lifelong.errors import LifelongError
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step

WRITER = "lifelong.bench.crash_writer"  # run as python -m: an acknowledged-writes child process
POSTGRES = "postgresql://127.0.0.1:5432/test"


# -- 1. bad inputs ------------------------------------------------------------------------------------


def valid_record() -> dict[str, Any]:
    i = Interaction(Scope("acme", user="ada", session="s1"), "what is 2+2?", "5", time=100.0)
    feedback = (Feedback.correction(i.id, "4", time=101.0), Feedback.rating(i.id, 4, time=102.0))
    return Step(i, feedback).to_dict()


def deep(n: int) -> Any:
    node: Any = "leaf"
    for _ in range(n):
        node = [node]
    return node


Mutation = Callable[[dict[str, Any]], Any]


def mutations(rng: random.Random) -> Iterator[tuple[str, Mutation]]:
    """(category, mutate) pairs; ``mutate(record)`` returns the record made invalid."""
    bad_text = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\x07bell", "line\nbreak"]
    bad_number: list[Any] = [math.nan, math.inf, -math.inf, "1.0", None, [], {}]

    def setting(path: str, values: Callable[[], Any]) -> Mutation:
        def mutate(record: dict[str, Any]) -> Any:
            *parents, last = path.split("/")
            node: Any = record
            for part in parents:
                node = node[int(part)] if part.isdigit() else node[part]
            node[int(last) if last.isdigit() else last] = values()
            return record

        return mutate

    def dropping(key: str) -> Mutation:
        def mutate(record: dict[str, Any]) -> Any:
            record.pop(key)
            return record

        return mutate

    def pick(values: list[Any]) -> Callable[[], Any]:
        return lambda: rng.choice(values)

    choices: list[tuple[str, Mutation]] = [
        ("record not a dict", lambda r: rng.choice([[], "x", 3, None])),
        ("missing id", dropping("id")),
        ("missing scope", dropping("scope")),
        ("missing time", dropping("time")),
        ("unknown key", setting("metdata", pick([{}, 1]))),
        ("feedback not a list", setting("feedback", pick([{}, "x", 3]))),
        ("bad interaction id", setting("id", pick(["", "  ", 5, *bad_text]))),
        ("scope not a dict", setting("scope", pick(["acme", 3, []]))),
        ("bad tenant", setting("scope/tenant", pick(["", 7, *bad_text]))),
        ("bad user", setting("scope/user", pick(["", 7, [], *bad_text]))),
        ("bad session", setting("scope/session", pick([7, {}, *bad_text]))),
        ("huge scope", setting("scope/user", lambda: "u" * rng.randint(1001, 5000))),
        ("bad time", setting("time", pick([*bad_number, -1.0]))),
        ("surrogate in text", setting("observation", pick(["\ud800", "a\udc00"]))),
        ("nested too deep", setting("observation", lambda: deep(rng.randint(100, 3000)))),
        ("NaN in observation", setting("observation", pick([{"x": math.nan}, [math.inf]]))),
        ("bad feedback kind", setting("feedback/0/kind", pick(["like", "", 3, None]))),
        ("feedback id of another", setting("feedback/0/interaction_id", pick(["", 4, *bad_text]))),
        ("bad feedback id", setting("feedback/0/id", pick(["", 4, *bad_text]))),
        ("bad feedback time", setting("feedback/0/time", pick(bad_number))),
        ("blank correction", setting("feedback/0/value", pick(["", "   ", "\t"]))),
        ("rating off scale", setting("feedback/1/value", pick([0, 6, 99, -1, math.nan]))),
        (
            "bad rating scale",
            setting("feedback/1/scale", pick([[1], [5, 1], [1, 2, 3], "1-5", [1, math.inf]])),
        ),
        ("feedback not a dict", setting("feedback/0", pick([[], "x", 3]))),
    ]
    while True:
        yield rng.choice(choices)


def fuzz(n: int, seed: int, folder: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    by_category: dict[str, Counter[str]] = {}
    examples: list[str] = []
    good = [json.dumps(valid_record()) for _ in range(3)]
    for k, (category, mutate) in zip(range(n), mutations(rng), strict=False):
        record = mutate(valid_record())
        counts = by_category.setdefault(category, Counter())
        # (a) the record constructor
        try:
            Step.from_dict(record)
            outcome = "silent accept"
        except LifelongError:
            outcome = "typed"
        except Exception as exc:
            outcome = "traceback"
            examples.append(f"from_dict/{category}: {type(exc).__name__}: {exc}"[:200])
        outcomes[outcome] += 1
        counts[outcome] += 1
        # (b) the CLI import, every 10th case (it opens a database): exit 2 and nothing written
        if k % 10 == 0:
            try:
                line = json.dumps(record, allow_nan=True)
            except (ValueError, RecursionError):
                continue
            path, db = folder / f"bad{k}.jsonl", folder / f"import{k}.db"
            position = rng.randint(0, len(good))
            lines = [*good[:position], line, *good[position:]]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
            with open(os.devnull, "w") as sink:
                stdout, stderr = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = sink
                try:
                    code = cli(["log", "import", str(db), str(path)])
                except BaseException as exc:
                    code = -1
                    examples.append(f"cli/{category}: {type(exc).__name__}: {exc}"[:200])
                finally:
                    sys.stdout, sys.stderr = stdout, stderr
            written = ExperienceLog(db).stats().interactions if db.exists() else 0
            outcome = "typed" if code == 2 and written == 0 else "silent accept" if code == 0 else "traceback"
            if outcome != "typed":
                examples.append(f"cli/{category}: exit {code}, {written} rows written")
            outcomes[outcome] += 1
            counts[outcome] += 1
    return {
        "tried": sum(outcomes.values()),
        "typed": outcomes["typed"],
        "tracebacks": outcomes["traceback"],
        "silent_accepts": outcomes["silent accept"],
        "by_category": {c: dict(v) for c, v in sorted(by_category.items())},
        "examples": examples[:20],
    }


# -- 2. kill -9 -----------------------------------------------------------------------------------------


def kill_runs(n: int, seed: int, folder: Path, urls: dict[str, str]) -> dict[str, Any]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for backend, base in urls.items():
        for k in range(n):
            mode = ("single", "batch")[k % 2]
            url = base if backend == "postgresql" else str(folder / f"kill{k}.db")
            tag = f"kill{seed}-{k}-{time.time_ns()}"
            writer = subprocess.Popen(
                [sys.executable, "-m", WRITER, url, mode, "0", tag],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert writer.stdout is not None
            acknowledged: list[str] = []
            wanted = rng.randint(50, 600)
            while len(acknowledged) < wanted:
                line = writer.stdout.readline()
                if not line:
                    break
                acknowledged.append(line.strip())
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
            acknowledged += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
            with ExperienceLog(url) as log:
                lost = 0
                for interaction_id in acknowledged:
                    try:
                        log.get(interaction_id)
                    except LifelongError:
                        lost += 1
            rows.append({"backend": backend, "mode": mode, "acknowledged": len(acknowledged), "lost": lost})
    return {
        "runs": len(rows),
        "acknowledged": sum(r["acknowledged"] for r in rows),
        "lost": sum(r["lost"] for r in rows),
        "by_run": rows,
    }


# -- 3. erasure -----------------------------------------------------------------------------------------


def erasures(n: int, seed: int, folder: Path) -> dict[str, Any]:
    from lifelong.learners import ExampleBank, Lessons, Memory, OnlineSoftmax, PerTenant
    from lifelong.models import HashingEmbedder
    from lifelong.state import VersionStore
    from lifelong.state.erasure import forget

    rng = random.Random(seed)
    embed = HashingEmbedder()
    log, store = ExperienceLog(folder / "erasure-log.db"), VersionStore(folder / "erasure-state.db")

    def softmax() -> PerTenant:
        return PerTenant(OnlineSoftmax, name="softmax")

    learners: dict[str, Any] = {
        "examples": ExampleBank(embed),
        "memory": Memory(embed),
        "lessons": Lessons(embed),
        "softmax": softmax(),
    }
    users = [Scope(tenant, user=f"user{u}") for tenant in ("acme", "globex") for u in range(n + 2)]
    for t in range(40 * len(users)):
        scope = rng.choice(users)
        secret = f"{scope.tenant}/{scope.user} private note {t} {rng.getrandbits(32):08x}"
        i = Interaction(
            scope, secret if rng.random() < 0.8 else "how do I reset my password", "guess", time=float(t)
        )
        feedback = (
            Feedback.correction(i.id, f"label of {scope.user}", time=t + 0.1),
            Feedback.outcome(i.id, {"remember": f"{scope.user} wrote {secret}"}, time=t + 0.2),
        )
        log.append_many([i, *feedback])
        for learner in learners.values():
            learner.learn(Step(i, feedback))
        if t % 97 == 96:
            for learner in learners.values():
                store.promote(learner.name, store.commit(learner).version)
    rows: list[dict[str, Any]] = []
    for scope in rng.sample(users, n):
        others = {str(u): log.stats(u).interactions for u in users if u != scope}
        start = time.perf_counter()
        report = forget(scope, log=log, store=store, learners=learners, rebuild_with={"softmax": softmax})
        seconds = time.perf_counter() - start
        learners["softmax"] = report.rebuilt["softmax"]
        lost = sum(others[str(u)] - log.stats(u).interactions for u in users if str(u) in others)
        assert report.scan is not None
        rows.append(
            {
                "scope": str(scope),
                "interactions": report.interactions_deleted,
                "needles": report.scan.needles,
                "places": report.scan.places,
                "leftovers": len(report.scan.hits),
                "hits": report.scan.hits[:5],
                "others_lost": lost,
                "versions_redacted": len(report.versions_redacted),
                "versions_erased": len(report.versions_erased),
                "seconds": round(seconds, 3),
            }
        )
    return {
        "scans": len(rows),
        "leftovers": sum(r["leftovers"] for r in rows),
        "others_lost": sum(r["others_lost"] for r in rows),
        "median_seconds": sorted(r["seconds"] for r in rows)[len(rows) // 2],
        "by_erasure": rows,
    }


# -- 4. cross-tenant probes -----------------------------------------------------------------------------


def _read(learner: Any, *, method: str, query: Any, scope: Scope) -> Any:
    return getattr(learner, method)(query, scope=scope)


def probes() -> dict[str, Any]:
    from lifelong.learners import (
        CoVisitation,
        ExampleBank,
        ImplicitFactorization,
        Lessons,
        Memory,
        OnlineSoftmax,
        PerTenant,
        Popularity,
        StreamingFactorization,
    )
    from lifelong.learners.experts.scoring import EmbeddingSoftmax, Prototypes
    from lifelong.models import HashingEmbedder

    embed = HashingEmbedder()
    a, b = Scope("acme", user="alice"), Scope("globex", user="alice")
    secret = "acme_secret_answer"
    text = "remember the vault code"

    def label_step(scope: Scope, t: float) -> Step:
        i = Interaction(scope, text, "wrong", time=t)
        return Step(
            i,
            (
                Feedback.correction(i.id, secret, time=t + 0.1),
                Feedback.outcome(i.id, {"remember": f"{text}: {secret}"}, time=t + 0.2),
            ),
        )

    def item_step(scope: Scope, t: float) -> Step:
        i = Interaction(scope, {"user": "alice", "item": secret}, None, time=t)
        return Step(i, (Feedback.reward(i.id, 1.0, time=t + 0.1), Feedback.rating(i.id, 5.0, time=t + 0.1)))

    label_learners: dict[str, Callable[[], Any]] = {
        "OnlineSoftmax": OnlineSoftmax,
        "PerTenant(OnlineSoftmax)": lambda: PerTenant(OnlineSoftmax),
        "ExampleBank": lambda: ExampleBank(embed),
        "ExampleBank(per_user)": lambda: ExampleBank(embed, per_user=True),
        "Memory": lambda: Memory(embed),
        "Lessons": lambda: Lessons(embed),
        "Prototypes": lambda: Prototypes(embed),
        "EmbeddingSoftmax": lambda: EmbeddingSoftmax(embed),
    }
    item_learners: dict[str, Callable[[], Any]] = {
        "StreamingFactorization": lambda: StreamingFactorization(dim=4),
        "ImplicitFactorization": lambda: ImplicitFactorization(dim=4),
        "CoVisitation": CoVisitation,
        "Popularity": Popularity,
        "PerTenant(StreamingFactorization)": lambda: PerTenant(lambda: StreamingFactorization(dim=4)),
    }
    outcomes: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for name, make in {**label_learners, **item_learners}.items():
        learner = make()
        for t in range(5):
            learner.learn((label_step if name in label_learners else item_step)(a, float(t)))
        reads: list[Callable[[Any], Any]] = []
        query: Any = text if name in label_learners else "alice"  # recommenders score a user
        for method in ("predict", "scores", "propose"):
            if hasattr(learner, method):
                reads.append(partial(_read, method=method, query=query, scope=b))
        if hasattr(learner, "recall"):
            reads.append(lambda lr: [r.item.text for r in lr.recall(text, b)])
        if hasattr(learner, "rank"):
            reads.append(lambda lr: lr.rank("alice", 5, scope=b))
        if name in item_learners:
            reads.append(lambda lr: lr.predict({"user": "alice", "item": secret}, b))
        for read in reads:
            try:
                answer = read(learner)
                outcome = "leak" if secret in repr(answer) else "cold answer"
            except LifelongError:
                outcome = "refused (typed)"
            except Exception as exc:
                outcome = f"traceback: {type(exc).__name__}"
            outcomes[outcome] += 1
            rows.append({"learner": name, "outcome": outcome})
    return {
        "probes": sum(outcomes.values()),
        "leaks": outcomes["leak"],
        "outcomes": dict(outcomes),
        "by_probe": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fuzz", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=10, help="kill -9 runs per backend")
    parser.add_argument("--erasures", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", default=POSTGRES, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    urls = {"sqlite": ""}
    if args.postgres:
        urls["postgresql"] = args.postgres
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runs: tuple[tuple[str, Callable[[], dict[str, Any]]], ...] = (
            ("bad_inputs", lambda: fuzz(args.fuzz, args.seed, folder)),
            ("kill_9", lambda: kill_runs(args.kills, args.seed, folder, urls)),
            ("erasure", lambda: erasures(args.erasures, args.seed, folder)),
            ("cross_tenant", probes),
        )
        for name, run in runs:
            start = time.perf_counter()
            results[name] = run()
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            summary = {k: v for k, v in results[name].items() if not isinstance(v, list | dict)}
            print(name, json.dumps(summary), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
