"""``/v1/feedback``: feedback on an interaction, appended to the log; every worker learns from it there."""

from __future__ import annotations

import time
from dataclasses import replace

from fastapi import APIRouter

from lifelong.errors import Conflict, NotFound
from lifelong.experience.records import Feedback, feedback_of
from lifelong.serve import metrics as prom
from lifelong.serve.deps import Caller, Service, ServiceDep
from lifelong.serve.schemas import FeedbackRequest, FeedbackResult

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, who: Caller, svc: ServiceDep) -> FeedbackResult:
    """Log feedback (accept, rating, correction, reward, outcome, facts to remember) on an interaction of
    the caller's tenant; answered once it is durable. ``feedback_id`` makes a retry a no-op."""
    start = time.perf_counter()
    result = await svc.in_pool(lambda: append_feedback(svc, who.tenant, body))
    prom.FEEDBACK_SECONDS.observe(time.perf_counter() - start)
    return result


def append_feedback(svc: Service, tenant: str, body: FeedbackRequest) -> FeedbackResult:
    svc.tenant_of.check(body.interaction_id, tenant)  # 404 for another tenant's id, as for a missing one
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
        if already_logged(svc, body.feedback_id, records):
            return FeedbackResult(ids=[f.id for f in records], interaction_id=iid, duplicate=True)
    try:
        svc.log.append_many(records)
    except NotFound:  # erased since it was looked up: the same answer as for any missing id
        raise NotFound(f"no interaction {iid!r}") from None
    except Conflict:
        if body.feedback_id is not None and already_logged(svc, body.feedback_id, records):
            return FeedbackResult(
                ids=[f.id for f in records], interaction_id=iid, duplicate=True
            )  # a retry won
        raise
    return FeedbackResult(ids=[f.id for f in records], interaction_id=iid, duplicate=False)


def already_logged(svc: Service, feedback_id: str, records: list[Feedback]) -> bool:
    """True when ``feedback_id`` was logged with exactly these records (a retry); Conflict when it was
    logged with other feedback."""
    stored = {f.id: f for f in svc.log.feedback_with_id_prefix(feedback_id + ".")}
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
