"""Database connections shared by the experience log and the version store.

One URL chooses the backend, never the code (DESIGN principle 5):

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain file path: SQLite in WAL mode,
  the embedded default. ``?synchronous=normal`` trades power-loss durability for speed (a killed process
  still loses nothing); the default ``full`` also survives power loss.
- ``postgresql://host:port/database`` (psycopg 3). ``?schema=NAME`` keeps the tables in their own schema.

Work is handed over as a function ``fn(cursor)`` that :meth:`Database.run` executes inside one
transaction, so a write either lands whole or not at all, and a transaction that meets a locked SQLite
file is retried whole (with back-off, up to ``lock_timeout`` seconds) instead of surfacing
"database is locked" to the caller.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from lifelong.errors import BackendUnavailable, InvalidInput

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]


class Cursor(Protocol):
    """The part of a DB-API cursor we use; SQL is written with ``?`` placeholders for both backends."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database(ABC):
    """A connection factory for one URL; each thread gets its own connection."""

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction and return its result; roll back if it raises."""

    def connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(Exception):  # from another thread it may fail; exit cleans up
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"


class SQLiteDatabase(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, url: str, path: Path, *, synchronous: str = "full", lock_timeout: float = 120.0):
        super().__init__(url)
        if synchronous not in ("full", "normal", "extra"):
            raise InvalidInput("must be full, normal or extra", field="synchronous")
        self.path = path
        self.synchronous = synchronous
        self.lock_timeout = lock_timeout
        if not path.parent.exists():
            raise InvalidInput(
                f"directory {path.parent} does not exist; create it or choose another path",
                field="url",
            )

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so a write takes the lock up front
        # (BEGIN IMMEDIATE) instead of failing when a read transaction tries to upgrade.
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False
            )
            self._with_retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        except sqlite3.DatabaseError as exc:  # includes OperationalError
            if self.path.is_dir():
                reason = "it is a directory; give a file path"
            elif self.path.exists():
                reason = f"it is not a SQLite database ({exc})"
            else:
                reason = f"it cannot be created ({exc})"
            raise InvalidInput(f"cannot open {self.path}: {reason}", field="url") from exc
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.lock_timeout * 1000)}")
        return conn

    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        conn = self.connection()

        def attempt() -> T:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn.cursor())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._with_retry(attempt)

    def _with_retry(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        self.url,
                        f"still locked by another writer after {self.lock_timeout:.0f} s; "
                        "is a process holding a long transaction?",
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 5.0):
        super().__init__(url)
        if schema is not None and not schema.replace("_", "").isalnum():
            raise InvalidInput("must be letters, digits and underscores", field="schema")
        self.schema = schema
        self.connect_timeout = connect_timeout

    def _connect(self) -> Any:
        import psycopg

        dsn = _strip_query(self.url, "schema")
        try:
            conn = psycopg.connect(dsn, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(
                redact(self.url),
                "start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) or fix the URL "
                f"({str(exc).strip().splitlines()[0]})",
            ) from exc
        if self.schema:
            with conn.transaction():
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.commit()
        return conn

    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        import psycopg

        conn = self.connection()
        try:
            with conn.transaction():
                return fn(_PostgresCursor(conn.cursor()))
        except psycopg.OperationalError as exc:
            # The server went away; forget this connection so the next call reconnects.
            self._local.conn = None
            raise BackendUnavailable(redact(self.url), f"connection lost ({exc})") from exc


class _PostgresCursor:
    """Translates ``?`` placeholders to psycopg's ``%s`` (our SQL never contains a literal ``%``)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("?", "%s"), params)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


def open_database(url: str | Path) -> Database:
    """Open the database a URL names (see the module docstring for the forms)."""
    text = str(url)
    if not text.strip():
        raise InvalidInput("is empty; give a file path, sqlite:///PATH or postgresql://...", field="url")
    parts = urlsplit(text)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresDatabase(text, schema=query.get("schema"))
    if parts.scheme == "sqlite":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(
                "sqlite URLs look like sqlite:///relative.db or sqlite:////abs.db", field="url"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise InvalidInput("sqlite URL names no file", field="url")
        return SQLiteDatabase(text, Path(path), synchronous=query.get("synchronous", "full").lower())
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive
        raise InvalidInput(
            f"unknown scheme {parts.scheme!r}; use a file path, sqlite:///PATH or postgresql://...",
            field="url",
        )
    return SQLiteDatabase(text, Path(text))


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _strip_query(url: str, key: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, vs in parse_qs(parts.query).items() for v in vs if k != key]
    return urlunsplit(parts._replace(query=urlencode(query)))
