"""The service's memory as MCP tools (Model Context Protocol; the official ``mcp`` SDK's ``MCPServer``).

Any MCP client — an agent framework, an IDE, a desktop assistant — can then remember, recall, give
feedback, retire and forget, with the same API keys and tenant rules as the REST API, because every
tool is exactly one call of that API: a tool builds the request, the service's route validates it,
logs it and learns from it, and a 4xx comes back as a tool error that names the field (never a
crash, never a second implementation of a route).

Two transports:

- **streamable HTTP at** ``/mcp/`` **of** ``lifelong serve`` — stateless (any worker answers any call);
  each tool call is forwarded in-process (ASGI, no socket) with the caller's own ``Authorization`` /
  ``X-Api-Key`` header, so a key sees only its tenant;
- **stdio**, ``lifelong mcp`` — for a client that starts its tools as a subprocess: with ``--url`` the
  tools call that service with ``$LIFELONG_API_KEY``; without, it starts the service in this process on
  the embedded defaults (``--data-dir``) with a key for ``--tenant``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

#: Headers that carry the caller's API key, forwarded from an MCP HTTP request to the REST call.
KEY_HEADERS = ("authorization", "x-api-key", "x-lifelong-tenant", "x-lifelong-app")

#: ``ClientFor(ctx)``: an HTTP client of the service for the caller of this tool call.
ClientFor = Callable[[Context], AbstractAsyncContextManager[httpx.AsyncClient]]

INSTRUCTIONS = """\
Long-term memory that learns from feedback, per user. remember() what a user says or a whole
conversation (messages + thread); recall() what is relevant to a question (as_of: what held then);
feedback() on an interaction to teach it; retire_memory() a wrong memory with a reason so it never
comes back; forget_user() erases a user everywhere."""


def build_mcp(client_for: ClientFor) -> MCPServer:
    """The MCP server of the memory tools; each calls the REST API through ``client_for(ctx)``."""
    server = MCPServer("lifelong", instructions=INSTRUCTIONS)

    async def call(ctx: Context, method: str, path: str, **kwargs: Any) -> Any:
        async with client_for(ctx) as client:
            response = await client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ToolError(_error_text(response))
        return response.json()

    @server.tool()
    async def remember(
        ctx: Context,
        user_id: str,
        text: str | None = None,
        key: str | None = None,
        messages: list[dict[str, str]] | None = None,
        thread: str | None = None,
        time: float | None = None,
    ) -> dict[str, Any]:
        """Remember a fact for a user (``text``, optional ``key``: a later fact with the same key
        supersedes it), or a conversation: ``messages`` [{role, content, name?}] with ``thread``
        keeps every turn, linked to its neighbours, at ``time`` (Unix seconds)."""
        body = {
            "user_id": user_id,
            "text": text,
            "key": key,
            "messages": messages,
            "thread": thread,
            "time": time,
        }
        return dict(await call(ctx, "POST", "/v1/memories", json=_present(body)))

    @server.tool()
    async def recall(
        ctx: Context, user_id: str, query: str, limit: int = 5, as_of: float | None = None
    ) -> dict[str, Any]:
        """The user's memories most relevant to ``query`` (BM25 and meaning, fused); ``as_of`` (Unix
        seconds): what held at that time."""
        params = _present({"user_id": user_id, "query": query, "limit": limit, "as_of": as_of})
        return dict(await call(ctx, "GET", "/v1/memories/search", params=params))

    @server.tool()
    async def list_memories(ctx: Context, user_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        """The active memories of a user (or of the whole tenant), with the interactions they came from."""
        return dict(
            await call(ctx, "GET", "/v1/memories", params=_present({"user_id": user_id, "limit": limit}))
        )

    @server.tool()
    async def retire_memory(ctx: Context, memory_id: str, reason: str) -> dict[str, Any]:
        """Retire a wrong memory with a reason: never recalled again, and not remembered if said again."""
        path = f"/v1/memories/{quote(memory_id, safe='/')}/retire"
        return dict(await call(ctx, "POST", path, json={"reason": reason}))

    @server.tool()
    async def feedback(
        ctx: Context,
        interaction_id: str,
        accept: bool | None = None,
        rating: float | None = None,
        correction: str | None = None,
        reward: float | None = None,
        remember: list[str] | None = None,
    ) -> dict[str, Any]:
        """Feedback on an interaction (a chat completion's id): accept or reject, a rating, the right
        answer (correction), a reward, or facts to remember for its user. Learned at once."""
        body = {
            "interaction_id": interaction_id,
            "accept": accept,
            "rating": rating,
            "correction": correction,
            "reward": reward,
            "remember": remember,
        }
        return dict(await call(ctx, "POST", "/v1/feedback", json=_present(body)))

    @server.tool()
    async def forget_user(ctx: Context, user_id: str) -> dict[str, Any]:
        """Erase a user everywhere: their interactions, every memory and item derived from them, the
        snapshots and caches; returns the erasure report."""
        return dict(await call(ctx, "DELETE", f"/v1/users/{quote(user_id, safe='')}"))

    return server


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if value is not None}


def _error_text(response: httpx.Response) -> str:
    """A service error as one line: the status, the field (``param``) and the message."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"
    param = error.get("param")
    message = error.get("message", response.reason_phrase)
    return f"{response.status_code} {param + ': ' if param else ''}{message}"


def forwarding(app: Any) -> ClientFor:
    """``ClientFor`` of the service's own ``/mcp/``: the REST API in-process, with the caller's key."""
    import contextlib

    @contextlib.asynccontextmanager
    async def client_for(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
        request = ctx.request_context.request
        headers = {h: request.headers[h] for h in KEY_HEADERS if request is not None and h in request.headers}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://lifelong", headers=headers
        ) as client:
            yield client

    return client_for


def remote(url: str, key: str) -> ClientFor:
    """``ClientFor`` of a service at ``url`` (stdio mode), with one API key."""
    import contextlib

    @contextlib.asynccontextmanager
    async def client_for(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60.0) as client:
            yield client

    return client_for


def mount(app: Any) -> MCPServer:
    """Serve the tools at ``app``'s ``/mcp/`` (stateless streamable HTTP); the caller runs
    ``server.session_manager.run()`` in the app's lifespan. DNS-rebinding protection is off: every
    call needs an API key, and the service may listen on any host name."""
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_mcp(forwarding(app))
    app.mount(
        "/mcp",
        server.streamable_http_app(
            streamable_http_path="/",
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        ),
    )
    return server
