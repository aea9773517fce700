"""The package layout: imports point only downward, and no module takes part in an import cycle.

Every ``import`` in every module counts — at the top, under ``TYPE_CHECKING`` and inside functions — so
a lazy import cannot hide a cycle. Importing a package counts as importing what its ``__init__`` does.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
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


# -- the log's tables are the log's business (DESIGN principle 7) ------------------------------------------

#: Modules that may write SQL on the experience log's tables: the log itself and the storage layer.
LOG_OWNERS = ("lifelong.experience", "lifelong.storage")

#: SQL words after which a table (or index) name comes. Uppercase: this code base writes SQL that way, and
#: prose ("learns from feedback") does not; a text that starts like a statement is matched in any case.
_SQL_BEFORE_NAME = (
    r"(?:FROM|JOIN|INTO|UPDATE|TABLE|INDEX|INDEXED\s+BY|REINDEX|ON|EXISTS|ANALYZE|VACUUM|TRUNCATE)"
)
_SQL_STATEMENT = re.compile(
    r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|REINDEX|ANALYZE|VACUUM|TRUNCATE)\b",
    re.IGNORECASE,
)


def log_schema() -> tuple[set[str], dict[str, set[str]]]:
    """The names the log's DDL creates or drops (tables, indexes, statistics) and each table's columns,
    read from ``_ddl`` itself, so a table added there is covered here without editing this test."""
    from lifelong.experience.log import _ddl

    names: set[str] = set()
    columns: dict[str, set[str]] = {}
    for dialect in ("sqlite", "postgresql"):
        for statement in _ddl(dialect):
            m = re.match(
                r"\s*(CREATE|DROP)\s+(TABLE|INDEX|STATISTICS)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(\w+)",
                statement,
                re.IGNORECASE,
            )
            assert m, f"a statement of the log's DDL this test cannot read: {statement[:60]!r}"
            names.add(m.group(3))
            if m.group(1).upper() == "CREATE" and m.group(2).upper() == "TABLE":
                body = statement[statement.index("(") + 1 : statement.rindex(")")]
                columns[m.group(3)] = {part.split()[0] for part in _top_level_parts(body) if part.split()} - {
                    "PRIMARY",
                    "UNIQUE",
                    "FOREIGN",
                    "CHECK",
                    "CONSTRAINT",
                }
    return names, columns


def _top_level_parts(body: str) -> list[str]:
    """A column list split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(body[start:at])
            start = at + 1
    return [*parts, body[start:]]


def _texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string a module's code builds from literals (line, text): constants, f-strings and ``+``
    chains of them, each interpolated value as ``{}``. Docstrings are prose and left out."""
    docstrings: set[int] = set()
    inner: set[int] = set()  # parts of an f-string or a + chain, read with it
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            docstrings.add(id(body[0].value))

    def render(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            inner.update(id(v) for v in node.values)
            return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = render(node.left), render(node.right)
            if left is None and right is None:
                return None
            inner.update((id(node.left), id(node.right)))
            return (left if left is not None else "{}") + (right if right is not None else "{}")
        return None

    for node in ast.walk(tree):  # outer nodes come before their parts
        if id(node) in docstrings or id(node) in inner:
            continue
        text = render(node)
        if text is not None:
            yield getattr(node, "lineno", 0), text


def log_sql(source: str) -> list[str]:
    """Where ``source`` (a module's text) names the experience log's tables in SQL: an SQL word followed
    by a table or index name of the log's DDL, a ``table.column`` of the log's, or a list or tuple of the
    log's table names (SQL assembled from names held as data)."""
    names, columns = log_schema()
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    named = re.compile(rf"\b{_SQL_BEFORE_NAME}\s+[\"`]?(?:\w+\.)?({alternatives})\b")
    named_any_case = re.compile(named.pattern, re.IGNORECASE)
    qualified = re.compile(
        "|".join(rf"\b{table}\.(?:{'|'.join(sorted(cols))})\b" for table, cols in sorted(columns.items()))
    )
    tree = ast.parse(source)
    hits = []
    for line, text in _texts(tree):
        pattern = named_any_case if _SQL_STATEMENT.match(text) else named
        for m in [*pattern.finditer(text), *qualified.finditer(text)]:
            hits.append(f"line {line}: {m.group(0)!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2:
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            if all(isinstance(v, str) and v in columns for v in values):
                hits.append(f"line {node.lineno}: the log's tables {values}")
    return hits


def test_only_the_log_writes_sql_on_its_tables() -> None:
    offenders = [
        f"{name} {hit}"
        for name, path in sorted(MODULES.items())
        if not any(name == owner or name.startswith(owner + ".") for owner in LOG_OWNERS)
        for hit in log_sql(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        "SQL on the experience log's tables outside lifelong.experience (DESIGN principle 7: read and "
        "write through ExperienceLog's methods):\n" + "\n".join(offenders)
    )


def test_the_sql_checker_sees_the_logs_own_sql() -> None:
    # Not empty by accident: the log's own module is full of what the check looks for.
    hits = log_sql(MODULES["lifelong.experience.log"].read_text(encoding="utf-8"))
    assert len(hits) >= 20
    names, columns = log_schema()
    assert {"interactions", "feedback", "lifelong_meta"} <= set(columns) <= names
    assert {"id", "tenant", "body", "seq"} <= columns["interactions"]
    assert {"interaction_id", "kind"} <= columns["feedback"]


@pytest.mark.parametrize(
    "source",
    [
        'cur.execute("SELECT MAX(seq) FROM feedback")',
        'cur.execute("SELECT tenant FROM interactions WHERE id = ?", (iid,))',
        'sql = "SELECT f.seq, i.body FROM feedback f JOIN interactions i ON i.id = f.interaction_id"',
        'cur.execute(f"SELECT 1 FROM interactions WHERE {holds} LIMIT 1")',
        'cur.execute("SELECT id FROM " + "feedback WHERE id = ?")',
        'cur.execute("DELETE FROM interactions WHERE tenant = ?", (t,))',
        'cur.execute("INSERT INTO feedback (id) VALUES (?)", (i,))',
        'cur.execute("UPDATE interactions SET body = ?")',
        'cur.execute("REINDEX feedback")',
        'cur.execute("REINDEX interactions_user_time")',
        'cur.execute("SELECT value FROM lifelong_meta")',
        "cur.execute('SELECT * FROM \"feedback\"')",
        'cur.execute("select count(*) from feedback")',
        'scan(db, ["interactions.body", "feedback.interaction_id"])',
        'scrub(db, ("interactions", "feedback"))',
        'def f():\n    """Docstring."""\n    return "SELECT id FROM feedback"',
    ],
)
def test_the_sql_checker_catches(source: str) -> None:
    assert log_sql(source), source


@pytest.mark.parametrize(
    "source",
    [
        'cur.execute("SELECT seq FROM service_events WHERE seq > ?")',
        'cur.execute("INSERT INTO service_keys (key) VALUES (?)")',
        'cur.execute("SELECT interaction_id FROM provenance")',
        'cur.execute("SELECT id FROM feedback_archive")',  # a name that only starts like the log's
        'raise NotFound("feedback refers to an interaction which is not in the log")',
        'message = "learns from feedback on interactions"',
        '@app.post("/v1/feedback", tags=["feedback"])\ndef f(): ...',
        'script = folder / "feedback.lua"',
        'def f():\n    """Reads FROM feedback JOIN interactions: a docstring is prose."""',
        'out = {"tenant": t, "interactions": n}',
    ],
)
def test_the_sql_checker_leaves_alone(source: str) -> None:
    assert not log_sql(source), log_sql(source)
