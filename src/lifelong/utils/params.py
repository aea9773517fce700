"""Hyper-parameters read back from the constructor signature (river's ``_get_params``).

A class that keeps each constructor argument under the argument's own name gets its ``config()`` and
``repr`` for free: :func:`get_params` lists the parameters of ``type(obj).__init__`` — and, when that
``__init__`` takes ``**kwargs`` and passes them up, those of the next ``__init__`` in the MRO — and reads
each one back with ``getattr``.

Values are kept when they are JSON: None, bool, int, float (inf included), str, and lists, tuples (as
lists) and str-keyed dicts of those. An object with a ``config()`` method (a learner, a guard) becomes
``{"name": its name, **its config}``; an object with a str ``name`` (an embedder, a model) becomes that
name. Anything else — callables, stores, arrays, paths — is left out, and so is a parameter with no
attribute of its name.

>>> class Base:
...     def __init__(self, k: int = 4, lr: float = 0.1) -> None:
...         self.k, self.lr = k, lr
>>> class Child(Base):
...     def __init__(self, texts: list[str], *, reg: float = 0.0, key=len, **kwargs: float) -> None:
...         super().__init__(**kwargs)
...         self.texts, self.reg, self.key = texts, reg, key
>>> parameter_names(Child)
('texts', 'reg', 'key', 'k', 'lr')
>>> get_params(Child(("a", "b"), k=2))
{'texts': ['a', 'b'], 'reg': 0.0, 'k': 2, 'lr': 0.1}
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

__all__ = ["get_params", "parameter_names"]

#: Marks a value that :func:`get_params` leaves out.
_OMIT: Any = object()

_NAMES: dict[type, tuple[str, ...]] = {}


def parameter_names(cls: type) -> tuple[str, ...]:
    """The named parameters of ``cls.__init__``, then of each ``__init__`` up the MRO that its
    ``**kwargs`` reach (stops at the first ``__init__`` without ``**kwargs``)."""
    if cls in _NAMES:
        return _NAMES[cls]
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            break
        passes_up = False
        for parameter in list(inspect.signature(init).parameters.values())[1:]:
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                passes_up = True
            elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL and parameter.name not in names:
                names.append(parameter.name)
        if not passes_up:
            break
    _NAMES[cls] = tuple(names)
    return _NAMES[cls]


def get_params(obj: object) -> dict[str, Any]:
    """``{parameter: value}`` for ``obj``'s constructor parameters (see the module docstring)."""
    out: dict[str, Any] = {}
    for name in parameter_names(type(obj)):
        value = _plain(getattr(obj, name, _OMIT))
        if value is not _OMIT:
            out[name] = value
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return _OMIT if any(v is _OMIT for v in items) else items
    if isinstance(value, dict):
        entries = {k: _plain(v) for k, v in value.items()}
        if any(not isinstance(k, str) or v is _OMIT for k, v in entries.items()):
            return _OMIT
        return entries
    if isinstance(value, type):
        return _OMIT
    name = getattr(value, "name", None)
    config = getattr(value, "config", None)
    if callable(config):
        nested = config()
        if isinstance(nested, dict):
            return {"name": name, **nested} if isinstance(name, str) else nested
    return name if isinstance(name, str) else _OMIT
