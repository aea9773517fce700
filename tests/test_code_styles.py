"""Simulated developers' conventions (lifelong.envs.code_styles) on real code, and CodeCompletion's style."""

from __future__ import annotations

import pytest

from lifelong.envs.code_completion import CodeCompletion, stdlib_files
from lifelong.envs.code_styles import STYLES, camel, quotes, style_of
from lifelong.errors import InvalidInput


def test_camel_renames_snake_case_names_only() -> None:
    lines = [
        "def parse_header(raw_value, _max_len=3):",
        "    # a comment with snake_case stays",
        "    text = 'snake_case in a string stays'",
        "    return raw_value.__class__, self._split_x, __name__, MAX_LEN",
    ]
    assert camel(lines) == [
        "def parseHeader(rawValue, _maxLen=3):",
        "    # a comment with snake_case stays",
        "    text = 'snake_case in a string stays'",
        "    return rawValue.__class__, self._splitX, __name__, MAXLEN",  # constants too: one rule
    ]


def test_quotes_swaps_only_where_no_escape_is_needed() -> None:
    lines = ["a = 'x' + \"y\"", "b = 'it\"s'", "c = r'\\d+'", 'd = """doc"""', "e = f'{v}'"]
    assert quotes(lines) == ["a = \"x\" + 'y'", "b = 'it\"s'", "c = r'\\d+'", 'd = """doc"""', 'e = f"{v}"']


@pytest.mark.parametrize("name", sorted(STYLES))
def test_every_style_keeps_the_lines_of_real_files(name: str) -> None:
    style = style_of(name)
    for path in stdlib_files(["email"])[:6]:
        lines = path.read_text(encoding="utf-8").splitlines()
        styled = style(lines)
        assert len(styled) == len(lines)
        assert [line.strip() == "" for line in styled] == [line.strip() == "" for line in lines]


def test_an_untokenizable_file_is_left_as_it_is_and_unknown_styles_are_refused() -> None:
    broken = ["def f(:", "    x_y = '"]
    assert camel(broken) == broken
    with pytest.raises(InvalidInput, match="unknown style"):
        style_of("tabs")


def test_code_completion_writes_the_files_in_the_developers_style() -> None:
    plain = CodeCompletion.from_stdlib(["email"], rate=1.0, limit=400)
    styled = CodeCompletion.from_stdlib(["email"], rate=1.0, limit=400, style=camel)
    changed = sum(
        a != b for x, y in zip(plain.lines, styled.lines, strict=True) for a, b in zip(x, y, strict=True)
    )
    assert changed > 100
    styled.reset(seed=0)
    with pytest.raises(InvalidInput, match="number of lines"):
        CodeCompletion.from_stdlib(["json"], style=lambda lines: list(lines)[1:])
