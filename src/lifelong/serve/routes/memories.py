"""mem0's small API: ``/v1/memories`` (add, list), ``/v1/memories/search``, and forgetting a user."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from lifelong.experience.records import JSON, Feedback, Interaction, Scope
from lifelong.learners.context.base import Item
from lifelong.learners.context.memory import turn_text
from lifelong.serve.deps import ApiError, AppName, Caller, ServiceDep, checked
from lifelong.serve.engine import APP
from lifelong.serve.schemas import Forgotten, MemoryAdd, MemoryAdded, MemoryList, MemoryRetire, MemoryView

router = APIRouter(tags=["memory"])

User = Annotated[str, Query(min_length=1, max_length=256)]


@router.post("/v1/memories")
async def add_memory(
    body: MemoryAdd, request: Request, who: Caller, svc: ServiceDep, app: AppName
) -> MemoryAdded:
    """Remember a ``text`` (or the user messages of ``messages``) for ``user_id``: logged as an
    interaction with a ``remember`` outcome, learned from the log like any feedback. With ``thread``,
    every message (any role, with its ``name``) is one turn of that conversation (``Memory.add_many``)."""
    scope = checked(lambda: Scope(who.tenant, body.user_id, request.headers.get("x-lifelong-session")))
    facts: list[JSON]
    if body.thread is not None:  # conversation ingest: every turn, verbatim, in order
        messages = [m.model_dump(exclude_none=True) for m in body.messages or []]
        texts = checked(lambda: [turn_text(m, n) for n, m in enumerate(messages)])
        facts = [{"text": text, "thread": body.thread} for text in texts]
    else:
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
    if app is not None:
        await svc.in_engine(lambda: svc.engine.memory(who.tenant, app))  # 404 for an undeclared app
    interaction = Interaction(
        scope, "remember", metadata={"endpoint": "memories", **({APP: app} if app else {})}
    )
    if body.time is not None:  # said then, logged now
        interaction = dataclasses.replace(interaction, time=body.time)
    remember = Feedback.outcome(interaction.id, {"remember": facts})
    await svc.in_pool(lambda: svc.log.append_many([interaction, remember]))

    def made() -> list[MemoryView]:
        svc.engine.catch_up()
        memory = svc.engine.memory(who.tenant, app)
        return [memory_view(item) for item in memory.active_items() if interaction.id in item.sources]

    return MemoryAdded(results=await svc.in_engine(made), interaction_id=interaction.id)


@router.get("/v1/memories/search")
async def search_memories(
    who: Caller,
    svc: ServiceDep,
    app: AppName,
    user_id: User,
    query: Annotated[str, Query(min_length=1, max_length=10_000)],
    limit: Annotated[int, Query(ge=1, le=100)] = 5,
    as_of: Annotated[float | None, Query(ge=0, le=1e11, description="what held then (Unix seconds)")] = None,
) -> MemoryList:
    scope = checked(lambda: Scope(who.tenant, user_id))

    def search() -> list[MemoryView]:
        svc.engine.catch_up()
        found = svc.engine.memory(who.tenant, app).recall(query, scope, k=limit, as_of=as_of)
        return [memory_view(r.item, score=round(r.score, 6)) for r in found]

    return MemoryList(results=await svc.in_engine(search))


@router.get("/v1/memories")
async def list_memories(
    who: Caller,
    svc: ServiceDep,
    app: AppName,
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MemoryList:
    scope = checked(lambda: Scope(who.tenant, user_id))
    items = await svc.in_engine(lambda: svc.engine.items(scope, "memory", app, limit=limit))
    return MemoryList(results=[memory_view(item) for item in items])


@router.post("/v1/memories/{memory_id:path}/retire")
async def retire_memory(
    memory_id: str, body: MemoryRetire, who: Caller, svc: ServiceDep, app: AppName
) -> MemoryView:
    """Retire a wrong memory with a reason: never recalled again, and a later fact that says the same
    is not remembered. Logged like every change (an interaction with a ``retire`` outcome)."""

    def target() -> Item:
        svc.engine.catch_up()
        item = svc.engine.memory(who.tenant, app).items.get(memory_id)
        if item is None or item.tenant != who.tenant:  # another tenant's id: as unknown as a made-up one
            raise ApiError(404, f"no memory {memory_id!r}", param="memory_id")
        if not item.active:
            raise ApiError(409, f"memory {memory_id!r} is {item.status}, not active", param="memory_id")
        return item

    item = await svc.in_engine(target)
    scope = checked(lambda: Scope(who.tenant, item.user))
    interaction = Interaction(
        scope, "retire", metadata={"endpoint": "memories", **({APP: app} if app else {})}
    )
    retire = Feedback.outcome(interaction.id, {"retire": {"id": memory_id, "reason": body.reason.strip()}})
    await svc.in_pool(lambda: svc.log.append_many([interaction, retire]))

    def retired() -> MemoryView:
        svc.engine.catch_up()
        return memory_view(svc.engine.memory(who.tenant, app).items[memory_id])

    return await svc.in_engine(retired)


@router.delete("/v1/users/{user_id}")
async def forget_user(user_id: str, who: Caller, svc: ServiceDep) -> Forgotten:
    """Erase a user of the caller's tenant everywhere: the log, every app's learners, the snapshots,
    provenance and caches; the report carries the scan that searched them all."""
    scope = checked(lambda: Scope(who.tenant, user_id))
    report = await svc.in_engine(lambda: svc.engine.forget(scope))
    return Forgotten(forgotten=report.to_dict(), clean=report.clean)


def memory_view(item: Item, score: float | None = None) -> MemoryView:
    data: dict[str, Any] = {
        "id": item.id,
        "memory": item.text,
        "user_id": item.user,
        "key": item.payload.get("key"),
        "created_at": item.created,
        "updated_at": item.touched,
        "status": item.status,
        "sources": list(item.sources),
        "usefulness": round(item.usefulness, 4),
        "surfaced": item.surfaced,  # recalled into answers that got feedback
        "helped": item.wins,  # ... that got positive feedback
        "thread": item.payload.get("thread"),
        "valid_from": item.created,
        "valid_to": item.valid_to,
        "reason": item.reason,
    }
    if score is not None:
        data["score"] = score
    return MemoryView(**data)
