"""Code completion: a simulated developer writes the files of a real codebase, top to bottom.

At sampled line starts (the cursor after the line's indentation) the agent suggests the rest of the line
or abstains (action None). The developer accepts iff the suggestion equals the true line up to
whitespace, rejects it otherwise, and then types the true line — a correction the agent sees. Rewards
follow Cursor Tab's online RL: +0.75 for an accepted suggestion, -0.25 for a rejected one, 0 for
staying silent. The step info carries ``accepted`` (None when abstaining), ``correct_action`` (the rest
of the true line), ``chars_saved`` and ``pattern`` (the whitespace-normalised line, to count repeated
errors on the same line pattern).

``style`` rewrites every file before the developer writes it — a simulated developer with their own
conventions (:mod:`lifelong.envs.code_styles`: camelCase names, other quotes), applied to the same code.

The default codebase is a few packages of Python's own standard library, found at run time on any
machine (:func:`stdlib_files`); any directory or git checkout can be given instead.

>>> env = CodeCompletion.from_stdlib(["json"], rate=1.0, limit=3)
>>> observation, info = env.reset(seed=0)
>>> sorted(observation)
['context', 'indent', 'path', 'query']
>>> _, reward, done, _, info = env.step(None)
>>> reward, info["accepted"]
(0.0, None)
"""

from __future__ import annotations

import os.path
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.envs.base import Env, StepResult
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import Scope
from lifelong.utils.text import normalise
from lifelong.utils.validation import check_scalar

__all__ = ["CodeCompletion", "normalise", "observation_of", "source_files", "stdlib_files"]

ACCEPT_REWARD = 0.75
REJECT_REWARD = -0.25
DEFAULT_PACKAGES = ("json", "email", "http", "logging")


def stdlib_files(packages: Sequence[str] = DEFAULT_PACKAGES) -> list[Path]:
    """The ``.py`` files of standard-library packages (or single modules) of the running Python."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for name in packages:
        if not isinstance(name, str) or not name.isidentifier():  # "" or "../x" would leave the package
            raise InvalidInput(
                f"must be standard-library package or module names, got {name!r}", field="packages"
            )
        package, module = root / name, root / f"{name}.py"
        if package.is_dir():
            files += sorted(p for p in package.rglob("*.py") if "test" not in p.relative_to(root).parts[1:])
        elif module.is_file():
            files.append(module)
        else:
            raise NotFound(f"no standard-library package or module {name!r} under {root}")
    return files


def source_files(path: str | Path) -> list[Path]:
    """The ``.py`` files under a directory (or git checkout), sorted; a single file is itself."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise NotFound(f"no source directory at {root}: give a directory or git checkout with .py files")
    skip = {".git", ".venv"}  # inside the tree: a package that itself lives in a venv is still read
    files = sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))
    if not files:
        raise NotFound(f"no .py files under {root}")
    return files


@dataclass(frozen=True, slots=True)
class Request:
    """One sampled line start: which file, which line."""

    file: int
    line: int


class CodeCompletion(Env[dict[str, str], str | None]):
    """See the module docstring. ``rate`` is the chance a non-blank line becomes a request."""

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        rate: float = 0.25,
        limit: int | None = None,
        context_lines: int = 40,
        query_lines: int = 2,
        min_chars: int = 2,
        shuffle_files: bool = False,
        scope: Scope | None = None,
        root: str | Path | None = None,
        style: Callable[[Sequence[str]], list[str]] | None = None,
    ) -> None:
        if not files:
            raise InvalidInput("no source files given", field="files")
        check_scalar(rate, "rate", float, min_val=0, max_val=1, include_boundaries="right")
        check_scalar(limit, "limit", int, min_val=1, allow_none=True)
        self.paths = [Path(f) for f in files]
        self.root = Path(root) if root is not None else Path(_common_root(self.paths))
        self.lines: list[list[str]] = []
        for path in self.paths:
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as exc:
                raise NotFound(f"cannot read source file {path}: {exc}") from None
            styled = style(lines) if style is not None else lines
            if len(styled) != len(lines):
                raise InvalidInput("a style must keep the number of lines of a file", field="style")
            self.lines.append(styled)
        self.rate = rate
        self.limit = limit
        self.context_lines = context_lines
        self.query_lines = query_lines
        self.min_chars = min_chars
        self.shuffle_files = shuffle_files
        self.scope = scope or Scope(tenant="code", user="developer")
        self._requests: list[Request] = []
        self._t = 0

    @classmethod
    def from_stdlib(cls, packages: Sequence[str] = DEFAULT_PACKAGES, **kw: Any) -> CodeCompletion:
        files = stdlib_files(packages)
        return cls(files, root=Path(sysconfig.get_paths()["stdlib"]), **kw)

    @classmethod
    def from_path(cls, path: str | Path, **kw: Any) -> CodeCompletion:
        return cls(source_files(path), root=Path(path) if Path(path).is_dir() else Path(path).parent, **kw)

    def __len__(self) -> int:
        return len(self._requests) if self._requests else self._expected()

    def _expected(self) -> int:
        eligible = sum(self._eligible(line) for lines in self.lines for line in lines)
        n = round(eligible * self.rate)
        return min(n, self.limit) if self.limit is not None else n

    def _eligible(self, line: str) -> bool:
        return len(line.strip()) >= self.min_chars

    def reset(self, *, seed: int | None = None) -> tuple[dict[str, str], dict[str, Any]]:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.paths)) if self.shuffle_files else np.arange(len(self.paths))
        requests = [
            Request(int(f), i)
            for f in order
            for i, line in enumerate(self.lines[f])
            if self._eligible(line) and rng.random() < self.rate
        ]
        if not requests:
            raise InvalidInput("no line was sampled: raise rate or give more files", field="rate")
        self._requests = requests[: self.limit] if self.limit is not None else requests
        self._t = 0
        return self._observation(), {"scope": self.scope}

    def _observation(self) -> dict[str, str]:
        request = self._requests[self._t]
        lines = self.lines[request.file]
        before = lines[max(0, request.line - self.context_lines) : request.line]
        true = lines[request.line]
        indent = true[: len(true) - len(true.lstrip())]
        return observation_of(
            "\n".join([*before, indent]),
            self._name(request.file),
            context_lines=self.context_lines,
            query_lines=self.query_lines,
        )

    def _name(self, file: int) -> str:
        path = self.paths[file]
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name

    def step(self, action: str | None) -> StepResult:
        if not self._requests or self._t >= len(self._requests):
            raise InvalidInput("the stream has ended; call reset()", field="step")
        if action is not None and not isinstance(action, str):
            raise InvalidInput(f"must be a string or None, got {type(action).__name__}", field="action")
        request = self._requests[self._t]
        true = self.lines[request.file][request.line]
        rest = true.lstrip()
        if action is None:
            accepted, reward = None, 0.0
        else:
            accepted = normalise(action) == normalise(rest)
            reward = ACCEPT_REWARD if accepted else REJECT_REWARD
        self._t += 1
        done = self._t >= len(self._requests)
        info = {
            "accepted": accepted,
            "correct_action": rest,
            "chars_saved": len(rest) if accepted else 0,
            "pattern": normalise(rest),
            "best_reward": ACCEPT_REWARD,
            "scope": self.scope,
        }
        return (None if done else self._observation()), reward, done, False, info


def observation_of(
    before: str, path: str = "untitled", *, context_lines: int = 40, query_lines: int = 2
) -> dict[str, str]:
    r"""The observation of a completion request whose cursor follows ``before`` — the file up to the
    cursor, which stands after the current line's indentation: the path, the last ``context_lines``
    lines, the indentation, and the text it is searched by (the last ``query_lines`` non-blank lines,
    normalised, and the indentation's width). The service builds its requests' observations with it.

    >>> observation_of("def f(x):\n    y = x\n    ", "m.py")["query"]
    'def f(x): / y = x / 4>'
    """
    *lines, current = before.split("\n")
    indent = current[: len(current) - len(current.lstrip())]
    shown = lines[-context_lines:] if context_lines > 0 else []
    recent = [normalise(line) for line in shown if line.strip()][-query_lines:]
    return {
        "path": path,
        "context": "\n".join(shown),
        "indent": indent,
        "query": " / ".join(recent) + f" / {len(indent)}>" if recent else f"start of file / {len(indent)}>",
    }


def _common_root(paths: Sequence[Path]) -> str:
    return os.path.commonpath([str(p.parent) for p in paths])
