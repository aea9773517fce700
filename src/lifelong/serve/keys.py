"""API keys: one tenant per key, stored hashed, created and revoked from the command line.

A key is ``ll_<key id>_<secret>``: 12 characters of id (shown in listings and audit lines, safe to
log) and 32 random bytes of secret (``secrets.token_urlsafe``). Only the SHA-256 of the whole key is
stored — a key has 256 bits of entropy, so a plain hash is enough (salts and slow hashes are for
passwords people choose) — and a lookup is one indexed read by that hash. An admin key may act for
any tenant (``X-Lifelong-Tenant``) and list tenants; a tenant key sees only its own tenant.

>>> keys = KeyStore(open_database(":memory:"))
>>> made = keys.create("acme")
>>> keys.verify(made.key).tenant
'acme'
>>> keys.revoke(made.id)
True
>>> keys.verify(made.key) is None
True
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import Scope
from lifelong.storage import Cursor, Database, open_database, schema_lock

__all__ = ["CreatedKey", "KeyStore", "Principal", "open_database"]

_KEY = re.compile(r"^ll_([a-z0-9]{12})_[A-Za-z0-9_-]{43}$")
_DDL = [
    """CREATE TABLE IF NOT EXISTS service_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        admin INTEGER NOT NULL,
        name TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        revoked DOUBLE PRECISION)""",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is from: the key's id, its tenant and whether it is an admin key."""

    key_id: str
    tenant: str
    admin: bool


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``key`` is shown once and never stored."""

    id: str
    key: str
    tenant: str
    admin: bool
    name: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """API keys in the service's database (see the module docstring).

    ``cache_seconds`` bounds how long a worker trusts a verified key without reading it again, so a
    revocation takes effect on every worker within that time.
    """

    def __init__(self, db: Database, *, cache_seconds: float = 2.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

        def create(cur: Cursor) -> None:
            schema_lock(cur, db.dialect, "service keys")
            for statement in _DDL:
                cur.execute(statement)

        db.run(create)

    def create(self, tenant: str, *, admin: bool = False, name: str = "") -> CreatedKey:
        """A new key for ``tenant`` (validated like a scope's tenant)."""
        tenant = Scope(tenant).tenant  # same rules as every stored tenant name
        if not isinstance(name, str) or len(name) > 200:
            raise InvalidInput("a key's name is a string of at most 200 characters", field="name")
        key_id = secrets.token_hex(6)
        key = f"ll_{key_id}_{secrets.token_urlsafe(32)}"

        def write(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO service_keys (id, hash, tenant, admin, name, created) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, _hash(key), tenant, int(admin), name, time.time()),
            )

        self.db.run(write)
        return CreatedKey(key_id, key, tenant, admin, name)

    def cached(self, key: str) -> Principal | Literal[False] | None:
        """What :meth:`verify` answered for ``key`` within ``cache_seconds`` (False: nothing cached)."""
        if not isinstance(key, str) or _KEY.match(key) is None:
            return None
        with self._lock:
            cached = self._cache.get(_hash(key))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        return False

    def verify(self, key: str) -> Principal | None:
        """The principal of a live key, or None (unknown, malformed or revoked)."""
        cached = self.cached(key)
        if cached is not False:
            return cached
        digest = _hash(key)
        now = time.monotonic()

        def read(cur: Cursor) -> Principal | None:
            cur.execute(
                "SELECT id, tenant, admin FROM service_keys WHERE hash = ? AND revoked IS NULL", (digest,)
            )
            row = cur.fetchone()
            return None if row is None else Principal(str(row[0]), str(row[1]), bool(row[2]))

        principal = self.db.run(read, write=False)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when it was already revoked. NotFound for an unknown id."""

        def write(cur: Cursor) -> bool:
            cur.execute("SELECT revoked FROM service_keys WHERE id = ?", (key_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no key with id {key_id!r}; `lifelong keys list` shows them")
            if row[0] is not None:
                return False
            cur.execute("UPDATE service_keys SET revoked = ? WHERE id = ?", (time.time(), key_id))
            return True

        done = self.db.run(write)
        with self._lock:
            self._cache.clear()
        return done

    def list(self, tenant: str | None = None) -> list[dict[str, object]]:
        """Every key (never its secret): id, tenant, admin, name, created, revoked."""

        def read(cur: Cursor) -> list[dict[str, object]]:
            sql = "SELECT id, tenant, admin, name, created, revoked FROM service_keys"
            params: tuple[str, ...] = ()
            if tenant is not None:
                sql, params = sql + " WHERE tenant = ?", (tenant,)
            cur.execute(sql + " ORDER BY created, id", params)
            return [
                {
                    "id": r[0],
                    "tenant": r[1],
                    "admin": bool(r[2]),
                    "name": r[3],
                    "created": r[4],
                    "revoked": r[5],
                }
                for r in cur.fetchall()
            ]

        return self.db.run(read, write=False)
