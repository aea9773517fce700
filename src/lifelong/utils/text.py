"""Text helpers shared by models, learners and environments.

>>> normalise("  a\t b \n")
'a b'
>>> text_of({"text": "hello"})
'hello'
>>> index, value = HashedText(n_features=16)("card lost")
>>> round(float((value ** 2).sum()), 6)
1.0
"""

from __future__ import annotations

import itertools
import re
import zlib

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.utils.validation import check_power_of_two

__all__ = ["HashedText", "normalise", "novelty", "text_of"]


def normalise(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space and the ends stripped."""
    return " ".join(text.split())


_WORD = re.compile(r"\w+", re.UNICODE)


def novelty(text: str, reference: str) -> float:
    """The share of ``text``'s distinct words (three characters or more, case-folded) that ``reference``
    lacks: 0 when every word of a question was asked before, 1 when none was.

    >>> novelty("Which port is the production server on?", "Which port is the staging server on?")
    0.2
    """
    words = {w for w in _WORD.findall(text.casefold()) if len(w) >= 3}
    if not words:
        return 0.0
    known = set(_WORD.findall(reference.casefold()))
    return len(words - known) / len(words)


class HashedText:
    """Text → sparse L2-normalised vector of signed hashed features (Weinberger et al., ICML 2009).

    Features: lower-cased words, word bigrams and character n-grams of each word (with boundary marks),
    hashed with CRC-32 (stable across processes, unlike ``hash``).
    """

    def __init__(self, n_features: int = 2**15, char_ngrams: tuple[int, int] = (3, 5)) -> None:
        self.n_features = check_power_of_two(n_features, "n_features", min_val=16)
        self.char_ngrams = char_ngrams

    def tokens(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        out = [f"w:{w}" for w in words]
        out += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
        lo, hi = self.char_ngrams
        for word in words:
            marked = f"<{word}>"
            for n in range(lo, hi + 1):
                out += [f"c:{marked[i : i + n]}" for i in range(len(marked) - n + 1)]
        return out

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique feature indices and their values (L2 norm 1; empty text gives no features)."""
        counts: dict[int, float] = {}
        mask = self.n_features - 1
        for token in self.tokens(text):
            h = zlib.crc32(token.encode("utf-8"))
            slot = h & mask
            sign = 1.0 if (h >> 31) & 1 else -1.0
            counts[slot] = counts.get(slot, 0.0) + sign
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        index = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        value = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        order = np.argsort(index)
        index, value = index[order], value[order]
        norm = np.linalg.norm(value)
        return index, (value / norm if norm > 0 else value)


def text_of(observation: object) -> str:
    """The text in an observation: the string itself, or its ``text``/``query`` field."""
    if isinstance(observation, str):
        return observation
    if isinstance(observation, dict):
        for key in ("text", "query"):
            if isinstance(observation.get(key), str):
                return str(observation[key])
    raise InvalidInput(
        f"expected text or a dict with a 'text' field, got {type(observation).__name__}",
        field="observation",
    )
