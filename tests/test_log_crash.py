"""Crash and concurrency safety: kill -9 loses no acknowledged event; no writer sees "database is locked"."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope

WRITER = "lifelong.bench.crash_writer"


def start_writer(url: str, mode: str, count: int, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", WRITER, url, mode, str(count), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "log.db"
    writer = start_writer(str(path), mode, 0, "w")
    assert writer.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        acknowledged.append(line.strip())
    os.kill(writer.pid, signal.SIGKILL)  # mid-stream: the writer is busy appending
    writer.wait(timeout=30)
    acknowledged += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]
    assert writer.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 300, writer.stderr.read() if writer.stderr else ""

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    log = ExperienceLog(path)  # opens cleanly after the crash
    for interaction_id in acknowledged:
        step = log.get(interaction_id)
        assert step.reward == 1.0
    stats = log.stats()
    assert stats.interactions >= len(acknowledged) and stats.feedback >= len(acknowledged)
    if mode == "batch":  # a batch lands whole or not at all
        assert stats.interactions % 25 == 0 and stats.feedback == stats.interactions
    # and it is still writable
    i = Interaction(Scope(user="after"), "q")
    assert log.append(i)


def append_many_times(log: ExperienceLog, tag: str, n: int, errors: list[BaseException]) -> None:
    try:
        for k in range(n):
            i = Interaction(Scope(user=tag), f"{tag}-{k}", "a")
            if k % 2:
                log.append(i)
                log.append(Feedback.reward(i.id, 1.0))
            else:
                log.append_many([i, Feedback.reward(i.id, 1.0)])
    except BaseException as exc:  # surfaced to the test below
        errors.append(exc)


def run_threads(url: str, shared: bool, threads: int, per_thread: int) -> list[BaseException]:
    errors: list[BaseException] = []
    logs = [ExperienceLog(url)] if shared else [ExperienceLog(url) for _ in range(threads)]
    workers = [
        threading.Thread(
            target=append_many_times, args=(logs[t % len(logs)], f"t{shared}{t}", per_thread, errors)
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    for log in logs:
        log.close()
    return errors


def test_concurrent_threads_and_processes_on_sqlite(tmp_path: Path) -> None:
    url = str(tmp_path / "log.db")
    ExperienceLog(url).close()
    processes = [start_writer(url, mode, 150, f"p{n}") for n, mode in enumerate(["single", "batch"] * 2)]
    errors = run_threads(url, shared=True, threads=8, per_thread=100)
    errors += run_threads(url, shared=False, threads=8, per_thread=100)
    for p in processes:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        assert "locked" not in stderr
    assert not errors, errors[:3]
    log = ExperienceLog(url)
    stats = log.stats()
    assert stats.interactions == 8 * 100 * 2 + 4 * 150
    assert stats.feedback == stats.interactions


@pytest.mark.postgres
def test_concurrent_threads_and_processes_on_postgres(postgres_url: str) -> None:
    ExperienceLog(postgres_url).close()
    processes = [start_writer(postgres_url, mode, 100, f"p{n}") for n, mode in enumerate(["single", "batch"])]
    errors = run_threads(postgres_url, shared=True, threads=4, per_thread=50)
    errors += run_threads(postgres_url, shared=False, threads=4, per_thread=50)
    for p in processes:
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
    assert not errors, errors[:3]
    stats = ExperienceLog(postgres_url).stats()
    assert stats.interactions == 4 * 50 * 2 + 2 * 100 == stats.feedback
