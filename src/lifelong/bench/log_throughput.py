"""Experience-log throughput: appends/s and replayed events/s, SQLite and PostgreSQL, single and batched.

    python -m lifelong.bench.log_throughput --n 2000 --batch 500 --repeats 3 --out runs/log_throughput.json

What is counted: an *event* is one record — an interaction or one piece of feedback. Every interaction
gets one reward feedback, so N interactions are 2N events.

- single: each event is its own ``append`` call, i.e. its own durable transaction (commit per event);
- batched: ``append_many`` of ``--batch`` interactions with their feedback in one transaction;
- replay: ``log.replay()`` over the whole log, by interaction (steps with their feedback joined) and by
  feedback arrival; events/s counts the records read back.

Each cell is the median of ``--repeats`` runs on a fresh log. SQLite runs with ``synchronous=full`` (the
default: survives power loss) and ``synchronous=normal`` (survives a killed process). A backend that is
not reachable is skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from lifelong.errors import BackendUnavailable
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope

POSTGRES = "postgresql://127.0.0.1:5432/test"


def records(n: int) -> list[tuple[Interaction, Feedback]]:
    out = []
    for k in range(n):
        i = Interaction(Scope(user=f"u{k % 100}"), {"text": f"query number {k}"}, "label", time=1e9 + k)
        out.append((i, Feedback.reward(i.id, 1.0, time=1e9 + k + 0.5)))
    return out


def single(log: ExperienceLog, data: list[tuple[Interaction, Feedback]]) -> int:
    for i, f in data:
        log.append(i)
        log.append(f)
    return 2 * len(data)


def batched(size: int) -> Callable[[ExperienceLog, list[tuple[Interaction, Feedback]]], int]:
    def run(log: ExperienceLog, data: list[tuple[Interaction, Feedback]]) -> int:
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            log.append_many([i for i, _ in chunk] + [f for _, f in chunk])
        return 2 * len(data)

    return run


def replay(order: Literal["interaction", "feedback"]) -> Callable[[ExperienceLog], int]:
    def run(log: ExperienceLog) -> int:
        return sum(
            1 + len(step.feedback) if order == "interaction" else 1 for step in log.replay(order=order)
        )

    return run


class Backend:
    def __init__(self, name: str, make_url: Callable[[], str], cleanup: Callable[[str], None]) -> None:
        self.name, self.make_url, self.cleanup = name, make_url, cleanup


def sqlite_backend(sync: str, folder: Path) -> Backend:
    return Backend(
        f"SQLite (synchronous={sync})",
        lambda: f"sqlite:///{folder / uuid.uuid4().hex}.db?synchronous={sync}",
        lambda url: None,
    )


def postgres_backend() -> Backend:
    import psycopg

    def make() -> str:
        return f"{POSTGRES}?schema=bench_{uuid.uuid4().hex[:10]}"

    def drop(url: str) -> None:
        schema = url.split("schema=")[1]
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return Backend("PostgreSQL 127.0.0.1 (psycopg 3)", make, drop)


def measure(backend: Backend, n_single: int, n_batch: int, batch: int, repeats: int) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    for _ in range(repeats):
        for label, write, n in [
            ("single", single, n_single),
            (f"batched ({batch})", batched(batch), n_batch),
        ]:
            url = backend.make_url()
            log = ExperienceLog(url)
            try:
                data = records(n)
                start = time.perf_counter()
                events = write(log, data)
                results.setdefault(f"append {label}", []).append(events / (time.perf_counter() - start))
                if label != "single":
                    for order in ("interaction", "feedback"):
                        start = time.perf_counter()
                        events = replay(order)(log)
                        assert events == (2 * n if order == "interaction" else n)
                        results.setdefault(f"replay by {order}", []).append(
                            events / (time.perf_counter() - start)
                        )
            finally:
                log.close()
                backend.cleanup(url)
    return {key: statistics.median(values) for key, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="interactions for single appends (default 2000)")
    parser.add_argument("--n-batch", type=int, default=20000, help="interactions for batched appends")
    parser.add_argument("--batch", type=int, default=500, help="interactions per append_many")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sqlite-sync", default="full,normal")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="lifelong-bench-"))
    backends: list[Backend] = []
    if "sqlite" in args.backends:
        backends += [sqlite_backend(sync, folder) for sync in args.sqlite_sync.split(",")]
    if "postgresql" in args.backends:
        backends.append(postgres_backend())

    table: dict[str, dict[str, float]] = {}
    for backend in backends:
        try:
            table[backend.name] = measure(backend, args.n, args.n_batch, args.batch, args.repeats)
        except BackendUnavailable as exc:
            print(f"skipped {backend.name}: {exc}", file=sys.stderr)
    columns = list(dict.fromkeys(key for row in table.values() for key in row))
    print(f"events/s, median of {args.repeats} (an event = one interaction or one feedback record)\n")
    print("| backend | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:,.0f}" for c in columns) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"config": vars(args) | {"out": str(args.out)}, "events_per_second": table}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
