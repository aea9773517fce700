"""The memory as MCP tools, called the way an agent calls them: the official SDK's client over the
service's streamable HTTP endpoint and over stdio (``lifelong mcp``), with the service's keys."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from _service import BIN, Service, start_service

pytestmark = pytest.mark.slow

TOOLS = {"remember", "recall", "list_memories", "retire_memory", "feedback", "forget_user"}


@pytest.fixture(scope="module")
def service(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("mcp")
    s = start_service(folder, "--upstream", llama_upstream, "--model", "gemma", "--embedder", "hashing")
    yield s
    s.stop()


def over_http(service: Service, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(service.url + "/mcp/", http_client=http))


def payload(result: Any) -> Any:
    """A tool result's JSON (structured content, else the first text block)."""
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_every_tool_works_over_streamable_http_within_the_callers_tenant(service: Service) -> None:
    async def scenario() -> None:
        async with over_http(service, service.key("acme")) as acme:
            assert {tool.name for tool in (await acme.list_tools()).tools} >= TOOLS
            made = payload(
                await acme.call_tool(
                    "remember",
                    {
                        "user_id": "eve",
                        "thread": "chat",
                        "messages": [
                            {"role": "user", "name": "Eve", "content": "I adopted a turtle named Shelly."},
                            {"role": "assistant", "content": "What a lovely name!"},
                        ],
                    },
                )
            )
            assert len(made["results"]) == 2
            fact = payload(await acme.call_tool("remember", {"user_id": "eve", "text": "Eve lives in Oslo"}))
            found = payload(
                await acme.call_tool("recall", {"user_id": "eve", "query": "turtle Shelly", "limit": 3})
            )
            assert any("Shelly" in r["memory"] for r in found["results"])
            listed = payload(await acme.call_tool("list_memories", {"user_id": "eve"}))
            assert len(listed["results"]) == 3
            fact_id = fact["results"][0]["id"]

            async with over_http(service, service.key("other")) as other:  # another tenant sees nothing
                assert (
                    payload(await other.call_tool("recall", {"user_id": "eve", "query": "turtle"}))["results"]
                    == []
                )
                assert "404" in error_text(
                    await other.call_tool("retire_memory", {"memory_id": fact_id, "reason": "mine"})
                )
                assert payload(await other.call_tool("list_memories", {}))["results"] == []

            retired = payload(
                await acme.call_tool("retire_memory", {"memory_id": fact_id, "reason": "moved"})
            )
            assert (retired["status"], retired["reason"]) == ("retired", "moved")
            # bad arguments: a tool error naming the field, never a crash
            assert "limit" in error_text(
                await acme.call_tool("recall", {"user_id": "eve", "query": "x", "limit": 0})
            )
            assert "query" in error_text(await acme.call_tool("recall", {"user_id": "eve"}))
            assert "404 no interaction 'nope'" in error_text(
                await acme.call_tool("feedback", {"interaction_id": "nope", "accept": True})
            )
            gone = payload(await acme.call_tool("forget_user", {"user_id": "eve"}))
            assert gone["clean"]
            assert payload(await acme.call_tool("list_memories", {"user_id": "eve"}))["results"] == []

        async with over_http(service, None) as anonymous:  # no key: every call is refused
            assert "401" in error_text(await anonymous.call_tool("list_memories", {}))

    asyncio.run(scenario())


def test_lifelong_mcp_over_stdio_calls_the_service_with_its_key(service: Service) -> None:
    env = {**os.environ, "LIFELONG_API_KEY": service.key("acme"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    server = StdioServerParameters(command=str(BIN / "lifelong"), args=["mcp", "--url", service.url], env=env)

    async def scenario() -> None:
        async with Client(server) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} >= TOOLS
            payload(await client.call_tool("remember", {"user_id": "fay", "text": "Fay plays the cello"}))
            found = payload(await client.call_tool("recall", {"user_id": "fay", "query": "cello"}))
            assert [r["memory"] for r in found["results"]] == ["Fay plays the cello"]

    asyncio.run(scenario())
