"""``/v1/apps``: what a tenant's apps ask (a label from a set, free text, a code completion).

Declaring an app again with another spec replaces it; every worker then loads the app's agent anew from
the log. Removing an app keeps its interactions and versions; requests naming it become undeclared.
"""

from __future__ import annotations

from fastapi import APIRouter

from lifelong.agents.apps import App
from lifelong.serve.deps import ApiError, Caller, ServiceDep, checked
from lifelong.serve.schemas import AppDeclaration, AppList, AppPut, AppView

router = APIRouter(tags=["apps"])


@router.post("/v1/apps")
async def declare(body: AppDeclaration, who: Caller, svc: ServiceDep) -> AppPut:
    """Declare (or re-declare) an app of the caller's tenant."""
    app = checked(lambda: App.from_dict(body.model_dump()))
    made, changed = await svc.in_pool(lambda: svc.apps.put(who.tenant, app))
    if changed:
        await svc.in_engine(lambda: svc.engine.reload(who.tenant))
    return AppPut(**made.to_dict(), changed=changed)


@router.get("/v1/apps")
async def list_apps(who: Caller, svc: ServiceDep) -> AppList:
    apps = await svc.in_pool(lambda: svc.apps.list(who.tenant))
    return AppList(data=[AppView(**app.to_dict()) for app in apps])


@router.get("/v1/apps/{name}")
async def get_app(name: str, who: Caller, svc: ServiceDep) -> AppView:
    app = await svc.in_pool(lambda: svc.apps.get(who.tenant, name))
    if app is None:
        raise ApiError(404, f"no app {name!r}", "not_found_error", "name")
    return AppView(**app.to_dict())


@router.delete("/v1/apps/{name}")
async def remove_app(name: str, who: Caller, svc: ServiceDep) -> AppView:
    app = await svc.in_pool(lambda: svc.apps.get(who.tenant, name))
    if app is None or not await svc.in_pool(lambda: svc.apps.delete(who.tenant, name)):
        raise ApiError(404, f"no app {name!r}", "not_found_error", "name")
    await svc.in_engine(lambda: svc.engine.reload(who.tenant))
    return AppView(**app.to_dict())
