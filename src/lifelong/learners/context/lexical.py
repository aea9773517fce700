"""Lexical search over a scope's items: Okapi BM25 on SQLite FTS5, one column per view of an item.

Dense sentence embeddings miss what a question shares with its evidence word for word — names, places,
rare nouns ("the charity race", "Nate's turtles"); BM25 (Robertson & Zaragoza, "The Probabilistic
Relevance Framework: BM25 and Beyond", FnTIR 2009, eq. 3.30; FTS5's ``bm25()`` with k1 = 1.2,
b = 0.75) finds exactly those. :class:`LexicalIndex` keeps one FTS5 table per scope in an in-memory
SQLite database — SQLite ships with Python, indexes incrementally (add and delete are O(terms)) and
stems with the Porter stemmer — so the term statistics (document frequencies, average lengths) are the
scope's own: another tenant's words never change a score here.

An item has up to three *views* (see :mod:`lifelong.learners.context.base`): its own text, the text
with the item before it in its thread (a conversation), and with the item after it. :meth:`search`
scores each view separately, relative to that view's best score for the query, so each view counts
the same however long its texts are; the learner averages the views.

The index is derived state: it holds nothing that the items do not, and is rebuilt from them when a
learner's state is loaded.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from typing import Any

#: The views of an item, in column order.
VIEWS = ("text", "before", "after")

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


def terms(text: str) -> list[str]:
    """The distinct searchable words of ``text``, lower-cased, in order; stop words and single letters
    (the "s" of "what's") left out."""
    words = _WORD.findall(text.casefold())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS and (len(w) > 1 or w.isdigit())))


class LexicalIndex:
    """BM25 search over keyed texts with up to three views each (see the module docstring)."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE VIRTUAL TABLE items USING fts5(text, before, after, tokenize='porter unicode61')"
        )
        self._lock = threading.Lock()
        self._rowid: dict[str, int] = {}
        self._key: dict[int, str] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._rowid)

    def __contains__(self, key: object) -> bool:
        return key in self._rowid

    def put(self, key: str, text: str, before: str | None = None, after: str | None = None) -> None:
        """Index (or re-index) ``key``; a view that is None is the text alone."""
        row = (text, before if before is not None else text, after if after is not None else text)
        with self._lock:
            rowid = self._rowid.get(key)
            if rowid is not None:
                self._db.execute("DELETE FROM items WHERE rowid = ?", (rowid,))
            else:
                rowid = self._rowid[key] = self._next
                self._key[rowid] = key
                self._next += 1
            self._db.execute(
                "INSERT INTO items(rowid, text, before, after) VALUES (?, ?, ?, ?)", (rowid, *row)
            )

    def remove(self, key: str) -> None:
        with self._lock:
            rowid = self._rowid.pop(key, None)
            if rowid is not None:
                del self._key[rowid]
                self._db.execute("DELETE FROM items WHERE rowid = ?", (rowid,))

    def search(self, query: str, k: int) -> dict[str, list[float]]:
        """Up to ``k`` best keys per view, each with one score per view (in :data:`VIEWS` order): the
        view's BM25 score relative to the view's best for this query (1.0: the best; 0: not found)."""
        words = terms(query)
        if not words or not self._rowid:
            return {}
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        scores: dict[str, list[float]] = {}
        with self._lock:
            for column, view in enumerate(VIEWS):
                weights = ", ".join("1.0" if c == column else "0.0" for c in range(len(VIEWS)))
                rows = self._db.execute(  # the weights are ours, never the user's
                    f"SELECT rowid, bm25(items, {weights}) AS s FROM items "
                    f"WHERE items MATCH ? ORDER BY s LIMIT ?",
                    (f"{{{view}}} : ({match})", k),
                ).fetchall()
                if not rows:
                    continue
                best = -float(rows[0][1]) or 1.0  # FTS5's bm25() is negated: lower is better
                for rowid, score in rows:
                    row = scores.setdefault(self._key[rowid], [0.0] * len(VIEWS))
                    row[column] = -float(score) / best
        return scores

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT rowid, text, before, after FROM items ORDER BY rowid").fetchall()
        return {"rows": [(self._key[r[0]], *r[1:]) for r in rows]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        for key, text, before, after in state["rows"]:
            self.put(key, text, before, after)
