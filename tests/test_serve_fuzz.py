"""Schema fuzzing of `lifelong serve` with schemathesis: every operation of its OpenAPI document, valid
and invalid inputs, against the real server process — no answer may be a server error (5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from _service import Service, quick_flags, start_service
from lifelong.serve.app import create_app
from lifelong.serve.config import ServeConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = start_service(
        tmp_path_factory.mktemp("fuzz"),
        *quick_flags(llama_upstream),
    )
    yield s
    s.stop()


# The OpenAPI document does not depend on the configuration: read it from the app without starting it,
# so the operations are known when pytest collects; the requests go to the real server process.
schema = schemathesis.openapi.from_dict(create_app(ServeConfig()).openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_a_server_error(case: Any, service: Service) -> None:
    headers = {"Authorization": f"Bearer {service.key('fuzz')}"}
    case.call_and_validate(base_url=service.url, headers=headers, checks=[not_a_server_error])
