"""The OpenAI-compatible proxy: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

A request names its app in the ``X-Lifelong-App`` header or, for clients that can only set the model,
in ``model`` (when it names an app the tenant declared); a request that names none is undeclared. What
the agent sees (the observation) is built here from the request, by the app's task: the client's
messages or prompt for free text and labels, the code before the cursor for a completion app.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lifelong.agents.agent import Limits
from lifelong.agents.apps import App
from lifelong.envs.code_completion import observation_of
from lifelong.experience.records import JSON
from lifelong.models.base import content_text
from lifelong.serve.answer import Proxied, answer
from lifelong.serve.deps import ApiError, Caller, Service, ServiceDep, request_scope
from lifelong.serve.openai import Kind
from lifelong.serve.schemas import ChatMessage, ChatRequest, CompletionRequest, ModelList

router = APIRouter(tags=["proxy"])

#: How much of a request's text it is searched by.
QUERY_CHARS = 2000


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request, who: Caller, svc: ServiceDep) -> Response:
    """A chat turn, answered by the app's agent (OpenAI's chat format, streaming or not)."""
    scope = request_scope(who, body.user, request)
    app = await named_app(svc, who.tenant, body.model, request)
    messages = [plain_message(m) for m in body.messages]
    query = last_user_text(body)
    cap = body.max_completion_tokens or body.max_tokens or min(256, svc.config.max_tokens)
    limits = Limits(max_tokens(cap, svc), body.temperature or 0.0, body.stops(), body.extra_fields())
    observation: dict[str, JSON] = {"query": query, "messages": messages, "endpoint": "chat"}
    if app is not None and app.task == "completion":
        observation = {
            **observation_of(query, request.headers.get("x-lifelong-path", "untitled")),
            "endpoint": "chat",
        }
    return await answer(svc, _proxied("chat", scope, app, observation, limits, body.stream, body.model))


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, who: Caller, svc: ServiceDep) -> Response:
    """A text completion, answered by the app's agent (OpenAI's completions format)."""
    scope = request_scope(who, body.user, request)
    app = await named_app(svc, who.tenant, body.model, request)
    limits = Limits(
        max_tokens(body.max_tokens or 16, svc), body.temperature or 0.0, body.stops(), body.extra_fields()
    )
    query = body.prompt[-QUERY_CHARS:] if body.prompt.strip() else "(empty prompt)"
    observation: dict[str, JSON] = {"query": query, "prompt": body.prompt, "endpoint": "completions"}
    if app is not None and app.task == "completion":
        observation = {
            **observation_of(body.prompt, request.headers.get("x-lifelong-path", "untitled")),
            "endpoint": "completions",
        }
    return await answer(svc, _proxied("completion", scope, app, observation, limits, body.stream, body.model))


@router.get("/v1/models")
async def models(who: Caller, svc: ServiceDep) -> ModelList:
    """The upstream model, and every app the tenant declared (a client may name an app as its model)."""
    apps = await svc.in_pool(lambda: svc.apps.list(who.tenant))
    rows: list[dict[str, Any]] = [{"id": svc.upstream.name, "owned_by": "lifelong"}]
    rows += [{"id": app.name, "owned_by": who.tenant} for app in apps]
    return ModelList.model_validate({"data": rows})


async def named_app(svc: Service, tenant: str, model: str, request: Request) -> App | None:
    """The app a request names: ``X-Lifelong-App`` (404 when not declared), else ``model`` when it is a
    declared app's name, else None (undeclared)."""
    header = request.headers.get("x-lifelong-app")
    name = header if header is not None else model
    app = await svc.in_pool(lambda: svc.apps.get(tenant, name))
    if app is None and header is not None:
        raise ApiError(
            404, f"no app {header!r}; declare it with POST /v1/apps", "not_found_error", "X-Lifelong-App"
        )
    return app


def _proxied(
    kind: Kind,
    scope: Any,
    app: App | None,
    observation: dict[str, JSON],
    limits: Limits,
    stream: bool,
    model: str,
) -> Proxied:
    free_text = app is None or app.task == "chat"  # labels and code lines: the task sets the call
    return Proxied(
        kind,
        scope,
        None if app is None else app.name,
        observation,
        limits if free_text else None,
        stream,
        model,
    )


def plain_message(message: ChatMessage) -> dict[str, str]:
    """A message as every OpenAI-compatible server takes it: a role (developer as system) and a string."""
    content = message.content
    text = content if isinstance(content, str) else content_text([p.model_dump() for p in content or []])
    return {"role": "system" if message.role == "developer" else message.role, "content": text}


def last_user_text(body: ChatRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            text = plain_message(message)["content"]
            if text.strip():
                return text[-QUERY_CHARS:]
    raise ApiError(422, "the messages need a user message with some text", param="messages")


def max_tokens(asked: int, svc: Service) -> int:
    if asked > svc.config.max_tokens:
        raise ApiError(
            422,
            f"at most {svc.config.max_tokens} tokens per request on this service, asked {asked}",
            param="max_tokens",
        )
    return asked
