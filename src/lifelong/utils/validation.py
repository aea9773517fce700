"""Parameter checks with one message per bad parameter (scikit-learn's ``check_scalar`` is the model).

Every check raises :class:`~lifelong.errors.InvalidInput` naming the parameter (``field``) and saying
what was expected and what was given, and returns the value as given, so a constructor reads
``self.k = check_scalar(k, "k", int, min_val=1)``.

>>> check_scalar(3, "k", int, min_val=1)
3
>>> check_scalar(0, "k", int, min_val=1)
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: k: must be >= 1, got 0
>>> check_scalar(0.0, "lr", float, min_val=0, include_boundaries="neither")
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: lr: must be > 0, got 0.0
>>> check_scalar(1.0, "threshold", float, min_val=0, max_val=1, include_boundaries="left")
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: threshold: must be in [0, 1), got 1.0
>>> check_scalar(True, "k", int)
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: k: must be an int, got bool
>>> check_scalar(None, "budget", int, min_val=1, allow_none=True) is None
True
>>> check_choice("squared", "loss", ("logistic", "squared"))
'squared'
>>> check_power_of_two(48, "n_features", min_val=16)
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: n_features: must be a power of two >= 16, got 48
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import numpy as np

from lifelong.errors import InvalidInput

__all__ = ["check_choice", "check_power_of_two", "check_scalar", "check_seeds"]

T = TypeVar("T")

Boundaries = Literal["both", "left", "right", "neither"]

#: What a target type accepts: ``int`` any integral number (NumPy's too), ``float`` any real number
#: (ints included); bools are neither.
_ABSTRACT: dict[type, type] = {int: numbers.Integral, float: numbers.Real}
_NOUNS: dict[type, str] = {int: "an int", float: "a number", bool: "a bool", str: "a str"}


def _noun(target_type: type | tuple[type, ...]) -> str:
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    return " or ".join(_NOUNS.get(t, f"a {t.__name__}") for t in types)


def _is(x: object, target_type: type | tuple[type, ...]) -> bool:
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    for t in types:
        if t in _ABSTRACT:
            if isinstance(x, _ABSTRACT[t]) and not isinstance(x, bool):
                return True
        elif isinstance(x, t):
            return True
    return False


def check_scalar(
    x: T,
    name: str,
    target_type: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: Boundaries = "both",
    allow_none: bool = False,
) -> T:
    """``x`` unchanged if it is a ``target_type`` within the bounds, else :class:`InvalidInput` naming
    ``name``.

    ``include_boundaries`` says which bounds ``x`` may equal: ``"left"`` (``min_val`` only),
    ``"right"`` (``max_val`` only), ``"both"`` or ``"neither"``; with one bound given it must not name
    the missing one (``"neither"`` makes ``min_val`` strict). NaN is within no bounds. With
    ``allow_none``, None passes too.
    """
    if include_boundaries not in ("both", "left", "right", "neither"):
        raise ValueError(f"unknown include_boundaries {include_boundaries!r}")
    if (min_val is None and include_boundaries == "left") or (
        max_val is None and include_boundaries == "right"
    ):
        raise ValueError(f"include_boundaries={include_boundaries!r} names a bound that is not given")
    if x is None and allow_none:
        return x
    or_none = " or None" if allow_none else ""
    if not _is(x, target_type):
        raise InvalidInput(f"must be {_noun(target_type)}{or_none}, got {type(x).__name__}", field=name)
    if min_val is None and max_val is None:
        return x
    low_closed = include_boundaries in ("both", "left")
    high_closed = include_boundaries in ("both", "right")
    value: Any = x
    inside = (min_val is None or (value >= min_val if low_closed else value > min_val)) and (
        max_val is None or (value <= max_val if high_closed else value < max_val)
    )
    if not inside:
        if max_val is None:
            wanted = f"{'>=' if low_closed else '>'} {min_val}"
        elif min_val is None:
            wanted = f"{'<=' if high_closed else '<'} {max_val}"
        else:
            wanted = f"in {'[' if low_closed else '('}{min_val}, {max_val}{']' if high_closed else ')'}"
        raise InvalidInput(f"must be {wanted}{or_none}, got {x}", field=name)
    return x


def check_choice(x: T, name: str, options: Sequence[Any]) -> T:
    """``x`` unchanged if it is one of ``options``, else :class:`InvalidInput` listing them."""
    if isinstance(x, str | int | float | bool | None) and x in options:
        return x
    listed = ", ".join(repr(o) for o in options)
    raise InvalidInput(f"must be one of {listed}, got {x!r}", field=name)


def check_power_of_two(x: int, name: str, *, min_val: int = 1) -> int:
    """``x`` unchanged if it is an int power of two >= ``min_val``, else :class:`InvalidInput`."""
    check_scalar(x, name, int)
    if x < min_val or x & (x - 1):
        raise InvalidInput(f"must be a power of two >= {min_val}, got {x}", field=name)
    return x


def check_seeds(seeds: Sequence[int], field: str = "seeds") -> list[int]:
    """Seeds as a non-empty list of distinct ints (a repeated seed would understate the spread).

    >>> check_seeds(range(3))
    [0, 1, 2]
    >>> check_seeds([0, 0])
    Traceback (most recent call last):
    ...
    lifelong.errors.InvalidInput: seeds: must be distinct, got [0, 0]
    """
    if isinstance(seeds, int | str) or not isinstance(seeds, Sequence | range | np.ndarray):
        raise InvalidInput(f"must be a sequence of ints such as [0, 1, 2], got {seeds!r}", field=field)
    out = []
    for s in seeds:
        if not _is(s, int):
            raise InvalidInput(f"must hold ints, got {s!r}", field=field)
        out.append(int(s))
    if not out:
        raise InvalidInput("give at least one seed", field=field)
    if len(set(out)) != len(out):
        raise InvalidInput(f"must be distinct, got {out}", field=field)
    return out
