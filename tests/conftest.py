"""Shared fixtures: a log/store URL for each real backend (SQLite file, PostgreSQL server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES = "postgresql://127.0.0.1:5432/test"


def _postgres_error() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES, connect_timeout=3):
            return None
    except Exception as exc:  # any failure means: no server to test against
        return str(exc).strip().splitlines()[0]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The real PostgreSQL server, in a fresh schema dropped afterwards."""
    error = _postgres_error()
    if error is not None:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {error}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES}?schema={schema}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for each backend: a SQLite file under tmp_path, or the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifelong.db'}"
    return str(request.getfixturevalue("postgres_url"))


db_url = log_url


@pytest.fixture(scope="session")
def llama_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp OpenAI-compatible server with the packaged Gemma (model 'gemma'), for the
    service's tests; its /v1 base URL."""
    from lifelong.bench.serve import llama_upstream

    with llama_upstream(tmp_path_factory.mktemp("llama")) as url:
        yield url
