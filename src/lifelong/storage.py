"""Database connections shared by the experience log and the version store.

One URL chooses the backend, never the code (DESIGN principle 5):

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a plain file path: SQLite in WAL mode,
  the embedded default. ``?synchronous=normal`` trades power-loss durability for speed (a killed process
  still loses nothing); the default ``full`` also survives power loss. ``?mode=ro`` opens read-only.
- ``postgresql://host:port/database`` (psycopg 3). ``?schema=NAME`` keeps the tables in their own schema;
  ``?pool_size=N`` bounds the connections this process opens (default 8); any other key must be a libpq
  connection parameter (``application_name``, ``sslmode``, ...).

Work is handed over as a function ``fn(cursor)`` that :meth:`Database.run` executes inside one
transaction, so a write either lands whole or not at all, and a transaction that meets a locked SQLite
file (or a PostgreSQL deadlock) is retried whole (with back-off, up to ``lock_timeout`` seconds) instead
of surfacing "database is locked" to the caller. Every database error leaves :meth:`Database.run` as a
:class:`~lifelong.errors.LifelongError` that names the file or server.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import random
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lifelong.errors import BackendUnavailable, Conflict, InvalidInput, LifelongError, NotFound

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]

SQLITE_KEYS = ("synchronous", "mode")
POSTGRES_KEYS = ("schema", "pool_size")  # lifelong's own; stripped before the DSN reaches libpq
DEFAULT_POOL_SIZE = 8
MAX_POOL_SIZE = 1000


class Cursor(Protocol):
    """The part of a DB-API cursor we use; SQL is written with ``?`` placeholders for both backends."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database(ABC):
    """The database one URL names; :meth:`run` hands each transaction a cursor."""

    dialect: Dialect
    read_only: bool = False

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction and return its result; roll back if it raises."""

    def connection(self) -> Any:
        """This thread's own connection: SQLite only (PostgreSQL's are pooled; use :meth:`run`)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-thread connection; use run()")

    @abstractmethod
    def close(self) -> None:
        """Close every connection; a later :meth:`run` opens new ones."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact(self.url)!r})"


class SQLiteDatabase(Database):
    """One connection per thread (SQLite connections must not be shared by concurrent threads)."""

    dialect: Dialect = "sqlite"

    def __init__(
        self,
        url: str,
        path: Path,
        *,
        synchronous: str = "full",
        mode: str = "rw",
        create: bool = True,
        lock_timeout: float = 120.0,
    ):
        super().__init__(url)
        if synchronous not in ("full", "normal", "extra"):
            raise InvalidInput("must be full, normal or extra", field="synchronous")
        if mode not in ("rw", "ro"):
            raise InvalidInput(f"must be rw or ro, got {mode!r}", field="mode")
        self.path = path
        self.synchronous = synchronous
        self.read_only = mode == "ro"
        self.create = create and not self.read_only
        self.lock_timeout = lock_timeout
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        if not path.parent.exists():
            raise InvalidInput(
                f"directory {path.parent} does not exist; create it or choose another path",
                field="url",
            )
        if path.is_dir():
            raise InvalidInput(f"cannot open {path}: it is a directory; give a file path", field="url")
        self.memory = str(path) == ":memory:"  # SQLite's private in-memory database (one per connection)
        if not self.create and not self.memory and not path.exists():
            raise NotFound(f"{path} does not exist; check the path (reading does not create a log)")
        # An absolute file: URI, so a later chdir does not move the database and mode= is honoured.
        mode = "ro" if self.read_only else "rwc" if create else "rw"
        self._uri = "file::memory:" if self.memory else f"{path.absolute().as_uri()}?mode={mode}"

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                # Connections of finished threads would otherwise pile up until close().
                alive = []
                for thread, other in self._connections:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        with contextlib.suppress(sqlite3.Error):
                            other.close()
                self._connections = [*alive, (threading.current_thread(), conn)]
        return conn

    def close(self) -> None:
        with self._lock:
            for _, conn in self._connections:
                with contextlib.suppress(Exception):  # from another thread it may fail; exit cleans up
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise InvalidInput(f"cannot open {self.path}: it is a directory; give a file path", field="url")
        if not self.create and not self.memory and not self.path.exists():
            raise NotFound(f"{self.path} does not exist; check the path (reading does not create a log)")
        # isolation_level=None: we issue BEGIN ourselves, so a write takes the lock up front
        # (BEGIN IMMEDIATE) instead of failing when a read transaction tries to upgrade.
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, timeout=self.lock_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            # Only a database we may create is switched to WAL: opening someone else's file to read must
            # not rewrite its header (a log lifelong made is in WAL mode already).
            if self.create and not self.memory:
                self._with_retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.lock_timeout * 1000)}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        return conn

    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        conn = self.connection()

        def attempt() -> T:
            conn.execute("BEGIN IMMEDIATE" if write and not self.read_only else "BEGIN")
            try:
                result = fn(conn.cursor())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            return result

        try:
            return self._with_retry(attempt)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> LifelongError:
        """The typed error for a SQLite failure, naming the file and what to do about it."""
        message = str(exc)
        low = message.lower()
        if self.path.is_dir():
            return InvalidInput(f"cannot open {self.path}: it is a directory; give a file path", field="url")
        if "readonly" in low or "read-only" in low:
            return InvalidInput(
                f"cannot write {self.path}: it is read-only ({message}); the file and its directory "
                "must be writable (SQLite keeps -wal and -shm files beside it)",
                field="url",
            )
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            return InvalidInput(
                f"cannot read {self.path}: it is not a SQLite database or it is damaged ({message}); "
                "restore it from a backup or choose another path",
                field="url",
            )
        if "unable to open" in low:
            reason = "it cannot be created" if not self.path.exists() else "it cannot be opened"
            return InvalidInput(
                f"cannot open {self.path}: {reason} ({message}); check the permissions of the file "
                "and its directory (SQLite keeps -wal and -shm files beside it)",
                field="url",
            )
        return BackendUnavailable(str(self.path), f"SQLite failed ({message})")

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
    """A bounded pool of connections (psycopg_pool), shared by all threads of the process."""

    dialect: Dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        create: bool = True,
        connect_timeout: float = 5.0,
        pool_timeout: float = 30.0,
        lock_timeout: float = 120.0,
    ):
        super().__init__(url)
        if schema is not None and not schema.replace("_", "").isalnum():
            raise InvalidInput("must be letters, digits and underscores", field="schema")
        if (
            isinstance(pool_size, bool)
            or not isinstance(pool_size, int)
            or not 1 <= pool_size <= MAX_POOL_SIZE
        ):
            raise InvalidInput(f"must be an integer from 1 to {MAX_POOL_SIZE}", field="pool_size")
        self.schema = schema
        self.pool_size = pool_size
        self.create = create
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self.lock_timeout = lock_timeout
        self._dsn = _strip_query(url, POSTGRES_KEYS)
        given = {key for key, _ in parse_qsl(urlsplit(url).query)}
        self._kwargs: dict[str, Any] = {}
        if "connect_timeout" not in given:
            self._kwargs["connect_timeout"] = max(1, int(connect_timeout))
        if "application_name" not in given:
            self._kwargs["application_name"] = "lifelong"  # so the server's pg_stat_activity says who
        self._pool: Any = None
        self._lock = threading.Lock()

    def _open_pool(self) -> Any:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                self._prepare()  # one direct connection first: its error says what is wrong
                self._pool = ConnectionPool(
                    self._dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs=self._kwargs,
                    configure=self._configure,
                    name=f"lifelong {redact(self.url)}",
                    open=True,
                )
            return self._pool

    def _prepare(self) -> None:
        """Check the server answers and create (or, with ``create=False``, require) the schema."""
        import psycopg

        try:
            conn = psycopg.connect(self._dsn, **self._kwargs)
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from exc
        try:
            with conn:  # commits on success, and closes
                if self.schema and self.create:
                    with contextlib.suppress(psycopg.errors.UniqueViolation):  # created concurrently
                        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                elif self.schema:
                    found = conn.execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
                    ).fetchone()
                    if found is None:
                        raise NotFound(f"schema {self.schema!r} does not exist in {redact(self._dsn)}")
        except psycopg.Error as exc:
            raise BackendUnavailable(
                redact(self.url), f"cannot prepare the schema ({_first_line(exc)})"
            ) from exc

    def _configure(self, conn: Any) -> None:
        """Runs on every new pooled connection: the search path, committed so a reset cannot undo it."""
        if self.schema:
            conn.execute(f'SET search_path TO "{self.schema}"')
            conn.commit()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close()

    def run(self, fn: Callable[[Cursor], T], *, write: bool = True) -> T:
        import psycopg
        from psycopg_pool import PoolTimeout

        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            pool = self._open_pool()
            try:
                with pool.connection(timeout=self.pool_timeout) as conn, conn.transaction():
                    return fn(_PostgresCursor(conn.cursor()))
            except PoolTimeout as exc:
                raise self._exhausted() from exc
            except psycopg.errors.TransactionRollback as exc:  # a deadlock or serialization failure
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        redact(self.url), f"transaction kept failing ({_first_line(exc)})"
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
            except psycopg.OperationalError as exc:
                if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")):
                    # The server went away: the pool discards the broken connection; drop its idle
                    # siblings too, so the next call gets a fresh one.
                    with contextlib.suppress(Exception):
                        pool.check()
                    raise BackendUnavailable(
                        redact(self.url), f"connection lost ({_first_line(exc)})"
                    ) from exc
                raise BackendUnavailable(
                    redact(self.url), f"the server aborted ({_first_line(exc)})"
                ) from exc
            except psycopg.IntegrityError as exc:
                raise Conflict(f"{redact(self.url)} refused the write ({_first_line(exc)})") from exc
            except psycopg.Error as exc:
                raise BackendUnavailable(
                    redact(self.url), f"the server refused ({_first_line(exc)})"
                ) from exc

    def _unreachable(self, exc: Exception) -> BackendUnavailable:
        message = _first_line(exc)
        if "too many" in message.lower():
            return BackendUnavailable(
                redact(self.url),
                f"the server refuses more connections: too many connections ({message}); lower pool_size "
                f"(now {self.pool_size}, ?pool_size=N in the URL) in the processes sharing it, "
                "or raise max_connections on the server",
            )
        return BackendUnavailable(
            redact(self.url),
            f"start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) or fix the URL ({message})",
        )

    def _exhausted(self) -> BackendUnavailable:
        """Why no pooled connection came within ``pool_timeout``: ask the server directly."""
        import psycopg

        try:
            psycopg.connect(self._dsn, **self._kwargs).close()
        except psycopg.OperationalError as exc:
            return self._unreachable(exc)
        return BackendUnavailable(
            redact(self.url),
            f"all {self.pool_size} pooled connections stayed busy for {self.pool_timeout:.0f} s: "
            "too many concurrent transactions for the pool; raise pool_size (?pool_size=N in the URL, "
            "within the server's max_connections) or shorten the transactions",
        )


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

    def executemany_returning(self, sql: str, params: Sequence[Sequence[Any]]) -> list[Any]:
        """``executemany`` of a statement with RETURNING, pipelined; the rows it returned, all statements.

        One short statement sent many times keeps psycopg's parsed-query cache warm (a multi-row VALUES
        statement is re-parsed on every call, which cost a sixth of batched-append throughput)."""
        self._cursor.executemany(sql.replace("?", "%s"), params, returning=True)
        rows: list[Any] = []
        while True:
            rows.extend(self._cursor.fetchall())
            if not self._cursor.nextset():
                return rows

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())


def open_database(url: str | Path, *, create: bool = True) -> Database:
    """Open the database a URL names (see the module docstring for the forms).

    With ``create=False`` a SQLite file (or PostgreSQL schema) that does not exist raises
    :class:`NotFound` instead of being created empty: read commands use it, so a typo is not a new log.
    """
    text = str(url)
    if not text.strip():
        raise InvalidInput("is empty; give a file path, sqlite:///PATH or postgresql://...", field="url")
    parts = urlsplit(text)
    if parts.scheme in ("postgresql", "postgres"):
        query = _query(parts.query, POSTGRES_KEYS, _libpq_keys())
        pool_size = query.get("pool_size", str(DEFAULT_POOL_SIZE))
        if not pool_size.strip().isdigit():
            raise InvalidInput(
                f"must be an integer from 1 to {MAX_POOL_SIZE}, got {pool_size!r}", field="pool_size"
            )
        return PostgresDatabase(text, schema=query.get("schema"), pool_size=int(pool_size), create=create)
    if parts.scheme == "sqlite":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(
                "sqlite URLs look like sqlite:///relative.db or sqlite:////abs.db", field="url"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise InvalidInput("sqlite URL names no file", field="url")
        query = _query(parts.query, SQLITE_KEYS, ())
        return SQLiteDatabase(
            text,
            Path(path),
            synchronous=query.get("synchronous", "full").lower(),
            mode=query.get("mode", "rw").lower(),
            create=create,
        )
    if parts.scheme and len(parts.scheme) > 1:  # one letter is a Windows drive
        raise InvalidInput(
            f"unknown scheme {parts.scheme!r}; use a file path, sqlite:///PATH or postgresql://...",
            field="url",
        )
    if "?" in text:  # a plain path carries no options: "log.db?synchronous=normal" would be a file name
        path, _, options = text.partition("?")
        raise InvalidInput(
            f"{text!r} is a plain path with options; options need a URL: write sqlite:///{path}?{options}",
            field="url",
        )
    return SQLiteDatabase(text, Path(text), create=create)


def _query(query: str, own: Sequence[str], passed_on: Sequence[str] | None) -> dict[str, str]:
    """The URL's query as a dict; a key that neither lifelong nor libpq knows is a typo, not an option.

    ``passed_on`` lists the keys handed on to the driver; None accepts any (the driver judges them).
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InvalidInput(
            f"cannot parse the query {query!r}; write ?key=value&key=value", field="url"
        ) from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in own and passed_on is not None and key not in passed_on:
            close = difflib.get_close_matches(key, [*own, *passed_on], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known options: {', '.join(own)}"
            raise InvalidInput(f"unknown option {key!r}{hint}", field="url")
        if key in own and not value.strip():
            raise InvalidInput("is empty in the URL", field=key)
        out[key] = value
    return out


@cache
def _libpq_keys() -> tuple[str, ...] | None:
    """The connection parameters libpq accepts (``sslmode``, ``application_name``, ...)."""
    try:
        from psycopg import pq

        return tuple(opt.keyword.decode() for opt in pq.Conninfo.get_defaults())
    except Exception:  # no libpq to ask: let libpq itself judge the keys when connecting
        return None


def schema_lock(cur: Cursor, dialect: str, what: str) -> None:
    """Serialise DDL on PostgreSQL: two processes running ``CREATE TABLE IF NOT EXISTS`` for the same
    table at once can both pass the check and one fails on a catalog unique index. Call first in the
    transaction that creates ``what``'s tables (SQLite's write lock already serialises them)."""
    if dialect == "postgresql":
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"lifelong schema: {what}",))


#: Descriptors of SQLite files read by :func:`read_sqlite_file`, kept open for the life of the process.
_HELD_FILES: dict[tuple[int, int], int] = {}
_HELD_LOCK = threading.Lock()


def read_sqlite_file(path: Path) -> bytes:
    """The raw bytes of a SQLite database or WAL file, read without ever closing a descriptor of it.

    POSIX advisory locks belong to the process, and closing *any* descriptor of a file releases all of
    the process's locks on it — the shared locks of its SQLite connections included. After a plain
    ``path.read_bytes()`` in a process with open connections, another process closing its connection
    believes it is the last one, checkpoints and deletes the WAL, and this process's connections go on
    reading a database that no longer changes (found by the service's tests: new API keys stopped
    being seen after an erasure scan). SQLite defers its own closes for this reason; so does this: one
    descriptor per file (device, inode), opened once and read with ``pread``.
    """
    st = os.stat(path)
    key = (st.st_dev, st.st_ino)
    with _HELD_LOCK:
        fd = _HELD_FILES.get(key)
        if fd is None:
            fd = _HELD_FILES[key] = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        part = os.pread(fd, min(1 << 20, size - offset), offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


def secure_delete(db: Database) -> None:
    """Make this thread's SQLite connection zero the pages it frees (deleted rows do not linger).

    The setting stays on for the connection. Nothing is done on PostgreSQL (see docs/architecture.md).
    """
    if db.dialect == "sqlite":
        db.connection().execute("PRAGMA secure_delete=ON")


def scrub(db: Database, tables: Sequence[str]) -> None:
    """Make deleted rows leave SQLite's files: rebuild the indexes of ``tables`` and checkpoint the WAL.

    ``secure_delete`` zeroes deleted cells, but an index's interior pages keep *copies* of keys as
    dividers, deleted ones included (the reliability campaign found an erased interaction id in
    the provenance index that way); REINDEX writes the indexes anew and frees (zeroes) the old pages.
    The checkpoint then copies the WAL into the database and truncates it. Costs one pass over each
    table; on PostgreSQL nothing is done here (see docs/architecture.md). Each module scrubs only
    tables it owns: the experience log its own (``ExperienceLog.forget(scope, secure=True)``).
    """
    if db.dialect != "sqlite":
        return

    def reindex(cur: Cursor) -> None:
        for table in tables:
            cur.execute(f"REINDEX {table}")

    db.run(reindex)
    db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")


def contains(dialect: Dialect, column: str) -> str:
    """SQL true when ``column`` holds the next ``?`` parameter as a substring (no LIKE escaping needed)."""
    return f"instr({column}, ?) > 0" if dialect == "sqlite" else f"strpos({column}, ?) > 0"


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


def _strip_query(url: str, keys: Sequence[str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in keys]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
