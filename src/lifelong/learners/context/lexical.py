"""Lexical search over a scope's items: Okapi BM25, one inverted index per view of an item.

Dense sentence embeddings miss what a question shares with its evidence word for word — names, places,
rare nouns ("the charity race", "Nate's turtles"); BM25 finds exactly those (Robertson & Zaragoza, "The
Probabilistic Relevance Framework: BM25 and Beyond", FnTIR 2009, eq. 3.30, with Lucene's non-negative
idf)::

    score(q, d) = Σ_{t ∈ q} idf(t) · tf(t, d) · (k1 + 1) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))
    idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5)),      k1 = 1.2, b = 0.75

Words are lower-cased, stop words and single letters dropped, and stemmed by the Snowball English
stemmer (PyStemmer). Each learner keeps one :class:`LexicalIndex` per scope, so the term statistics are
the scope's own: another tenant's words never change a score here.

Why written here: SQLite's FTS5 (tried first) ranks every matching row through its ``bm25()``
callback — 22 ms p50, 39 ms p95 per query at 10,000 items, over the whole search budget; bm25s
re-indexes the whole corpus on every change. The formula is a few lines of NumPy over postings that
grow with each add: ~1 ms at 10,000 items.

An item has up to three *views* (see :mod:`lifelong.learners.context.base`): its own text, the text
with the item before it in its thread (a conversation), and with the item after it. :meth:`search`
scores each view separately, relative to that view's best score for the query, so each view counts
the same however long its texts are; the learner averages the views.

The index is derived state: it holds nothing that the items do not, and is rebuilt from them when a
learner's state is loaded.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

#: The views of an item, in column order.
VIEWS = ("text", "before", "after")

#: BM25's term-frequency saturation and length normalisation (Robertson & Zaragoza 2009, §3.4).
K1 = 1.2
B = 0.75

#: Words too common to say what a text is about (the SMART list's most frequent words and question
#: words; Salton 1971). A query made only of them searches nothing.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves said say says""".split()  # noqa: SIM905 (a word list reads better as words)
)

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The searchable words of ``text``, lower-cased, in order; stop words and single letters (the "s"
    of "what's") left out."""
    return [w for w in _WORD.findall(text.casefold()) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def terms(text: str) -> list[str]:
    """The distinct searchable :func:`words` of ``text``, in order."""
    return list(dict.fromkeys(words(text)))


def _stemmer() -> Any:
    import Stemmer  # PyStemmer: the Snowball stemmers in C

    return Stemmer.Stemmer("english")


class _Postings:
    """The inverted index of one view: term → the rows holding it and how often; rows die in place."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.counts: dict[str, list[int]] = {}
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # materialised on first search
        self.length = np.zeros(64, dtype=np.float64)
        self.alive = np.zeros(64, dtype=bool)
        self.total = 0.0  # the summed length of the live rows
        self.live = 0

    def add(self, row: int, stems: list[str]) -> None:
        if row >= len(self.length):
            size = max(2 * len(self.length), row + 1)
            self.length = np.resize(self.length, size)
            self.alive = np.concatenate([self.alive, np.zeros(size - len(self.alive), dtype=bool)])
        for term, count in Counter(stems).items():
            self.rows.setdefault(term, []).append(row)
            self.counts.setdefault(term, []).append(count)
            self.arrays.pop(term, None)
        self.length[row] = len(stems)
        self.alive[row] = True
        self.total += len(stems)
        self.live += 1

    def kill(self, row: int) -> None:
        if self.alive[row]:
            self.alive[row] = False
            self.total -= self.length[row]
            self.live -= 1

    def scores(self, stems: list[str], rows: int) -> np.ndarray:
        """BM25 of every row for the query's stems (module docstring)."""
        out = np.zeros(rows, dtype=np.float64)
        if not self.live:
            return out
        norm = K1 * (1 - B + B * self.length[:rows] / (self.total / self.live))
        for term in dict.fromkeys(stems):
            if term not in self.rows:
                continue
            arrays = self.arrays.get(term)
            if arrays is None:
                arrays = self.arrays[term] = (
                    np.asarray(self.rows[term], dtype=np.int64),
                    np.asarray(self.counts[term], dtype=np.float64),
                )
            where, tf = arrays
            live = self.alive[where]
            where, tf = where[live], tf[live]
            if not len(where):
                continue
            idf = math.log(1 + (self.live - len(where) + 0.5) / (len(where) + 0.5))
            out[where] += idf * tf * (K1 + 1) / (tf + norm[where])
        return out


class LexicalIndex:
    """BM25 search over keyed texts with up to three views each (see the module docstring)."""

    def __init__(self) -> None:
        self._stem = _stemmer()
        self._views = [_Postings() for _ in VIEWS]
        self._row: dict[str, int] = {}
        self._keys: list[str | None] = []  # row -> key (None: a dead row)
        self._texts: list[tuple[str, str | None, str | None]] = []

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, key: object) -> bool:
        return key in self._row

    def _stems(self, text: str) -> list[str]:
        return list(self._stem.stemWords(words(text)))

    def put(self, key: str, text: str, before: str | None = None, after: str | None = None) -> None:
        """Index (or re-index) ``key``; a view that is None is the text alone."""
        self.remove(key)
        row = len(self._keys)
        self._row[key] = row
        self._keys.append(key)
        self._texts.append((text, before, after))
        own = self._stems(text)
        for postings, view in zip(self._views, (text, before, after), strict=True):
            postings.add(row, own if view is None else self._stems(view))

    def remove(self, key: str) -> None:
        row = self._row.pop(key, None)
        if row is None:
            return
        self._keys[row] = None
        for postings in self._views:
            postings.kill(row)
        if len(self._keys) > 64 and len(self._row) < len(self._keys) // 2:
            self._compact()

    def _compact(self) -> None:
        """Rebuild without the dead rows (when they outnumber the live ones)."""
        live = [(key, self._texts[row]) for key, row in sorted(self._row.items(), key=lambda kv: kv[1])]
        self.__init__()  # type: ignore[misc]
        for key, (text, before, after) in live:
            self.put(key, text, before, after)

    def search(self, query: str, k: int) -> dict[str, list[float]]:
        """Up to ``k`` best keys per view, each with one score per view (in :data:`VIEWS` order): the
        view's BM25 score relative to the view's best for this query (1.0: the best; 0: not found)."""
        stems = self._stems(query)
        if not stems or not self._row:
            return {}
        rows = len(self._keys)
        found: dict[str, list[float]] = {}
        for column, postings in enumerate(self._views):
            scores = postings.scores(stems, rows)
            best = float(scores.max())
            if best <= 0:
                continue
            top = np.argpartition(-scores, min(k, rows) - 1)[: min(k, rows)] if rows > k else np.arange(rows)
            for row in top:
                key = self._keys[row]
                if scores[row] > 0 and key is not None:
                    found.setdefault(key, [0.0] * len(VIEWS))[column] = float(scores[row]) / best
        return found

    def __getstate__(self) -> dict[str, Any]:
        return {
            "rows": [(key, *self._texts[row]) for key, row in sorted(self._row.items(), key=lambda kv: kv[1])]
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        for key, text, before, after in state["rows"]:
            self.put(key, text, before, after)
