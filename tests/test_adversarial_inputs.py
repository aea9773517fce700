"""Bad input, from every door, ends in a typed error naming what is wrong; never a traceback, never accepted.

Doors: the records (constructors and ``from_dict``), the ``lifelong`` command, the data-set loaders and
the import of the compiled kernels on a read-only install. Every case is one parametrized id, so the
count of cases covered shows in the test report.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lifelong.cli import main
from lifelong.errors import InvalidInput, LifelongError, NotFound
from lifelong.experience import ExperienceLog, Feedback, FeedbackKind, Interaction, Scope, Step
from lifelong.experience.records import MAX_DEPTH, to_json_value
from lifelong.state import VersionStore


def nested(depth: int) -> list[Any]:
    """A list ``depth`` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


IX = Interaction(Scope(user="ada"), "2+2?", "4")
GOOD_FEEDBACK = Feedback.rating(IX.id, 3).to_dict()
GOOD_INTERACTION = IX.to_dict()

# -- records ------------------------------------------------------------------------------------------
RECORD_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("tenant-lone-surrogate", lambda: Scope(tenant="\ud800"), "scope.tenant"),
    ("user-lone-surrogate", lambda: Scope(user="ada\udfff"), "scope.user"),
    ("session-lone-surrogate", lambda: Scope(user="ada", session="\ud83d"), "scope.session"),
    ("tenant-nul", lambda: Scope(tenant="acme\x00"), "scope.tenant"),
    ("user-nul", lambda: Scope(user="\x00"), "scope.user"),
    ("user-newline", lambda: Scope(user="ada\nbob"), "scope.user"),
    ("user-escape", lambda: Scope(user="\x1b[31mada"), "scope.user"),
    ("user-delete", lambda: Scope(user="ada\x7f"), "scope.user"),
    ("user-c1-control", lambda: Scope(user="ada\x85"), "scope.user"),
    ("user-line-separator", lambda: Scope(user="ada\u2028"), "scope.user"),
    ("user-bidi-override", lambda: Scope(user="\u202eada"), "scope.user"),
    ("session-tab", lambda: Scope(user="ada", session="s\t1"), "scope.session"),
    ("tenant-1001-chars", lambda: Scope(tenant="t" * 1001), "scope.tenant"),
    ("user-100k-chars", lambda: Scope(user="u" * 100_000), "scope.user"),
    ("session-1001-chars", lambda: Scope(user="ada", session="s" * 1001), "scope.session"),
    ("user-not-a-string", lambda: Scope(user=42), "scope.user"),  # type: ignore[arg-type]
    ("interaction-id-nul", lambda: Interaction(Scope(), "q", id="abc\x00"), "id"),
    ("interaction-id-surrogate", lambda: Interaction(Scope(), "q", id="\ud800"), "id"),
    ("interaction-id-newline", lambda: Interaction(Scope(), "q", id="a\nb"), "id"),
    ("interaction-id-too-long", lambda: Interaction(Scope(), "q", id="x" * 1001), "id"),
    ("interaction-id-int", lambda: Interaction(Scope(), "q", id=7), "id"),  # type: ignore[arg-type]
    ("feedback-id-nul", lambda: Feedback.accept(IX.id, id="f\x00"), "id"),
    ("feedback-id-surrogate", lambda: Feedback.accept(IX.id, id="\udc00"), "id"),
    ("feedback-about-nul-id", lambda: Feedback.accept("i\x00"), "interaction_id"),
    ("feedback-about-blank-id", lambda: Feedback.accept("   "), "interaction_id"),
    ("observation-lone-surrogate", lambda: Interaction(Scope(), "a\ud800b"), "observation"),
    ("observation-surrogate-key", lambda: Interaction(Scope(), {"\udc80": 1}), "observation"),
    ("action-lone-surrogate", lambda: Interaction(Scope(), "q", "\ud800"), "action"),
    ("metadata-lone-surrogate", lambda: Interaction(Scope(), "q", metadata={"k": "\ud800"}), "metadata"),
    ("correction-lone-surrogate", lambda: Feedback.correction(IX.id, "\ud800"), "value"),
    ("outcome-lone-surrogate", lambda: Feedback.outcome(IX.id, {"x": "\ud800"}), "value"),
    ("observation-100k-deep", lambda: Interaction(Scope(), nested(100_000)), "observation"),
    ("observation-65-deep", lambda: Interaction(Scope(), nested(MAX_DEPTH + 1)), "observation"),
    ("observation-deep-dict", lambda: Interaction(Scope(), {"a": nested(200)}), "observation"),
    ("action-100k-deep", lambda: Interaction(Scope(), "q", nested(100_000)), "action"),
    ("metadata-deep", lambda: Interaction(Scope(), "q", metadata={"m": nested(100)}), "metadata"),
    ("outcome-100k-deep", lambda: Feedback.outcome(IX.id, nested(100_000)), "value"),
    ("observation-inf", lambda: Interaction(Scope(), {"x": math.inf}), "observation"),
    ("observation-numpy-nan", lambda: Interaction(Scope(), np.array([1.0, np.nan])), "observation"),
    ("rating-scale-3-values", lambda: Feedback.rating(IX.id, 3, scale=(1, 3, 5)), "scale"),  # type: ignore[arg-type]
    ("rating-scale-1-value", lambda: Feedback.rating(IX.id, 3, scale=(5,)), "scale"),  # type: ignore[arg-type]
    ("rating-scale-number", lambda: Feedback.rating(IX.id, 3, scale=5), "scale"),  # type: ignore[arg-type]
    ("rating-scale-string", lambda: Feedback.rating(IX.id, 3, scale="15"), "scale"),  # type: ignore[arg-type]
    ("rating-scale-equal", lambda: Feedback.rating(IX.id, 3, scale=(3, 3)), "scale"),
    ("rating-scale-decreasing", lambda: Feedback.rating(IX.id, 3, scale=(5, 1)), "scale"),
    ("rating-scale-nan", lambda: Feedback.rating(IX.id, 3, scale=(math.nan, 5)), "scale"),
    ("rating-scale-inf", lambda: Feedback.rating(IX.id, 3, scale=(1, math.inf)), "scale"),
    ("rating-scale-bools", lambda: Feedback.rating(IX.id, 1, scale=(False, True)), "scale"),
    ("rating-nan", lambda: Feedback.rating(IX.id, math.nan), "value"),
    ("reward-nan", lambda: Feedback.reward(IX.id, math.nan), "value"),
    ("reward-inf", lambda: Feedback.reward(IX.id, -math.inf), "value"),
    ("reward-numpy-nan", lambda: Feedback.reward(IX.id, np.float64("nan")), "value"),
    ("reward-numpy-array", lambda: Feedback.reward(IX.id, np.array([1.0, 2.0])), "value"),
    ("reward-huge-int", lambda: Feedback.reward(IX.id, 10**400), "value"),
    ("reward-none", lambda: Feedback.reward(IX.id, None), "value"),  # type: ignore[arg-type]
    ("correction-empty", lambda: Feedback.correction(IX.id, ""), "value"),
    ("correction-spaces", lambda: Feedback.correction(IX.id, "   "), "value"),
    ("correction-newlines", lambda: Feedback.correction(IX.id, "\n\t\n"), "value"),
    ("outcome-blank", lambda: Feedback.outcome(IX.id, " "), "value"),
    ("interaction-time-nan", lambda: Interaction(Scope(), "q", time=math.nan), "time"),
    ("interaction-time-inf", lambda: Interaction(Scope(), "q", time=math.inf), "time"),
    ("interaction-time-negative", lambda: Interaction(Scope(), "q", time=-1.0), "time"),
    ("interaction-time-milliseconds", lambda: Interaction(Scope(), "q", time=1.7e12), "time"),
    ("interaction-time-huge-int", lambda: Interaction(Scope(), "q", time=10**400), "time"),
    ("interaction-time-string", lambda: Interaction(Scope(), "q", time="now"), "time"),  # type: ignore[arg-type]
    ("feedback-time-nan", lambda: Feedback.accept(IX.id, time=math.nan), "time"),
    ("feedback-time-negative", lambda: Feedback.reward(IX.id, 1.0, time=-5), "time"),
    ("feedback-time-inf", lambda: Feedback.reject(IX.id, time=math.inf), "time"),
    ("feedback-kind-list", lambda: Feedback(IX.id, ["reward"]), "kind"),  # type: ignore[arg-type]
    ("feedback-kind-none", lambda: Feedback(IX.id, None), "kind"),  # type: ignore[arg-type]
    ("versions-blank-learner", lambda: Interaction(Scope(), "q", versions={"": 1}), "versions"),
    ("versions-nul-learner", lambda: Interaction(Scope(), "q", versions={"m\x00": 1}), "versions"),
    ("versions-float", lambda: Interaction(Scope(), "q", versions={"m": 1.5}), "versions"),
    ("versions-list", lambda: Interaction(Scope(), "q", versions=[1]), "versions"),  # type: ignore[arg-type]
    ("metadata-list", lambda: Interaction(Scope(), "q", metadata=[("k", 1)]), "metadata"),  # type: ignore[arg-type]
    ("step-interaction-str", lambda: Step("not an interaction"), "interaction"),  # type: ignore[arg-type]
    ("step-interaction-dict", lambda: Step(IX.to_dict()), "interaction"),  # type: ignore[arg-type]
    ("step-feedback-single", lambda: Step(IX, Feedback.accept(IX.id)), "feedback"),  # type: ignore[arg-type]
    ("step-feedback-int", lambda: Step(IX, 3), "feedback"),  # type: ignore[arg-type]
    ("step-feedback-dicts", lambda: Step(IX, (Feedback.accept(IX.id).to_dict(),)), "feedback"),  # type: ignore[arg-type]
    ("step-last-unknown-kind", lambda: Step(IX).last("like"), "kind"),
]


@pytest.mark.parametrize(("make", "field"), [c[1:] for c in RECORD_CASES], ids=[c[0] for c in RECORD_CASES])
def test_bad_records_raise_invalid_input_naming_the_field(make: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ") and len(str(info.value)) < 300


FROM_DICT_CASES: list[tuple[str, Callable[[Any], object], Any]] = [
    ("scope-list", Scope.from_dict, ["acme", "ada"]),
    ("scope-string", Scope.from_dict, "ada"),
    ("scope-none", Scope.from_dict, None),
    ("scope-unknown-key", Scope.from_dict, {"tenant": "acme", "usr": "ada"}),
    ("interaction-list", Interaction.from_dict, [GOOD_INTERACTION]),
    ("interaction-none", Interaction.from_dict, None),
    ("interaction-empty", Interaction.from_dict, {}),
    (
        "interaction-missing-id",
        Interaction.from_dict,
        {k: v for k, v in GOOD_INTERACTION.items() if k != "id"},
    ),
    (
        "interaction-missing-time",
        Interaction.from_dict,
        {k: v for k, v in GOOD_INTERACTION.items() if k != "time"},
    ),
    ("interaction-extra-nesting", Interaction.from_dict, {"interaction": GOOD_INTERACTION}),
    ("interaction-unknown-key", Interaction.from_dict, {**GOOD_INTERACTION, "metdata": {}}),
    ("interaction-scope-list", Interaction.from_dict, {**GOOD_INTERACTION, "scope": ["default"]}),
    ("interaction-scope-string", Interaction.from_dict, {**GOOD_INTERACTION, "scope": "default"}),
    ("interaction-scope-nul-user", Interaction.from_dict, {**GOOD_INTERACTION, "scope": {"user": "\x00"}}),
    ("interaction-versions-list", Interaction.from_dict, {**GOOD_INTERACTION, "versions": []}),
    ("interaction-metadata-zero", Interaction.from_dict, {**GOOD_INTERACTION, "metadata": 0}),
    ("interaction-time-string", Interaction.from_dict, {**GOOD_INTERACTION, "time": "1700000000"}),
    ("interaction-id-surrogate", Interaction.from_dict, {**GOOD_INTERACTION, "id": "\ud800"}),
    (
        "interaction-deep-observation",
        Interaction.from_dict,
        {**GOOD_INTERACTION, "observation": nested(10_000)},
    ),
    ("feedback-list", Feedback.from_dict, [GOOD_FEEDBACK]),
    ("feedback-int", Feedback.from_dict, 3),
    ("feedback-empty", Feedback.from_dict, {}),
    ("feedback-missing-kind", Feedback.from_dict, {k: v for k, v in GOOD_FEEDBACK.items() if k != "kind"}),
    ("feedback-unknown-key", Feedback.from_dict, {**GOOD_FEEDBACK, "valeu": 3}),
    ("feedback-scale-int", Feedback.from_dict, {**GOOD_FEEDBACK, "scale": 5}),
    ("feedback-scale-3-values", Feedback.from_dict, {**GOOD_FEEDBACK, "scale": [1, 3, 5]}),
    ("feedback-scale-string", Feedback.from_dict, {**GOOD_FEEDBACK, "scale": "15"}),
    ("feedback-scale-dict", Feedback.from_dict, {**GOOD_FEEDBACK, "scale": {"lo": 1, "hi": 5}}),
    ("feedback-scale-strings", Feedback.from_dict, {**GOOD_FEEDBACK, "scale": ["1", "5"]}),
    ("feedback-kind-int", Feedback.from_dict, {**GOOD_FEEDBACK, "kind": 1}),
    ("feedback-metadata-list", Feedback.from_dict, {**GOOD_FEEDBACK, "metadata": [1]}),
    ("feedback-time-negative", Feedback.from_dict, {**GOOD_FEEDBACK, "time": -1}),
    ("step-list", Step.from_dict, [GOOD_INTERACTION]),
    ("step-string", Step.from_dict, "{}"),
    ("step-feedback-dict", Step.from_dict, {**GOOD_INTERACTION, "feedback": GOOD_FEEDBACK}),
    ("step-feedback-strings", Step.from_dict, {**GOOD_INTERACTION, "feedback": ["reward"]}),
    ("step-feedback-int", Step.from_dict, {**GOOD_INTERACTION, "feedback": 1}),
    (
        "step-feedback-other-interaction",
        Step.from_dict,
        {**GOOD_INTERACTION, "feedback": [{**GOOD_FEEDBACK, "interaction_id": "someone-else"}]},
    ),
]


@pytest.mark.parametrize(
    ("from_dict", "data"), [c[1:] for c in FROM_DICT_CASES], ids=[c[0] for c in FROM_DICT_CASES]
)
def test_from_dict_of_wrong_shapes_raises_invalid_input(
    from_dict: Callable[[Any], object], data: Any
) -> None:
    with pytest.raises(InvalidInput) as info:  # never KeyError, TypeError or AttributeError
        from_dict(data)
    assert info.value.field


def test_good_values_near_the_limits_are_still_accepted() -> None:
    """The checks refuse nonsense, not unusual but valid input."""
    scope = Scope("界", "José", "👩‍💻 session")  # non-ASCII, emoji with a zero-width joiner
    i = Interaction(scope, {"code": "a\x00b\tc\n", "deep": nested(MAX_DEPTH - 1)}, "[" * 500, time=0)
    assert Interaction.from_dict(json.loads(json.dumps(i.to_dict()))) == i
    assert Scope(user="u" * 256).user == "u" * 256
    assert Feedback.rating(i.id, -1, scale=(-2, 2)).value == -1.0
    assert Feedback.reward(i.id, np.float32(0.5)).value == 0.5
    assert Feedback.correction(i.id, " 4 ").value == " 4 "
    assert Feedback.from_dict({**Feedback.accept(i.id).to_dict(), "metadata": None}).metadata == {}
    assert to_json_value(np.arange(6).reshape(2, 3), "x") == [[0, 1, 2], [3, 4, 5]]
    big = np.zeros((500, 2))  # many brackets, shallow: the depth check must not refuse it
    assert len(Interaction(Scope(), big).observation) == 500
    assert Step(i).last(FeedbackKind.REWARD) is None


# -- the command line ---------------------------------------------------------------------------------
@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a small log (log.db), a version store (store.db) and files that are not databases."""
    monkeypatch.chdir(tmp_path)
    with ExperienceLog("log.db") as log:
        for user in ("ada", "bob"):
            i = Interaction(Scope(user=user), "q", "a", time=1000.0)
            log.append_many([i, Feedback.reward(i.id, 1.0, time=1001.0)])
    from lifelong.learners import OnlineSoftmax

    store, model = VersionStore("store.db"), OnlineSoftmax()
    i = Interaction(Scope(user="ada"), "card stolen")
    model.learn(Step(i, (Feedback.correction(i.id, "card_lost"),)))
    store.commit(model, message="v1")
    store.close()
    Path("text.db").write_text("hello\n" * 100)
    Path("empty.db").write_bytes(b"")
    damaged = bytearray(Path("log.db").read_bytes())
    damaged[100:] = b"\xab" * (len(damaged) - 100)
    Path("damaged.db").write_bytes(bytes(damaged))
    Path("truncated.db").write_bytes(Path("log.db").read_bytes()[:150])
    Path("adir").mkdir()
    foreign = sqlite3.connect("foreign.db")  # another program's database
    foreign.execute("CREATE TABLE t (x)")
    foreign.commit()
    foreign.close()
    return tmp_path


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``lifelong ARGS`` run in this process (argparse errors included)."""
    try:
        code = main(args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def listing(folder: Path) -> list[tuple[str, str]]:
    """Every file and folder with a digest of its bytes: what "nothing written" compares."""
    return sorted(
        (str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
        for p in folder.rglob("*")
    )


CLI_CASES: list[tuple[Any, ...]] = [  # id, arguments, what the error names[, a mark]
    ("export-since-nan", ["log", "export", "log.db", "--out", "o.jsonl", "--since", "nan"], "--since"),
    ("export-until-inf", ["log", "export", "log.db", "--out", "o.jsonl", "--until", "inf"], "--until"),
    ("export-since-minus-inf", ["log", "export", "log.db", "--out", "o.jsonl", "--since", "-inf"], "--since"),
    ("export-since-negative", ["log", "export", "log.db", "--out", "o.jsonl", "--since", "-1"], "--since"),
    ("export-since-word", ["log", "export", "log.db", "--out", "o.jsonl", "--since", "yesterday"], "--since"),
    (
        "export-since-after-until",
        ["log", "export", "log.db", "--out", "o.jsonl", "--since", "2000", "--until", "1000"],
        "--since",
    ),
    (
        "export-since-equals-until",
        ["log", "export", "log.db", "--out", "o.jsonl", "--since", "1000", "--until", "1000"],
        "--since",
    ),
    ("export-out-is-a-directory", ["log", "export", "log.db", "--out", "adir"], "--out"),
    ("export-out-is-cwd", ["log", "export", "log.db", "--out", "."], "--out"),
    ("export-out-missing-directory", ["log", "export", "log.db", "--out", "nodir/o.jsonl"], "--out"),
    ("export-out-is-the-log", ["log", "export", "log.db", "--out", "log.db"], "--out"),
    ("export-user-nul", ["log", "export", "log.db", "--out", "o.jsonl", "--user", "a\x00"], "--user"),
    (
        "export-session-without-user",
        ["log", "export", "log.db", "--out", "o.jsonl", "--session", "s"],
        "--session",
    ),
    ("stats-typo-path", ["log", "stats", "lgo.db"], "no such log file"),
    ("stats-typo-sqlite-url", ["log", "stats", "sqlite:///lgo.db"], "no such log file"),
    ("export-typo-path", ["log", "export", "lgo.db", "--out", "o.jsonl"], "no such log file"),
    ("stats-text-file", ["log", "stats", "text.db"], "not a SQLite database"),
    ("stats-damaged", ["log", "stats", "damaged.db"], "damaged"),
    ("stats-truncated", ["log", "stats", "truncated.db"], "damaged"),
    ("stats-directory", ["log", "stats", "adir"], "directory"),
    ("stats-user-too-long", ["log", "stats", "log.db", "--user", "u" * 1001], "--user"),
    ("stats-tenant-blank", ["log", "stats", "log.db", "--tenant", "  "], "--tenant"),
    ("export-damaged", ["log", "export", "damaged.db", "--out", "o.jsonl"], "damaged"),
    ("import-into-damaged", ["log", "import", "damaged.db", "log.db"], "damaged"),
    ("import-into-text-file", ["log", "import", "text.db", "log.db"], "not a SQLite database"),
    ("import-a-database", ["log", "import", "new.db", "log.db"], "log.db"),
    ("state-list-typo", ["state", "list", "stroe.db", "OnlineSoftmax"], "no such version store file"),
    (
        "state-diff-typo",
        ["state", "diff", "stroe.db", "OnlineSoftmax", "1", "2"],
        "no such version store file",
    ),
    ("state-derived-typo", ["state", "derived", "stroe.db", "--user", "ada"], "no such version store file"),
    (
        "state-promote-typo",
        ["state", "promote", "stroe.db", "OnlineSoftmax", "1"],
        "no such version store file",
    ),
    ("state-rollback-typo", ["state", "rollback", "stroe.db", "OnlineSoftmax"], "no such version store file"),
    ("state-list-on-a-log", ["state", "list", "log.db", "OnlineSoftmax"], "holds no version store"),
    (
        "state-promote-on-a-log",
        ["state", "promote", "log.db", "OnlineSoftmax", "1"],
        "holds no version store",
    ),
    ("state-list-foreign-sqlite", ["state", "list", "foreign.db", "X"], "holds no version store"),
    ("state-derived-empty-file", ["state", "derived", "empty.db", "--user", "ada"], "holds no version store"),
    ("stats-foreign-sqlite", ["log", "stats", "foreign.db"], "holds no experience log"),
    (
        "export-foreign-sqlite",
        ["log", "export", "foreign.db", "--out", "o.jsonl"],
        "holds no experience log",
    ),
    ("stats-empty-file", ["log", "stats", "empty.db"], "holds no experience log"),
    ("state-list-text-file", ["state", "list", "text.db", "OnlineSoftmax"], "not a SQLite database"),
    ("state-list-damaged", ["state", "list", "damaged.db", "OnlineSoftmax"], "damaged"),
    ("state-list-truncated", ["state", "list", "truncated.db", "OnlineSoftmax"], "damaged"),
    ("state-promote-damaged", ["state", "promote", "damaged.db", "OnlineSoftmax", "1"], "damaged"),
    ("state-promote-missing-version", ["state", "promote", "store.db", "OnlineSoftmax", "7"], "no version 7"),
    ("state-promote-unknown-learner", ["state", "promote", "store.db", "Nobody", "1"], "Nobody"),
    ("state-promote-version-0", ["state", "promote", "store.db", "OnlineSoftmax", "0"], "version"),
    ("state-promote-version-word", ["state", "promote", "store.db", "OnlineSoftmax", "latest"], "version"),
    (
        "state-rollback-missing-version",
        ["state", "rollback", "store.db", "OnlineSoftmax", "--to", "7"],
        "OnlineSoftmax",
    ),
    ("state-rollback-to-negative", ["state", "rollback", "store.db", "OnlineSoftmax", "--to", "-1"], "--to"),
    ("state-diff-missing-version", ["state", "diff", "store.db", "OnlineSoftmax", "1", "9"], "9"),
    ("state-diff-version-0", ["state", "diff", "store.db", "OnlineSoftmax", "0", "1"], "argument a"),
    ("state-derived-user-blank", ["state", "derived", "store.db", "--user", " "], "--user"),
    ("state-derived-user-control", ["state", "derived", "store.db", "--user", "a\x1b"], "--user"),
    ("bench-seeds-0", ["bench", "intent-linear", "--out", "b", "--seeds", "0"], "--seeds"),
    ("bench-seeds-negative", ["bench", "intent-linear", "--out", "b", "--seeds", "-3"], "--seeds"),
    ("bench-seeds-float", ["bench", "intent-linear", "--out", "b", "--seeds", "1.5"], "--seeds"),
    ("bench-steps-minus-1", ["bench", "intent-linear", "--out", "b", "--steps", "-1"], "--steps"),
    ("bench-steps-0", ["bench", "intent-linear", "--out", "b", "--steps", "0"], "--steps"),
    (
        "bench-ablation-steps-0",
        ["bench", "intent-stream", "--out", "b", "--ablation-steps", "0"],
        "--ablation-steps",
    ),
    ("bench-out-is-a-file", ["bench", "intent-linear", "--out", "log.db"], "--out"),
    ("bench-out-empty", ["bench", "intent-linear", "--out", ""], "--out"),
    ("bench-data-empty", ["bench", "intent-linear", "--out", "b", "--data", ""], "--data"),
    ("bench-packages-empty", ["bench", "code-completion", "--out", "b", "--packages", ""], "--packages"),
    (
        "bench-packages-blank-name",
        ["bench", "code-completion", "--out", "b", "--packages", "json,,email"],
        "--packages",
    ),
    ("bench-variants-empty", ["bench", "weights", "--out", "b", "--variants", ""], "--variants"),
    ("demo-requests-0", ["demo", "--requests", "0"], "--requests"),
    ("demo-requests-negative", ["demo", "--requests", "-5"], "--requests"),
    ("demo-seed-negative", ["demo", "--seed", "-1"], "--seed"),
    ("demo-out-is-a-file", ["demo", "--out", "log.db"], "--out"),
    ("demo-data-empty", ["demo", "--data", ""], "--data"),
    ("demo-data-missing", ["demo", "--data", "no/such/folder", "--out", "o"], "no/such/folder"),
]


@pytest.mark.parametrize(
    ("args", "named"), [pytest.param(c[1], c[2], id=c[0], marks=c[3:]) for c in CLI_CASES]
)
def test_cli_refuses_bad_arguments_with_exit_2_and_writes_nothing(
    args: list[str], named: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = listing(workdir)
    code, err = cli(args, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert named in last, err
    if err.startswith("lifelong: error:"):  # our own errors are one line; argparse's add its usage
        assert len(err.strip().splitlines()) == 1
    assert listing(workdir) == before  # no output file, no new empty database, no -wal/-shm


SUBPROCESS_CASES: list[tuple[str, list[str], str]] = [
    ("since-nan", ["log", "export", "log.db", "--out", "o.jsonl", "--since", "nan"], "--since"),
    ("out-is-a-directory", ["log", "export", "log.db", "--out", "adir"], "--out"),
    ("typo-log", ["log", "stats", "lgo.db"], "no such log file"),
    ("damaged-log", ["log", "stats", "damaged.db"], "damaged"),
    ("typo-store", ["state", "list", "stroe.db", "OnlineSoftmax"], "no such version store file"),
    ("missing-version", ["state", "promote", "store.db", "OnlineSoftmax", "7"], "no version 7"),
    ("seeds-0", ["bench", "intent-linear", "--out", "b", "--seeds", "0"], "--seeds"),
]


@pytest.mark.parametrize(
    ("args", "named"), [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES]
)
def test_cli_errors_in_a_real_process_exit_2_without_a_traceback(
    args: list[str], named: str, workdir: Path
) -> None:
    before = listing(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "lifelong.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]
    assert listing(workdir) == before


def test_the_console_script_exits_2_on_a_typo_path(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("lifelong")
    result = subprocess.run(
        [str(script), "state", "diff", "nope.db", "X", "1", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("lifelong: error: no such version store file")
    assert list(tmp_path.iterdir()) == []


def test_reads_on_good_files_still_work(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "export", "log.db", "--out", "o.jsonl", "--since", "0", "--until", "5000"]) == 0
    assert len(Path("o.jsonl").read_text().splitlines()) == 2
    assert main(["log", "export", "sqlite:///log.db", "--out", "o.jsonl", "--user", "ada"]) == 0
    assert len(Path("o.jsonl").read_text().splitlines()) == 1
    assert main(["state", "promote", "store.db", "OnlineSoftmax", "1"]) == 2  # no gate, no override
    assert main(["state", "promote", "store.db", "OnlineSoftmax", "1", "--override", "smoke test"]) == 0
    assert main(["state", "derived", "store.db", "--user", "ada"]) == 0
    assert "1 learned item(s)" in capsys.readouterr().out


# -- data loaders -------------------------------------------------------------------------------------
GOOD_CSV = "text,category\nmy card is lost,card_lost\nwhere is my money,transfer\n"

BANKING_CASES: list[tuple[str, dict[str, str | bytes], type[LifelongError], list[str]]] = [
    ("missing-folder", {}, NotFound, ["banking77", "BANKING77"]),
    ("missing-test-csv", {"train.csv": GOOD_CSV}, NotFound, ["test.csv", "BANKING77"]),
    (
        "empty-train-csv",
        {"train.csv": "", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "empty", "BANKING77"],
    ),
    (
        "header-only",
        {"train.csv": "text,category\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "no rows"],
    ),
    (
        "missing-column",
        {"train.csv": "text\nhi\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "line 1", "text,category"],
    ),
    (
        "wrong-columns",
        {"train.csv": "query,label\nhi,x\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "text,category"],
    ),
    (
        "short-row",
        {"train.csv": GOOD_CSV + "only text\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "line 4", "fewer"],
    ),
    (
        "long-row",
        {"train.csv": GOOD_CSV + "a,b,c\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "line 4", "more"],
    ),
    (
        "empty-category",
        {"train.csv": GOOD_CSV, "test.csv": GOOD_CSV + "hello,\n"},
        InvalidInput,
        ["test.csv", "line 4", "empty"],
    ),
    (
        "nul-byte",
        {"train.csv": GOOD_CSV + "a\x00b,c\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "line 4"],
    ),
    (
        "not-utf8",
        {"train.csv": b"text,category\n\xff\xfe,x\n", "test.csv": GOOD_CSV},
        InvalidInput,
        ["train.csv", "UTF-8"],
    ),
    ("csv-is-a-directory", {"train.csv/x": "", "test.csv": GOOD_CSV}, NotFound, ["train.csv"]),
    (
        "categories-not-json",
        {"categories.json": "card_lost, transfer"},
        InvalidInput,
        ["categories.json", "line 1", "JSON"],
    ),
    (
        "categories-truncated",
        {"categories.json": '["card_lost", "tra'},
        InvalidInput,
        ["categories.json", "JSON"],
    ),
    ("categories-empty-file", {"categories.json": ""}, InvalidInput, ["categories.json", "JSON"]),
    ("categories-a-string", {"categories.json": '"card_lost"'}, InvalidInput, ["categories.json", "list"]),
    ("categories-a-number", {"categories.json": "77"}, InvalidInput, ["categories.json", "list"]),
    (
        "categories-a-dict",
        {"categories.json": '{"card_lost": 1, "transfer": 2}'},
        InvalidInput,
        ["categories.json", "list"],
    ),
    ("categories-empty-list", {"categories.json": "[]"}, InvalidInput, ["categories.json", "list"]),
    ("categories-numbers", {"categories.json": "[1, 2]"}, InvalidInput, ["categories.json", "entry 0"]),
    (
        "categories-blank-name",
        {"categories.json": '["card_lost", "transfer", " "]'},
        InvalidInput,
        ["categories.json", "entry 2"],
    ),
    (
        "categories-twice",
        {"categories.json": '["card_lost", "transfer", "card_lost"]'},
        InvalidInput,
        ["categories.json", "twice"],
    ),
    (
        "categories-incomplete",
        {"categories.json": '["card_lost"]'},
        InvalidInput,
        ["categories.json", "transfer"],
    ),
    (
        "categories-deep",
        {"categories.json": "[" * 100_000 + "]" * 100_000},
        InvalidInput,
        ["categories.json"],
    ),
    ("categories-not-utf8", {"categories.json": b'["\xff"]'}, InvalidInput, ["categories.json", "UTF-8"]),
]


def write_files(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "error", "words"), [c[1:] for c in BANKING_CASES], ids=[c[0] for c in BANKING_CASES]
)
def test_banking77_loader_names_the_file_and_the_source(
    files: dict[str, str | bytes], error: type[LifelongError], words: list[str], tmp_path: Path
) -> None:
    from lifelong.data import load_banking77

    folder = tmp_path / "banking77"
    if files:
        folder.mkdir()
        base: dict[str, str | bytes] = {"train.csv": GOOD_CSV, "test.csv": GOOD_CSV}
        if "train.csv" in files or "train.csv/x" in files:
            base = {}
        write_files(folder, {**base, **files})
    with pytest.raises(error) as info:
        load_banking77(folder)
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_banking77_loader_accepts_a_well_formed_folder(tmp_path: Path) -> None:
    from lifelong.data import load_banking77

    write_files(
        tmp_path,
        {
            "train.csv": GOOD_CSV + '"a text, with a comma",card_lost\n',
            "test.csv": GOOD_CSV,
            "categories.json": '["card_lost", "transfer", "unused"]',
        },
    )
    train, test, categories = load_banking77(tmp_path)
    assert len(train) == 3 and train.texts[2] == "a text, with a comma" and len(test) == 2
    assert categories == ["card_lost", "transfer", "unused"]


ITEM = "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"])
ITEM2 = ITEM.replace("1|Toy", "2|Toy", 1)
USER = "1|24|M|technician|85711"
MOVIELENS = {
    "u.data": "1\t1\t5\t874965758\n1\t2\t3\t874965759\n",
    "u.item": f"{ITEM}\n{ITEM2}\n",
    "u.user": f"{USER}\n",
}

MOVIELENS_CASES: list[tuple[str, dict[str, str], type[LifelongError], list[str]]] = [
    ("missing-u-user", {"u.user": ""}, NotFound, ["u.user", "MovieLens"]),
    ("empty-u-data", {"u.data": "\n"}, InvalidInput, ["u.data"]),
    ("u-data-3-fields", {"u.data": "1\t1\t5\n"}, InvalidInput, ["u.data", "line 1"]),
    ("u-data-rating-9", {"u.data": "1\t1\t9\t874965758\n"}, InvalidInput, ["u.data", "line 1"]),
    ("u-data-huge-time", {"u.data": f"1\t1\t5\t{10**30}\n"}, InvalidInput, ["u.data", "line 1"]),
    ("u-data-unknown-item", {"u.data": "1\t7\t5\t874965758\n"}, InvalidInput, ["u.item"]),
    ("u-item-flag-7", {"u.item": ITEM[:-1] + "7\n" + ITEM2 + "\n"}, InvalidInput, ["u.item", "line 1"]),
    ("u-item-twice", {"u.item": f"{ITEM}\n{ITEM}\n"}, InvalidInput, ["u.item", "line 2", "twice"]),
    ("u-item-garbage", {"u.item": "hello\n"}, InvalidInput, ["u.item", "line 1"]),
    ("u-user-negative-id", {"u.user": "-1|24|M|technician|85711\n"}, InvalidInput, ["u.user", "line 1"]),
    ("u-user-id-0", {"u.user": "0|24|M|technician|85711\n"}, InvalidInput, ["u.user", "line 1"]),
    ("u-user-twice", {"u.user": f"{USER}\n{USER}\n"}, InvalidInput, ["u.user", "line 2", "twice"]),
    ("u-user-short", {"u.user": "1|24\n"}, InvalidInput, ["u.user", "line 1"]),
]


@pytest.mark.parametrize(
    ("files", "error", "words"), [c[1:] for c in MOVIELENS_CASES], ids=[c[0] for c in MOVIELENS_CASES]
)
def test_movielens_loader_names_the_file_and_the_line(
    files: dict[str, str], error: type[LifelongError], words: list[str], tmp_path: Path
) -> None:
    from lifelong.envs.recsys import load_movielens

    contents = {**MOVIELENS, **files}
    write_files(tmp_path, {name: text for name, text in contents.items() if text})
    with pytest.raises(error) as info:
        load_movielens(tmp_path)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_movielens_loader_accepts_a_well_formed_folder(tmp_path: Path) -> None:
    from lifelong.envs.recsys import load_movielens

    write_files(tmp_path, MOVIELENS)
    data = load_movielens(tmp_path)
    assert len(data) == 2 and data.n_items == 2 and data.n_users == 1 and data.genres[1, -1] == 1


LANDMINE_CASES: list[tuple[str, bytes | None, type[LifelongError]]] = [
    ("missing", None, NotFound),
    ("empty", b"", InvalidInput),
    ("text", b"hello world\n" * 20, InvalidInput),
    ("truncated", b"MATLAB 5.0 MAT-file" + b"\x00" * 200, InvalidInput),
]


@pytest.mark.parametrize(
    ("content", "error"), [c[1:] for c in LANDMINE_CASES], ids=[c[0] for c in LANDMINE_CASES]
)
def test_landmine_loader_refuses_files_that_are_not_the_data(
    content: bytes | None, error: type[LifelongError], tmp_path: Path
) -> None:
    from lifelong.learners.multitask.data import load_landmine

    if content is not None:
        (tmp_path / "landminedata.mat").write_bytes(content)
    with pytest.raises(error) as info:
        load_landmine(tmp_path)
    assert "landminedata.mat" in str(info.value) and "Land mine" in str(info.value)


def test_landmine_loader_refuses_a_mat_file_with_other_variables(tmp_path: Path) -> None:
    from scipy.io import savemat

    from lifelong.learners.multitask.data import load_landmine

    savemat(tmp_path / "landminedata.mat", {"something": np.zeros((2, 2))})
    with pytest.raises(InvalidInput, match=r"landminedata\.mat"):
        load_landmine(tmp_path)


def test_a_bad_data_folder_through_the_cli_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_files(tmp_path / "bad", {"train.csv": GOOD_CSV, "test.csv": GOOD_CSV, "categories.json": "[oops"})
    code, err = cli(
        ["bench", "intent-linear", "--out", str(tmp_path / "o"), "--data", str(tmp_path / "bad")], capsys
    )
    assert code == 2 and "categories.json" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


# -- compiled kernels on a read-only install ----------------------------------------------------------
def test_numba_cache_dir_falls_back_to_a_temporary_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.learners.recsys import _kernels

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(os, "access", lambda *args, **kw: False)  # nothing writable
    folder = _kernels.numba_cache_dir()
    assert folder and Path(folder).is_dir()
    shutil.rmtree(folder)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere/chosen")
    assert _kernels.numba_cache_dir() is None  # the user's choice wins


def test_numba_cache_dir_compiles_uncached_when_no_folder_is_writable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    from lifelong.learners.recsys import _kernels

    def no_temp(*args: Any, **kw: Any) -> str:
        raise PermissionError("read-only /tmp")

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(os, "access", lambda *args, **kw: False)
    monkeypatch.setattr(tempfile, "mkdtemp", no_temp)
    assert _kernels.numba_cache_dir() == ""


def test_numba_cache_dir_leaves_a_writable_install_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.learners.recsys import _kernels

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(os, "access", lambda *args, **kw: True)
    assert _kernels.numba_cache_dir() is None


def test_the_cli_imports_and_runs_from_a_read_only_install_without_a_home(tmp_path: Path) -> None:
    """numba's cache=True found no writable place and failed at import; every command crashed."""
    import lifelong

    site = tmp_path / "site"
    shutil.copytree(
        Path(lifelong.__file__).parent, site / "lifelong", ignore=shutil.ignore_patterns("__pycache__")
    )
    (site / "lifelong" / "learners" / "__pycache__").write_text(
        ""
    )  # a file: no cache can go there, even as root
    (tmp_path / "blocker").write_text("")  # HOME below a file: no ~/.cache, even as root
    for path in sorted(site.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "blocker" / "home"), PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    code = (
        "import lifelong, lifelong.cli, numpy as np\n"
        f"assert lifelong.__file__.startswith({str(site)!r}), lifelong.__file__\n"
        "from lifelong.learners.recsys._kernels import _adagrad_scalar\n"
        "v = np.zeros(2); _adagrad_scalar(v, np.zeros(2), 1, 0.5, 0.1); assert v[1] < 0\n"
        "try:\n    lifelong.cli.main(['--version'])\nexcept SystemExit as e:\n    raise SystemExit(e.code)\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
        )
    finally:
        for path in site.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("lifelong ") and "Traceback" not in result.stderr
