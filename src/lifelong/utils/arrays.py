"""Small array helpers shared by learners.

>>> top_k(np.array([0.1, 0.9, 0.5]), 2).tolist()
[1, 2]
>>> softmax(np.array([0.0, 0.0])).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "top_k"]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then a sort of the k)."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a vector (an empty vector stays empty)."""
    z = np.asarray(z, dtype=np.float64)
    if z.size == 0:
        return z
    e = np.exp(z - z.max())
    return np.asarray(e / e.sum())
