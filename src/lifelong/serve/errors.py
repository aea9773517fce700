"""How errors are answered: every one in OpenAI's error shape, with the status its kind calls for."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifelong.errors import BackendUnavailable, Conflict, LifelongError, ModelError, NotFound
from lifelong.serve import openai
from lifelong.serve.deps import ApiError


def status_of(exc: LifelongError) -> tuple[int, str]:
    """The HTTP status and OpenAI error type of a :class:`LifelongError`."""
    if isinstance(exc, NotFound):
        return 404, "not_found_error"
    if isinstance(exc, Conflict):
        return 409, "conflict_error"
    if isinstance(exc, BackendUnavailable):
        return 503, "upstream_unavailable"
    if isinstance(exc, ModelError):
        return 502, "upstream_error"
    return 400, "invalid_request_error"


def install(app: FastAPI) -> None:
    """Answer every error the routes raise in OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return openai.error(exc.status, exc.message, exc.kind, exc.param, exc.headers)

    @app.exception_handler(LifelongError)
    async def lifelong_error(request: Request, exc: LifelongError) -> JSONResponse:
        status, kind = status_of(exc)
        return openai.error(status, str(exc), kind, getattr(exc, "field", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        param = None
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            param = param or loc or None
            problems.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return openai.error(422, "; ".join(problems[:5]), "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return openai.error(exc.status_code, str(exc.detail), "invalid_request_error")
