"""``lifelong serve``: the learning service, a FastAPI app (see ``docs/service.md``).

Per request of the proxy (``/v1/chat/completions``, ``/v1/completions``): authenticate the key (its
tenant scopes everything), catch up with the log, recall what the tenant's learners hold for the user,
put it into the prompt within the token budget, call the upstream model — and, for a share of the
requests that recalled something, the *frozen shadow control* (the same model without the learned
context) concurrently — log the interaction, and answer in OpenAI's format with the interaction id in
``id``, in ``lifelong.interaction_id`` and in the ``X-Lifelong-Interaction`` header.

``/v1/feedback`` appends feedback to the log and answers once it is durable; learning happens when a
worker next reads the log (:mod:`lifelong.serve.follow`), which every worker does before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from lifelong.errors import BackendUnavailable, Conflict, InvalidInput, LifelongError, ModelError, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Feedback, FeedbackKind, Interaction, Scope, Step, feedback_of, new_id
from lifelong.learners.context.base import MODEL_ANSWER, RECALLED, Recalled, right_answer
from lifelong.learners.context.gate import same_answer
from lifelong.models.base import Embedder, HashingEmbedder
from lifelong.serve import metrics as prom
from lifelong.serve.config import ENV_CONFIG, ServeConfig
from lifelong.serve.engine import LEARNERS, Engine, Settings, TenantOf, interaction_tenant
from lifelong.serve.keys import KeyStore, Principal
from lifelong.serve.prompts import chat_with_context, completion_with_context, context_text, fit
from lifelong.serve.schemas import (
    ChatMessage,
    ChatRequest,
    Commit,
    CompletionRequest,
    FeedbackRequest,
    MemoryAdd,
    Promote,
    Rollback,
)
from lifelong.serve.upstream import EmbeddedUpstream, Generated, HttpUpstream, Upstream, content_text
from lifelong.serve.upstream import Request as UpstreamRequest
from lifelong.state.store import VersionStore

T = TypeVar("T")

#: Interaction metadata: the frozen shadow control's answer, and whether it is the served one.
SHADOW = "shadow"


# ------------------------------------------------------------------------------------------ errors


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param
        self.headers = dict(headers or {})


def _error(
    status: int, message: str, kind: str, param: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _status_of(exc: LifelongError) -> tuple[int, str]:
    if isinstance(exc, NotFound):
        return 404, "not_found_error"
    if isinstance(exc, Conflict):
        return 409, "conflict_error"
    if isinstance(exc, BackendUnavailable):
        return 503, "upstream_unavailable"
    if isinstance(exc, ModelError):
        return 502, "upstream_error"
    return 400, "invalid_request_error"


# ------------------------------------------------------------------------------------------ limits


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
        response = _error(413, f"the request body is larger than {self.limit} bytes", "request_too_large")
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


class RateLimiter:
    """A token bucket per key (in this worker): ``rate`` requests a second, bursts of 2 × rate."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key_id: str) -> float | None:
        """None when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        burst = max(1.0, 2 * self.rate)
        tokens, last = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        self._buckets[key_id] = (tokens - 1, now)
        return None


# ------------------------------------------------------------------------------------------ service


@dataclass
class Service:
    """What one worker holds: the log, the store, the keys, the learners, the model."""

    config: ServeConfig
    log: ExperienceLog
    store: VersionStore
    keys: KeyStore
    engine: Engine
    upstream: Upstream
    limiter: RateLimiter
    thread: ThreadPoolExecutor  # the one thread that touches learner state
    tenant_of: TenantOf

    async def in_engine(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn)

    async def in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn)


def _embedder(name: str) -> Embedder:
    if name == "hashing":
        return HashingEmbedder()
    from lifelong.models.embedders import default_embedder

    return default_embedder()


def open_service(config: ServeConfig, *, upstream: Upstream | None = None) -> Service:
    """Open the log, the store, the keys and the model (no network I/O except the database)."""
    config.validate()
    if config.log is None:
        os.makedirs(config.data_dir, exist_ok=True)
    log = ExperienceLog(config.log_url)
    store = VersionStore(config.log_url)
    keys = KeyStore(log.db)
    engine = Engine(log, store, _embedder(config.embedder), Settings())
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
    return Service(
        config,
        log,
        store,
        keys,
        engine,
        upstream,
        RateLimiter(config.rate_limit),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="learners"),
        TenantOf(log),
    )


def create_app(config: ServeConfig | None = None, *, service: Service | None = None) -> FastAPI:
    """The FastAPI app. With ``service``, use it (tests); else open one from ``config`` at start-up."""
    holder: dict[str, Service] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or open_service(config or ServeConfig())
        # Log appends wait on the database's commit (fsync); enough threads to keep its group commit fed.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=svc.config.io_threads, thread_name_prefix="io")
        )
        await svc.upstream.check()
        holder["svc"] = svc
        poller = asyncio.create_task(_poll(svc))
        try:
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
        summary="An OpenAI-compatible proxy that learns from every piece of feedback, per tenant.",
        lifespan=lifespan,
    )
    limit = (config or (service.config if service else ServeConfig())).max_body_bytes
    app.add_middleware(BodyLimit, limit=limit)
    app.add_middleware(Timing)

    def svc() -> Service:
        return holder["svc"]

    async def principal(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not key:
            raise ApiError(401, "no API key: send Authorization: Bearer <key>", "authentication_error")
        s = svc()
        cached = s.keys.cached(key)
        if cached is False:  # not verified lately: read the key table (off the event loop)
            found = await s.in_pool(lambda: s.keys.verify(key))
        else:
            found = cached
        if found is None:
            raise ApiError(401, "the API key is not valid (unknown or revoked)", "authentication_error")
        wait = s.limiter.check(found.key_id)
        if wait is not None:
            raise ApiError(
                429,
                f"rate limit of {s.config.rate_limit:g} requests/s for this key; retry later",
                "rate_limit_error",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        acting = request.headers.get("x-lifelong-tenant")
        if acting is not None and acting != found.tenant:
            if not found.admin:
                raise ApiError(
                    403,
                    "only an admin key may act for another tenant",
                    "permission_error",
                    "X-Lifelong-Tenant",
                )
            found = Principal(found.key_id, _checked(lambda: Scope(acting).tenant), True)
        return found

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.kind, exc.param, exc.headers)

    @app.exception_handler(LifelongError)
    async def lifelong_error(request: Request, exc: LifelongError) -> JSONResponse:
        status, kind = _status_of(exc)
        return _error(status, str(exc), kind, getattr(exc, "field", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        param = None
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            param = param or loc or None
            problems.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return _error(422, "; ".join(problems[:5]), "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "invalid_request_error")

    # -------------------------------------------------------------------- the proxy

    @app.post("/v1/chat/completions", tags=["proxy"])
    async def chat_completions(
        body: ChatRequest, request: Request, who: Principal = Depends(principal)
    ) -> Response:
        scope = _scope(who, body.user, request)
        query = _last_user_text(body)
        cap = body.max_completion_tokens or body.max_tokens or min(256, svc().config.max_tokens)
        messages = tuple(_plain_message(m) for m in body.messages)
        base = UpstreamRequest(
            "chat",
            _max_tokens(cap, svc()),
            body.temperature or 0.0,
            body.stops(),
            messages=messages,
            extra=body.extra_fields(),
        )
        observation = {"query": query, "messages": [dict(m) for m in messages], "endpoint": "chat"}
        return await _proxy(svc(), scope, observation, query, base, body.stream, body.model, "chat")

    @app.post("/v1/completions", tags=["proxy"])
    async def completions(
        body: CompletionRequest, request: Request, who: Principal = Depends(principal)
    ) -> Response:
        scope = _scope(who, body.user, request)
        query = body.prompt[-2000:] if body.prompt.strip() else "(empty prompt)"
        base = UpstreamRequest(
            "completion",
            _max_tokens(body.max_tokens or 16, svc()),
            body.temperature or 0.0,
            body.stops(),
            prompt=body.prompt,
            extra=body.extra_fields(),
        )
        observation = {"query": query, "prompt": body.prompt, "endpoint": "completions"}
        return await _proxy(svc(), scope, observation, query, base, body.stream, body.model, "completion")

    @app.get("/v1/models", tags=["proxy"])
    async def models(who: Principal = Depends(principal)) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": svc().upstream.name, "object": "model", "owned_by": "lifelong"}],
        }

    # -------------------------------------------------------------------- feedback

    @app.post("/v1/feedback", tags=["feedback"])
    async def feedback(body: FeedbackRequest, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        start = time.perf_counter()
        result = await s.in_pool(lambda: _append_feedback(s, who.tenant, body))
        prom.FEEDBACK_SECONDS.observe(time.perf_counter() - start)
        return result

    # -------------------------------------------------------------------- memories (mem0's small API)

    @app.post("/v1/memories", tags=["memory"])
    async def add_memory(
        body: MemoryAdd, request: Request, who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        s = svc()
        scope = _checked(lambda: Scope(who.tenant, body.user_id, request.headers.get("x-lifelong-session")))
        texts = (
            [body.text]
            if body.text is not None
            else [m.content for m in body.messages or [] if m.role == "user" and m.content.strip()]
        )
        if not texts or not all(t.strip() for t in texts):
            raise ApiError(
                422, "nothing to remember: the text (or every user message) is blank", param="text"
            )
        facts = [{"text": t.strip(), "key": body.key} for t in texts]
        interaction = Interaction(scope, "remember", metadata={"endpoint": "memories"})
        remember = Feedback.outcome(interaction.id, {"remember": facts})
        await s.in_pool(lambda: s.log.append_many([interaction, remember]))

        def made() -> list[dict[str, Any]]:
            s.engine.catch_up()
            learner = s.engine.learner(who.tenant, "memory")
            return [_memory(item) for item in learner.active_items() if interaction.id in item.sources]

        return {"results": await s.in_engine(made), "interaction_id": interaction.id}

    @app.get("/v1/memories/search", tags=["memory"])
    async def search_memories(
        query: str = Query(min_length=1, max_length=10_000),
        user_id: str = Query(min_length=1, max_length=256),
        limit: int = Query(5, ge=1, le=100),
        who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        s = svc()
        scope = _checked(lambda: Scope(who.tenant, user_id))

        def search() -> list[dict[str, Any]]:
            s.engine.catch_up()
            found = s.engine.learner(who.tenant, "memory").recall(query, scope, k=limit)
            return [{**_memory(r.item), "score": round(r.score, 6)} for r in found]

        return {"results": await s.in_engine(search)}

    @app.get("/v1/memories", tags=["memory"])
    async def list_memories(
        user_id: str | None = Query(None, min_length=1, max_length=256),
        limit: int = Query(100, ge=1, le=1000),
        who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        s = svc()
        scope = _checked(lambda: Scope(who.tenant, user_id))
        items = await s.in_engine(lambda: s.engine.items(scope, "memory", limit=limit))
        return {"results": [_memory(item) for item in items]}

    @app.delete("/v1/users/{user_id}", tags=["memory"])
    async def forget_user(user_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        scope = _checked(lambda: Scope(who.tenant, user_id))
        report = await s.in_engine(lambda: s.engine.forget(scope))
        return {"forgotten": report.to_dict(), "clean": report.clean}

    # -------------------------------------------------------------------- interactions

    @app.get("/v1/interactions", tags=["learning"])
    async def recent(
        limit: int = Query(50, ge=1, le=1000),
        user_id: str | None = Query(None, max_length=256),
        who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        s = svc()
        scope = _checked(lambda: Scope(who.tenant, user_id or None))
        steps = await s.in_pool(lambda: s.log.recent(scope, limit))
        return {"data": [_step(step) for step in steps]}

    @app.get("/v1/interactions/{interaction_id}", tags=["learning"])
    async def one(interaction_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        step = await s.in_pool(lambda: interaction_tenant(s.log, interaction_id, who.tenant))
        return _step(step)

    # -------------------------------------------------------------------- learners and versions

    @app.get("/v1/learners", tags=["learning"])
    async def learners(who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()

        def listing() -> list[dict[str, Any]]:
            s.engine.catch_up()
            state = s.engine.tenant(who.tenant)
            out = []
            for name, learner in state.learners.items():
                promoted = s.store.promoted(learner.name)
                out.append(
                    {
                        "name": name,
                        "class": type(learner).__name__,
                        "version": learner.version,
                        "items": len(learner.active_items()),
                        "promoted": None if promoted is None else promoted.version,
                        "versions": len(s.store.versions(learner.name)),
                        "serving_from_seq": state.from_seq.get(name, 0),
                    }
                )
            return out

        return {"data": await s.in_engine(listing)}

    @app.get("/v1/learners/{name}/versions", tags=["learning"])
    async def versions(name: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        return await s.in_engine(lambda: s.engine.versions(who.tenant, _learner(name)))

    @app.post("/v1/learners/{name}/versions", tags=["learning"])
    async def commit(name: str, body: Commit, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        info = await s.in_engine(lambda: s.engine.commit(who.tenant, _learner(name), body.message))
        return {"name": name, "version": info.version, "digest": info.digest, "metrics": info.metrics}

    @app.get("/v1/learners/{name}/diff", tags=["learning"])
    async def diff(
        name: str, a: int = Query(ge=1), b: int = Query(ge=1), who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        s = svc()
        return await s.in_engine(lambda: s.engine.diff(who.tenant, _learner(name), a, b))

    @app.post("/v1/learners/{name}/promote", tags=["learning"])
    async def promote(name: str, body: Promote, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        info = await s.in_engine(
            lambda: s.engine.promote(who.tenant, _learner(name), body.version, body.override)
        )
        return {"name": name, "promoted": info.version}

    @app.post("/v1/learners/{name}/rollback", tags=["learning"])
    async def rollback(name: str, body: Rollback, who: Principal = Depends(principal)) -> dict[str, Any]:
        s = svc()
        info = await s.in_engine(
            lambda: s.engine.rollback(who.tenant, _learner(name), body.to, body.override)
        )
        return {"name": name, "promoted": info.version}

    # -------------------------------------------------------------------- learning metrics

    @app.get("/v1/learning", tags=["learning"])
    async def learning(
        window: int = Query(20, ge=1, le=10_000),
        limit: int = Query(5000, ge=1, le=100_000),
        who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        s = svc()
        steps = await s.in_pool(lambda: s.log.recent(Scope(who.tenant), limit))
        return learning_curve(list(reversed(steps)), window)

    @app.get("/v1/tenants", tags=["admin"])
    async def tenants(who: Principal = Depends(principal)) -> dict[str, Any]:
        if not who.admin:
            raise ApiError(403, "listing tenants needs an admin key", "permission_error")
        s = svc()
        return {"data": await s.in_pool(lambda: _tenants(s.log))}

    # -------------------------------------------------------------------- operations

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, Any]:
        s = svc()
        await s.in_pool(s.log.ping)
        return {
            "status": "ok",
            "model": s.upstream.name,
            "log_seq": s.engine.tail.high,
            "tenants_loaded": len(s.engine.tenants),
        }

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        body, content_type = prom.exposition()
        return Response(body, media_type=content_type)

    @app.get("/dashboard", response_class=HTMLResponse, tags=["operations"])
    async def dashboard() -> HTMLResponse:
        page = resources.files("lifelong.serve").joinpath("dashboard.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    return app


# ------------------------------------------------------------------------------------------ the proxy


async def _proxy(
    s: Service,
    scope: Scope,
    observation: dict[str, Any],
    query: str,
    base: UpstreamRequest,
    stream: bool,
    client_model: str,
    kind: str,
) -> Response:
    start = time.perf_counter()
    interaction_id = new_id()
    recalled = await s.in_engine(lambda: s.engine.recall(scope, query))
    used = fit(recalled, s.config.context_budget, s.upstream.count_tokens)
    context = context_text(used)
    if kind == "chat":
        served_request = replace(base, messages=tuple(chat_with_context(base.messages, context)))
    else:
        served_request = replace(base, prompt=completion_with_context(base.prompt, context))
    shadow_task: asyncio.Task[Generated] | None = None
    if context and random.random() < s.config.shadow_rate:
        shadow_task = asyncio.create_task(s.upstream.generate(base))
    prepared = time.perf_counter() - start
    created = int(time.time())
    headers = {"X-Lifelong-Interaction": interaction_id}

    async def finish(out: Generated) -> tuple[Interaction, dict[str, Any]]:
        shadow: Generated | None = None
        if shadow_task is not None:
            try:
                shadow = await shadow_task
            except LifelongError:
                shadow = None
        after = time.perf_counter()
        answer, amended = out.text, _amended(s, used, out.text)
        metadata: dict[str, Any] = {
            RECALLED: {f"{scope.tenant}/{name}": [r.id for r in items] for name, items in used.items()},
            MODEL_ANSWER: answer,
            SHADOW: {
                "same": not context,
                "answer": None if shadow is None else shadow.text,
                "asked": shadow_task is not None,
            },
            "endpoint": kind,
            "model": s.upstream.name,
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "upstream_ms": round(out.seconds * 1000, 3),
        }
        interaction = Interaction(scope, observation, amended, id=interaction_id, metadata=metadata)
        await s.in_pool(lambda: s.log.append(interaction))
        s.tenant_of.remember(interaction.id, scope.tenant)
        overhead = prepared + (time.perf_counter() - after)
        prom.OVERHEAD_SECONDS.observe(overhead)
        prom.UPSTREAM_SECONDS.observe(out.seconds)
        info = {
            "interaction_id": interaction_id,
            "overhead_ms": round(overhead * 1000, 3),
            "upstream_ms": round(out.seconds * 1000, 3),
            "recalled": [
                {"learner": name, "id": r.id, "text": r.item.text, "score": round(r.score, 4)}
                for name, items in used.items()
                for r in items
            ],
        }
        return interaction, info

    if not stream:
        out = await s.upstream.generate(served_request)
        interaction, info = await finish(out)
        headers["X-Lifelong-Overhead-Ms"] = str(info["overhead_ms"])
        headers["X-Lifelong-Upstream-Ms"] = str(info["upstream_ms"])
        usage = {
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens,
        }
        text = interaction.action
        if kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": out.finish_reason,
                "logprobs": None,
            }
            body = {
                "id": interaction_id,
                "object": "chat.completion",
                "created": created,
                "model": client_model,
                "choices": [choice],
                "usage": usage,
                "lifelong": info,
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": out.finish_reason, "logprobs": None}
            body = {
                "id": interaction_id,
                "object": "text_completion",
                "created": created,
                "model": client_model,
                "choices": [choice],
                "usage": usage,
                "lifelong": info,
            }
        return JSONResponse(body, headers=headers)

    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(delta: str | None, finish_reason: str | None, extra: dict[str, Any] | None = None) -> str:
        if kind == "chat":
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {} if delta is None else {"content": delta},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        else:
            choice = {"index": 0, "text": delta or "", "finish_reason": finish_reason, "logprobs": None}
        data = {
            "id": interaction_id,
            "object": obj,
            "created": created,
            "model": client_model,
            "choices": [choice],
            **(extra or {}),
        }
        return f"data: {json.dumps(data)}\n\n"

    async def events() -> AsyncIterator[str]:
        if kind == "chat":
            first = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "logprobs": None,
            }
            yield (
                "data: "
                + json.dumps(
                    {
                        "id": interaction_id,
                        "object": obj,
                        "created": created,
                        "model": client_model,
                        "choices": [first],
                    }
                )
                + "\n\n"
            )
        final: Generated | None = None
        try:
            async for piece in s.upstream.stream(served_request):
                if isinstance(piece, Generated):
                    final = piece
                else:
                    yield chunk(piece, None)
        except LifelongError as exc:
            status, kind_ = _status_of(exc)
            yield (
                "data: "
                + json.dumps({"error": {"message": str(exc), "type": kind_, "code": status}})
                + "\n\n"
            )
            yield "data: [DONE]\n\n"
            return
        assert final is not None
        _, info = await finish(final)
        yield chunk(None, final.finish_reason, {"lifelong": info})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _amended(s: Service, used: Mapping[str, list[Recalled]], answer: str) -> str:
    """The lessons' right answer when the model repeated a wrong answer they name, else ``answer``."""
    lessons = used.get("lessons") or []
    for r in lessons:
        wrong = r.item.payload.get("wrong") or []
        right = r.item.payload.get("right")
        if isinstance(right, str) and isinstance(wrong, list) and any(same_answer(answer, w) for w in wrong):
            return right
    return answer


async def _poll(s: Service) -> None:
    """Keep an idle worker in step with the log."""
    while True:
        await asyncio.sleep(s.config.poll_seconds)
        with contextlib.suppress(LifelongError):
            await s.in_engine(s.engine.catch_up)


# ------------------------------------------------------------------------------------------ feedback


def _append_feedback(s: Service, tenant: str, body: FeedbackRequest) -> dict[str, Any]:
    s.tenant_of.check(body.interaction_id, tenant)  # 404 for another tenant's id, as for a missing one
    outcome = {"remember": body.remember} if body.remember is not None else body.outcome
    iid = body.interaction_id
    records = feedback_of(
        iid,
        reward=body.reward,
        accept=body.accept,
        correction=body.correction,
        rating=body.rating,
        rating_scale=body.rating_scale,
        outcome=outcome,
    )
    if body.feedback_id is not None:
        records = [replace(f, id=f"{body.feedback_id}.{f.kind.value}") for f in records]
        if _already_logged(s, body.feedback_id, records):
            return {"ids": [f.id for f in records], "interaction_id": iid, "duplicate": True}
    try:
        s.log.append_many(records)
    except NotFound:  # erased since it was looked up: the same answer as for any missing id
        raise NotFound(f"no interaction {iid!r}") from None
    except Conflict:
        if body.feedback_id is not None and _already_logged(
            s, body.feedback_id, records
        ):  # a concurrent retry won
            return {"ids": [f.id for f in records], "interaction_id": iid, "duplicate": True}
        raise
    return {"ids": [f.id for f in records], "interaction_id": iid, "duplicate": False}


def _already_logged(s: Service, feedback_id: str, records: list[Feedback]) -> bool:
    """True when ``feedback_id`` was logged with exactly these records (a retry); Conflict when it was
    logged with other feedback."""
    stored = {f.id: f for f in s.log.feedback_with_id_prefix(feedback_id + ".")}  # a range on the id index
    if not stored:
        return False
    same = set(stored) == {f.id for f in records} and all(
        (stored[f.id].interaction_id, stored[f.id].kind, stored[f.id].value, stored[f.id].scale)
        == (f.interaction_id, f.kind, f.value, f.scale)
        for f in records
    )
    if not same:
        raise Conflict(f"feedback id {feedback_id!r} was used for other feedback")
    return True


# ------------------------------------------------------------------------------------------ learning curve


def scores(step: Step) -> tuple[float | None, float | None]:
    """How the served answer and the frozen shadow's answer did, from the feedback (None: not judged).

    The shadow is judged when it gave the served answer (nothing was recalled, or the same text), or
    by a correction; an accept or reject of a different answer says nothing about it.
    """
    served: float | None = None
    rating = step.last(FeedbackKind.RATING)
    if rating is not None and rating.scale is not None:
        low, high = rating.scale
        served = (float(rating.value) - low) / (high - low) if high > low else None
    elif step.accepted is not None:
        served = float(step.accepted)
    elif step.corrected:
        served = float(same_answer(step.interaction.action, step.correction))
    elif step.reward is not None:
        served = float(step.reward)
    shadow_meta = step.interaction.metadata.get(SHADOW)
    if not isinstance(shadow_meta, dict):
        return served, None
    answer = shadow_meta.get("answer")
    if shadow_meta.get("same") or (answer is not None and same_answer(answer, step.interaction.action)):
        return served, served
    if step.corrected and answer is not None:
        return served, float(same_answer(answer, step.correction))
    return served, None


def learning_curve(steps: list[Step], window: int) -> dict[str, Any]:
    """The served answers' score against the frozen shadow's, per window of judged requests, oldest first."""
    judged = []
    for step in steps:
        if step.interaction.metadata.get("endpoint") not in ("chat", "completion"):
            continue
        served, shadow = scores(step)
        if served is not None:
            judged.append((step.interaction.time, served, shadow))
    points = []
    for start in range(0, len(judged), window):
        part = judged[start : start + window]
        paired = [(a, b) for _, a, b in part if b is not None]
        points.append(
            {
                "end": part[-1][0],
                "requests": len(part),
                "served": sum(a for _, a, _ in part) / len(part),
                "paired": len(paired),
                "served_paired": sum(a for a, _ in paired) / len(paired) if paired else None,
                "shadow": sum(b for _, b in paired) / len(paired) if paired else None,
            }
        )
    paired_all = [(a, b) for _, a, b in judged if b is not None]
    return {
        "window": window,
        "judged": len(judged),
        "paired": len(paired_all),
        "served": sum(a for _, a, _ in judged) / len(judged) if judged else None,
        "served_paired": sum(a for a, _ in paired_all) / len(paired_all) if paired_all else None,
        "shadow": sum(b for _, b in paired_all) / len(paired_all) if paired_all else None,
        "points": points,
    }


# ------------------------------------------------------------------------------------------ helpers


def _checked(make: Callable[[], T]) -> T:
    try:
        return make()
    except InvalidInput as exc:
        raise ApiError(422, str(exc), param=exc.field) from None


def _scope(who: Principal, user: str | None, request: Request) -> Scope:
    user = user or request.headers.get("x-lifelong-user")
    session = request.headers.get("x-lifelong-session")
    if session is not None and user is None:
        raise ApiError(
            422, "a session needs a user (the request's user field or X-Lifelong-User)", param="user"
        )
    return _checked(lambda: Scope(who.tenant, user, session))


def _plain_message(message: ChatMessage) -> dict[str, str]:
    """A message as every OpenAI-compatible server takes it: a role (developer as system) and a string."""
    content = message.content
    text = content if isinstance(content, str) else content_text([p.model_dump() for p in content or []])
    return {"role": "system" if message.role == "developer" else message.role, "content": text}


def _last_user_text(body: ChatRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            text = content_text(
                message.content
                if isinstance(message.content, str)
                else [p.model_dump() for p in message.content or []]
            )
            if text.strip():
                return text[-2000:]
    raise ApiError(422, "the messages need a user message with some text", param="messages")


def _max_tokens(asked: int, s: Service) -> int:
    if asked > s.config.max_tokens:
        raise ApiError(
            422,
            f"at most {s.config.max_tokens} tokens per request on this service, asked {asked}",
            param="max_tokens",
        )
    return asked


def _learner(name: str) -> str:
    if name not in LEARNERS:
        raise ApiError(404, f"no learner {name!r}; the learners are {', '.join(LEARNERS)}", "not_found_error")
    return name


def _memory(item: Any) -> dict[str, Any]:
    return {
        "id": item.id,
        "memory": item.text,
        "user_id": item.user,
        "key": item.payload.get("key"),
        "created_at": item.created,
        "updated_at": item.touched,
        "status": item.status,
        "sources": list(item.sources),
        "usefulness": round(item.usefulness, 4),
    }


def _step(step: Step) -> dict[str, Any]:
    i = step.interaction
    served, shadow = scores(step)
    return {
        "id": i.id,
        "time": i.time,
        "user": i.scope.user,
        "session": i.scope.session,
        "endpoint": i.metadata.get("endpoint"),
        "query": i.observation.get("query") if isinstance(i.observation, dict) else i.observation,
        "answer": i.action,
        "shadow": (i.metadata.get(SHADOW) or {}).get("answer")
        if isinstance(i.metadata.get(SHADOW), dict)
        else None,
        "recalled": i.metadata.get(RECALLED, {}),
        "score": served,
        "shadow_score": shadow,
        "feedback": [
            {"id": f.id, "kind": f.kind.value, "value": f.value, "time": f.time} for f in step.feedback
        ],
        "right_answer": right_answer(step) if step.feedback else None,
    }


def _tenants(log: ExperienceLog) -> list[dict[str, Any]]:
    return [{"tenant": t, "interactions": n} for t, n in log.interactions_per_tenant()]


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker: the configuration comes in ``LIFELONG_SERVE_CONFIG``."""
    raw = os.environ.get(ENV_CONFIG)
    return create_app(ServeConfig.from_json(raw) if raw else ServeConfig())
