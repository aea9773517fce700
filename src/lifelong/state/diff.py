"""What changed between two learned states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.state.codec import flatten


@dataclass(frozen=True)
class Change:
    """How one entry of the state changed.

    For arrays of equal shape: ``l2`` is the norm of the difference, ``max_abs`` its largest entry and
    ``fraction_changed`` the share of entries that differ.
    """

    key: str
    kind: str  # "added" | "removed" | "changed"
    before: Any = None
    after: Any = None
    l2: float | None = None
    max_abs: float | None = None
    fraction_changed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def show(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return f"array{list(value.shape)} {value.dtype}"
            if isinstance(value, bytes):
                return f"<{len(value)} bytes>"
            return value

        return {
            "key": self.key,
            "kind": self.kind,
            "before": show(self.before),
            "after": show(self.after),
            "l2": self.l2,
            "max_abs": self.max_abs,
            "fraction_changed": self.fraction_changed,
        }


@dataclass(frozen=True)
class StateDiff:
    a: int
    b: int
    changes: list[Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "changes": [c.to_dict() for c in self.changes]}

    def __str__(self) -> str:
        if self.identical:
            return f"versions {self.a} and {self.b} are identical"
        lines = [f"versions {self.a} → {self.b}: {len(self.changes)} change(s)"]
        for c in self.changes:
            if c.l2 is not None:
                lines.append(
                    f"  ~ {c.key}: l2={c.l2:.4g} max|Δ|={c.max_abs:.4g} "
                    f"changed={100 * (c.fraction_changed or 0):.1f}%"
                )
            else:
                sign = {"added": "+", "removed": "-"}.get(c.kind, "~")
                d = c.to_dict()
                lines.append(f"  {sign} {c.key}: {d['before']!r} → {d['after']!r}")
        return "\n".join(lines)


def diff_states(a: dict[str, Any], b: dict[str, Any], va: int = 0, vb: int = 0) -> StateDiff:
    """Entry-by-entry comparison of two state dicts (nested keys joined with dots)."""
    fa, fb = flatten(a), flatten(b)
    changes: list[Change] = []
    for key in sorted(fa.keys() | fb.keys()):
        if key not in fa:
            changes.append(Change(key, "added", after=fb[key]))
        elif key not in fb:
            changes.append(Change(key, "removed", before=fa[key]))
        else:
            change = _compare(key, fa[key], fb[key])
            if change is not None:
                changes.append(change)
    return StateDiff(va, vb, changes)


def _compare(key: str, x: Any, y: Any) -> Change | None:
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        if x.shape == y.shape and x.dtype.kind in "biuf" and y.dtype.kind in "biuf":
            delta = y.astype(np.float64) - x.astype(np.float64)
            if not delta.any():
                return None
            return Change(
                key,
                "changed",
                x,
                y,
                l2=float(np.linalg.norm(delta)),
                max_abs=float(np.abs(delta).max()),
                fraction_changed=float(np.count_nonzero(delta) / delta.size),
            )
        return None if np.array_equal(x, y) else Change(key, "changed", x, y)
    if type(x) is type(y) and not isinstance(x, np.ndarray) and x == y:
        return None
    return Change(key, "changed", x, y)
