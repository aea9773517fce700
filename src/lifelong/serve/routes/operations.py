"""Operations: ``/healthz``, Prometheus ``/metrics``, the ``/dashboard`` and the admin's tenant list."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from lifelong.serve import metrics as prom
from lifelong.serve.deps import Admin, ServiceDep
from lifelong.serve.schemas import Health, TenantList

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(svc: ServiceDep) -> Health:
    await svc.in_pool(svc.log.ping)
    return Health(
        status="ok",
        model=svc.upstream.name,
        log_seq=svc.engine.tail.high,
        tenants_loaded=len(svc.engine.tenants),
    )


@router.get("/metrics")
async def metrics() -> Response:
    body, content_type = prom.exposition()
    return Response(body, media_type=content_type)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    page = resources.files("lifelong.serve").joinpath("dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


@router.get("/v1/tenants", tags=["admin"])
async def tenants(who: Admin, svc: ServiceDep) -> TenantList:
    """Every tenant in the log with its number of interactions (admin keys only)."""
    rows = await svc.in_pool(svc.log.interactions_per_tenant)
    return TenantList.model_validate({"data": [{"tenant": t, "interactions": n} for t, n in rows]})
