"""``/v1/interactions``: what the service answered, what was recalled, and the feedback it got."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lifelong.agents.agent import PLAIN_ANSWER
from lifelong.experience.records import Scope, Step
from lifelong.learners.context.base import RECALLED, right_answer
from lifelong.learners.context.gate import GATE
from lifelong.learners.experts.mixture import logged_proposals
from lifelong.serve.curve import scores
from lifelong.serve.deps import AppName, Caller, ServiceDep, checked
from lifelong.serve.engine import app_of, interaction_tenant
from lifelong.serve.schemas import InteractionList, InteractionView

router = APIRouter(tags=["learning"])


@router.get("/v1/interactions")
async def recent(
    who: Caller,
    svc: ServiceDep,
    app: AppName,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    user_id: Annotated[str | None, Query(max_length=256)] = None,
) -> InteractionList:
    """The newest interactions of the tenant (of one user, of one app), newest first."""
    scope = checked(lambda: Scope(who.tenant, user_id or None))
    steps = await svc.in_pool(lambda: svc.log.recent(scope, limit if app is None else limit * 10))
    if app is not None:
        steps = [s for s in steps if app_of(s.interaction) == app][:limit]
    return InteractionList(data=[view(step) for step in steps])


@router.get("/v1/interactions/{interaction_id}")
async def one(interaction_id: str, who: Caller, svc: ServiceDep) -> InteractionView:
    step = await svc.in_pool(lambda: interaction_tenant(svc.log, interaction_id, who.tenant))
    return view(step)


def view(step: Step) -> InteractionView:
    i = step.interaction
    served, shadow = scores(step)
    return InteractionView(
        id=i.id,
        time=i.time,
        user=i.scope.user,
        session=i.scope.session,
        app=app_of(i),
        endpoint=i.metadata.get("endpoint"),
        query=i.observation.get("query") if isinstance(i.observation, dict) else i.observation,
        answer=i.action,
        shadow=i.metadata.get(PLAIN_ANSWER),
        shadow_asked=PLAIN_ANSWER in i.metadata,
        recalled=i.metadata.get(RECALLED, {}),
        proposals=logged_proposals(step),
        candidates=i.metadata.get(GATE) or [],
        score=served,
        shadow_score=shadow,
        feedback=[
            {"id": f.id, "kind": f.kind.value, "value": f.value, "time": f.time} for f in step.feedback
        ],
        right_answer=right_answer(step) if step.feedback else None,
    )
