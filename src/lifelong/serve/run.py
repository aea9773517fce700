"""Starting the service: validate the configuration, check the backends, run uvicorn."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lifelong.errors import BackendUnavailable
from lifelong.experience.log import ExperienceLog
from lifelong.models.openai_compat import OpenAICompatible
from lifelong.serve.config import ENV_CONFIG, ServeConfig


def check_backends(config: ServeConfig) -> None:
    """The database answers (the log schema is created if need be) and the upstream serves the model."""
    if config.log is None:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    ExperienceLog(config.log_url).close()
    if config.upstream is not None:
        # The client the service's HttpUpstream adapts, on its synchronous face: one try, 10 s at most.
        with OpenAICompatible(
            config.upstream, model=config.model, api_key=config.upstream_api_key, retries=0, timeout=10.0
        ) as upstream:
            upstream.check()


def serve(config: ServeConfig) -> None:
    """Run the service in the foreground until interrupted."""
    import uvicorn

    config.validate()
    check_backends(config)
    if config.workers == 1:
        from lifelong.serve.app import create_app

        uvicorn.run(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
        return
    os.environ[ENV_CONFIG] = config.to_json()
    metrics_dir = tempfile.mkdtemp(prefix="lifelong-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    uvicorn.run(
        "lifelong.serve.app:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


@contextmanager
def in_process(folder: Path, tenant: str, *, name: str = "in-process") -> Iterator[tuple[str, str, Any]]:
    """The service in this process (uvicorn in a thread) on the embedded defaults with its data in
    ``folder``: yields its URL, a new API key for ``tenant`` and the :class:`Service`."""
    import uvicorn

    from lifelong.bench.serve import free_port
    from lifelong.serve.app import create_app, open_service

    print("loading Gemma 3 270M (llama.cpp) and all-MiniLM-L6-v2 ...", file=sys.stderr, flush=True)
    config = ServeConfig(data_dir=str(folder), port=free_port(), rate_limit=0.0)
    svc = open_service(config)
    key = svc.keys.create(tenant, name=name).key
    server = uvicorn.Server(
        uvicorn.Config(create_app(service=svc), host="127.0.0.1", port=config.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="lifelong-serve", daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise BackendUnavailable(f"http://127.0.0.1:{config.port}", "the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}", key, svc
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        svc.thread.shutdown(wait=True)
        svc.log.close()
        svc.store.close()
