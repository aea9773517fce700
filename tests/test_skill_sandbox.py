"""The skill sandbox, from an attacker's side: untrusted skill code fails with one line, never escapes.

Every escape below is a real technique against plain ``exec``; each must end in a failed
:class:`SkillRun` (or :class:`SkillRejected` from ``compile``) and leave the test process as it was.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelong.errors import InvalidInput
from lifelong.learners.skills.sandbox import (
    MAX_CODE_CHARS,
    BudgetExceeded,
    CompiledSkill,
    Sandbox,
    SkillRejected,
    SkillRun,
)

SMALL = Sandbox(max_lines=2_000, timeout_s=2.0)


def failed(run: SkillRun) -> str:
    """The error of a run that must have failed, checked to be one line."""
    assert not run.ok and run.value is None, run
    assert run.error is not None and "\n" not in run.error and len(run.error) <= 300
    return run.error


def skill(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- good skills


def test_a_good_skill_calls_the_api_and_returns_its_value() -> None:
    calls: list[tuple[str, Any]] = []

    def approach(target: str) -> bool:
        calls.append(("approach", target))
        return True

    def act(action: str) -> None:
        calls.append(("act", action))

    api: dict[str, Callable[..., Any]] = {"approach": approach, "act": act, "inventory": lambda: {"wood": 2}}
    code = skill(
        "def chop(times):",
        "    for _ in range(times):",
        "        if approach('tree'):",
        "            act('do')",
        "    inv = inventory()",
        "    counts = {'wood': inv['wood']}",
        "    counts['wood'] += 1",  # RestrictedPython alone refuses this; the sandbox supports it
        "    return sorted(counts.items()), [n * 2 for n in range(3)]",
    )
    run = Sandbox().run(code, "chop", api, (2,))
    assert run.ok and run.error is None, run
    assert run.value == ([("wood", 3)], [0, 2, 4])
    assert calls == [("approach", "tree"), ("act", "do")] * 2
    assert 8 <= run.lines < 40 and run.seconds < 1


def test_compile_lists_the_functions_and_a_compiled_skill_runs() -> None:
    compiled = SMALL.compile(
        skill("def helper(x):", "    return x + 1", "def main():", "    return helper(1)"), "s"
    )
    assert compiled == CompiledSkill("s", compiled.code, ("helper", "main"))
    assert SMALL.run(compiled, "main", {}).value == 2
    assert failed(SMALL.run(compiled, "absent", {})) == "NameError: the skill defines no function 'absent'"


def test_print_is_harmless_and_printed_reads_it_back() -> None:
    run = SMALL.run(skill("def main():", "    print('hello', 3)", "    return printed"), "main", {})
    assert run.value == "hello 3\n"


# ------------------------------------------------------------------------------------------- escapes

ESCAPES = {
    "import": (
        skill("def main():", "    import os", "    return os.getcwd()"),
        "ImportError: imports are not allowed (line 2)",
    ),
    "from import": (skill("def main():", "    from os import path"), "ImportError: imports are not allowed"),
    "__import__": (
        skill("def main():", "    return __import__('os')"),
        '"__import__" is an invalid variable name',
    ),
    "class bases": (
        skill("def main():", "    return ().__class__.__bases__"),
        "is an invalid attribute name because it starts with",
    ),
    "getattr": (
        skill("def main():", "    return getattr(main, '__globals__')"),
        "name 'getattr' is not defined",
    ),
    "open": (
        skill("def main():", "    return open('/etc/passwd').read()"),
        "name 'open' is not defined (line 2)",
    ),
    "eval": (skill("def main():", "    return eval('1')"), "Eval calls are not allowed (line 2)"),
    "exec": (skill("def main():", "    exec('x = 1')"), "Exec calls are not allowed (line 2)"),
    "compile": (
        skill("def main():", "    return compile('1', 'f', 'eval')"),
        "name 'compile' is not defined",
    ),
    "globals": (skill("def main():", "    return globals()"), "name 'globals' is not defined"),
    "vars": (skill("def main():", "    return vars()"), "name 'vars' is not defined"),
    "type": (skill("def main():", "    return type(1)"), "name 'type' is not defined"),
    "str.format": (
        skill("def main():", "    return '{0.__class__}'.format(1)"),
        "format*() methods of `str`",
    ),
    "str type format": (
        skill("def main():", "    return str.format('{0.__class__}', 1)"),
        "format*() methods",
    ),
    "gi_frame": (
        skill("def main():", "    g = (x for x in [1])", "    return g.gi_frame"),
        '"gi_frame" is a restricted name',
    ),
    "traceback": (
        skill(
            "def main():",
            "    try:",
            "        1 / 0",
            "    except Exception as e:",
            "        return e.__traceback__",
        ),
        '"__traceback__" is an invalid attribute',
    ),
    "builtins dict": (
        skill("def main():", "    return __builtins__['open']"),
        '"__builtins__" is an invalid',
    ),
    "dunder function": (skill("def main():", "    def __eq__(a, b):", "        return True"), '"__eq__"'),
    "class": (skill("def main():", "    class A:", "        pass"), "class definitions are not allowed"),
    "with": (skill("def main(x):", "    with x:", "        pass"), "with statements are not allowed"),
    "setattr": (skill("def main():", "    main.x = 1"), "TypeError: attribute-less object"),
    "base exception": (
        skill(
            "def main():", "    try:", "        1 / 0", "    except Exception.mro()[1]:", "        return 1"
        ),
        "TypeError: only subclasses of Exception can be caught",
    ),
}


@pytest.mark.parametrize("name", ESCAPES)
def test_an_escape_fails_with_a_clear_message(name: str) -> None:
    code, message = ESCAPES[name]
    before = sys.gettrace()
    error = failed(SMALL.run(code, "main", {}, (None,) if "main(x)" in code else ()))
    assert message in error, error
    assert sys.gettrace() is before
    assert SMALL.run(skill("def main():", "    return 1"), "main", {}).value == 1  # the sandbox still works


def test_a_skill_cannot_write_a_file(tmp_path: Path) -> None:
    target = str(tmp_path / "pwned")
    attempts = [
        skill("def main(p):", "    open(p, 'w').write('x')"),
        skill("def main(p):", "    print('x', file=open(p, 'w'))"),
        skill("def main(p):", "    __builtins__['open'](p, 'w')"),
        skill("def main(p):", "    Exception.mro()[-1].__subclasses__()"),
        skill("def main(p):", "    return [c for c in ().__class__.__base__.__subclasses__()]"),
        skill("def main(p):", "    import pathlib", "    pathlib.Path(p).write_text('x')"),
        skill(
            "def main(p):", "    o = Exception.mro()[-1]", "    return o.mro()"
        ),  # runs, but yields no tool
    ]
    for code in attempts:
        run = SMALL.run(code, "main", {}, (target,))
        assert run.ok is (run.error is None)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    "loop",
    [
        skill("def main():", "    while True: pass"),  # CPython 3.11 emits no line event for this loop
        skill("def main():", "    while 1:", "        continue"),
        skill("def main():", "    n = 0", "    while n >= 0:", "        n += 1"),
        skill("def f(n):", "    return [f for f in [n]]", "def main():", "    while True:", "        f(1)"),
    ],
)
def test_an_endless_loop_hits_the_line_budget(loop: str) -> None:
    run = SMALL.run(loop, "main", {})
    assert failed(run).startswith("BudgetExceeded: more than 2000 lines")
    assert run.lines <= 2_000 + 5 and run.seconds < 1


def test_a_slow_loop_hits_the_time_budget() -> None:
    sandbox = Sandbox(max_lines=10**9, timeout_s=0.1)
    run = sandbox.run(
        skill("def main():", "    while True:", "        nap()"), "main", {"nap": lambda: time.sleep(0.01)}
    )
    assert failed(run).startswith("BudgetExceeded: more than 0.1 s (line 3)")
    assert 0.1 <= run.seconds < 0.5


def test_a_slow_computation_without_loops_hits_the_time_budget() -> None:
    sandbox = Sandbox(max_lines=10**9, timeout_s=0.1)
    code = skill(
        "def f(n):", "    return 1 if n == 0 else f(n - 1) + f(n - 1)", "def main():", "    return f(40)"
    )
    run = sandbox.run(code, "main", {})
    assert failed(run).startswith("BudgetExceeded: more than 0.1 s (line 2)")
    assert 0.1 <= run.seconds < 0.5


SWALLOWS = {
    "except Exception": ["        except Exception:", "            pass"],
    "bare except": ["        except:", "            pass"],
    "except BaseException": ["        except Exception.mro()[1]:", "            pass"],
    "except a tuple": ["        except (ValueError, (Exception.mro()[1],)):", "            pass"],
    "finally continue": ["        finally:", "            continue"],
    "finally loop": ["        finally:", "            while True:", "                pass"],
}


@pytest.mark.parametrize("name", SWALLOWS)
def test_skill_code_cannot_swallow_the_budget(name: str) -> None:
    code = skill(
        "def main():", "    while True:", "        try:", "            while True:", "                pass"
    )
    run = SMALL.run(code + skill(*SWALLOWS[name]), "main", {})
    assert failed(run).startswith("BudgetExceeded: more than 2000 lines")
    assert run.seconds < 1


def test_retrying_deep_recursion_still_ends() -> None:
    code = skill(
        "def f(n):",
        "    try:",
        "        return f(n + 1)",
        "    except Exception:",  # a RecursionError in the trace hook turns tracing off; this re-arms it
        "        return f(n + 1)",
        "def main():",
        "    return f(0)",
    )
    run = SMALL.run(code, "main", {})
    assert failed(run).startswith("BudgetExceeded")
    assert run.seconds < 2


def test_recursing_in_finally_stops_once_the_budget_is_spent() -> None:
    # Each finally block would call f again, 2 ** 1000 times, after the budget has run out.
    code = skill(
        "def f():", "    try:", "        f()", "    finally:", "        f()", "def main():", "    f()"
    )
    run = SMALL.run(code, "main", {})
    assert failed(run).startswith("BudgetExceeded")
    assert run.seconds < 2


def test_nested_skills_share_the_outermost_budget() -> None:
    inner: list[SkillRun] = []
    loops = skill("def b():", "    while True:", "        x = 1")

    def call_b() -> bool:  # how an agent exposes another skill: through the API, running it in the sandbox
        run = Sandbox(max_lines=10**6).run(
            loops, "b", {}
        )  # its own budget does not apply: the outer one does
        inner.append(run)
        return run.ok

    outer = skill("def a():", "    done = 0", "    while True:", "        call_b()", "        done += 1")
    run = SMALL.run(outer, "a", {"call_b": call_b})
    assert failed(run) == "BudgetExceeded: more than 2000 lines (line 4)"
    assert len(inner) == 1 and failed(inner[0]).startswith("BudgetExceeded: more than 2000 lines")
    assert 1_900 < inner[0].lines < run.lines <= 2_000 + 5


def test_a_skill_that_catches_its_callees_failure_still_stops() -> None:
    class SkillFailed(Exception):
        pass

    def call_b() -> Any:
        run = SMALL.run(skill("def b():", "    while True:", "        pass"), "b", {})
        if not run.ok:
            raise SkillFailed(run.error)
        return run.value

    outer = skill(
        "def a():",
        "    while True:",
        "        try:",
        "            call_b()",
        "        except Exception:",
        "            pass",
    )
    assert failed(SMALL.run(outer, "a", {"call_b": call_b})).startswith("BudgetExceeded")


def test_the_previous_trace_function_is_restored() -> None:
    events: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        events.append(frame.f_code.co_name)

    def interrupt() -> None:
        raise KeyboardInterrupt

    def nested() -> bool:
        return SMALL.run(skill("def b():", "    return 1"), "b", {}).ok

    def probe() -> None:
        pass

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        SMALL.run(skill("def main():", "    return 1"), "main", {})
        assert sys.gettrace() is tracer
        SMALL.run(skill("def main():", "    while True: pass"), "main", {})
        assert sys.gettrace() is tracer
        SMALL.run(skill("def main():", "    return nested()"), "main", {"nested": nested})
        assert sys.gettrace() is tracer
        with pytest.raises(KeyboardInterrupt):
            SMALL.run(
                skill("def main():", "    try:", "        stop()", "    except Exception:", "        pass"),
                "main",
                {"stop": interrupt},
            )
        assert sys.gettrace() is tracer
        events.clear()
        probe()
    finally:
        sys.settrace(previous)
    assert events == ["probe"]  # and it still traces


def test_what_comes_from_outside_the_skill_propagates() -> None:
    class Stop(BaseException):  # e.g. a test runner's timeout
        pass

    def interrupt() -> None:
        raise KeyboardInterrupt

    def stop() -> None:
        raise Stop

    code = skill(
        "def main():",
        "    while True:",
        "        try:",
        "            halt()",
        "        except Exception:",
        "            pass",
    )
    for halt, kind in ((interrupt, KeyboardInterrupt), (stop, Stop)):
        with pytest.raises(kind):
            SMALL.run(code, "main", {"halt": halt})
    # What the skill itself raises is its failure, whatever the class.
    code = skill("def main():", "    raise Exception.mro()[1]('out')")
    assert failed(SMALL.run(code, "main", {})) == "BaseException: out (line 2)"


def test_budget_exceeded_is_no_exception_skill_code_can_name() -> None:
    assert not issubclass(BudgetExceeded, Exception)


# ------------------------------------------------------------------------------------------- failures


def test_an_error_names_the_skill_line() -> None:
    code = skill("def main():", "    x = 1", "    return x / 0")
    assert failed(SMALL.run(code, "main", {})) == "ZeroDivisionError: division by zero (line 3)"

    def fail() -> None:
        raise ValueError("no tree in sight\nat all")

    code = skill("def main():", "    ok = 1", "", "    look()")
    assert failed(SMALL.run(code, "main", {"look": fail})) == "ValueError: no tree in sight at all (line 4)"


def test_deep_recursion_is_a_failure_and_leaves_the_sandbox_working() -> None:
    before = sys.gettrace()
    code = skill("def f(n):", "    return f(n + 1)", "def main():", "    return f(0)")
    assert failed(SMALL.run(code, "main", {})).startswith("RecursionError: maximum recursion depth exceeded")
    assert sys.gettrace() is before
    assert SMALL.run(skill("def main():", "    return 7"), "main", {}).value == 7


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("[0] * 10**10", "MemoryError: a result of more than 1000000 items"),
        ("10 ** 10 ** 10", "MemoryError: an int of more than 1000000 bits"),
        ("1 << 10**10", "MemoryError: an int of more than 1000000 bits"),
        ("sum(range(10**12))", "ValueError: a range of more than 1000000 items"),
    ],
)
def test_a_memory_bomb_fails_fast(expression: str, message: str) -> None:
    run = SMALL.run(skill("def main():", f"    return {expression}"), "main", {})
    assert failed(run).startswith(message) and run.seconds < 0.5


def test_doubling_a_string_fails_fast() -> None:
    for body in ("        s = s + s", "        s += s", "        s *= 2"):
        run = SMALL.run(skill("def main():", "    s = 'x'", "    while True:", body), "main", {})
        assert failed(run).startswith("MemoryError") and run.seconds < 0.5


def test_a_skill_returns_data_not_code() -> None:
    for value in ("lambda: 1", "[(x for x in [1])]", "{'f': [main]}", "enumerate([1])"):
        error = failed(SMALL.run(skill("def main():", f"    return {value}"), "main", {}))
        assert error.startswith("TypeError: a skill must return data")
    held: list[Any] = []
    code = skill(
        "def main():", "    def forever():", "        while True:", "            pass", "    keep(forever)"
    )
    assert SMALL.run(code, "main", {"keep": held.append}).ok
    with pytest.raises(RuntimeError, match=r"only inside Sandbox\.run"):
        held[0]()  # a skill function the API kept cannot loop outside a run


# ------------------------------------------------------------------------------------------- compiling


@pytest.mark.parametrize(
    ("code", "line", "message"),
    [
        (skill("x = 1", "def main():", "    return x"), 1, "not an assignment"),
        (skill('"""A skill."""', "def main():", "    pass"), 1, "not a docstring"),
        (skill("def main():", "    pass", "main()"), 3, "not an expression"),
        (skill("def main():", "    pass", "if True:", "    main()"), 3, "not a statement (If)"),
        (skill("for i in range(3):", "    pass"), 1, "not a statement (For)"),
        (skill("import os", "def main():", "    pass"), 1, "ImportError: imports are not allowed"),
        (skill("class A:", "    pass"), 1, "class definitions are not allowed"),
        (skill("def main(:", "    pass"), 1, "SyntaxError: invalid syntax"),
        (skill("def main():", "    break"), 2, "SyntaxError: 'break' outside loop"),
        (
            skill("def main():", "    async def f():", "        pass"),
            2,
            "AsyncFunctionDef statements are not allowed",
        ),
    ],
)
def test_compile_rejects_what_a_skill_module_cannot_hold(code: str, line: int, message: str) -> None:
    with pytest.raises(SkillRejected) as caught:
        SMALL.compile(code, "s")
    assert message in str(caught.value) and str(caught.value).endswith(f"(line {line})")
    assert caught.value.line == line
    assert failed(SMALL.run(code, "main", {})) == str(caught.value)


def test_compile_rejects_oversized_odd_and_unnamed_code() -> None:
    cases = [
        ("def main():\n    return 1\n" + "#" * MAX_CODE_CHARS, "s", "longer than 20000 characters"),
        ("def main():\n    return '\x00'\n", "s", "NUL character"),
        ("def main():\n    return " + "+".join(["1"] * 5000) + "\n", "s", "nested too deeply"),
        ("def main():\n    return 1\n", "not a name", "must be an identifier"),
        (b"def main(): pass", "s", "must be a str"),
    ]
    for code, name, message in cases:
        with pytest.raises(SkillRejected, match=message):
            SMALL.compile(code, name)  # type: ignore[arg-type]
    assert issubclass(SkillRejected, InvalidInput)


FRAGMENTS = [
    "def main():\n",
    "    ",
    "return ",
    "while True:",
    "pass",
    "\n",
    "x",
    "=",
    "(",
    ")",
    "[",
    "__class__",
]
FRAGMENTS += [
    ".",
    "import os",
    "try:",
    "except:",
    "finally:",
    "yield",
    "lambda:",
    "**",
    "'",
    "\\",
    "\x00",
    "\ud800",
]


@settings(max_examples=20, deadline=None, database=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
        st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(
            lambda parts: "def main():\n    " + "".join(parts)
        ),
    ),
    st.sampled_from(["main", "", "1x", "__init__"]),
)
def test_malformed_input_gives_a_run_never_an_exception(code: str, entry: str) -> None:
    before = sys.gettrace()
    run = SMALL.run(code, entry, {})
    assert isinstance(run, SkillRun)
    assert run.ok or (run.error is not None and "\n" not in run.error)
    assert sys.gettrace() is before


# ------------------------------------------------------------------------------------------- caller bugs


@pytest.mark.parametrize(
    "api", [{"len": len}, {"_secret": len}, {"two words": len}, {"x": 3}, {"print": print}]
)
def test_a_bad_api_is_the_callers_error(api: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        SMALL.run(skill("def main():", "    return 1"), "main", api)


@pytest.mark.parametrize(
    "kwargs", [{"max_lines": 0}, {"max_lines": 1.5}, {"timeout_s": 0}, {"timeout_s": float("nan")}]
)
def test_budgets_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Sandbox(**kwargs)
