"""The service's configuration: flags of ``lifelong serve``, each also an environment variable.

Every setting is read from the flag, else from ``LIFELONG_<NAME>`` (e.g. ``LIFELONG_LOG``,
``LIFELONG_UPSTREAM``), else its default; :meth:`ServeConfig.validate` checks the values before anything
starts and :func:`check_backends` that the database and the upstream answer, each failure one line that
says what to fix. Workers started by uvicorn receive the validated configuration as JSON in
``LIFELONG_SERVE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lifelong.errors import InvalidInput

ENV_CONFIG = "LIFELONG_SERVE_CONFIG"


@dataclass(frozen=True)
class ServeConfig:
    """See ``docs/service.md`` for every field; defaults give the embedded, offline service."""

    data_dir: str = "lifelong-data"
    log: str | None = None  # default: SQLite file in data_dir
    upstream: str | None = None  # an OpenAI-compatible /v1 base URL; default: Gemma in-process
    model: str | None = None  # the upstream's model name (default: the one it serves)
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout: float = 60.0
    upstream_retries: int = 2
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    embedder: str = "minilm"  # minilm | hashing
    max_body_bytes: int = 1_048_576
    rate_limit: float = 100.0  # requests per second per key and worker; 0 = off
    max_tokens: int = 512  # the most tokens one request may ask for
    context_budget: int = 512  # tokens of recalled context a prompt may carry
    shadow_rate: float = 1.0  # share of requests the frozen shadow control also answers
    poll_seconds: float = 0.1  # how often an idle worker reads the log for new feedback
    io_threads: int = 16  # threads per worker for database writes and reads (and PostgreSQL pool size)

    @property
    def log_url(self) -> str:
        """The log's URL; a PostgreSQL URL without ``pool_size`` gets one connection per I/O thread."""
        if self.log is None:
            return f"sqlite:///{Path(self.data_dir).absolute() / 'lifelong.db'}"
        if urlsplit(self.log).scheme.startswith("postgres") and "pool_size=" not in self.log:
            return self.log + ("&" if "?" in self.log else "?") + f"pool_size={self.io_threads}"
        return self.log

    def validate(self) -> ServeConfig:
        if self.log is not None:
            scheme = urlsplit(self.log).scheme
            if scheme not in ("sqlite", "postgresql", "postgres", ""):
                raise InvalidInput(
                    f"must be a SQLite path or postgresql://HOST:PORT/DB, got scheme {scheme!r}",
                    field="--log",
                )
        if self.upstream is not None:
            parts = urlsplit(self.upstream)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidInput(
                    f"must be http(s)://HOST:PORT/v1, got {self.upstream!r}", field="--upstream"
                )
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise InvalidInput(f"has a bad port: {self.upstream!r}", field="--upstream") from None
        elif self.model is not None:
            raise InvalidInput("names an upstream model but no --upstream was given", field="--model")
        if self.embedder not in ("minilm", "hashing"):
            raise InvalidInput(f"must be minilm or hashing, got {self.embedder!r}", field="--embedder")
        checks: list[tuple[str, float, float, float]] = [
            ("--port", self.port, 0, 65535),
            ("--workers", self.workers, 1, 64),
            ("--max-body-bytes", self.max_body_bytes, 1024, 1 << 30),
            ("--rate-limit", self.rate_limit, 0, 1e9),
            ("--max-tokens", self.max_tokens, 1, 1 << 20),
            ("--context-budget", self.context_budget, 0, 1 << 20),
            ("--shadow-rate", self.shadow_rate, 0, 1),
            ("--poll-seconds", self.poll_seconds, 0.001, 60),
            ("--io-threads", self.io_threads, 1, 1000),
            ("--upstream-timeout", self.upstream_timeout, 0.1, 3600),
            ("--upstream-retries", self.upstream_retries, 0, 10),
        ]
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise InvalidInput(f"must be in [{low:g}, {high:g}], got {value!r}", field=name)
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], environ: dict[str, str] | None = None) -> ServeConfig:
        """Flags (``values``; None = not given), else ``LIFELONG_<NAME>`` variables, else defaults."""
        environ = dict(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            given = values.get(f.name)
            if given is None:
                raw = environ.get(f"LIFELONG_{f.name.upper()}")
                if raw is None:
                    continue
                given = _parse(raw, f.type, f.name)
            kwargs[f.name] = given
        return cls(**kwargs)


def _parse(raw: str, kind: Any, name: str) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise InvalidInput(f"must be a number, got {raw!r}", field=f"LIFELONG_{name.upper()}") from None
    return raw
