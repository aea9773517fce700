"""The apps each tenant declared (:class:`~lifelong.agents.apps.App`), in the service's database.

A declaration is the tenant's configuration, not experience: it names no user and is not in the log.
Declaring an app again with the same spec is a no-op; with another spec it replaces the old one and
every worker loads the app's agent again from the log (its learned state is rebuilt for the new spec).
Removing an app leaves its interactions in the log and its versions in the store; requests that name
it are then answered as undeclared ones.

>>> from lifelong.storage import open_database
>>> apps = AppStore(open_database(":memory:"))
>>> app, changed = apps.put("acme", App("support", "label", labels=("a", "b")))
>>> changed, apps.put("acme", app)[1]
(True, False)
>>> [a.name for a in apps.list("acme")], apps.list("globex")
(['support'], [])
"""

from __future__ import annotations

import json
import threading
import time

from lifelong.agents.apps import App
from lifelong.experience.records import Scope
from lifelong.storage import Cursor, Database, schema_lock

__all__ = ["App", "AppStore"]

_DDL = """CREATE TABLE IF NOT EXISTS service_apps (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, name))"""


class AppStore:
    """The declared apps, per tenant (see the module docstring). ``cache_seconds`` bounds how long a
    worker trusts what it read (a declaration made on another worker is seen within that time; the
    worker that made it sees it at once)."""

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, App | None]] = {}
        self._lock = threading.Lock()

        def create(cur: Cursor) -> None:
            schema_lock(cur, db.dialect, "service apps")
            cur.execute(_DDL)

        db.run(create)

    def put(self, tenant: str, app: App) -> tuple[App, bool]:
        """Declare ``app`` for ``tenant``; returns it and whether anything changed."""
        tenant = Scope(tenant).tenant
        spec = json.dumps(app.to_dict(), sort_keys=True)

        def write(cur: Cursor) -> bool:
            cur.execute("SELECT spec FROM service_apps WHERE tenant = ? AND name = ?", (tenant, app.name))
            row = cur.fetchone()
            now = time.time()
            if row is None:
                cur.execute(
                    "INSERT INTO service_apps (tenant, name, spec, created, updated) VALUES (?, ?, ?, ?, ?)",
                    (tenant, app.name, spec, now, now),
                )
                return True
            if row[0] == spec:
                return False
            cur.execute(
                "UPDATE service_apps SET spec = ?, updated = ? WHERE tenant = ? AND name = ?",
                (spec, now, tenant, app.name),
            )
            return True

        changed = self.db.run(write)
        self._remember(tenant, app.name, app)
        return app, changed

    def get(self, tenant: str, name: str) -> App | None:
        """The app ``name`` of ``tenant``, or None when it is not declared."""
        with self._lock:
            cached = self._cache.get((tenant, name))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]

        def read(cur: Cursor) -> str | None:
            cur.execute("SELECT spec FROM service_apps WHERE tenant = ? AND name = ?", (tenant, name))
            row = cur.fetchone()
            return None if row is None else str(row[0])

        raw = self.db.run(read, write=False)
        app = None if raw is None else App.from_dict(json.loads(raw))
        self._remember(tenant, name, app)
        return app

    def list(self, tenant: str) -> list[App]:
        def read(cur: Cursor) -> list[str]:
            cur.execute("SELECT spec FROM service_apps WHERE tenant = ? ORDER BY name", (tenant,))
            return [str(r[0]) for r in cur.fetchall()]

        return [App.from_dict(json.loads(raw)) for raw in self.db.run(read, write=False)]

    def delete(self, tenant: str, name: str) -> bool:
        """Remove the declaration; False when there was none."""

        def write(cur: Cursor) -> bool:
            cur.execute("DELETE FROM service_apps WHERE tenant = ? AND name = ?", (tenant, name))
            return bool(cur.rowcount)

        gone = self.db.run(write)
        self._remember(tenant, name, None)
        return gone

    def _remember(self, tenant: str, name: str, app: App | None) -> None:
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(tenant, name)] = (time.monotonic(), app)
