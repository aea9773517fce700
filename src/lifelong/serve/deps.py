"""What every route depends on, declared once: the worker's :class:`Service`, the caller (:data:`Caller`,
from the API key), the app a request names (:data:`AppName`), and the API's error type.

Routes take these as ``Annotated`` parameters (FastAPI's dependency injection), so authentication, rate
limits and acting for another tenant are written in one place and a route cannot forget them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request

from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Scope
from lifelong.serve.apps import AppStore
from lifelong.serve.config import ServeConfig
from lifelong.serve.engine import Engine, TenantOf
from lifelong.serve.keys import KeyStore, Principal
from lifelong.serve.upstream import Upstream
from lifelong.state.store import VersionStore

T = TypeVar("T")


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape (``kind`` is its ``type``)."""

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


@dataclass
class Service:
    """What one worker holds: the log, the store, the keys, the apps, the learners, the model."""

    config: ServeConfig
    log: ExperienceLog
    store: VersionStore
    keys: KeyStore
    apps: AppStore
    engine: Engine
    upstream: Upstream
    limiter: RateLimiter
    thread: ThreadPoolExecutor  # the one thread that touches learner state
    tenant_of: TenantOf
    in_flight: int = 0  # proxied requests being answered (background learning waits for none)
    last_start: float = field(default_factory=time.monotonic)  # when the latest of them began

    def idle(self, *, stale: float = 30.0) -> bool:
        """No request is being answered (a count left by a client that vanished before its stream
        began expires after ``stale`` seconds)."""
        return self.in_flight <= 0 or time.monotonic() - self.last_start > stale

    async def in_engine(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the learner thread (everything that reads or changes learned state)."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn)

    async def in_pool(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (database I/O) on the I/O threads."""
        return await asyncio.get_running_loop().run_in_executor(None, fn)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


ServiceDep = Annotated[Service, Depends(service)]


def checked(make: Callable[[], T]) -> T:
    """``make()``, with a bad value answered 422 naming the field."""
    try:
        return make()
    except InvalidInput as exc:
        raise ApiError(422, str(exc), param=exc.field) from None


async def caller(request: Request, svc: ServiceDep) -> Principal:
    """Who is asking: the tenant of the API key (``Authorization: Bearer`` or ``X-Api-Key``), within
    the key's rate limit; an admin key may act for another tenant with ``X-Lifelong-Tenant``."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
    if not key:
        raise ApiError(401, "no API key: send Authorization: Bearer <key>", "authentication_error")
    cached = svc.keys.cached(key)
    found = await svc.in_pool(lambda: svc.keys.verify(key)) if cached is False else cached
    if found is None:
        raise ApiError(401, "the API key is not valid (unknown or revoked)", "authentication_error")
    wait = svc.limiter.check(found.key_id)
    if wait is not None:
        raise ApiError(
            429,
            f"rate limit of {svc.config.rate_limit:g} requests/s for this key; retry later",
            "rate_limit_error",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    acting = request.headers.get("x-lifelong-tenant")
    if acting is not None and acting != found.tenant:
        if not found.admin:
            raise ApiError(
                403, "only an admin key may act for another tenant", "permission_error", "X-Lifelong-Tenant"
            )
        found = Principal(found.key_id, checked(lambda: Scope(acting).tenant), True)
    return found


Caller = Annotated[Principal, Depends(caller)]


def admin(who: Caller) -> Principal:
    if not who.admin:
        raise ApiError(403, "this needs an admin key", "permission_error")
    return who


Admin = Annotated[Principal, Depends(admin)]


def app_name(
    app: Annotated[
        str | None, Query(max_length=64, description="the app (omit: undeclared requests)")
    ] = None,
) -> str | None:
    return app or None


#: The app a management request is about (``?app=NAME``); None: the tenant's undeclared requests.
AppName = Annotated[str | None, Depends(app_name)]


def request_scope(who: Principal, user: str | None, request: Request) -> Scope:
    """The scope of a request: the caller's tenant, the user (the body's ``user`` or ``X-Lifelong-User``)
    and the session (``X-Lifelong-Session``, which needs a user)."""
    user = user or request.headers.get("x-lifelong-user")
    session = request.headers.get("x-lifelong-session")
    if session is not None and user is None:
        raise ApiError(
            422, "a session needs a user (the request's user field or X-Lifelong-User)", param="user"
        )
    return checked(lambda: Scope(who.tenant, user, session))
