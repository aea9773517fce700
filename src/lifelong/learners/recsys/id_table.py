"""Collision-free id → row tables for per-user and per-item parameters (fast weights).

Hashing ids into a fixed table makes unrelated users share rows; Monolith (Liu et al., 2022, §2.1) keeps
a collision-free table instead, admits an id only after it has been seen a few times (rare ids would
waste memory and train noise) and expires ids that have not been seen for a while. :class:`IdTable` does
the same for NumPy parameter rows:

- ``row(id, now)`` counts a sighting and returns the id's row once it has been seen ``min_count`` times
  (None before: the caller falls back to a shared default);
- rows are recycled through a free list, and the arrays registered with the table grow by doubling, so a
  new id costs amortised O(1);
- ``expire(now)`` evicts ids unseen for more than ``ttl`` seconds and zeroes their rows;
- ``remove(id)`` forgets one id (a user's right to be forgotten).

Ids seen fewer than ``min_count`` times wait in ``pending`` with the time they were last seen; they
expire like admitted ids, and at most ``max_pending`` wait at once (the least recently seen go first),
so a stream of one-off ids cannot grow the table or its snapshot without bound.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from lifelong.utils.validation import check_scalar


class IdTable:
    """Maps string ids to rows of the arrays registered with :meth:`register`."""

    def __init__(
        self, *, min_count: int = 1, ttl: float = math.inf, capacity: int = 64, max_pending: int = 100_000
    ) -> None:
        check_scalar(min_count, "min_count", int, min_val=1)
        check_scalar(ttl, "ttl", float, min_val=0, include_boundaries="neither")
        self.max_pending = int(check_scalar(max_pending, "max_pending", int, min_val=1))
        self.pending_seen: dict[str, float] = {}  # last sighting of each pending id (insertion = LRU order)
        self.min_count, self.ttl = int(min_count), float(ttl)
        self.rows: dict[str, int] = {}
        self.last_seen: dict[str, float] = {}
        self.pending: dict[str, int] = {}  # sightings of ids not yet admitted
        self.free: list[int] = []
        self.capacity = max(1, int(capacity))
        self.arrays: dict[str, np.ndarray] = {}
        self._fill: dict[str, float] = {}
        #: Bumped whenever an id gains or loses its row: caches of "which ids have rows" key on it.
        self.generation = 0

    def register(self, name: str, columns: int, fill: float = 0.0) -> None:
        """Add a parameter array with one row per id (``columns`` wide, 0 for a vector).

        Growing replaces the arrays: always reach them through ``table.arrays[name]``.
        """
        shape = (self.capacity,) if columns == 0 else (self.capacity, columns)
        self.arrays[name] = np.full(shape, fill, dtype=np.float64)
        self._fill[name] = fill

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def get(self, key: str) -> int | None:
        """The row of an admitted id, without counting a sighting."""
        return self.rows.get(key)

    def row(self, key: str, now: float) -> int | None:
        """Count a sighting of ``key`` at time ``now``; its row once admitted, else None."""
        row = self.rows.get(key)
        if row is not None:
            self.last_seen[key] = now
            return row
        seen = self.pending.get(key, 0) + 1
        if seen < self.min_count:
            self.pending[key] = seen
            self.pending_seen.pop(key, None)
            self.pending_seen[key] = now  # re-inserted: the dict's order is least recently seen first
            while len(self.pending_seen) > self.max_pending:
                oldest = next(iter(self.pending_seen))
                del self.pending_seen[oldest]
                self.pending.pop(oldest, None)
            return None
        self.pending.pop(key, None)
        self.pending_seen.pop(key, None)
        return self._admit(key, now)

    def seeded_row(
        self, key: str, now: float, *, init: tuple[str, ...], scale: float, seed: int, salt: str = ""
    ) -> int | None:
        """:meth:`row`, and on admission fill the arrays named in ``init`` with N(0, scale²) values drawn
        from a generator seeded by (``seed``, ``salt``, ``key``) — so a replay recreates the same rows."""
        fresh = key not in self.rows
        row = self.row(key, now)
        if row is not None and fresh:
            rng = np.random.default_rng([seed, zlib.crc32(f"{salt}:{key}".encode())])
            for name in init:
                self.arrays[name][row] = rng.normal(0.0, scale, self.arrays[name].shape[1:])
        return row

    def _admit(self, key: str, now: float) -> int:
        if self.free:
            row = self.free.pop()
        else:
            row = len(self.rows)
            if row >= self.capacity:
                self._grow(2 * self.capacity)
        self.rows[key] = row
        self.last_seen[key] = now
        self.generation += 1
        return row

    def _grow(self, capacity: int) -> None:
        for name, array in self.arrays.items():
            grown = np.full((capacity, *array.shape[1:]), self._fill[name], dtype=array.dtype)
            grown[: len(array)] = array
            self.arrays[name] = grown
        self.capacity = capacity

    def remove(self, key: str) -> bool:
        """Forget ``key``: its row is reset and recycled. True if it was admitted."""
        self.pending.pop(key, None)
        self.pending_seen.pop(key, None)
        row = self.rows.pop(key, None)
        if row is None:
            return False
        self.last_seen.pop(key, None)
        for name, array in self.arrays.items():
            array[row] = self._fill[name]
        self.free.append(row)
        self.generation += 1
        return True

    def expire(self, now: float) -> list[str]:
        """Evict every id unseen for more than ``ttl`` seconds; returns them."""
        if math.isinf(self.ttl):
            return []
        for key in [key for key, seen in self.pending_seen.items() if now - seen > self.ttl]:
            del self.pending_seen[key]
            self.pending.pop(key, None)
        old = [key for key, seen in self.last_seen.items() if now - seen > self.ttl]
        for key in old:
            self.remove(key)
        return old

    def state(self) -> dict[str, Any]:
        return {
            "min_count": self.min_count,
            "ttl": None if math.isinf(self.ttl) else self.ttl,
            "capacity": self.capacity,
            "rows": dict(self.rows),
            # The ids in admission order, and the pending ones least recently seen first: a snapshot's
            # dicts come back with sorted keys, and the order decides ties in rankings, the negatives
            # a sampler draws and which pending id is dropped first.
            "order": list(self.rows),
            "pending_order": list(self.pending_seen),
            "last_seen": dict(self.last_seen),
            "pending": dict(self.pending),
            "pending_seen": dict(self.pending_seen),
            "max_pending": self.max_pending,
            "free": list(self.free),
            "arrays": {name: array.copy() for name, array in self.arrays.items()},
            "fill": dict(self._fill),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IdTable:
        table = cls(
            min_count=int(state["min_count"]),
            ttl=math.inf if state["ttl"] is None else float(state["ttl"]),
            max_pending=int(state.get("max_pending", 100_000)),
        )
        table.capacity = int(state["capacity"])
        rows, last_seen = state["rows"], state["last_seen"]
        order = [str(k) for k in state.get("order") or rows]  # older snapshots: the stored order
        table.rows = {k: int(rows[k]) for k in order}
        table.last_seen = {k: float(last_seen[k]) for k in [*order, *last_seen] if k in last_seen}
        table.pending = {str(k): int(v) for k, v in state["pending"].items()}
        seen = state.get("pending_seen") or {}
        pending_order = [str(k) for k in state.get("pending_order") or table.pending]
        table.pending_seen = {
            key: float(seen.get(key, 0.0)) for key in [*pending_order, *table.pending] if key in table.pending
        }
        table.free = [int(r) for r in state["free"]]
        table.arrays = {name: np.array(array) for name, array in state["arrays"].items()}
        table._fill = {name: float(v) for name, v in state["fill"].items()}
        return table
