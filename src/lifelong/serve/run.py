"""Starting the service: validate the configuration, check the backends, run uvicorn."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
