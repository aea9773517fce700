"""The ``lifelong`` command: ``demo``, ``bench``, ``serve``, ``keys``, ``log``, ``state``.

User errors (a :class:`~lifelong.errors.LifelongError`) print one line on stderr and exit with status 2;
no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lifelong.errors import InvalidInput, LifelongError, NotFound
from lifelong.experience import ExperienceLog, Scope
from lifelong.state import VersionStore

if TYPE_CHECKING:
    from lifelong.bench.registry import Suite


def _scope(args: argparse.Namespace, *, required: bool = False) -> Scope | None:
    session = getattr(args, "session", None)  # not every command has --session
    if args.tenant is None and args.user is None and session is None:
        if required:
            raise InvalidInput("say whose events: --user U (and/or --tenant T, --session S)", field="scope")
        return None
    try:
        return Scope(args.tenant or "default", args.user, session)
    except InvalidInput as exc:  # name the option, not the record field
        option = "--" + (exc.field or "scope.user").removeprefix("scope.")
        raise InvalidInput(exc.reason, field=option) from None


# -- argument types: argparse turns their ArgumentTypeError into "argument --flag: ..." and exit 2 ------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"  # what argparse calls the type in its messages
    return parse


def _fraction(text: str) -> float:
    """A share in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _unix_time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a unix time in seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite unix time >= 0 in seconds, got {text}")
    return value


def _nonempty(text: str) -> str:
    """A path or URL option: an empty one would silently mean "the current folder" or "the default"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _url(text: str) -> str:
    """An http(s) URL (the endpoint is only reached when the suite runs)."""
    if not text.startswith(("http://", "https://")) or len(text) < 10:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {text!r}")
    return text


def _names(text: str) -> str:
    """A comma-separated list of names, none of them empty (``a,,b`` or ``""`` is a typo)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated names, none empty, got {text!r}")
    return ",".join(names)


def _out_dir(text: str) -> str:
    """An output folder: it may not exist yet (it is created), but it may not be a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder, got ''")
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


# -- files --------------------------------------------------------------------------------------------
def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL or plain path names (as lifelong.storage reads it); None for other URLs."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return Path(path) if path else None
    if parts.scheme and len(parts.scheme) > 1:  # postgresql://, or an unknown scheme storage refuses
        return None
    return Path(url.partition("?")[0]) if url.strip() else None


def _require_file(url: str, what: str) -> None:
    """Reading must not create: a mistyped path would otherwise become a new, empty database."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise NotFound(f"no such {what} file {path}: it does not exist (reading does not create one)")


def _has_table(path: Path, table: str) -> bool:
    """Whether a SQLite file has ``table`` (True when SQLite cannot tell: the store's open reports why).

    Opened ``mode=rw``, never creating; not ``ro``: a read-only connection to a WAL database leaves its
    -wal and -shm files behind.
    """
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)
        try:
            row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
            return row.fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return True


def _check_export_target(out: Path, url: str) -> None:
    """Refuse, before anything is read or written, an --out the export could not or must not write."""
    if out.is_dir():
        raise InvalidInput(f"{out} is a directory; give the JSONL file to write", field="--out")
    if not out.parent.is_dir():
        raise InvalidInput(f"directory {out.parent} does not exist; create it first", field="--out")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"directory {out.parent} is not writable", field="--out")
    log_file = _sqlite_file(url)
    if log_file is not None and log_file.exists() and out.exists() and out.samefile(log_file):
        raise InvalidInput(f"{out} is the log itself; exporting would overwrite it", field="--out")


def _add_scope_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant (default tenant: 'default')")
    parser.add_argument("--user", help="only this user")
    parser.add_argument("--session", help="only this session (needs --user)")


def cmd_log_stats(args: argparse.Namespace) -> int:
    scope = _scope(args)
    _require_file(args.url, "log")
    with ExperienceLog(args.url, create=False) as log:
        print(json.dumps(log.stats(scope).to_dict(), indent=2))
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    scope = _scope(args)
    if args.since is not None and args.until is not None and not args.since < args.until:
        raise InvalidInput(
            f"must be before --until (the range is [since, until)), got {args.since:g} >= {args.until:g}",
            field="--since",
        )
    _check_export_target(args.out, args.url)
    _require_file(args.url, "log")
    with ExperienceLog(args.url, create=False) as log:
        n = log.export_jsonl(args.out, scope, args.since, args.until)
    print(f"exported {n} interactions to {args.out}")
    return 0


def cmd_log_import(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise NotFound(f"no file {args.file}" + (" (it is a directory)" if args.file.is_dir() else ""))
    target = _sqlite_file(args.url)
    new_log = target is not None and not target.exists()
    try:
        with ExperienceLog(args.url) as log:
            report = log.import_jsonl(args.file)
    except LifelongError:
        if new_log and target is not None:  # a failed import into a new log leaves no log behind
            for leftover in (
                target,
                target.with_name(target.name + "-wal"),
                target.with_name(target.name + "-shm"),
            ):
                leftover.unlink(missing_ok=True)
        raise
    print(
        f"imported {report.interactions} interactions and {report.feedback} feedback "
        f"({report.duplicates} already present)"
    )
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase a user (or a tenant) from the log and, with --state, from every snapshot and the provenance;
    print the erasure report with its scan."""
    from lifelong.state.erasure import forget

    scope = _scope(args, required=True)
    assert scope is not None
    if scope.session is not None:
        raise InvalidInput("erasure works on a user or a whole tenant, not one session", field="--session")
    if not args.yes:
        raise InvalidInput("forget deletes for good; add --yes to confirm", field="--yes")
    _require_file(args.url, "log")
    if args.state is not None:
        _require_file(args.state, "version store")
    with ExperienceLog(args.url, create=False) as log:
        store = None
        if args.state is not None:
            store = VersionStore(args.state, snapshots_dir=args.snapshots)
        try:
            report = forget(scope, log=log, store=store, verify=not args.no_scan)
        finally:
            if store is not None:
                store.close()
    print(json.dumps(report.to_dict(), indent=2))
    if args.state is None:
        print(
            "note: no --state given; snapshots and provenance in a version store were not touched",
            file=sys.stderr,
        )
    return 0


@contextlib.contextmanager
def _store(url: str) -> Iterator[VersionStore]:
    """An existing version store (no state command has anything to do in a new, empty one), closed after."""
    _require_file(url, "version store")
    path = _sqlite_file(url)
    if path is not None and not _has_table(path, "state_versions"):
        raise NotFound(f"{path} holds no version store (state commands do not create one)")
    store = VersionStore(url)
    try:
        yield store
    finally:
        store.close()


def cmd_state_list(args: argparse.Namespace) -> int:
    with _store(args.url) as store:
        promoted = store.promoted(args.learner)
        versions = store.versions(args.learner)
    if not versions:
        raise NotFound(f"no versions of learner {args.learner!r} in {args.url}")
    for v in versions:
        mark = "*" if promoted is not None and promoted.version == v.version else " "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.created))
        print(f"{mark} v{v.version}  {when}  updates={v.learner_version}  {v.digest[:12]}  {v.message}")
    return 0


def cmd_state_diff(args: argparse.Namespace) -> int:
    with _store(args.url) as store:
        print(store.diff(args.learner, args.a, args.b))
    return 0


def cmd_state_promote(args: argparse.Namespace) -> int:
    with _store(args.url) as store:
        store.info(args.learner, args.version)  # an unknown learner or version is said first
        if not args.override:
            raise InvalidInput(
                "the command line runs no gate: say why this version may be served without one, "
                "e.g. --override 'probe passed in CI run 812' (recorded in the history)",
                field="--override",
            )
        promotion = store.promote(args.learner, args.version, override=args.override)
    print(f"promoted {args.learner} v{promotion.version} (was v{promotion.previous}), override recorded")
    return 0


def cmd_state_rollback(args: argparse.Namespace) -> int:
    with _store(args.url) as store:
        info = store.rollback(args.learner, args.to, override=args.override)
    print(f"rolled {args.learner} back to v{info.version}")
    return 0


def cmd_state_derived(args: argparse.Namespace) -> int:
    if args.user is not None:
        _scope(args)  # the same checks as everywhere else a user is named
    if not args.interaction and not args.user:
        raise InvalidInput("say what to trace: --user U or --interaction ID", field="--user")
    with _store(args.url) as store:
        if args.interaction:
            derived = store.derived_from(args.interaction)
        else:
            derived = store.derived_from_user(args.user, args.tenant)
    for d in derived:
        print(f"{d.learner}  {d.item}  first in v{d.version}")
    print(f"{len(derived)} learned item(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lifelong.demo import run_demo
    from lifelong.files import check_writable_dir

    check_writable_dir(args.out, "--out")
    return int(run_demo(args))


def cmd_serve(args: argparse.Namespace) -> int:
    from lifelong.serve.config import ServeConfig
    from lifelong.serve.run import serve

    names = (
        "data_dir",
        "log",
        "upstream",
        "model",
        "host",
        "port",
        "workers",
        "embedder",
        "max_body_bytes",
        "rate_limit",
        "max_tokens",
        "context_budget",
        "shadow_rate",
        "poll_seconds",
        "upstream_timeout",
        "upstream_retries",
        "io_threads",
    )
    config = ServeConfig.from_mapping({name: getattr(args, name) for name in names}).validate()
    print(
        f"lifelong serve: http://{config.host}:{config.port} (dashboard /dashboard, API /docs), "
        f"log {_redacted(config.log_url)}, model {config.upstream or 'Gemma 3 270M in-process'}, "
        f"{config.workers} worker(s)",
        file=sys.stderr,
    )
    serve(config)
    return 0


def _redacted(url: str) -> str:
    from lifelong.storage import redact

    return redact(url)


def _key_store(args: argparse.Namespace) -> Any:
    from lifelong.serve.config import ServeConfig
    from lifelong.serve.keys import KeyStore

    config = ServeConfig.from_mapping({"data_dir": args.data_dir, "log": args.log}).validate()
    if config.log is None:
        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    log = ExperienceLog(config.log_url)
    return KeyStore(log.db)


def _app_store(args: argparse.Namespace) -> Any:
    from lifelong.serve.apps import AppStore

    return AppStore(_key_store(args).db)


def cmd_apps_declare(args: argparse.Namespace) -> int:
    from lifelong.agents.apps import App

    labels: list[str] = []
    if args.labels_file:
        path = Path(args.labels_file)
        if not path.is_file():
            raise InvalidInput(f"no file {path}", field="--labels-file")
        labels = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if args.labels:
        labels += [label.strip() for label in args.labels.split(",") if label.strip()]
    app = App(
        args.name,
        args.task,
        labels=tuple(labels),
        instruction=args.instruction,
        harness=not args.no_harness,
        misapply_budget=args.misapply_budget,
    )
    _, changed = _app_store(args).put(args.tenant, app)
    print(
        f"app {app.name!r} of tenant {args.tenant!r}: {app.task}"
        + (f", {len(app.labels)} labels" if app.labels else "")
        + ("" if changed else " (unchanged)")
    )
    return 0


def cmd_apps_list(args: argparse.Namespace) -> int:
    for app in _app_store(args).list(args.tenant):
        print(f"{app.name}  {app.task}" + (f"  {len(app.labels)} labels" if app.labels else ""))
    return 0


def cmd_apps_remove(args: argparse.Namespace) -> int:
    if not _app_store(args).delete(args.tenant, args.name):
        raise NotFound(f"tenant {args.tenant!r} has no app {args.name!r}")
    print(f"app {args.name!r} of tenant {args.tenant!r} removed (its log and versions stay)")
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """``lifelong mcp``: the memory tools over stdio, calling a service (``--url``) or one started here."""
    from lifelong.serve.mcp import build_mcp, remote

    if args.url:
        key = os.environ.get("LIFELONG_API_KEY", "")
        if not key:
            raise InvalidInput(
                "--url needs the tenant's API key in LIFELONG_API_KEY", field="LIFELONG_API_KEY"
            )
        build_mcp(remote(args.url, key)).run("stdio")
        return 0
    from lifelong.serve.run import in_process

    with in_process(Path(args.data_dir or "lifelong-data"), args.tenant, name="lifelong mcp") as (
        url,
        key,
        _,
    ):
        build_mcp(remote(url, key)).run("stdio")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    made = _key_store(args).create(args.tenant, admin=args.admin, name=args.name or "")
    print(made.key)
    print(
        f"key {made.id} for tenant {made.tenant!r}{' (admin)' if made.admin else ''}: "
        "shown once, stored hashed",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    for key in _key_store(args).list(args.tenant):
        state = "revoked" if key["revoked"] else "live"
        admin = " admin" if key["admin"] else ""
        print(f"{key['id']}  {key['tenant']}  {state}{admin}  {key['name']}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    done = _key_store(args).revoke(args.id)
    print(f"key {args.id} {'revoked' if done else 'was already revoked'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from lifelong.bench.registry import run_suite

    return int(run_suite(args))


# -- bench: one parser per suite, with its own help page and flags -----------------------------------
def _columns(text: str) -> str:
    """``--columns``: ``role=NAME`` pairs, comma-separated (which roles exist is the suite's to say)."""
    pairs = [part.strip() for part in text.split(",")]
    if not all(
        role.strip() and sep and name.strip() for role, sep, name in (p.partition("=") for p in pairs)
    ):
        raise argparse.ArgumentTypeError(f"must be role=NAME pairs, comma-separated, got {text!r}")
    return text


def _delimiter(text: str) -> str:
    from lifelong.data import parse_delimiter

    try:
        return str(parse_delimiter(text))
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _holdout(text: str) -> float:
    """A share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _days(text: str) -> float:
    """A half-life in days: a number > 0, or ``inf`` (no decay)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of days or inf, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 days, got {text}")
    return value


#: The suites' own flags, by the names :attr:`lifelong.bench.registry.Suite.options` lists.
BENCH_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "columns": (
        "--columns",
        {
            "type": _columns,
            "metavar": "ROLE=NAME,...",
            "help": "name the CSV's columns when their names are not the usual ones (roles: see data below)",
        },
    ),
    "delimiter": (
        "--delimiter",
        {
            "type": _delimiter,
            "metavar": "CHAR",
            "help": "the CSV's delimiter: one character, or comma, tab, semicolon, pipe (default: read from "
            "the header)",
        },
    ),
    "holdout": (
        "--holdout",
        {
            "type": _holdout,
            "metavar": "SHARE",
            "help": "one CSV file: the share of each label's rows held out as the test split (default 0.2)",
        },
    ),
    "positive": (
        "--positive",
        {
            "type": _finite,
            "metavar": "RATING",
            "help": "a rating at or above it is a positive (default 4; 1 when every rating is 0 or 1)",
        },
    ),
    "half-life": (
        "--half-life",
        {
            "type": _days,
            "metavar": "DAYS",
            "help": "the popularity control's half-life in days, or inf (default: the best of 6 h, 1 d, "
            "7 d, 30 d, inf by HR@10 on this replay; 30 d on MovieLens 100K)",
        },
    ),
    "target": ("--target", {"metavar": "COLUMN", "help": "per-task CSV files: the target column"}),
    "task-type": (
        "--task-type",
        {
            "choices": ("regression", "classification"),
            "help": "override the task type read from the target",
        },
    ),
    "ablation-steps": (
        "--ablation-steps",
        {"type": _int_at_least(1), "help": "stream length of the ablations (default: --steps)"},
    ),
    "variants": (
        "--variants",
        {
            "type": _names,
            "help": "agent variants, comma-separated (see the suite's docstring); naming them turns the "
            "ablations off",
        },
    ),
    "source": (
        "--source",
        {"type": _nonempty, "help": "a directory or git checkout to write instead of the standard library"},
    ),
    "packages": (
        "--packages",
        {
            "type": _names,
            "help": "standard-library packages, comma-separated (default json,email,http,logging)",
        },
    ),
    "parts": (
        "--parts",
        {"type": _names, "help": "parts of the suite to run, comma-separated (see the suite's docstring)"},
    ),
    "user-steps": (
        "--user-steps",
        {
            "type": _int_at_least(1),
            "help": "requests per simulated developer in the per-user part (default 60)",
        },
    ),
    "episodes": ("--episodes", {"type": _int_at_least(1), "help": "episodes per run seed (default 30)"}),
    "llm-episodes": (
        "--llm-episodes",
        {"type": _int_at_least(1), "help": "episodes of the llm variant, first seed only (default 1)"},
    ),
    "model-url": (
        "--model-url",
        {
            "type": _url,
            "metavar": "URL",
            "help": "the llm proposer's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 "
            "(default: Gemma 3 270M in-process)",
        },
    ),
    "transfer-steps": (
        "--transfer-steps",
        {
            "type": _int_at_least(1),
            "help": "steps allowed per achievement in the transfer test (default 500)",
        },
    ),
    "items": (
        "--items",
        {
            "type": _int_at_least(1),
            "help": "learned items in one scope (serve: the tenant the proxy recalls from, default 100,000; "
            "memory: one user's memory, default 10,000)",
        },
    ),
    "feedback": (
        "--feedback",
        {"type": _int_at_least(1), "help": "feedback requests per configuration (default 5,000)"},
    ),
    "rounds": (
        "--rounds",
        {"type": _int_at_least(1), "help": "cross-worker feedback-to-visible rounds (default 200)"},
    ),
    "workers": (
        "--workers",
        {"type": _int_at_least(1), "help": "service workers on PostgreSQL (default 2)"},
    ),
    "streams": (
        "--streams",
        {"type": _names, "help": "streams to run, comma-separated: labels, support (default both)"},
    ),
    "support-tokens": (
        "--support-tokens",
        {"type": _int_at_least(1), "help": "max_tokens of a support request (default 48)"},
    ),
    "objective": (
        "--objective",
        {
            "choices": ("keep", "reward", "chars"),
            "default": "keep",
            "help": "what the suggestion gate optimises (default keep: reward without losing accepted work)",
        },
    ),
}


def _add_suite_parser(suites: Any, name: str, suite: Suite) -> None:
    """``lifelong bench NAME``: the common flags, ``--data`` if the suite reads data, its own flags."""
    about = suite.about if "\n" in suite.about else textwrap.fill(suite.about, 100)
    parser = suites.add_parser(
        name,
        help=suite.help,
        description=textwrap.fill(f"lifelong bench {name}: {suite.help}", 100) + f"\n\n{about}",
        epilog=suite.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=_out_dir, help="output folder")
    if suite.data:
        parser.add_argument("--data", type=_nonempty, help="the data to run on (see data below)")
    parser.add_argument("--seeds", type=_int_at_least(1), default=5, help="seeds / stream orders (default 5)")
    parser.add_argument("--steps", type=_int_at_least(1), help=suite.steps)
    for option in suite.options:
        flag, kwargs = BENCH_OPTIONS[option]
        parser.add_argument(flag, **kwargs)
    parser.set_defaults(func=cmd_bench, data=None)


def _add_serve_parsers(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="the learning service: an OpenAI-compatible proxy that learns from feedback, per tenant",
        description="Serve /v1/chat/completions and /v1/completions (OpenAI wire format) in front of a "
        "model, recalling per tenant and user what earlier feedback taught; /v1/feedback, /v1/memories, "
        "versions, /metrics, /dashboard. With no flags: SQLite in --data-dir, Gemma 3 270M in-process, "
        "MiniLM embeddings, offline. Every flag is also an environment variable LIFELONG_<FLAG> "
        "(e.g. LIFELONG_LOG). See docs/service.md.",
    )
    serve.add_argument(
        "--data-dir", help="where the embedded default keeps its SQLite log (default lifelong-data)"
    )
    serve.add_argument("--log", help="experience log URL: a SQLite path or postgresql://HOST:PORT/DB")
    serve.add_argument(
        "--upstream", help="an OpenAI-compatible server, http://HOST:PORT/v1 (default: Gemma in-process)"
    )
    serve.add_argument("--model", help="the upstream's model name (default: the only one it serves)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_int_at_least(0), help="port (default 8000)")
    serve.add_argument("--workers", type=_int_at_least(1), help="worker processes (default 1)")
    serve.add_argument("--embedder", choices=["minilm", "hashing"], help="text embeddings (default minilm)")
    serve.add_argument(
        "--max-body-bytes", type=_int_at_least(1024), help="largest request body (default 1 MiB)"
    )
    serve.add_argument(
        "--rate-limit", type=float, help="requests/s per key and worker, 0 = off (default 100)"
    )
    serve.add_argument(
        "--max-tokens", type=_int_at_least(1), help="most tokens a request may ask for (default 512)"
    )
    serve.add_argument(
        "--context-budget", type=_int_at_least(0), help="tokens of recalled context (default 512)"
    )
    serve.add_argument(
        "--shadow-rate", type=float, help="share of requests the frozen shadow answers (default 1)"
    )
    serve.add_argument("--poll-seconds", type=float, help="idle worker's log poll interval (default 0.1)")
    serve.add_argument("--upstream-timeout", type=float, help="seconds per upstream call (default 60)")
    serve.add_argument(
        "--upstream-retries", type=_int_at_least(0), help="retries of a failed upstream call (default 2)"
    )
    serve.add_argument(
        "--io-threads",
        type=_int_at_least(1),
        help="database threads per worker, = PostgreSQL pool size (default 16)",
    )
    serve.set_defaults(func=cmd_serve)

    mcp = sub.add_parser(
        "mcp",
        help="the memory as MCP tools over stdio (remember, recall, feedback, retire, forget)",
        description="An MCP server on stdin/stdout for agents that start their tools as a subprocess. "
        "Every tool is one call of the service's REST API: with --url, of that service (the tenant's "
        "key in $LIFELONG_API_KEY); without, of a service started in this process on the embedded "
        "defaults. The running service also serves the same tools at /mcp/ (streamable HTTP). See "
        "docs/service.md.",
    )
    mcp.add_argument("--url", help="a running lifelong serve, http://HOST:PORT")
    mcp.add_argument(
        "--data-dir", help="without --url: where the service keeps its data (default lifelong-data)"
    )
    mcp.add_argument(
        "--tenant", default="default", type=_nonempty, help="without --url: the tenant (default default)"
    )
    mcp.set_defaults(func=cmd_mcp)

    keys = sub.add_parser("keys", help="API keys of the service: create, list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    for action, helptext in (
        ("create", "a new key for a tenant (printed once)"),
        ("list", "every key"),
        ("revoke", "revoke a key by id"),
    ):
        p = keys_sub.add_parser(action, help=helptext)
        p.add_argument("--data-dir", help="the service's data directory (default lifelong-data)")
        p.add_argument("--log", help="the service's log URL (instead of --data-dir)")
        if action == "create":
            p.add_argument("--tenant", required=True, type=_nonempty)
            p.add_argument("--admin", action="store_true", help="may act for any tenant")
            p.add_argument("--name", help="what the key is for")
        elif action == "list":
            p.add_argument("--tenant")
        else:
            p.add_argument("id")
        p.set_defaults(
            func={"create": cmd_keys_create, "list": cmd_keys_list, "revoke": cmd_keys_revoke}[action]
        )

    apps = sub.add_parser(
        "apps",
        help="apps of the service: declare what an app asks (labels, chat, completion), list, remove",
        description="An app declares what its requests ask, so each gets the learners that fit: 'label' "
        "(one of --labels; the experts and their mixture), 'chat' (free text; memory, examples, lessons and "
        "the direct answer of a corrected question, behind a gate), 'completion' (a line of code). "
        "Requests name the app in X-Lifelong-App or as their model. The same as POST /v1/apps.",
    )
    apps_sub = apps.add_subparsers(dest="apps_command", required=True, metavar="ACTION")
    for action, helptext in (
        ("declare", "declare an app (or change it)"),
        ("list", "a tenant's apps"),
        ("remove", "remove an app (its log and versions stay)"),
    ):
        p = apps_sub.add_parser(action, help=helptext)
        p.add_argument("--data-dir", help="the service's data directory (default lifelong-data)")
        p.add_argument("--log", help="the service's log URL (instead of --data-dir)")
        p.add_argument("--tenant", required=True, type=_nonempty)
        if action in ("declare", "remove"):
            p.add_argument("name", help="the app's name (what requests say in X-Lifelong-App or model)")
        if action == "declare":
            p.add_argument("--task", required=True, choices=("chat", "label", "completion"))
            p.add_argument("--labels", help="a label app's labels, comma-separated")
            p.add_argument("--labels-file", help="a file with one label per line")
            p.add_argument(
                "--instruction", help="the label prompt's first line, or a chat app's system message"
            )
            p.add_argument("--no-harness", action="store_true", help="no background prompt search")
            p.add_argument(
                "--misapply-budget",
                type=float,
                default=0.05,
                help="chat: the most share of requests that may get a recalled answer to another question "
                "(default 0.05)",
            )
        p.set_defaults(
            func={"declare": cmd_apps_declare, "list": cmd_apps_list, "remove": cmd_apps_remove}[action]
        )


def build_parser() -> argparse.ArgumentParser:
    from lifelong import __version__
    from lifelong.bench.registry import SUITES

    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Make AI agents and models learn online from every interaction, and measure it.",
    )
    parser.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: lifelong serve learns a support desk's routing app, next to its frozen shadow",
        description="Starts lifelong serve in this process on the embedded defaults (SQLite, Gemma 3 270M, "
        "MiniLM); a simulated support desk declares its routing app and sends customer queries with the "
        "official openai client, correcting every answer with the intent a human chose. Prints the right "
        "answers served by the learner and by the frozen shadow (the same model, nothing learned), checks "
        "that replaying the log rebuilds the learned state, writes the curves (PNG + JSON) and says where "
        "the log and the dashboard are. The code-completion run is `lifelong bench code-completion`.",
    )
    demo.add_argument(
        "--data",
        type=_nonempty,
        help="a folder in the BANKING77 layout (default: ../shared/data/banking77; without it, the "
        "standard library's docstrings routed to their modules)",
    )
    demo.add_argument("--requests", type=_int_at_least(1), default=200, help="customer queries (default 200)")
    demo.add_argument("--seed", type=_int_at_least(0), default=0, help="the queries' order (default 0)")
    demo.add_argument("--out", type=_out_dir, default="runs/demo", help="output folder (default: runs/demo)")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="run a benchmark suite; writes OUT/<suite>.json and .png",
        description="Run a benchmark suite; it writes OUT/<suite>.json and OUT/<suite>.png. "
        "'lifelong bench SUITE --help' says what SUITE measures, the data it reads (its format), its flags "
        "and an example; every format is in docs/data.md.",
    )
    suites = bench.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for name, suite in SUITES.items():
        _add_suite_parser(suites, name, suite)
    _add_serve_parsers(sub)
    log = sub.add_parser("log", help="inspect and manage an experience log")
    log_sub = log.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    stats = log_sub.add_parser("stats", help="counts of interactions and feedback")
    stats.add_argument("url", help="log URL: a file path, sqlite:///PATH or postgresql://...")
    _add_scope_options(stats)
    stats.set_defaults(func=cmd_log_stats)
    export = log_sub.add_parser("export", help="write steps as JSON lines")
    export.add_argument("url")
    export.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    export.add_argument("--since", type=_unix_time, help="unix time, inclusive")
    export.add_argument("--until", type=_unix_time, help="unix time, exclusive")
    _add_scope_options(export)
    export.set_defaults(func=cmd_log_export)
    imp = log_sub.add_parser("import", help="append the steps of a JSONL export (idempotent)")
    imp.add_argument("url")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_log_import)
    for parent, name in ((log_sub, "forget"), (sub, "forget")):
        forget = parent.add_parser(
            name,
            help="erase a user (or tenant): events, snapshots, provenance; prints the report and its scan",
        )
        forget.add_argument("url", help="log URL")
        _add_scope_options(forget)
        forget.add_argument("--state", help="version store URL: redact or erase every snapshot holding them")
        forget.add_argument("--snapshots", help="the store's snapshot directory, if it keeps files")
        forget.add_argument("--no-scan", action="store_true", help="skip the scan that proves the erasure")
        forget.add_argument("--yes", action="store_true", help="confirm the deletion")
        forget.set_defaults(func=cmd_forget)
    state = sub.add_parser("state", help="versions of learned state: list, diff, promote, roll back, trace")
    state_sub = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    listing = state_sub.add_parser("list", help="versions of a learner (* = promoted)")
    listing.add_argument("url", help="version store URL: a file path, sqlite:///PATH or postgresql://...")
    listing.add_argument("learner", help="learner name, e.g. OnlineSoftmax")
    listing.set_defaults(func=cmd_state_list)
    diff = state_sub.add_parser("diff", help="what changed between two versions")
    diff.add_argument("url")
    diff.add_argument("learner")
    diff.add_argument("a", type=_int_at_least(1))
    diff.add_argument("b", type=_int_at_least(1))
    diff.set_defaults(func=cmd_state_diff)
    promote = state_sub.add_parser("promote", help="serve a version")
    promote.add_argument("url")
    promote.add_argument("learner")
    promote.add_argument("version", type=_int_at_least(1))
    promote.add_argument(
        "--override", type=_nonempty, help="why it may be served without a gate (required; recorded)"
    )
    promote.set_defaults(func=cmd_state_promote)
    rollback = state_sub.add_parser("rollback", help="serve an earlier version again")
    rollback.add_argument("url")
    rollback.add_argument("learner")
    rollback.add_argument("--to", type=_int_at_least(1), help="version (default: the one served before)")
    rollback.add_argument(
        "--override", type=_nonempty, help="needed to go back to a version that failed its gate (recorded)"
    )
    rollback.set_defaults(func=cmd_state_rollback)
    derived = state_sub.add_parser("derived", help="learned items derived from a user or an interaction")
    derived.add_argument("url")
    derived.add_argument("--user")
    derived.add_argument("--tenant")
    derived.add_argument("--interaction")
    derived.set_defaults(func=cmd_state_derived)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LifelongError as exc:
        print(f"lifelong: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lifelong: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
