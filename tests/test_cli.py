"""The ``lifelong`` command: help everywhere, one-line errors with a non-zero exit, log management."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.errors import InvalidInput
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope
from lifelong.state import VersionStore


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifelong.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["demo"],
        ["bench"],
        ["log"],
        ["log", "stats"],
        ["log", "export"],
        ["log", "import"],
        ["log", "forget"],
        ["state"],
        ["state", "list"],
        ["state", "diff"],
        ["state", "promote"],
        ["state", "rollback"],
        ["state", "derived"],
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.returncode == 0 and "usage: lifelong" in result.stdout


def test_the_console_script_is_installed() -> None:
    result = subprocess.run(["lifelong", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("lifelong ")


def filled_log(path: Path) -> str:
    url = str(path)
    with ExperienceLog(url) as log:
        for user in ("ada", "bob"):
            for n in range(3):
                i = Interaction(Scope(user=user), f"q{n}", "a")
                log.append_many([i, Feedback.reward(i.id, 1.0)])
    return url


def test_log_stats_export_import_forget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = filled_log(tmp_path / "log.db")
    assert main(["log", "stats", url]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["interactions"] == 6 and stats["users"] == 2 and stats["feedback_by_kind"] == {"reward": 6}

    out = tmp_path / "ada.jsonl"
    assert main(["log", "export", url, "--out", str(out), "--user", "ada"]) == 0
    assert len(out.read_text().splitlines()) == 3
    copy = str(tmp_path / "copy.db")
    assert main(["log", "import", copy, str(out)]) == 0
    assert "imported 3 interactions and 3 feedback" in capsys.readouterr().out

    assert main(["log", "forget", url, "--user", "ada"]) == 2  # needs --yes
    assert "--yes" in capsys.readouterr().err
    assert main(["log", "forget", url, "--user", "ada", "--yes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["interactions_deleted"], report["feedback_deleted"]) == (3, 3)
    assert report["scan"]["hits"] == []
    assert main(["log", "stats", url, "--user", "ada"]) == 0
    assert json.loads(capsys.readouterr().out)["interactions"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["log", "stats", "postgresql://127.0.0.1:1/nothing"], "cannot reach postgresql://127.0.0.1:1"),
        (["log", "stats", "/no/such/dir/log.db"], "does not exist"),
        (["log", "stats", "mysql://x/y"], "unknown scheme"),
        (["log", "stats", "."], "is a directory"),
        (["log", "stats", "not-a-db.txt"], "not a SQLite database"),
        (["log", "forget", "x.db", "--yes"], "--user"),
        (["log", "export", "x.db", "--out", "/no/such/dir/out.jsonl"], "does not exist"),
        (["log", "import", "x.db", "/no/such/file.jsonl"], "no file"),
        (["demo", "--data", "/no/such/folder"], "/no/such/folder"),
        (["demo", "--requests", "3"], "--requests"),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "not-a-db.txt").write_text("hello\n" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "lifelong.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifelong: error:") and message in lines[0], lines


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_banking77 = pytest.mark.skipif(
    not (DATA / "banking77" / "train.csv").is_file(), reason=f"BANKING77 not found under {DATA}"
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_serves_an_app_beside_its_shadow_and_replays_the_log(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    command = ["lifelong", "demo", "--requests", "12", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=850)
    assert result.returncode == 0, result.stderr
    assert "replay of the log rebuilds the same learned state: yes" in result.stdout
    assert "learner" in result.stdout and "frozen shadow" in result.stdout
    data = json.loads((out / "demo.json").read_text())
    assert data["config"]["replay_rebuilds_same_state"] is True and data["config"]["requests"] == 12
    assert {"learner", "frozen shadow"} <= set(data["curves"])
    assert data["learning"]["judged"] == 12  # the service's own curve agrees with the client
    assert data["metrics"]["learner.right"]["mean"] == data["learning"]["right_served"]
    assert (out / "demo.png").stat().st_size > 10_000
    with ExperienceLog(str(out / "service" / "lifelong.db")) as log:
        stats = log.stats()
    assert stats.interactions == 12 and stats.feedback == 12  # every answer logged, every correction too


@needs_banking77
def test_bench_intent_linear_writes_json_and_png(tmp_path: Path) -> None:
    args = ["bench", "intent-linear", "--out", str(tmp_path), "--seeds", "2", "--steps", "600"]
    assert main([*args, "--data", str(DATA / "banking77")]) == 0
    data = json.loads((tmp_path / "intent-linear.json").read_text())
    assert {"learner", "frozen", "river_nb"} <= set(data["curves"])
    assert len(data["curves"]["learner"]["per_seed"]) == 2
    assert "ratio_vs_river.steps_per_second" in data["metrics"]
    assert (tmp_path / "intent-linear.png").stat().st_size > 10_000


@needs_banking77
@pytest.mark.parametrize("suite", ["intent-continual", "intent-adaptation"])
def test_bench_protocol_suites_on_real_data(suite: str, tmp_path: Path) -> None:
    args = ["bench", suite, "--out", str(tmp_path), "--seeds", "2", "--steps", "150"]
    assert main([*args, "--data", str(DATA / "banking77")]) == 0
    data = json.loads((tmp_path / f"{suite}.json").read_text())
    if suite == "intent-continual":
        assert {"acc", "bwt", "fwt"} <= set(data["metrics"]) and len(data["config"]["R_per_order"]) == 2
    else:
        assert data["metrics"]["gap@0"]["mean"] == 0 and data["metrics"]["gap@50"]["mean"] > 0
    assert (tmp_path / f"{suite}.png").stat().st_size > 10_000


def test_state_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lifelong.experience import Step
    from lifelong.learners import OnlineSoftmax

    url = str(tmp_path / "state.db")
    store, model = VersionStore(url), OnlineSoftmax()
    for user, text, label in [("ada", "card stolen", "card_lost"), ("bob", "top up failed", "top_up")]:
        i = Interaction(Scope(user=user), text)
        model.learn(Step(i, (Feedback.correction(i.id, label),)))
        store.commit(model, message=f"after {user}")
    assert main(["state", "promote", url, "OnlineSoftmax", "2"]) == 2  # the CLI runs no gate
    assert "--override" in capsys.readouterr().err
    assert main(["state", "promote", url, "OnlineSoftmax", "1", "--override", "baseline"]) == 0
    assert main(["state", "promote", url, "OnlineSoftmax", "2", "--override", "checked by hand"]) == 0
    assert main(["state", "list", url, "OnlineSoftmax"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-2].startswith("  v1") and listing[-1].startswith("* v2") and "after bob" in listing[-1]
    assert main(["state", "diff", url, "OnlineSoftmax", "1", "2"]) == 0
    assert "state.classes" in capsys.readouterr().out
    assert main(["state", "rollback", url, "OnlineSoftmax"]) == 0
    assert "back to v1" in capsys.readouterr().out
    assert main(["state", "derived", url, "--user", "bob"]) == 0
    assert "OnlineSoftmax  weights  first in v2" in capsys.readouterr().out
    assert main(["state", "list", url, "Nobody"]) == 2
    assert main(["state", "derived", url]) == 2


def bench_suites() -> list[str]:
    from lifelong.bench.registry import SUITES

    return sorted(SUITES)


@pytest.mark.parametrize("suite", bench_suites())
@pytest.mark.parametrize(("where", "reason"), [("proc", "cannot create"), ("file", "is a file")])
def test_bench_refuses_an_out_it_cannot_create_or_write_before_any_work(
    suite: str,
    where: str,
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lifelong.bench.registry import Suite

    def no_work(self: Suite) -> None:
        raise AssertionError("the suite started although --out cannot be written")

    monkeypatch.setattr(Suite, "load", no_work)
    (tmp_path / "a-file").write_text("x")
    out = "/proc/lifelong-out/run" if where == "proc" else str(tmp_path / "a-file" / "runs")
    assert main(["bench", suite, "--out", out, "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lifelong: error: --out: "), err
    assert reason in err and out in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_demo_refuses_an_out_it_cannot_create(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", "/proc/lifelong-demo"]) == 2  # checked before any model loads
    assert capsys.readouterr().err.startswith("lifelong: error: --out: cannot create the folder")


def test_bench_checks_a_new_out_without_leaving_it_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lifelong.bench.registry import Suite

    seen: list[bool] = []

    def record(self: Suite) -> object:
        seen.append((tmp_path / "new").exists())
        raise InvalidInput("stop here", field="--steps")

    monkeypatch.setattr(Suite, "load", record)
    assert main(["bench", "ella-synthetic", "--out", str(tmp_path / "new" / "runs")]) == 2
    assert seen == [False]  # the check created the folders to try them, then removed them again
    assert main(["bench", "ella-synthetic", "--out", str(tmp_path)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no probe file left in an existing --out


def test_bench_weights_rejects_unknown_variants_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "weights", "--out", str(tmp_path), "--variants", "weights,nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--variants", "consolidation,nope"], "nope"),
        (["--parts", "main,dreams"], "dreams"),
        (["--packages", "no_such_package"], "no_such_package"),
        (["--packages", "textwrap"], "need 4 or more"),
    ],
)
def test_bench_consolidation_rejects_bad_flags_before_loading_a_model(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "consolidation", "--out", str(tmp_path), *flags]) == 2
    assert named in capsys.readouterr().err


def test_agent_benches_reject_a_missing_data_set_or_source_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "intent-stream", "--out", str(tmp_path), "--data", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.csv").write_text("query,label\nhi,greet\n")
    (bad / "test.csv").write_text("query,label\nhi,greet\n")
    assert main(["bench", "intent-stream", "--out", str(tmp_path), "--data", str(bad)]) == 2
    assert "text,category" in capsys.readouterr().err
    assert main(["bench", "code-completion", "--out", str(tmp_path), "--source", str(tmp_path / "none")]) == 2
    assert "no source directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "code-completion", "--out", str(tmp_path), "--objective", "silence"])
    assert exit_.value.code == 2
