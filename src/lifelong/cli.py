"""The ``lifelong`` command: ``demo``, ``bench``, ``log``, ``state``.

User errors (a :class:`~lifelong.errors.LifelongError`) print one line on stderr and exit with status 2;
no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lifelong.errors import InvalidInput, LifelongError, NotFound
from lifelong.experience import ExperienceLog, Scope
from lifelong.state import VersionStore


def _scope(args: argparse.Namespace, *, required: bool = False) -> Scope | None:
    if args.tenant is None and args.user is None and args.session is None:
        if required:
            raise InvalidInput("say whose events: --user U (and/or --tenant T, --session S)", field="scope")
        return None
    return Scope(args.tenant or "default", args.user, args.session)


def _add_scope_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant (default tenant: 'default')")
    parser.add_argument("--user", help="only this user")
    parser.add_argument("--session", help="only this session (needs --user)")


def cmd_log_stats(args: argparse.Namespace) -> int:
    with ExperienceLog(args.url) as log:
        print(json.dumps(log.stats(_scope(args)).to_dict(), indent=2))
    return 0


def cmd_log_export(args: argparse.Namespace) -> int:
    with ExperienceLog(args.url) as log:
        n = log.export_jsonl(args.out, _scope(args), args.since, args.until)
    print(f"exported {n} interactions to {args.out}")
    return 0


def cmd_log_import(args: argparse.Namespace) -> int:
    with ExperienceLog(args.url) as log:
        report = log.import_jsonl(args.file)
    print(
        f"imported {report.interactions} interactions and {report.feedback} feedback "
        f"({report.duplicates} already present)"
    )
    return 0


def cmd_log_forget(args: argparse.Namespace) -> int:
    scope = _scope(args, required=True)
    assert scope is not None
    if not args.yes:
        raise InvalidInput("forget deletes for good; add --yes to confirm", field="--yes")
    with ExperienceLog(args.url) as log:
        report = log.forget(scope)
    print(f"deleted {report.interactions} interactions and {report.feedback} feedback of {scope}")
    return 0


def cmd_state_list(args: argparse.Namespace) -> int:
    store = VersionStore(args.url)
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
    print(VersionStore(args.url).diff(args.learner, args.a, args.b))
    return 0


def cmd_state_promote(args: argparse.Namespace) -> int:
    promotion = VersionStore(args.url).promote(args.learner, args.version)
    print(f"promoted {args.learner} v{promotion.version} (was v{promotion.previous})")
    return 0


def cmd_state_rollback(args: argparse.Namespace) -> int:
    info = VersionStore(args.url).rollback(args.learner, args.to)
    print(f"rolled {args.learner} back to v{info.version}")
    return 0


def cmd_state_derived(args: argparse.Namespace) -> int:
    store = VersionStore(args.url)
    if args.interaction:
        derived = store.derived_from(args.interaction)
    elif args.user:
        derived = store.derived_from_user(args.user, args.tenant)
    else:
        raise InvalidInput("say what to trace: --user U or --interaction ID", field="--user")
    for d in derived:
        print(f"{d.learner}  {d.item}  first in v{d.version}")
    print(f"{len(derived)} learned item(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lifelong.demo import run_demo

    return int(run_demo(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from lifelong.suites import run_suite

    return int(run_suite(args))


def build_parser() -> argparse.ArgumentParser:
    from lifelong import __version__
    from lifelong.suites import SUITES

    parser = argparse.ArgumentParser(
        prog="lifelong",
        description="Make AI agents and models learn online from every interaction, and measure it.",
    )
    parser.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: a code-completion agent learns a codebase, next to its frozen control",
        description="A simulated developer writes a real codebase (a standard-library package by default) "
        "top to bottom; at sampled line starts the embedded model (Gemma 3 270M, llama.cpp) suggests the "
        "rest of the line. The learning agent learns from every accept, reject and correction (example "
        "bank, lessons, memory, suggestion gate); its frozen control answers the same requests. Shows "
        "both accept rates live, writes the curves (PNG + JSON), versions the learned state and checks "
        "that replaying the log rebuilds it.",
    )
    demo.add_argument(
        "--package", default="email", help="standard-library package(s), comma-separated (default: email)"
    )
    demo.add_argument("--source", help="a directory or git checkout to write instead of the standard library")
    demo.add_argument("--requests", type=int, default=150, help="completion requests (default 150)")
    demo.add_argument(
        "--rate", type=float, default=0.25, help="share of lines that are requests (default 0.25)"
    )
    demo.add_argument("--seed", type=int, default=0, help="which lines are sampled (default 0)")
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--log", help="experience log URL (default: OUT/experience.db)")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark suite; writes OUT/<suite>.json and .png")
    bench.add_argument(
        "suite", choices=sorted(SUITES), help="; ".join(f"{k}: {v.help}" for k, v in SUITES.items())
    )
    bench.add_argument("--out", required=True, help="output folder")
    bench.add_argument("--data", help="data folder (default: $LIFELONG_DATA or ../shared/data)")
    bench.add_argument("--seeds", type=int, default=5, help="seeds / stream orders (default 5)")
    bench.add_argument("--steps", type=int, help="limit the stream length")
    bench.add_argument(
        "--ablation-steps",
        type=int,
        help="intent-stream / code-completion / weights: stream length of the ablations",
    )
    bench.add_argument(
        "--variants",
        help="intent-stream / code-completion / weights: agent variants, comma-separated (see the suite's "
        "docstring); naming them turns the ablations off",
    )
    bench.add_argument(
        "--source",
        help="code-completion: a directory or git checkout to write instead of the standard library",
    )
    bench.add_argument(
        "--packages",
        help="code-completion: standard-library packages, comma-separated (default json,email,http,logging)",
    )
    bench.add_argument(
        "--objective",
        choices=("keep", "reward", "chars"),
        default="keep",
        help="code-completion: what the suggestion gate optimises (default keep: reward without losing "
        "accepted work)",
    )
    bench.set_defaults(func=cmd_bench)

    log = sub.add_parser("log", help="inspect and manage an experience log")
    log_sub = log.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    stats = log_sub.add_parser("stats", help="counts of interactions and feedback")
    stats.add_argument("url", help="log URL: a file path, sqlite:///PATH or postgresql://...")
    _add_scope_options(stats)
    stats.set_defaults(func=cmd_log_stats)
    export = log_sub.add_parser("export", help="write steps as JSON lines")
    export.add_argument("url")
    export.add_argument("--out", required=True, type=Path, help="JSONL file to write")
    export.add_argument("--since", type=float, help="unix time, inclusive")
    export.add_argument("--until", type=float, help="unix time, exclusive")
    _add_scope_options(export)
    export.set_defaults(func=cmd_log_export)
    imp = log_sub.add_parser("import", help="append the steps of a JSONL export (idempotent)")
    imp.add_argument("url")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_log_import)
    forget = log_sub.add_parser("forget", help="delete a user's (or tenant's) interactions and feedback")
    forget.add_argument("url")
    _add_scope_options(forget)
    forget.add_argument("--yes", action="store_true", help="confirm the deletion")
    forget.set_defaults(func=cmd_log_forget)
    state = sub.add_parser("state", help="versions of learned state: list, diff, promote, roll back, trace")
    state_sub = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    listing = state_sub.add_parser("list", help="versions of a learner (* = promoted)")
    listing.add_argument("url", help="version store URL: a file path, sqlite:///PATH or postgresql://...")
    listing.add_argument("learner", help="learner name, e.g. OnlineSoftmax")
    listing.set_defaults(func=cmd_state_list)
    diff = state_sub.add_parser("diff", help="what changed between two versions")
    diff.add_argument("url")
    diff.add_argument("learner")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    diff.set_defaults(func=cmd_state_diff)
    promote = state_sub.add_parser("promote", help="serve a version")
    promote.add_argument("url")
    promote.add_argument("learner")
    promote.add_argument("version", type=int)
    promote.set_defaults(func=cmd_state_promote)
    rollback = state_sub.add_parser("rollback", help="serve an earlier version again")
    rollback.add_argument("url")
    rollback.add_argument("learner")
    rollback.add_argument("--to", type=int, help="version (default: the one promoted before)")
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
