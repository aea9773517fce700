"""The README's example runs as written, and its commands are the ones CI runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("section", ["First example", "The parts underneath"])
def test_readme_example_runs(section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"## {section}\n\n(?:[^`]*\n)?```python\n(.*?)```", text, re.S)
    assert match, f"README has no Python example under '## {section}'"
    code = match.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 20
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "experience.db").exists()


def test_the_first_example_is_the_first_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = readme.index("```python")
    assert readme.index("## First example") < first, "the small API must be the first Python a reader meets"
    assert "from lifelong import " in readme[first : first + 200]


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"^((?:\(command -v .*\) && )?python3 -m venv .*)$", readme, re.M)
    assert len(commands) == 2, "README must open with the two set-up commands"
    for command in commands:
        head = command.split(" && lifelong demo")[0]
        assert head in ci, f"CI does not run: {head}"
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


@pytest.mark.parametrize("page", ["learners.md", "ella.md", "recsys.md", "agents.md", "weights.md"])
def test_docs_examples_run(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, f"docs/{page} has no Python example"
    if "landmine" in blocks[0] and not (ROOT.parent / "shared" / "data" / "landmine").is_dir():
        pytest.skip("the land mine data is not beside the checkout")
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    for n, code in enumerate(blocks):  # in order, one namespace: a later example may build on an earlier
        exec(compile(code, f"{page} (example {n + 1})", "exec"), namespace)
