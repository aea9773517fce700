"""Protocols for recommenders on a rating log: prequential replay, and cold start ("100 users → user A").

**Prequential replay** (:func:`replay`). For every event (user, item, rating, time), in time order:

1. the model predicts the rating (squared and absolute error → RMSE, MAE), if it predicts ratings;
2. if the event is positive (rating ≥ ``threshold``), the model recommends its top ``k`` items for the
   user, excluding items the user rated before: a *hit* when the event's item is in the list (HR@k), with
   NDCG@k = 1 / log2(position + 2) for a hit at 0-based position;
3. the model learns from the event — unless it is past ``frozen_after`` (the frozen control).

This is the test-then-train protocol of :mod:`lifelong.eval.protocols` specialised to recommendation,
where each event needs a ranking as well as a prediction. The model is a :class:`Learner` (it learns a
:class:`Step`) or any object with ``learn_one(user, item, rating)`` (a peer library, see
:mod:`lifelong.interop.recsys`); only the learn call itself is timed, so ``events_per_second`` compares
learning, not the harness.

**Cold start** (:func:`cold_start`). A model learns the full histories of background users; then,
for each held-out user separately (the model is restored between users), it learns their first k
positives one at a time and recommends 10 items: Recall@10 against the user's next 5 positives, at every
k ∈ {0, 1, 2, 5, 10, 20}. The held-out set stays fixed across background draws, so the curves of
different draws and models are comparable. The frozen control — the background state, not learning the
user — ranks for the same targets with the same items left out; the gain over it is what the k
positives taught (the raw recall may fall with k because later positives are harder to hit). A user's
positives are their first positive event on each item: a re-rating is not a new target the list could
never hold. ``as_of="arrival"`` keeps only the background events before each user's first one — on a
log of many years the background's end is years after most users.

**Why not** :func:`~lifelong.eval.loop.run_stream`: that loop lets the environment judge the learner's
action and turns the verdict into feedback. Here nothing is judged — the rating is already in the log —
and each event needs two reads (a rating and a top-k list excluding the user's past items), per-event
timing of the learn call alone, and peers that are not :class:`Learner` s (``learn_one(user, item,
rating)``). The order is the same (predict, then learn; nothing logged is seen early), and
:func:`rating_step` builds the very :class:`Step` a logged event replays as, so a learner that learns
here learns exactly what ``log.replay()`` would give it.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.envs.recsys import Ratings
from lifelong.errors import InvalidInput
from lifelong.experience.records import Feedback, Interaction, Scope, Step
from lifelong.learners.base import Learner

DEFAULT_KS = (0, 1, 2, 5, 10, 20)


@dataclass
class ReplayTrace:
    """Per-event measurements of one replay (indices are event positions in the stream)."""

    squared_errors: list[float] = field(default_factory=list)
    absolute_errors: list[float] = field(default_factory=list)
    ranked_events: list[int] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    learn_seconds: float = 0.0
    rank_seconds: float = 0.0
    events: int = 0
    learned: int = 0
    #: learn() + rank() of the same user right after, in ms (see ``latency_every``).
    feedback_to_policy_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else math.nan

        return {
            "rmse": math.sqrt(mean(self.squared_errors)) if self.squared_errors else math.nan,
            "mae": mean(self.absolute_errors),
            "hr_at_k": mean(self.hits),
            "ndcg_at_k": mean(self.ndcg),
            "events_per_second": self.learned / self.learn_seconds if self.learn_seconds else math.nan,
            "rank_ms": 1000 * self.rank_seconds / max(1, len(self.hits)),
            "ranked": float(len(self.hits)),
        }

    def curves(self, window: int) -> dict[str, tuple[list[float], list[float]]]:
        """RMSE and HR@k per window of ``window`` events: name → (x = events so far, values)."""
        edges = list(range(window, self.events + 1, window))
        out: dict[str, tuple[list[float], list[float]]] = {}
        if self.squared_errors:
            errors = np.asarray(self.squared_errors)
            out["rmse"] = (
                [float(e) for e in edges],
                [math.sqrt(float(errors[e - window : e].mean())) for e in edges],
            )
        if self.hits:
            at, hits = np.asarray(self.ranked_events), np.asarray(self.hits)
            values = []
            for e in edges:
                inside = (at >= e - window) & (at < e)
                values.append(float(hits[inside].mean()) if inside.any() else math.nan)
            out["hr_at_k"] = ([float(e) for e in edges], values)
        return out


def rating_step(data: Ratings, n: int) -> Step:
    """Event ``n`` of ``data`` as a Step: observation {"user": "u<id>", "item": "i<id>"} (the dense ids of
    :class:`Ratings`) with a rating."""
    user, item, stamp = f"u{data.user[n]}", f"i{data.item[n]}", float(data.time[n])
    interaction = Interaction(
        Scope(tenant="ratings", user=user), {"user": user, "item": item}, None, time=stamp
    )
    return Step(interaction, (Feedback.rating(interaction.id, float(data.rating[n]), time=stamp),))


def replay(
    model: Any,
    data: Ratings,
    *,
    n_events: int | None = None,
    k: int = 10,
    threshold: float | None = None,
    predicts_ratings: bool = True,
    frozen_after: int | None = None,
    rank_every: int = 1,
    latency_every: int = 0,
) -> ReplayTrace:
    """Run the protocol of the module docstring over the first ``n_events`` events of ``data``.

    ``threshold`` (default: the data's own, ``data.threshold``) makes an event positive. A positive on an
    item the user already rated (a repeat, in an interaction log) is not ranked: the list leaves the user's
    rated items out, so it could never hit — MovieLens has no repeats, other logs do.
    ``rank_every`` ranks only every n-th positive event (for peers that score items one call at a time);
    ``latency_every`` > 0 times ``learn`` followed by ``rank`` for the same user on every n-th event — the
    feedback-to-policy delay — checking that the learner's version moved (the change is visible).
    """
    if k < 1 or rank_every < 1 or latency_every < 0:
        raise InvalidInput("k and rank_every must be >= 1, latency_every >= 0", field="k")
    total = len(data) if n_events is None else min(n_events, len(data))
    threshold = data.threshold if threshold is None else threshold
    is_learner = isinstance(model, Learner)
    seen: dict[str, set[str]] = defaultdict(set)
    trace = ReplayTrace()
    positives = 0
    for n in range(total):
        user, item = f"u{data.user[n]}", f"i{data.item[n]}"
        rating = float(data.rating[n])
        if predicts_ratings:
            predicted = (
                model.predict({"user": user, "item": item}) if is_learner else model.predict_one(user, item)
            )
            error = float(predicted) - rating
            trace.squared_errors.append(error * error)
            trace.absolute_errors.append(abs(error))
        if rating >= threshold and item not in seen[user]:
            positives += 1
            if positives % rank_every == 0:
                started = time.perf_counter()
                top = model.rank(user, k=k, exclude=seen[user])
                trace.rank_seconds += time.perf_counter() - started
                position = top.index(item) if item in top else -1
                trace.ranked_events.append(n)
                trace.hits.append(1.0 if position >= 0 else 0.0)
                trace.ndcg.append(1.0 / math.log2(position + 2) if position >= 0 else 0.0)
        if frozen_after is not None and n == frozen_after and is_learner:
            model.freeze()
        if frozen_after is None or n < frozen_after:
            _learn_timed(model, data, n, is_learner, trace, latency_every)
        trace.events += 1
        seen[user].add(item)
    return trace


def _learn_timed(model: Any, data: Ratings, n: int, is_learner: bool, trace: ReplayTrace, every: int) -> None:
    if is_learner:
        step = rating_step(data, n)
        version = model.version
        started = time.perf_counter()
        model.learn(step)
        learned = time.perf_counter()
        if every and n % every == 0 and model.version > version:
            model.rank(f"u{data.user[n]}", k=10)
            trace.feedback_to_policy_ms.append(1000 * (time.perf_counter() - started))
    else:
        user, item, rating = f"u{data.user[n]}", f"i{data.item[n]}", float(data.rating[n])
        started = time.perf_counter()
        model.learn_one(user, item, rating)
        learned = time.perf_counter()
    trace.learn_seconds += learned - started
    trace.learned += 1


def learn_throughput(model: Any, data: Ratings, n_events: int | None = None) -> float:
    """Events per second of the learn call alone over the stream in time order.

    The inputs (Steps for a :class:`Learner`, ``(user, item, rating)`` for a peer) are built beforehand,
    so only learning is timed — the same work for every model, with nothing interleaved.
    """
    total = len(data) if n_events is None else min(n_events, len(data))
    if isinstance(model, Learner):
        steps = [rating_step(data, n) for n in range(total)]
        started = time.perf_counter()
        for step in steps:
            model.learn(step)
    else:
        events = [(f"u{data.user[n]}", f"i{data.item[n]}", float(data.rating[n])) for n in range(total)]
        started = time.perf_counter()
        for user, item, rating in events:
            model.learn_one(user, item, rating)
    return total / (time.perf_counter() - started)


# -- cold start ------------------------------------------------------------------------------------
def positives_by_user(data: Ratings, threshold: float | None = None) -> dict[int, list[int]]:
    """Event indices of each user's positives (rating ≥ ``threshold``, default ``data.threshold``) in time
    order: the first positive event on each item only (a repeat of an item is not a new positive)."""
    threshold = data.threshold if threshold is None else threshold
    by_user: dict[int, list[int]] = defaultdict(list)
    seen: set[tuple[int, int]] = set()
    for n in np.flatnonzero(data.rating >= threshold):
        key = (int(data.user[n]), int(data.item[n]))
        if key not in seen:
            seen.add(key)
            by_user[key[0]].append(int(n))
    return dict(by_user)


def held_out_users(data: Ratings, n_users: int = 100, *, need: int = 25, seed: int = 0) -> list[int]:
    """A fixed sample of users with at least ``need`` positives (k = 20 revealed + 5 to predict)."""
    eligible = sorted(u for u, events in positives_by_user(data).items() if len(events) >= need)
    if len(eligible) < n_users:
        raise InvalidInput(
            f"only {len(eligible)} users of {data.source} have {need} positives (rating >= "
            f"{data.threshold:g}, distinct items); cold start holds out {n_users}",
            field="n_users",
        )
    rng = np.random.default_rng(seed)
    return sorted(int(u) for u in rng.choice(eligible, size=n_users, replace=False))


def background_users(data: Ratings, exclude: Sequence[int], n_users: int, seed: int) -> list[int]:
    """``n_users`` users drawn at random (``seed``) from those not in ``exclude``."""
    pool = sorted(set(int(u) for u in np.unique(data.user)) - set(exclude))
    if len(pool) < n_users:
        raise InvalidInput(
            f"only {len(pool)} users of {data.source} outside the held-out set", field="n_users"
        )
    return sorted(int(u) for u in np.random.default_rng(seed).choice(pool, size=n_users, replace=False))


@dataclass
class ColdStart:
    """Recall@k by number of revealed positives, of the model and of its frozen control (same targets).

    ``recall[k]``: the model after learning the user's first k positives; ``frozen[k]``: the same model
    frozen at the background state, ranking for the same user with the same items left out — what the
    list would be without learning anything from the user. ``gain[k]`` = ``recall[k] − frozen[k]``: what
    the k positives taught. The raw recall may fall with k when the later targets are harder to hit (on
    MovieLens users rate the popular films first; on a log of many years their taste and the catalogue
    move on); the gain removes that, as both rows are scored on the same targets.
    """

    recall: dict[int, float]
    frozen: dict[int, float]
    users: int
    as_of: str

    @property
    def gain(self) -> dict[int, float]:
        return {k: self.recall[k] - self.frozen[k] for k in self.recall}


def cold_start(
    make_model: Callable[[int], Learner],
    data: Ratings,
    held_out: Sequence[int],
    background: Sequence[int],
    *,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    k: int = 10,
    n_next: int = 5,
    epochs: int = 1,
    as_of: str = "end",
) -> ColdStart:
    """Recall@k at each number of revealed positives, averaged over ``held_out`` (module docstring), with
    the frozen control on the same targets.

    ``as_of`` says what the model knows of the background when a held-out user arrives:

    - ``"end"`` — the background users' full histories (the protocol as specified, "100 users → user A"):
      the model's clock stands at the end of the background log. Right on a log of a few months; on one of
      many years a time-decayed model recommends what is popular years after the user's time;
    - ``"arrival"`` — only the background events before the user's first event (one pass in time order,
      the state restored after each user): what a deployed system knew when the user came.

    ``epochs`` > 1 replays the background log that many times (offline consolidation before the test;
    ``as_of="end"`` only); the held-out users' positives are always learned once, online.
    """
    ks = sorted(set(ks))
    if not ks or ks[0] < 0:
        raise InvalidInput("ks must be non-negative", field="ks")
    if as_of not in ("end", "arrival"):
        raise InvalidInput(f"must be 'end' or 'arrival', got {as_of!r}", field="as_of")
    if epochs != 1 and as_of != "end":
        raise InvalidInput("several background passes need as_of='end'", field="epochs")
    positives = positives_by_user(data)
    for user in held_out:
        if len(positives.get(user, ())) < ks[-1] + n_next:
            raise InvalidInput(
                f"user {user} has {len(positives.get(user, ()))} positives, fewer than {ks[-1] + n_next}",
                field="held_out",
            )
    model = make_model(seed)
    members = set(background)
    events = [n for n in range(len(data)) if int(data.user[n]) in members]
    recalls: dict[int, list[float]] = {kk: [] for kk in ks}
    frozen: dict[int, list[float]] = {kk: [] for kk in ks}

    def test(user: int, trained: dict[str, Any]) -> None:
        """The reveal-and-rank loop of ``user`` from ``trained``, then the frozen control's."""
        model.load_state_dict(trained)
        mine = positives[user]
        revealed = 0
        for kk in ks:
            for n in mine[revealed:kk]:
                model.learn(rating_step(data, n))
            revealed = kk
            recalls[kk].append(_recall(model, data, user, mine, kk, k, n_next))
        model.load_state_dict(trained)
        model.frozen = True  # the control: the same state, nothing learned from the user
        for kk in ks:
            frozen[kk].append(_recall(model, data, user, mine, kk, k, n_next))
        model.frozen = False

    if as_of == "end":
        steps = [rating_step(data, n) for n in events]
        for _ in range(epochs):
            model.learn_many(steps)
        trained = model.state_dict()
        for user in held_out:
            test(user, trained)
    else:
        arrival = {user: int(np.flatnonzero(data.user == user)[0]) for user in held_out}
        learned = 0
        for user in sorted(held_out, key=lambda u: arrival[u]):
            while learned < len(events) and events[learned] < arrival[user]:
                model.learn(rating_step(data, events[learned]))
                learned += 1
            test(user, model.state_dict())
    return ColdStart(
        {kk: float(np.mean(v)) for kk, v in recalls.items()},
        {kk: float(np.mean(v)) for kk, v in frozen.items()},
        len(held_out),
        as_of,
    )


def _recall(
    model: Learner, data: Ratings, user: int, events: list[int], kk: int, k: int, n_next: int
) -> float:
    """Recall@k of the user's ranked list against their positives kk … kk + n_next, the first kk left out."""
    shown = {f"i{data.item[n]}" for n in events[:kk]}
    wanted = {f"i{data.item[n]}" for n in events[kk : kk + n_next]}
    top = model.rank(f"u{user}", k=k, exclude=shown)  # type: ignore[attr-defined]
    return len(wanted.intersection(top)) / len(wanted)


def cold_start_recall(
    make_model: Callable[[int], Learner],
    data: Ratings,
    held_out: Sequence[int],
    background: Sequence[int],
    *,
    seed: int = 0,
    ks: Sequence[int] = DEFAULT_KS,
    k: int = 10,
    n_next: int = 5,
    epochs: int = 1,
    as_of: str = "end",
) -> dict[int, float]:
    """The model's row of :func:`cold_start`: Recall@k by number of revealed positives."""
    run = cold_start(
        make_model,
        data,
        held_out,
        background,
        seed=seed,
        ks=ks,
        k=k,
        n_next=n_next,
        epochs=epochs,
        as_of=as_of,
    )
    return run.recall
