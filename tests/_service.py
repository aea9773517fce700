"""Starting real processes for the service's tests: a llama.cpp server upstream and `lifelong serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], output: Path, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url}: the process exited ({process.returncode}): {output.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.loads(response.read())
                return
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"{url} did not answer within {seconds} s: {output.read_text()[-3000:]}")


def start_llama_server(folder: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """The real llama.cpp OpenAI-compatible server with the packaged Gemma, as model 'gemma'."""
    from lifelong.models.llama_cpp import default_gguf

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "lifelong.models.llama_server", "--model", str(default_gguf())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--model_alias", "gemma"]
    command += ["--n_threads", "1"]
    output = folder / "llama-server.log"
    with output.open("w") as sink:  # never a pipe nobody drains
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    wait_for(url + "/v1/models", process, output)
    return url + "/v1", process


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
    wait_for(url + "/healthz", process, output)
    return Service(url, process, output, data_dir, log=log)


def services(folder: Path, count: int, *flags: str, log: str) -> Iterator[Service]:
    made = [start_service(folder, *flags, log=log, name=f"serve{i}") for i in range(count)]
    try:
        yield from made
    finally:
        for s in made:
            s.stop()
