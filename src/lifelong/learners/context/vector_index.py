"""Exact nearest-neighbour search over unit vectors, fast enough for one scope's items.

Context learners keep one :class:`VectorIndex` per scope. It stores L2-normalised float32 rows in one
contiguous, doubling matrix, so a query is a single matrix-vector product (cosine similarity) and an
``argpartition`` for the top k — no approximation, no training, no rebuilds, and deletes are O(1)
(the last row moves into the hole). Measured here on 2 CPU cores with 384-dimensional MiniLM vectors
(``lifelong bench intent-stream`` reports it each run): p95 ≈ 1 ms at 10K rows and ≈ 10 ms at 100K rows,
inside the 20 ms budget without an ANN library; an HNSW index (hnswlib, faiss) is the next step past
about 10^6 rows per scope.

>>> import numpy as np
>>> index = VectorIndex(dim=3)
>>> index.add("a", np.array([1.0, 0.0, 0.0]))
>>> index.add("b", np.array([0.0, 1.0, 0.0]))
>>> [(key, round(score, 2)) for key, score in index.search(np.array([0.9, 0.1, 0.0]), k=1)]
[('a', 0.99)]
"""

from __future__ import annotations

import numpy as np

from lifelong.errors import InvalidInput, NotFound
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` as float32 scaled to length 1 (a zero vector stays zero). A vector of length 1 up to
    float32 rounding is kept as it is, so a stored row added again (a restored snapshot) is unchanged."""
    v = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 and abs(norm - 1.0) > 1e-5 else v


class VectorIndex:
    """Keys with unit vectors; ``search`` returns the k most cosine-similar keys."""

    def __init__(self, dim: int, *, capacity: int = 64) -> None:
        self.dim = check_scalar(dim, "dim", int, min_val=1)
        self._rows = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._keys: list[str] = []
        self._position: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._position

    def add(self, key: str, vector: np.ndarray) -> None:
        """Insert ``key`` (or replace its vector)."""
        v = unit(vector)
        if v.shape[0] != self.dim:
            raise InvalidInput(f"has {v.shape[0]} dimensions, the index {self.dim}", field="vector")
        row = self._position.get(key)
        if row is None:
            row = len(self._keys)
            if row == self._rows.shape[0]:
                grown = np.zeros((2 * row, self.dim), dtype=np.float32)
                grown[:row] = self._rows
                self._rows = grown
            self._keys.append(key)
            self._position[key] = row
        self._rows[row] = v

    def remove(self, key: str) -> None:
        """Delete ``key``: the last row moves into its place (O(1))."""
        row = self._position.pop(key, None)
        if row is None:
            raise NotFound(f"no vector for {key!r}")
        last = len(self._keys) - 1
        if row != last:
            moved = self._keys[last]
            self._rows[row] = self._rows[last]
            self._keys[row] = moved
            self._position[moved] = row
        self._keys.pop()

    def ids(self) -> list[str]:
        return list(self._keys)

    def vector(self, key: str) -> np.ndarray:
        row = self._position.get(key)
        if row is None:
            raise NotFound(f"no vector for {key!r}")
        return np.array(self._rows[row], copy=True)

    def similarities(self, query: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Every key and its cosine similarity to ``query`` (a view of the keys, in row order)."""
        n = len(self._keys)
        return self._keys, self._rows[:n] @ unit(query)

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The ``k`` keys most similar to ``query``, best first, with their cosine similarity."""
        keys, sims = self.similarities(query)
        if k <= 0 or not keys:
            return []
        top = top_k(sims, k)
        return [(keys[i], float(sims[i])) for i in top]
