"""Starting real processes for the service's tests: `lifelong serve` (the llama.cpp upstream and the
process helpers are the benchmark's own, :mod:`lifelong.bench.serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lifelong.bench.serve import free_port, wait_for

BIN = Path(sys.executable).parent


def quick_flags(upstream: str) -> tuple[str, ...]:
    """`lifelong serve` flags for a test that needs no MiniLM: the real upstream, hashing embeddings,
    4 tokens per answer, no rate limit."""
    return ("--upstream", upstream, "--embedder", "hashing", "--max-tokens", "4", "--rate-limit", "0")


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    output: Path
    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> key
    log: str | None = None

    def key(self, tenant: str, *, admin: bool = False) -> str:
        name = f"{tenant}{'-admin' if admin else ''}"
        if name not in self.keys:
            self.keys[name] = create_key(self.data_dir, tenant, admin=admin, log=self.log)
        return self.keys[name]

    def client(self, tenant: str, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key(tenant)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def lifelong(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(BIN / "lifelong"), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def create_key(data_dir: Path, tenant: str, *, admin: bool = False, log: str | None = None) -> str:
    where = ["--log", log] if log else ["--data-dir", str(data_dir)]
    done = lifelong("keys", "create", "--tenant", tenant, *where, *(["--admin"] if admin else []))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def start_service(folder: Path, *flags: str, log: str | None = None, name: str = "serve") -> Service:
    """`lifelong serve` in a child process on a free port, ready when /healthz answers."""
    port = free_port()
    data_dir = folder / f"{name}-data"
    command = [str(BIN / "lifelong"), "serve", "--port", str(port), "--data-dir", str(data_dir), *flags]
    if log:
        command += ["--log", log]
    output = folder / f"{name}.log"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    with output.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/healthz", process, output, seconds=120)
    return Service(url, process, output, data_dir, log=log)


def services(folder: Path, count: int, *flags: str, log: str) -> Iterator[Service]:
    made = [start_service(folder, *flags, log=log, name=f"serve{i}") for i in range(count)]
    try:
        yield from made
    finally:
        for s in made:
            s.stop()
