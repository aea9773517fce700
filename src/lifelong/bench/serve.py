"""``lifelong bench serve``: the learning service measured on loopback, in real processes.

Everything runs here: a llama.cpp OpenAI-compatible server with the packaged Gemma as the upstream,
``lifelong serve`` processes, the experience log on SQLite (one worker) and on the PostgreSQL server
(several workers), and this process as the client. Bounded in count: ``--steps`` proxy requests,
``--feedback`` feedback requests per configuration, ``--rounds`` cross-worker rounds.

1. **Proxy overhead at --items learned items.** The tenant's example bank holds ``--items`` items
   (default 100,000: pairs of consecutive lines of the standard library's source, every one a logged
   interaction with its accept feedback; their MiniLM vectors are computed in batches once and cached
   in OUT/serve-cache), committed and promoted as a snapshot the service loads. Each completion request
   is timed by the service itself (``X-Lifelong-Overhead-Ms``: everything but the upstream call —
   auth, catch-up with the log, query embedding with MiniLM, recall over the items, prompt, logging)
   and end to end by the client. The shadow control is off here (``--shadow-rate 0``): it would run
   concurrently and only add upstream time.
2. **/v1/feedback throughput and latency**: ``--feedback`` requests from ``--concurrency`` concurrent
   connections (httpx, asyncio), on SQLite with one worker and on PostgreSQL with ``--workers``
   workers behind one port; errors counted.
3. **Feedback → visible across workers**: two processes on one PostgreSQL log; a memory added on A
   (feedback, acknowledged once durable) is searched on B at once; the time from A's answer to B's
   answer showing it, p50/p99, and how many reads of B missed it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import BackendUnavailable, InvalidInput
from lifelong.eval.result import Curve, Result
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Feedback, Interaction, Scope, Step
from lifelong.learners.context.examples import ExampleBank
from lifelong.models.base import Embedder
from lifelong.serve.follow import Events
from lifelong.serve.keys import KeyStore
from lifelong.state.store import VersionStore

POSTGRES = "postgresql://127.0.0.1:5432/test"
TENANT = "bench"


# ------------------------------------------------------------------------------------------ processes


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 600) -> None:
    """Until ``url`` answers JSON; BackendUnavailable (with the end of ``log``) if ``process`` exits or
    ``seconds`` pass first."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise BackendUnavailable(url, f"the process exited: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.loads(response.read())
                return
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise BackendUnavailable(url, f"no answer within {seconds:.0f} s; see {log}")


@contextmanager
def _process(command: list[str], health: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(health, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def llama_upstream(folder: Path) -> Iterator[str]:
    from lifelong.models.llama_cpp import default_gguf

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "lifelong.models.llama_server",
        "--model",
        str(default_gguf()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--model_alias",
        "gemma",
        "--n_threads",
        "1",
    ]
    with _process(command, f"http://127.0.0.1:{port}/v1/models", folder / "llama-server.log"):
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def service(folder: Path, name: str, log_url: str, upstream: str, *flags: str) -> Iterator[str]:
    port = free_port()
    lifelong = str(Path(sysconfig.get_path("scripts")) / "lifelong")
    command = [
        lifelong,
        "serve",
        "--log",
        log_url,
        "--upstream",
        upstream,
        "--model",
        "gemma",
        "--port",
        str(port),
        "--rate-limit",
        "0",
        "--max-tokens",
        "8",
        *flags,
    ]
    with _process(command, f"http://127.0.0.1:{port}/healthz", folder / f"{name}.log"):
        yield f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------------------------------ the items


def corpus(n: int) -> list[tuple[str, str]]:
    """``n`` distinct (line, next line) pairs from the standard library's source, in path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            lines = [ln.rstrip() for ln in path.read_text(encoding="utf-8").splitlines()]
        except (UnicodeDecodeError, OSError):
            continue
        for a, b in itertools.pairwise(lines):
            if len(a.strip()) >= 12 and b.strip() and a not in seen:
                seen.add(a)
                pairs.append((a.strip(), b.strip()))
                if len(pairs) == n:
                    return pairs
    raise InvalidInput(
        f"the standard library has only {len(pairs)} distinct lines; ask for fewer", field="--items"
    )


class Precomputed:
    """An embedder that answers known texts from a table (batch-embedded once) and others with MiniLM."""

    def __init__(self, table: dict[str, np.ndarray], fallback: Embedder) -> None:
        self.table, self.fallback, self.dim = table, fallback, fallback.dim

    def embed(self, texts: Any) -> np.ndarray:
        missing = [t for t in texts if t not in self.table]
        if missing:
            for text, vector in zip(missing, self.fallback.embed(missing), strict=True):
                self.table[text] = vector
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def vectors(texts: list[str], cache: Path) -> np.ndarray:
    """MiniLM vectors of ``texts``, computed in batches once and cached under ``cache``."""
    from lifelong.models.embedders import MiniLM

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"minilm-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    model = MiniLM(batch_size=256, torch_threads=None)
    started = time.perf_counter()
    out = model.embed(texts)
    print(
        f"  embedded {len(texts)} texts in {time.perf_counter() - started:.0f} s (cached in {path})",
        flush=True,
    )
    np.save(path, out)
    return out


def seed_tenant(log_url: str, pairs: list[tuple[str, str]], cache: Path) -> dict[str, Any]:
    """Log one interaction + accept per pair, learn them into the tenant's example bank (vectors from
    the cache), commit and promote it as the version the service serves from the log's end."""
    from lifelong.models.embedders import default_embedder

    queries = [q for q, _ in pairs]
    table = dict(zip(queries, vectors(queries, cache), strict=True))
    started = time.perf_counter()
    log = ExperienceLog(log_url)
    steps: list[Step] = []
    batch: list[Interaction | Feedback] = []
    for n, (query, answer) in enumerate(pairs):
        i = Interaction(
            Scope(TENANT, user=f"dev{n % 50}"),
            {"query": query, "prompt": query, "endpoint": "completions"},
            answer,
            time=1.7e9 + n,
            metadata={"endpoint": "completion"},
        )
        f = Feedback.accept(i.id, time=1.7e9 + n + 0.5)
        batch += [i, f]
        steps.append(Step(i, (f,)))
        if len(batch) >= 10_000:
            log.append_many(batch)
            batch = []
    if batch:
        log.append_many(batch)
    logged = time.perf_counter() - started
    bank = ExampleBank(Precomputed(table, default_embedder()), k=4, dedupe=False)  # the lines are distinct
    bank.name = f"{TENANT}/examples"
    for step in steps:
        bank.learn(step)
    store = VersionStore(log_url)
    top = log.max_feedback_seq()
    info = store.commit(bank, message=f"{len(pairs)} seeded items", metrics={"log_seq": int(top)})
    store.promote(bank.name, info.version, override="benchmark seed")
    Events(log.db).emit(TENANT, "serve", "examples", info.version, int(top))
    key = KeyStore(log.db).create(TENANT).key
    store.close()
    log.close()
    return {
        "key": key,
        "items": len(pairs),
        "log_seconds": logged,
        "seed_seconds": time.perf_counter() - started,
    }


# ------------------------------------------------------------------------------------------ measurements


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
        "n": len(values),
    }


def proxy_overhead(url: str, key: str, requests: int, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    import httpx

    overhead, upstream, total = [], [], []
    recalled = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        for n in range(requests + 5):
            query = pairs[(n * 7919) % len(pairs)][0]  # a known line: its example is recalled
            started = time.perf_counter()
            r = http.post(
                "/v1/completions",
                json={"model": "gemma", "prompt": query, "max_tokens": 1, "user": f"dev{n % 50}"},
            )
            elapsed = (time.perf_counter() - started) * 1000
            if r.status_code != 200:
                raise BackendUnavailable(url, f"proxy request failed: {r.status_code} {r.text[:200]}")
            if n < 5:
                continue  # warm-up: the first request loads the tenant (the snapshot's items)
            info = r.json()["lifelong"]
            overhead.append(info["overhead_ms"])
            upstream.append(info["upstream_ms"])
            total.append(elapsed)
            recalled += len(info["recalled"])
    client_overhead = [t - u for t, u in zip(total, upstream, strict=True)]
    return {
        "per_request_ms": overhead,
        "overhead_ms": _ms(overhead),
        "client_minus_upstream_ms": _ms(client_overhead),
        "upstream_ms": _ms(upstream),
        "total_ms": _ms(total),
        "recalled_per_request": recalled / requests,
    }


def feedback_load(url: str, key: str, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` feedback requests on a small tenant's interactions from ``concurrency`` connections."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
        targets = [
            http.post(
                "/v1/completions", json={"model": "gemma", "prompt": f"x_{n} =", "max_tokens": 1}
            ).json()["id"]
            for n in range(8)
        ]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    run = uuid.uuid4().hex[:8]

    async def main() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as http:
            queue = iter(range(count))

            async def worker() -> None:
                for n in queue:
                    body = {
                        "interaction_id": targets[n % len(targets)],
                        "reward": 1.0,
                        "feedback_id": f"{run}-{n}",
                    }
                    started = time.perf_counter()
                    try:
                        r = await http.post("/v1/feedback", json=body)
                        status = str(r.status_code)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    if status == "200":
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        errors[status] = errors.get(status, 0) + 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - started

    seconds = asyncio.run(main())
    return {
        "requests": count,
        "ok": len(latencies),
        "errors": errors,
        "seconds": seconds,
        "per_second": len(latencies) / seconds,
        "latency_ms": _ms(latencies),
        "concurrency": concurrency,
    }


_WRK_SCRIPT = """
local ids = {%s}
local n = 0
local threads = {}
function setup(thread) thread:set("tid", #threads) table.insert(threads, thread) end
request = function()
  n = n + 1
  local body = string.format('{"interaction_id":"%%s","reward":1.0,"feedback_id":"%s-%%s-%%d"}',
                             ids[(n %% #ids) + 1], tid, n)
  return wrk.format("POST", "/v1/feedback", {["Content-Type"]="application/json",
                                             ["Authorization"]="Bearer %s"}, body)
end
"""


def feedback_wrk(url: str, key: str, seconds: int, concurrency: int, folder: Path) -> dict[str, Any]:
    """The same load from ``wrk`` (C, Debian's package): a Python client on 2 cores is itself the
    bottleneck near 200 requests/s, so the service's capacity is measured with wrk when it is installed."""
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
        targets = [
            http.post(
                "/v1/completions", json={"model": "gemma", "prompt": f"y_{n} =", "max_tokens": 1}
            ).json()["id"]
            for n in range(8)
        ]
    script = folder / "feedback.lua"
    script.write_text(_WRK_SCRIPT % (",".join(f'"{t}"' for t in targets), uuid.uuid4().hex[:8], key))
    command = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    found: dict[str, Any] = {"client": "wrk", "seconds": seconds, "concurrency": concurrency, "raw": out}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            found["per_second"] = float(parts[1])
        elif line.strip().startswith(("50%", "99%")):
            found[f"p{parts[0].rstrip('%')}_ms"] = _wrk_ms(parts[1])
        elif "requests in" in line:
            found["requests"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            found["non_2xx"] = int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            found["socket_errors"] = line.strip()
    found.setdefault("non_2xx", 0)
    return found


def _wrk_ms(text: str) -> float:
    """wrk's latency ("850.00us", "41.87ms", "1.02s") in milliseconds."""
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def cross_worker(a: str, b: str, key: str, rounds: int) -> dict[str, Any]:
    import httpx

    lags, misses = [], 0
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=a, headers=headers, timeout=60) as on_a,
        httpx.Client(base_url=b, headers=headers, timeout=60) as on_b,
    ):
        for n in range(rounds):
            text = f"fact {n}: the build cache lives on volume {uuid.uuid4().hex[:10]}"
            r = on_a.post("/v1/memories", json={"user_id": "sync", "text": text})
            acked = time.perf_counter()
            if r.status_code != 200:
                raise BackendUnavailable(a, f"memory add failed: {r.status_code} {r.text[:200]}")
            while True:
                found = on_b.get(
                    "/v1/memories/search", params={"query": text, "user_id": "sync", "limit": 3}
                ).json()
                if any(m["memory"] == text for m in found["results"]):
                    break
                misses += 1
                if time.perf_counter() - acked > 10:
                    raise BackendUnavailable(b, f"round {n}: not visible after 10 s")
            lags.append((time.perf_counter() - acked) * 1000)
    return {"visible_ms": _ms(lags), "rounds": rounds, "missed_reads": misses}


def _postgres_error() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server to measure against
        return str(exc).strip().splitlines()[0]


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ------------------------------------------------------------------------------------------ the suite


def serve_bench(args: argparse.Namespace) -> Result:
    items = int(getattr(args, "items", None) or 100_000)
    requests = int(args.steps or 300)
    count = int(getattr(args, "feedback", None) or 5000)
    rounds = int(getattr(args, "rounds", None) or 200)
    workers = int(getattr(args, "workers", None) or 2)
    concurrency = 32
    out = Path(args.out)
    cache = out / "serve-cache"
    result = Result(
        name=f"lifelong serve on loopback ({items:,} items)",
        protocol="service",
        seeds=[0],
        config={
            "items": items,
            "requests": requests,
            "feedback": count,
            "rounds": rounds,
            "workers": workers,
            "concurrency": concurrency,
            "cpus": os.cpu_count(),
        },
    )
    print(f"reading {items:,} line pairs of the standard library", flush=True)
    pairs = corpus(items)
    timings: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="lifelong-bench-serve-") as tmp,
        llama_upstream(Path(tmp)) as upstream,
    ):
        folder = Path(tmp)
        # --- SQLite, one worker
        sqlite_url = f"sqlite:///{folder / 'sqlite.db'}"
        print("SQLite: seeding the tenant", flush=True)
        seeded = seed_tenant(sqlite_url, pairs, cache)
        timings["sqlite_seed"] = seeded
        with service(folder, "sqlite", sqlite_url, upstream, "--shadow-rate", "0") as url:
            print(f"SQLite: {requests} proxy requests at {items:,} items", flush=True)
            timings["sqlite_proxy"] = proxy_overhead(url, seeded["key"], requests, pairs)
            print(f"SQLite: {count} feedback requests", flush=True)
            load_key = _key(sqlite_url, "load")
            timings["sqlite_feedback"] = feedback_load(url, load_key, count, concurrency)
            if shutil.which("wrk"):
                timings["sqlite_feedback_wrk"] = feedback_wrk(url, load_key, 10, concurrency, folder)
        # --- PostgreSQL, several workers
        error = _postgres_error()
        if error is not None:
            timings["postgresql"] = f"skipped: {error}"
        else:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            pg_url = f"{POSTGRES}?schema={schema}"
            try:
                print("PostgreSQL: seeding the tenant", flush=True)
                seeded = seed_tenant(pg_url, pairs, cache)
                timings["postgresql_seed"] = seeded
                flags = ("--shadow-rate", "0", "--workers", str(workers))
                with service(folder, "pg", pg_url, upstream, *flags) as url:
                    time.sleep(3)  # every worker up
                    print(f"PostgreSQL: {requests} proxy requests, {workers} workers", flush=True)
                    timings["postgresql_proxy"] = proxy_overhead(url, seeded["key"], requests, pairs)
                    print(f"PostgreSQL: {count} feedback requests, {workers} workers", flush=True)
                    load_key = _key(pg_url, "load")
                    timings["postgresql_feedback"] = feedback_load(url, load_key, count, concurrency)
                    if shutil.which("wrk"):
                        timings["postgresql_feedback_wrk"] = feedback_wrk(
                            url, load_key, 10, concurrency, folder
                        )
                with (
                    service(folder, "pg-a", pg_url, upstream) as a,
                    service(folder, "pg-b", pg_url, upstream) as b,
                ):
                    print(f"PostgreSQL: {rounds} cross-worker rounds", flush=True)
                    timings["postgresql_cross_worker"] = cross_worker(a, b, _key(pg_url, "sync"), rounds)
            finally:
                _drop_schema(schema)
    for backend in ("sqlite", "postgresql"):
        proxy = timings.get(f"{backend}_proxy")
        if isinstance(proxy, dict):
            per = proxy.pop("per_request_ms")
            result.curves[f"{backend} proxy overhead"] = Curve(
                [float(n) for n in range(1, len(per) + 1)],
                [per],
                kind="latency",
                xlabel="request",
                ylabel="overhead (ms)",
            )
    result.timings = timings
    for name, value in _headline(timings).items():
        result.add_metric(name, [value])
    return result


def _key(log_url: str, tenant: str) -> str:
    log = ExperienceLog(log_url)
    try:
        return KeyStore(log.db).create(tenant).key
    finally:
        log.close()


def _headline(t: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for backend in ("sqlite", "postgresql"):
        proxy = t.get(f"{backend}_proxy")
        if isinstance(proxy, dict):
            out[f"{backend}.overhead_p50_ms"] = proxy["overhead_ms"]["p50"]
            out[f"{backend}.overhead_p99_ms"] = proxy["overhead_ms"]["p99"]
        feedback = t.get(f"{backend}_feedback")
        if isinstance(feedback, dict):
            out[f"{backend}.feedback_per_s"] = feedback["per_second"]
            out[f"{backend}.feedback_p99_ms"] = feedback["latency_ms"]["p99"]
            out[f"{backend}.feedback_errors"] = float(sum(feedback["errors"].values()))
        wrk = t.get(f"{backend}_feedback_wrk")
        if isinstance(wrk, dict) and "per_second" in wrk:
            out[f"{backend}.feedback_wrk_per_s"] = wrk["per_second"]
            out[f"{backend}.feedback_wrk_p99_ms"] = wrk.get("p99_ms", float("nan"))
            out[f"{backend}.feedback_wrk_non_2xx"] = float(wrk["non_2xx"])
    cross = t.get("postgresql_cross_worker")
    if isinstance(cross, dict):
        out["postgresql.visible_p50_ms"] = cross["visible_ms"]["p50"]
        out["postgresql.visible_p99_ms"] = cross["visible_ms"]["p99"]
    return out
