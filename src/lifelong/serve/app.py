"""``lifelong serve``: the learning service, a FastAPI app (see ``docs/service.md``).

The app is assembled here — middleware, error answers, the routers of :mod:`lifelong.serve.routes` — and
each worker opens its :class:`~lifelong.serve.deps.Service` at start-up. A proxied request runs the
agent's one turn pipeline (:mod:`lifelong.serve.answer`); ``/v1/feedback`` appends feedback to the log and
answers once it is durable; every worker learns from the log before it answers (:mod:`lifelong.serve.follow`)
and, when idle, pays the background search's model calls (:meth:`~lifelong.serve.engine.Engine.background`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from lifelong.errors import LifelongError
from lifelong.experience.log import ExperienceLog
from lifelong.models.base import Embedder, HashingEmbedder
from lifelong.serve import errors, mcp, openai
from lifelong.serve import metrics as prom
from lifelong.serve.apps import AppStore
from lifelong.serve.config import ENV_CONFIG, ServeConfig
from lifelong.serve.deps import RateLimiter, Service
from lifelong.serve.engine import Engine, Settings, TenantOf
from lifelong.serve.keys import KeyStore
from lifelong.serve.routes import ROUTERS
from lifelong.serve.upstream import EmbeddedUpstream, HttpUpstream, Upstream
from lifelong.state.store import VersionStore

# ------------------------------------------------------------------------------------------ middleware


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413 — by Content-Length, and by counting a chunked body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        refused = False

        async def guarded_send(message: Message) -> None:
            if not refused:  # after the 413, whatever the app still tries to answer is dropped
                await send(message)

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    await self._refuse(scope, receive, send)
                    refused = True
                    return {"type": "http.disconnect"}  # the app stops reading: the client is answered
            return message

        await self.app(scope, counted, guarded_send)

    async def _refuse(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        response = openai.error(
            413, f"the request body is larger than {self.limit} bytes", "request_too_large"
        )
        await response(scope, receive, send)


class Timing:
    """Counts and times every request for Prometheus (a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` costs about as much as a small request itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            prom.observe_request(
                getattr(route, "path", "unmatched"), scope["method"], status, time.perf_counter() - start
            )


# ------------------------------------------------------------------------------------------ service


def _embedder(name: str) -> Embedder:
    if name == "hashing":
        return HashingEmbedder()
    from lifelong.models.embedders import default_embedder

    return default_embedder()


def open_service(config: ServeConfig, *, upstream: Upstream | None = None) -> Service:
    """Open the log, the store, the keys, the apps and the model (no network I/O but the database)."""
    config.validate()
    if config.log is None:
        os.makedirs(config.data_dir, exist_ok=True)
    log = ExperienceLog(config.log_url)
    store = VersionStore(config.log_url)
    if upstream is None:
        if config.upstream is not None:
            upstream = HttpUpstream(
                config.upstream,
                model=config.model,
                api_key=config.upstream_api_key,
                timeout=config.upstream_timeout,
                retries=config.upstream_retries,
            )
        else:
            upstream = EmbeddedUpstream()
    apps = AppStore(log.db)
    settings = Settings(context_budget=config.context_budget)
    engine = Engine(log, store, _embedder(config.embedder), upstream.model, apps, settings)
    return Service(
        config,
        log,
        store,
        KeyStore(log.db),
        apps,
        engine,
        upstream,
        RateLimiter(config.rate_limit),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="learners"),
        TenantOf(log),
    )


def create_app(config: ServeConfig | None = None, *, service: Service | None = None) -> FastAPI:
    """The FastAPI app. With ``service``, use it (tests); else open one from ``config`` at start-up."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or open_service(config or ServeConfig())
        # Log appends wait on the database's commit (fsync); enough threads to keep its group commit fed.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=svc.config.io_threads, thread_name_prefix="io")
        )
        await svc.upstream.check()
        app.state.service = svc
        poller = asyncio.create_task(_follow(svc))
        try:
            async with tools.session_manager.run():
                yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if service is None:
                await svc.upstream.aclose()
                svc.thread.shutdown(wait=True)
                svc.log.close()
                svc.store.close()

    app = FastAPI(
        title="lifelong",
        version="0.1.0",
        summary="An OpenAI-compatible proxy that learns from every piece of feedback, per tenant and app.",
        lifespan=lifespan,
    )
    limit = (config or (service.config if service else ServeConfig())).max_body_bytes
    app.add_middleware(BodyLimit, limit=limit)
    app.add_middleware(Timing)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    tools = mcp.mount(app)  # the memory as MCP tools at /mcp/, each one call of the routes above
    return app


async def _follow(s: Service) -> None:
    """Keep an idle worker in step with the log, and spend its idle time on background learning (one
    model call at a time, and only while no request is being answered)."""
    while True:
        await asyncio.sleep(s.config.poll_seconds)
        with contextlib.suppress(LifelongError):
            await s.in_engine(s.engine.catch_up)
            while s.idle():
                made: int = await s.in_engine(lambda: s.engine.background())
                if not made:
                    break


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker: the configuration comes in ``LIFELONG_SERVE_CONFIG``."""
    raw = os.environ.get(ENV_CONFIG)
    return create_app(ServeConfig.from_json(raw) if raw else ServeConfig())
