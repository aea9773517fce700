"""Recall latency of a context learner at 10K and 100K items per scope, with no model call.

The items are real MiniLM embeddings of BANKING77 queries; past the number of distinct queries, each
further item is a known query's vector plus small Gaussian noise (σ = 0.05 per dimension before
re-normalising), so the index holds ``size`` distinct unit vectors with the neighbourhood structure of
real text. Each timed recall embeds a *new* query (a test-split text not seen before, so the embedder
cache never answers) and searches the scope: the latency a user sees.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.experience.records import Interaction, Scope
from lifelong.learners.context.examples import ExampleBank
from lifelong.models.base import CachedEmbedder, Embedder

SIZES = (10_000, 100_000)


def filled_bank(embedder: Embedder, texts: Sequence[str], size: int, seed: int = 0) -> ExampleBank:
    """An example bank whose one scope holds ``size`` items derived from ``texts``."""
    rng = np.random.default_rng(seed)
    base = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
    pick = rng.integers(0, len(texts), size=size)
    vectors = base[pick] + (np.arange(size) >= len(texts))[:, None] * rng.normal(
        0, 0.05, (size, base.shape[1])
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scope = Scope(tenant="latency")
    items = []
    for n, t in enumerate(pick):
        interaction = Interaction(scope, texts[t], id=f"item{n}", time=0.0)
        items.append(
            {
                "id": f"{interaction.id}/ExampleBank/0",
                "text": texts[t],
                "query": texts[t],
                "payload": {"input": texts[t], "output": "label"},
                "tenant": scope.tenant,
                "user": None,
                "sources": [interaction.id],
                "source_users": [None],
            }
        )
    bank = ExampleBank(embedder)
    bank.load_state_dict(
        {
            "learner": "ExampleBank",
            "version": 1,
            "state": {"items": items, "vectors": vectors.astype(np.float32)},
        }
    )
    return bank


def recall_latency(
    embedder: Embedder,
    texts: Sequence[str],
    queries: Sequence[str] | None = None,
    sizes: Sequence[int] = SIZES,
) -> dict[str, Any]:
    """p50/p95 milliseconds of ``recall`` (query embedding + search) per scope size."""
    queries = list(queries or texts[-300:])
    corpus = list(texts[: max(1, len(texts) - len(queries))])
    inner = embedder.inner if isinstance(embedder, CachedEmbedder) else embedder
    out: dict[str, Any] = {}
    for size in sizes:
        bank = filled_bank(inner, corpus, size)
        bank.embedder = CachedEmbedder(inner, size=1)  # every timed query is embedded afresh
        bank.recall(queries[0], Scope(tenant="latency"))  # warm-up
        ms = []
        for query in queries[1:]:
            start = time.perf_counter()
            bank.recall(query, Scope(tenant="latency"), k=8)
            ms.append(1000 * (time.perf_counter() - start))
        out[str(size)] = {
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "recalls": len(ms),
        }
    return out
