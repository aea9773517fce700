"""``lifelong bench memory``: evidence recall of :class:`~lifelong.Memory` on LoCoMo-layout conversations.

Each conversation is one user's memory: its sessions are added in order with
:meth:`Memory.add_many` (one call per session, at the session's date; each turn one item, linked to its
neighbours), then every question is searched. Evidence recall@k (Maharana et al., ACL 2024, §5 and
their code): the share of a question's evidence turns among the top k, 1 for a question without
evidence, averaged over questions — overall and per category. The plain dense control ranks the same
turn texts by the cosine of the same embedder, nothing else, in the same run. Latency: one
``add_many`` per session (p50/p95 ms), turns ingested per second, one ``search`` per question (p50/p95
ms, the question embedded afresh), and search at ``--items`` items in one user's memory (default
10,000: the conversations' turns repeated).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import LOCOMO_CATEGORIES, Conversation, Turn, load_locomo
from lifelong.eval.result import Curve, Result
from lifelong.experience.records import Scope
from lifelong.learners.context.memory import Memory
from lifelong.models.base import CachedEmbedder, Embedder
from lifelong.models.embedders import default_embedder

KS = (5, 10, 25, 50)
TENANT = "locomo"


def turn_message(turn: Turn) -> dict[str, str]:
    """A LoCoMo turn as the chat message an app would send (a shared image as its caption)."""
    text = turn.text + (f" [shares a photo of {turn.caption}]" if turn.caption else "")
    return {"role": "user", "name": turn.speaker, "content": text}


def evidence_recall(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """The share of ``evidence`` among the first ``k`` of ``ranked`` (1.0 without evidence)."""
    if not evidence:
        return 1.0
    top = set(ranked[:k])
    return sum(e in top for e in evidence) / len(evidence)


def ingest(memory: Memory, conversation: Conversation) -> tuple[dict[str, str], list[float]]:
    """Add a conversation session by session; the dialogue id of each item, and each call's ms."""
    scope = Scope(tenant=TENANT, user=conversation.id)
    dia_of: dict[str, str] = {}
    ms = []
    for session in conversation.sessions:
        if not session.turns:
            continue
        start = time.perf_counter()
        items = memory.add_many(
            [turn_message(t) for t in session.turns], scope, thread=conversation.id, time=session.time
        )
        ms.append(1000 * (time.perf_counter() - start))
        for item, turn in zip(items, session.turns, strict=True):
            dia_of[item.id] = turn.dia_id
    return dia_of, ms


def plain_ranking(
    embedder: Embedder, conversation: Conversation, questions: Sequence[str]
) -> list[list[str]]:
    """The control: every turn ranked by the cosine of its text's embedding to the question's."""
    turns = [t for s in conversation.sessions for t in s.turns]
    ids = [t.dia_id for t in turns]
    vectors = embedder.embed([_item_text(t) for t in turns])
    scores = embedder.embed(list(questions)) @ vectors.T
    return [[ids[i] for i in np.argsort(-row, kind="stable")] for row in scores]


def _item_text(turn: Turn) -> str:
    message = turn_message(turn)
    return f"{message['name']}: {message['content']}"


def memory_bench(args: argparse.Namespace) -> Result:
    path = Path(args.data) if args.data else _default_locomo()
    conversations = load_locomo(path)
    inner = default_embedder()
    deepest = max(KS)
    per_question: dict[str, dict[tuple[int, str], list[float]]] = {"learner": {}, "plain": {}}
    per_conversation: dict[str, list[float]] = {}
    add_ms: list[float] = []
    search_ms: list[float] = []
    turns_added = 0
    ingest_seconds = 0.0
    for conversation in conversations:
        memory = Memory(CachedEmbedder(inner), budget=None, k=deepest)
        start = time.perf_counter()
        dia_of, ms = ingest(memory, conversation)
        ingest_seconds += time.perf_counter() - start
        turns_added += len(dia_of)
        add_ms += ms
        scope = Scope(tenant=TENANT, user=conversation.id)
        texts = [q.question for q in conversation.questions]
        rankings = []
        for text in texts:
            start = time.perf_counter()
            found = memory.search(text, scope, k=deepest)
            search_ms.append(1000 * (time.perf_counter() - start))
            rankings.append([dia_of[r.item.id] for r in found])
        plain = plain_ranking(inner, conversation, texts)
        for variant, ranked_all in (("learner", rankings), ("plain", plain)):
            scores = []
            for question, ranked in zip(conversation.questions, ranked_all, strict=True):
                category = LOCOMO_CATEGORIES[question.category]
                for k in KS:
                    value = evidence_recall(ranked, question.evidence, k)
                    per_question[variant].setdefault((k, "all"), []).append(value)
                    per_question[variant].setdefault((k, category), []).append(value)
                scores.append(evidence_recall(ranked, question.evidence, 5))
            per_conversation.setdefault(f"recall@5.{variant}", []).append(100 * float(np.mean(scores)))
    result = Result(
        name="memory",
        protocol="LoCoMo evidence recall@k: Memory (dense views + BM25, fused) vs plain dense cosine",
        seeds=[0],
        config={"data": str(path), "conversations": len(conversations), "ks": list(KS)},
    )
    for name, values in per_conversation.items():
        result.add_metric(name, values)  # mean ± std over conversations
    for variant in ("learner", "plain"):
        result.curves[f"{variant}"] = Curve(
            list(KS),
            [[100 * float(np.mean(per_question[variant][(k, "all")])) for k in KS]],
            kind="recall",
            xlabel="k",
            ylabel="evidence recall@k (%)",
        )

    def table(category: str) -> dict[str, Any]:
        return {
            f"recall@{k}": {
                variant: round(100 * float(np.mean(per_question[variant][(k, category)])), 2)
                for variant in ("learner", "plain")
            }
            for k in KS
            if (k, category) in per_question["learner"]
        }

    result.extra.update(table("all"))
    result.extra["by_category"] = {
        name: {**table(name), "questions": len(per_question["learner"].get((5, name), []))}
        for name in LOCOMO_CATEGORIES.values()
        if (5, name) in per_question["learner"]
    }
    result.extra["questions"] = len(per_question["learner"][(5, "all")])
    items = args.items or 10_000
    result.extra["latency"] = {
        "add_many_ms": _percentiles(add_ms),
        "ingest_turns_per_s": round(turns_added / ingest_seconds, 1) if ingest_seconds else None,
        "search_ms": _percentiles(search_ms),
        f"search_ms_at_{items}_items": _search_at(inner, conversations, items),
    }
    return result


def _default_locomo() -> Path:
    from lifelong.data import default_data_dir

    return default_data_dir() / "locomo-dev" / "locomo-dev.json"


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def _search_at(inner: Embedder, conversations: Sequence[Conversation], items: int) -> dict[str, float]:
    """Search latency with ``items`` turns in one user's memory: the conversations' turns, repeated
    (numbered, so none is merged), then every question once, each embedded afresh."""
    turns = [t for c in conversations for s in c.sessions for t in s.turns]
    memory = Memory(CachedEmbedder(inner, size=8192), budget=None, k=10)
    scope = Scope(tenant=TENANT, user="many")
    messages = [turn_message(turns[n % len(turns)]) for n in range(items)]
    for first in range(0, items, 1000):
        memory.add_many(messages[first : first + 1000], scope, thread="many")
    memory.embedder = CachedEmbedder(inner, size=1)  # every question is embedded afresh
    questions = [q.question for c in conversations for q in c.questions]
    memory.search(questions[0], scope)  # warm-up
    ms = []
    for question in questions[1:]:
        start = time.perf_counter()
        memory.search(question, scope, k=10)
        ms.append(1000 * (time.perf_counter() - start))
    return {**_percentiles(ms), "items": len(memory.active_items(scope)), "searches": len(ms)}


def examples_recall_bench(args: argparse.Namespace) -> Result:
    """The example bank's kNN vote (the vote expert of the agents) on an intent stream, prequentially:
    recall with the dense channel alone vs fused with BM25 under learned channel trust — the recall
    change checked on data it was not tuned on."""
    from lifelong.agents.agent import weighted_vote
    from lifelong.bench.intents import load_data
    from lifelong.eval.metrics import windowed
    from lifelong.learners.context.examples import ExampleBank

    data = load_data(args, holdout=0.0)
    texts, labels = list(data.train.texts), list(data.train.labels)
    steps = min(args.steps or 1000, len(texts))
    embedder = CachedEmbedder(default_embedder(), size=len(texts) + 1)
    window = max(50, steps // 5)
    variants = {"dense": False, "fused": True}
    right: dict[str, list[list[float]]] = {name: [] for name in variants}
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(texts))[:steps]
        for name, lexical in variants.items():
            bank = ExampleBank(embedder, lexical=lexical)
            hits = []
            for i in order:
                found = bank.recall(texts[i], Scope(), k=6)
                hits.append(float(bool(found) and weighted_vote(found)[0] == labels[i]))
                bank.learn_one(texts[i], correction=labels[i])
            right[name].append(hits)
    result = Result(
        name="examples-recall",
        protocol="prequential kNN vote of ExampleBank (k=6): dense recall vs dense + BM25 with learned trust",
        seeds=list(range(args.seeds)),
        config={"data": data.source, "steps": steps, "window": window},
    )
    for name, runs in right.items():
        windows = [windowed(hits, window) for hits in runs]
        result.curves[name] = Curve(
            [float(x) for x in windows[0][0]],
            [[float(v) for v in means] for _, means in windows],
            ylabel="right votes per window",
        )
        result.add_metric(f"{name}.accuracy", [float(np.mean(hits)) for hits in runs])
        result.add_metric(f"{name}.last_window", [float(np.mean(hits[-window:])) for hits in runs])
    return result
