"""The package layout: imports point only downward, and no module takes part in an import cycle.

Every ``import`` in every module counts — at the top, under ``TYPE_CHECKING`` and inside functions — so
a lazy import cannot hide a cycle. Importing a package counts as importing what its ``__init__`` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lifelong

ROOT = Path(lifelong.__file__).parent

#: Lower layers first; a module may import its own layer and the ones before it, never a later one.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "files", "utils", "storage", "data"),
    ("experience",),
    ("models",),
    ("learners.base", "learners.tenancy"),
    ("learners",),
    ("state",),
    ("envs", "interop"),
    ("agents",),
    ("eval",),
    ("bench", "demo", "testing", "serve", "cli"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imported(path: Path, name: str) -> set[str]:
    """The lifelong modules ``path`` (module ``name``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


def edges() -> dict[str, set[str]]:
    direct = {name: imported(path, name) for name, path in MODULES.items()}
    resolved: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        seen: set[str] = set()
        todo = list(direct[name])
        while todo:  # a package stands for the modules its __init__ imports
            target = todo.pop()
            if target in seen:
                continue
            seen.add(target)
            if MODULES[target].name == "__init__.py":
                todo += direct[target]
        resolved[name] = {t for t in seen if MODULES[t].name != "__init__.py"}
    return resolved


def layer(name: str) -> int:
    rest = name.removeprefix("lifelong.")
    best = (-1, -1)
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (rest == prefix or rest.startswith(prefix + ".")) and len(prefix) > best[1]:
                best = (i, len(prefix))
    if best[0] < 0:
        raise AssertionError(f"{name} is in no layer of tests/test_layout.py: place it")
    return best[0]


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        if name != "lifelong":
            layer(name)


def test_imports_point_downward() -> None:
    upward = [
        f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"
        for name, targets in edges().items()
        for target in targets
        if layer(target) > layer(name)
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("family", ["recsys", "context", "experts", "multitask", "weights"])
def test_the_checker_sees_imports(family: str) -> None:
    # The graph is not empty by accident: every family's modules import the learner contract.
    graph = edges()
    assert any(
        "lifelong.learners.base" in targets
        for name, targets in graph.items()
        if name.startswith(f"lifelong.learners.{family}.")
    )


def test_the_small_api_resolves_every_name() -> None:
    for name in lifelong.__all__:
        assert getattr(lifelong, name) is not None, name
    with pytest.raises(AttributeError):
        lifelong.NoSuchThing  # noqa: B018


def test_importing_the_errors_does_not_load_the_learners() -> None:
    # The CLI and every child process import lifelong.errors first: it must stay cheap.
    import subprocess
    import sys

    code = "import sys, lifelong.errors; print('numba' in sys.modules, 'lifelong.learners' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
