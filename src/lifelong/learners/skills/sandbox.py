"""The restricted interpreter skill programs run in: untrusted code that fails, never crashes its caller.

A skill is a small Python module of functions over a game's primitives (``approach('tree')``,
``act('do')``, ``inventory()``), written by a language model or a search procedure, so it is untrusted.
:meth:`Sandbox.compile` checks it with RestrictedPython's policy (``compile_restricted``), extended by a
few rules of its own, and :meth:`Sandbox.run` calls one of its functions against an API of callables.
Whatever the skill does — raise, loop, break a rule — the run returns a :class:`SkillRun` whose
``error`` is one line (``"ZeroDivisionError: division by zero (line 3)"``) that goes back to the
proposer. Only what comes from outside the skill propagates: :class:`KeyboardInterrupt`,
:class:`SystemExit`, any other :class:`BaseException` skill code cannot name — which is how an API
stops a skill (the game interrupts it): skill code cannot catch it, and the caller of ``run`` gets it.

What the skill sees: the API callables by name; ``len range min max abs sum sorted enumerate zip list
dict tuple set str int float bool isinstance any all round reversed``; the common exception classes
(to catch and raise); ``print`` (its output is discarded, or read back with RestrictedPython's
``printed``). Nothing else: no ``import``, ``open``, ``eval``/``exec``/``compile``, ``getattr``,
``globals``/``vars``, ``type``, no name or attribute starting with ``_``, no frame or code attributes
(``gi_frame``, ``f_back``, …), no ``str.format`` (RestrictedPython's ``safer_getattr``). At the top
level a skill only defines functions (no docstring, assignment or other statement), and it may define
no classes and use no ``with`` (there is nothing for it to manage), so every way back into its code is
one this module guards. RestrictedPython also refuses ``nonlocal``, ``match``, ``async`` and augmented
assignment to attributes and slices; ``d[k] += v`` is allowed here (``k`` and ``d`` evaluated once).

Budgets. A :func:`sys.settrace` hook counts the lines executed in skill frames only (other frames are
not traced, so library code runs at full speed) and checks the wall clock on each; past ``max_lines``
or ``timeout_s`` it raises :class:`BudgetExceeded`, a :class:`BaseException` that skill code cannot
catch: every ``except`` clause goes through a guard that accepts only subclasses of ``Exception`` and
re-raises the budget error once it is spent (a bare ``except:`` means ``except Exception:``), every
``finally`` block and every loop iteration starts with the same check (CPython 3.11 emits no line event
for a loop that jumps to itself, such as ``while True: pass``), and so does every return from an API
call. A skill called through the API from another skill (the API callable calls :meth:`Sandbox.run`
again) shares the *outermost* run's budget; the hook is installed by the outermost run only and the
previous trace function (a debugger's, coverage's) is put back when it ends. CPython turns tracing off
when a trace function raises; the guards turn it back on.

Memory. ``+``, ``*``, ``**`` and ``<<`` (and their in-place forms) refuse results of more than
1,000,000 items or bits before computing them, ``range`` refuses more than 1,000,000 items (so no
builtin can iterate one for hours in C), and a :class:`MemoryError` is reported like any error.

Not bounded: the work done inside one call to a builtin or an API function — time is checked between
lines, so ``'x'.ljust(10**9)``, ``lst.extend(lst)`` repeated, ``'%*d' % (10**9, 1)``,
``sum([[0] * 1000] * 1000, [])`` or ``list(api_iterator_that_never_ends())`` allocate or run until
they finish (or raise MemoryError). The API is trusted: whatever its objects expose through public
attributes, the skill can use (an API should hand out plain data; a NumPy array's ``tofile`` writes
files). A skill's value must be data — no functions or iterators, which could run skill code after the
budget is gone — but skill functions the skill hands *to* the API and the API keeps are its concern:
called outside a run they fail at their first loop or ``except``, not before.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import operator
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType
from typing import Any, cast

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.transformer import (
    FORBIDDEN_FUNC_NAMES,
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

from lifelong.errors import InvalidInput
from lifelong.utils.validation import check_scalar

__all__ = ["MAX_CODE_CHARS", "BudgetExceeded", "CompiledSkill", "Sandbox", "SkillRejected", "SkillRun"]

#: The longest skill source :meth:`Sandbox.compile` accepts.
MAX_CODE_CHARS = 20_000

#: The most items a sequence result of ``+``/``*`` or a ``range`` may have, and a returned value may hold.
_MAX_ITEMS = 1_000_000
#: The most bits an int result of ``*``, ``**`` or ``<<`` may have.
_MAX_INT_BITS = 1_000_000
#: The most characters of ``print`` output a skill function keeps for ``printed``.
_MAX_PRINTED = 10_000
#: The longest error message a run reports.
_MAX_ERROR_CHARS = 300

_PREFIX = "<skill:"

#: A trace function (what :func:`sys.settrace` takes).
_Tracer = Callable[[FrameType, str, Any], Any]

_FUNCTIONS = [
    *("len", "min", "max", "abs", "sum", "sorted", "enumerate", "zip", "list", "dict", "tuple", "set"),
    *("str", "int", "float", "bool", "isinstance", "any", "all", "round", "reversed"),
]
_EXCEPTIONS = [
    *("Exception", "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError"),
    *("LookupError", "MemoryError", "NameError", "NotImplementedError", "OverflowError"),
    *("RecursionError", "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError"),
]


class SkillRejected(InvalidInput):
    """Skill code that does not compile or breaks a rule the compiler checks; the message is one line,
    ``"Kind: what (line N)"``, and ``line`` the line (None when the whole program is at fault)."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


class BudgetExceeded(BaseException):
    """The shared line or time budget of a run is spent.

    A :class:`BaseException`, so that ``except Exception`` in skill code does not swallow it.
    """


@dataclass(frozen=True, slots=True)
class SkillRun:
    """What one run of a skill function did: its value, or the one-line error that stopped it."""

    ok: bool
    value: Any
    error: str | None
    lines: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CompiledSkill:
    """Skill code that passed :meth:`Sandbox.compile`, and the top-level functions it defines."""

    name: str
    code: str
    functions: tuple[str, ...]


# ------------------------------------------------------------------------------------------- the budget


class _Budget:
    """The lines and seconds left to the outermost run of this thread, and its trace hooks."""

    def __init__(self, max_lines: int, timeout_s: float) -> None:
        self.max_lines = max_lines
        self.timeout_s = timeout_s
        self.deadline = time.perf_counter() + timeout_s
        self.lines = 0
        self.exceeded: str | None = None
        # Bound once, so that ``sys.gettrace() is self.on_call`` tells whether tracing is still on.
        self.on_call: _Tracer = self._on_call
        self.on_line: _Tracer = self._on_line

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> _Tracer | None:
        if not frame.f_code.co_filename.startswith(_PREFIX):
            return None  # library code: not traced, not slowed
        if self.exceeded is not None:
            raise BudgetExceeded(self.exceeded)
        return self.on_line

    def _on_line(self, frame: FrameType, event: str, arg: Any) -> _Tracer:
        if event == "line":
            self.lines += 1
            if self.exceeded is None:
                if self.lines > self.max_lines:
                    self.exceeded = f"more than {self.max_lines} lines"
                elif time.perf_counter() > self.deadline:
                    self.exceeded = f"more than {self.timeout_s:g} s"
            if self.exceeded is not None:
                raise BudgetExceeded(self.exceeded)
        return self.on_line

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if the budget is spent (the clock is read here too)."""
        if self.exceeded is None and time.perf_counter() > self.deadline:
            self.exceeded = f"more than {self.timeout_s:g} s"
        if self.exceeded is not None:
            raise BudgetExceeded(self.exceeded)

    def rearm(self) -> None:
        """Trace again if CPython turned tracing off (a trace function raised) or someone replaced it."""
        if sys.gettrace() is self.on_call:
            return
        sys.settrace(self.on_call)
        # The skill frames entered since tracing went off have no line hook yet; they are the innermost.
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith(_PREFIX):
                if frame.f_trace is not None:
                    break
                frame.f_trace = self.on_line
            frame = frame.f_back


_state = threading.local()


def _active() -> _Budget | None:
    budget: _Budget | None = getattr(_state, "budget", None)
    return budget


def _checkpoint() -> None:
    """The guard at each loop iteration, ``except`` match and ``finally`` block of skill code."""
    budget = _active()
    if budget is None:
        raise RuntimeError("skill code runs only inside Sandbox.run")
    budget.rearm()
    budget.check()


def _except(kinds: Any = Exception) -> Any:
    """The guard of an ``except`` clause: only subclasses of Exception may be caught."""
    _checkpoint()
    todo = [kinds]
    while todo:
        kind = todo.pop()
        if isinstance(kind, tuple):
            todo.extend(kind)
        elif not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise TypeError(f"only subclasses of Exception can be caught, not {kind!r}")
    return kinds


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An API callable as the skill sees it: checked against the budget before and after each call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        budget = _active()
        if budget is None:
            return fn(*args, **kwargs)
        budget.check()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            budget.rearm()
            if isinstance(exc, Exception):
                budget.check()  # a nested skill that spent the budget: that is what stopped the caller
            raise
        budget.rearm()
        budget.check()
        return result

    return call


# ------------------------------------------------------------------------------------------- the guards


_SEQUENCES = (str, bytes, bytearray, list, tuple)

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "*": operator.mul,
    "**": operator.pow,
    "<<": operator.lshift,
}
_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}
_GUARDED_OPS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<"}


def _check_size(op: str, a: Any, b: Any) -> None:
    """Refuse, before computing it, a sequence or int result of ``a op b`` too large to be a skill's."""
    items = bits = 0
    ints = isinstance(a, int) and isinstance(b, int)
    if op == "+" and isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        items = len(a) + len(b)
    elif op == "*" and isinstance(a, _SEQUENCES) and isinstance(b, int):
        items = len(a) * b
    elif op == "*" and isinstance(b, _SEQUENCES) and isinstance(a, int):
        items = len(b) * a
    elif op == "*" and ints:
        bits = a.bit_length() + b.bit_length()
    elif op == "**" and ints and b > 0 and abs(a) > 1:
        bits = a.bit_length() * b
    elif op == "<<" and ints and a != 0:
        bits = a.bit_length() + b
    if items > _MAX_ITEMS:
        raise MemoryError(f"a result of more than {_MAX_ITEMS} items is not allowed")
    if bits > _MAX_INT_BITS:
        raise MemoryError(f"an int of more than {_MAX_INT_BITS} bits is not allowed")


def _binop(op: str, a: Any, b: Any) -> Any:
    _check_size(op, a, b)
    return _BINARY[op](a, b)


def _inplacevar(op: str, a: Any, b: Any) -> Any:
    _check_size(op[:-1], a, b)
    return _INPLACE[op](a, b)


def _range(*args: Any) -> range:
    r = range(*args)
    try:
        n = len(r)
    except OverflowError:
        n = _MAX_ITEMS + 1
    if n > _MAX_ITEMS:
        raise ValueError(f"a range of more than {_MAX_ITEMS} items is not allowed")
    return r


def _apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class _Printed:
    """``print`` for skill code: keeps the first characters for ``printed``, drops the rest."""

    def __init__(self, _getattr_: object = None) -> None:
        self.parts: list[str] = []
        self.room = _MAX_PRINTED

    def _call_print(self, *objects: object, sep: object = " ", end: object = "\n", **_: object) -> None:
        if self.room <= 0:
            return
        between = " " if sep is None else str(sep)
        text = between.join(map(str, objects)) + ("\n" if end is None else str(end))
        self.parts.append(text[: self.room])
        self.room -= len(text)

    def __call__(self) -> str:
        return "".join(self.parts)


_BUILTINS: dict[str, Any] = {
    name: safe_builtins[name] if name in safe_builtins else getattr(builtins, name)
    for name in _FUNCTIONS + _EXCEPTIONS
}
_BUILTINS["range"] = _range
_RESERVED = frozenset(_BUILTINS) | FORBIDDEN_FUNC_NAMES | {"printed"}

_GUARDS: dict[str, Any] = {
    "_getattr_": safer_getattr,
    "_getitem_": default_guarded_getitem,
    "_getiter_": default_guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": _inplacevar,
    "_binop_": _binop,
    "_apply_": _apply,
    "_print_": _Printed,
    "_loop_": _checkpoint,
    "_finally_": _checkpoint,
    "_except_": _except,
}


# ------------------------------------------------------------------------------------------- the policy


def _call(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
    node = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
    copy_locations(node, cast(Any, where))
    return node


def _statement(name: str, where: ast.AST) -> ast.Expr:
    node = ast.Expr(_call(name, [], where))
    copy_locations(node, cast(Any, where))
    return node


def _what(node: ast.stmt) -> str:
    if isinstance(node, ast.Expr):
        docstring = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        return "a docstring" if docstring else "an expression"
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
        return "an assignment"
    return f"a statement ({type(node).__name__})"


class _SkillPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus the rules of a skill module and the hooks of its budgets."""

    def visit_Module(self, node: ast.Module) -> Any:
        allowed = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom
        for stmt in node.body:  # the others are refused by their own rule
            if not isinstance(stmt, allowed):
                self.error(stmt, f"a skill defines only functions at the top level, not {_what(stmt)}")
        return super().visit_Module(node)

    def visit_Import(self, node: ast.Import) -> Any:
        self.error(node, "ImportError: imports are not allowed")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        self.error(node, "ImportError: imports are not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "class definitions are not allowed; a skill defines functions")

    def visit_With(self, node: ast.With) -> Any:
        self.error(node, "with statements are not allowed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        if node.name.startswith("_"):  # RestrictedPython lets nested functions take names like __eq__
            self.error(node, f'"{node.name}" is an invalid function name because it starts with "_"')
        return super().visit_FunctionDef(node)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = cast(ast.BinOp, super().visit_BinOp(node))
        op = _GUARDED_OPS.get(type(node.op))
        if op is None:
            return node
        return _call("_binop_", [ast.Constant(op), node.left, node.right], node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """``d[k] += v`` (which RestrictedPython refuses) as ``_write_(d)[k] = _inplacevar_('+=', d[k], v)``,
        ``d`` and ``k`` evaluated once; names and the rest are RestrictedPython's."""
        target = node.target
        if not isinstance(target, ast.Subscript) or isinstance(target.slice, ast.Slice):
            return super().visit_AugAssign(node)
        obj, key, value = self.visit(target.value), self.visit(target.slice), self.visit(node.value)
        o, k = self.gen_tmp_name(), self.gen_tmp_name()
        current = _call("_getitem_", [ast.Name(o, ast.Load()), ast.Name(k, ast.Load())], node)
        update = _call("_inplacevar_", [ast.Constant(IOPERATOR_TO_STR[type(node.op)]), current, value], node)
        item = ast.Subscript(
            _call("_write_", [ast.Name(o, ast.Load())], node), ast.Name(k, ast.Load()), ast.Store()
        )
        out = [
            ast.Assign([ast.Name(o, ast.Store())], obj),
            ast.Assign([ast.Name(k, ast.Store())], key),
            ast.Assign([item], update),
        ]
        for stmt in out:
            copy_locations(stmt, node)
        return out

    def visit_While(self, node: ast.While) -> Any:
        node = cast(ast.While, super().visit_While(node))
        node.body.insert(0, _statement("_loop_", node))
        return node

    def visit_For(self, node: ast.For) -> Any:
        node = cast(ast.For, super().visit_For(node))
        node.body.insert(0, _statement("_loop_", node))
        return node

    def visit_Try(self, node: ast.Try) -> Any:
        node = cast(ast.Try, super().visit_Try(node))
        if node.finalbody:
            node.finalbody.insert(0, _statement("_finally_", node.finalbody[0]))
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        node = cast(ast.ExceptHandler, super().visit_ExceptHandler(node))
        node.type = _call("_except_", [] if node.type is None else [node.type], node)
        return node


_ERROR = re.compile(r"Line (\d+|None): (.*)", re.DOTALL)
_KIND = re.compile(r"[A-Z]\w*Error: ")


def _one_line(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rejected(kind_and_text: str, line: int | None) -> SkillRejected:
    if not _KIND.match(kind_and_text):
        kind_and_text = f"SkillRejected: {kind_and_text}"
    where = f" (line {line})" if line is not None else ""
    text = _one_line(kind_and_text.rstrip(". "), _MAX_ERROR_CHARS - len(where))
    return SkillRejected(text + where, line=line)


@functools.lru_cache(maxsize=256)
def _compile(code: str, name: str) -> tuple[CodeType, tuple[str, ...]]:
    """The restricted byte code of ``code`` and its top-level functions, or :class:`SkillRejected`."""
    filename = f"{_PREFIX}{name}>"
    try:
        with warnings.catch_warnings():  # the compiler's SyntaxWarnings about skill code are no concern here
            warnings.simplefilter("ignore")
            tree = ast.parse(code, filename)
            functions = tuple(dict.fromkeys(s.name for s in tree.body if isinstance(s, ast.FunctionDef)))
            result = compile_restricted_exec(tree, filename, policy=_SkillPolicy)
    except SyntaxError as exc:  # from the parser, or from the compiler ('break' outside a loop)
        raise _rejected(f"SyntaxError: {exc.msg}", exc.lineno) from None
    except (RecursionError, MemoryError):
        raise _rejected("the code is nested too deeply", None) from None
    except Exception as exc:  # e.g. characters Python cannot encode
        raise _rejected(f"SyntaxError: {type(exc).__name__}: {exc}", None) from None
    if result.errors:
        found = []
        for error in result.errors:
            match = _ERROR.match(error)
            line, text = (match.group(1), match.group(2)) if match else ("None", error)
            found.append((int(line) if line.isdigit() else None, text))
        line, text = min(found, key=lambda e: e[0] or 0)
        raise _rejected(text, line)
    assert result.code is not None
    return result.code, functions


# ------------------------------------------------------------------------------------------- the runs


def _where(exc: BaseException, filename: str) -> str:
    """``exc`` as one line, "Type: message (line N)", N the last line of the skill it passed through."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    try:
        text = str(exc)
    except Exception:
        text = "(a message that cannot be printed)"
    head = type(exc).__name__ + (f": {text}" if text else "")
    where = f" (line {line})" if line is not None else ""
    return _one_line(head, _MAX_ERROR_CHARS - len(where)) + where


def _not_data(value: Any) -> str | None:
    """Why ``value`` is no plain result (it holds something that could run skill code later), or None."""
    todo, seen, count = [value], set(), 0
    while todo:
        item = todo.pop()
        count += 1
        if count > _MAX_ITEMS:
            return f"a skill's value may hold at most {_MAX_ITEMS} items"
        if callable(item) or isinstance(item, Iterator):
            return f"a skill must return data; its value holds a {type(item).__name__}"
        if type(item) in (list, tuple, set, frozenset, dict) and id(item) not in seen:
            seen.add(id(item))
            todo.extend([*item.keys(), *item.values()] if type(item) is dict else item)
    return None


class Sandbox:
    """Compiles skill code under RestrictedPython and runs its functions within a line and time budget.

    ``max_lines`` and ``timeout_s`` bound one outermost run, nested runs (skills called by skills through
    the API) included; a nested run uses the budget of the run it is nested in. Each run executes the
    skill's module afresh, so nothing a run leaves behind reaches the next one.
    """

    def __init__(self, *, max_lines: int = 100_000, timeout_s: float = 5.0) -> None:
        self.max_lines = check_scalar(max_lines, "max_lines", int, min_val=1)
        check_scalar(timeout_s, "timeout_s", float, min_val=0, include_boundaries="neither")
        self.timeout_s = float(timeout_s)

    def compile(self, code: str, name: str) -> CompiledSkill:
        """``code`` checked and compiled as skill ``name``, or :class:`SkillRejected` saying which rule
        (and line) it breaks."""
        if not isinstance(name, str) or not name.isidentifier():
            raise SkillRejected(_one_line(f"SkillRejected: a skill name must be an identifier, not {name!r}"))
        if not isinstance(code, str):
            raise SkillRejected(f"SkillRejected: a skill's code must be a str, got {type(code).__name__}")
        if len(code) > MAX_CODE_CHARS:
            raise SkillRejected(f"SkillRejected: the code is longer than {MAX_CODE_CHARS} characters")
        if "\x00" in code:
            raise SkillRejected("SkillRejected: the code contains a NUL character")
        _, functions = _compile(code, name)
        return CompiledSkill(name, code, functions)

    def run(
        self,
        skill: CompiledSkill | str,
        entry: str,
        api: Mapping[str, Callable[..., Any]],
        args: Sequence[Any] = (),
        *,
        name: str | None = None,
    ) -> SkillRun:
        """Call ``entry(*args)`` of ``skill`` with ``api`` in scope; never raises for what the skill does.

        A str ``skill`` is compiled first, as ``name`` (default: ``entry``); its compile error is the
        run's error. An ``api`` name that is not an identifier, starts with ``_`` or would hide a builtin
        is the caller's bug: :class:`InvalidInput`.
        """
        namespace = dict(_GUARDS, **self._api(api))
        start = time.perf_counter()
        try:
            if isinstance(skill, CompiledSkill):
                skill = self.compile(skill.code, skill.name)  # authoritative, whoever built the dataclass
            else:
                default = entry if isinstance(entry, str) and entry.isidentifier() else "skill"
                skill = self.compile(skill, default if name is None else name)
            code, functions = _compile(skill.code, skill.name)
        except SkillRejected as exc:
            return SkillRun(False, None, str(exc), 0, time.perf_counter() - start)
        outer = _active()
        budget = outer if outer is not None else _Budget(self.max_lines, self.timeout_s)
        before = budget.lines
        previous = sys.gettrace()
        if outer is None:
            _state.budget = budget
            sys.settrace(budget.on_call)
        try:
            value, error = self._call(code, functions, skill.name, entry, args, namespace, budget)
        finally:
            if outer is None:
                sys.settrace(previous)
                _state.budget = None
            else:
                budget.rearm()  # the calling skill goes on being traced (and stops if the budget is spent)
        return SkillRun(error is None, value, error, budget.lines - before, time.perf_counter() - start)

    def _api(self, api: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
        if not isinstance(api, Mapping):
            raise InvalidInput(f"must map names to callables, got {type(api).__name__}", field="api")
        out: dict[str, Any] = {}
        for key, fn in api.items():
            if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
                raise InvalidInput(f"{key!r} is not a name skill code can call", field="api")
            if key.startswith("_"):
                raise InvalidInput(f"{key!r} starts with '_', which skill code cannot name", field="api")
            if key in _RESERVED:
                raise InvalidInput(f"{key!r} would hide the builtin of that name", field="api")
            if not callable(fn):
                raise InvalidInput(f"{key!r} is not callable", field="api")
            out[key] = _wrap(fn)
        out["__builtins__"] = dict(_BUILTINS)
        return out

    @staticmethod
    def _call(
        code: CodeType,
        functions: tuple[str, ...],
        name: str,
        entry: str,
        args: Sequence[Any],
        namespace: dict[str, Any],
        budget: _Budget,
    ) -> tuple[Any, str | None]:
        filename = f"{_PREFIX}{name}>"
        if entry not in functions:
            return None, _one_line(f"NameError: the skill defines no function {entry!r}")
        try:
            budget.check()
            exec(code, namespace)
            fn = namespace.get(entry)
            if not isinstance(fn, FunctionType):
                return None, _one_line(f"NameError: the skill defines no function {entry!r}")
            value = fn(*args)
            budget.check()
        except BaseException as exc:
            # What skill code can raise: an Exception, the budget, a bare BaseException (``mro()`` reaches
            # it). Anything else comes from outside (KeyboardInterrupt, SystemExit, a test's timeout).
            if not isinstance(exc, Exception | BudgetExceeded) and type(exc) is not BaseException:
                raise
            return None, _where(exc, filename)
        problem = _not_data(value)
        if problem is not None:
            return None, f"TypeError: {problem}"
        return value, None
