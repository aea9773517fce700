"""``/v1/learning``: the learning curve — right answers served against the frozen shadow's (per app)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lifelong.experience.records import Scope
from lifelong.serve.curve import learning_curve
from lifelong.serve.deps import AppName, Caller, ServiceDep
from lifelong.serve.engine import app_of
from lifelong.serve.schemas import Curve

router = APIRouter(tags=["learning"])


@router.get("/v1/learning")
async def learning(
    who: Caller,
    svc: ServiceDep,
    app: AppName,
    window: Annotated[int, Query(ge=1, le=10_000)] = 20,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 5000,
) -> Curve:
    """The served answers' score against the frozen shadow control's, per window of judged requests, over
    the tenant's last ``limit`` interactions; with ``?app=NAME`` only that app's requests count."""
    steps = await svc.in_pool(lambda: svc.log.recent(Scope(who.tenant), limit))
    steps.reverse()
    if app is not None:
        steps = [s for s in steps if app_of(s.interaction) == app]
    return Curve.model_validate({"app": app, **learning_curve(steps, window)})
