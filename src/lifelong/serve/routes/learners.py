"""``/v1/learners``: a tenant's learners (of its undeclared requests, or of one app with ``?app=``), their
versions — commit, diff, promote behind the store's gate, roll back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lifelong.learners.context.base import ContextLearner
from lifelong.serve.deps import AppName, Caller, ServiceDep
from lifelong.serve.schemas import (
    Commit,
    Committed,
    Diff,
    LearnerList,
    LearnerView,
    Promote,
    Promoted,
    Rollback,
    Versions,
)

router = APIRouter(tags=["learning"])


@router.get("/v1/learners")
async def learners(who: Caller, svc: ServiceDep, app: AppName) -> LearnerList:
    def listing() -> list[LearnerView]:
        svc.engine.catch_up()
        state = svc.engine.state(who.tenant, app)
        rows = []
        for name, learner in state.learners.items():
            promoted = svc.store.promoted(learner.name)
            rows.append(
                LearnerView.model_validate(
                    {
                        "name": name,
                        "app": app,
                        "class": type(learner).__name__,
                        "version": learner.version,
                        "items": len(learner.active_items()) if isinstance(learner, ContextLearner) else None,
                        "promoted": None if promoted is None else promoted.version,
                        "versions": len(svc.store.versions(learner.name)),
                        "serving_from_seq": state.from_seq.get(name, 0),
                    }
                )
            )
        return rows

    return LearnerList(data=await svc.in_engine(listing))


@router.get("/v1/learners/{name}/versions")
async def versions(name: str, who: Caller, svc: ServiceDep, app: AppName) -> Versions:
    return Versions.model_validate(await svc.in_engine(lambda: svc.engine.versions(who.tenant, name, app)))


@router.post("/v1/learners/{name}/versions")
async def commit(name: str, body: Commit, who: Caller, svc: ServiceDep, app: AppName) -> Committed:
    info = await svc.in_engine(lambda: svc.engine.commit(who.tenant, name, app, body.message))
    return Committed(name=name, version=info.version, digest=info.digest, metrics=info.metrics)


@router.get("/v1/learners/{name}/diff")
async def diff(
    name: str,
    who: Caller,
    svc: ServiceDep,
    app: AppName,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
) -> Diff:
    return Diff.model_validate(await svc.in_engine(lambda: svc.engine.diff(who.tenant, name, a, b, app)))


@router.post("/v1/learners/{name}/promote")
async def promote(name: str, body: Promote, who: Caller, svc: ServiceDep, app: AppName) -> Promoted:
    info = await svc.in_engine(lambda: svc.engine.promote(who.tenant, name, body.version, body.override, app))
    return Promoted(name=name, promoted=info.version)


@router.post("/v1/learners/{name}/rollback")
async def rollback(name: str, body: Rollback, who: Caller, svc: ServiceDep, app: AppName) -> Promoted:
    info = await svc.in_engine(lambda: svc.engine.rollback(who.tenant, name, body.to, body.override, app))
    return Promoted(name=name, promoted=info.version)
