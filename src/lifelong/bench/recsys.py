"""Benchmark suite for personalization with fast weights: ``lifelong bench recsys``.

Four measurements in one run (``docs/benchmarks.md`` has the numbers and the command). The rating log is
MovieLens 100K by default, or any ratings CSV (``--data FILE.csv``, see ``docs/data.md``); without side
features the ``+features`` rating model is skipped, and the result says so.

1. **Prequential replay** (:func:`lifelong.eval.recsys.replay`): every model predicts and ranks before it
   learns each event in time order (MovieLens 100K: 100,000). Ours: the rating model
   (:class:`StreamingFactorization`) and the top-N ranker (:class:`ImplicitFactorization`), each with its
   frozen control (same model, learning stopped after ``WARMUP`` events), and time-decayed popularity
   (its half-life the best of :data:`HALF_LIVES` on this replay, :func:`choose_half_life`: 30 days on
   MovieLens 100K, no decay on a log of many years).
   Peers on the same stream: river's ``BiasedMF`` and ``FunkMF`` (with the settings of river's own
   MovieLens example) and Vowpal Wabbit ``--rank``. Peers rank one ``predict_one`` per item, so HR@10 is
   measured for everyone on every ``RANK_EVERY``-th positive event as well (``hr_at_10_sampled``).
2. **Cold start / 100 users → user A** (:func:`lifelong.eval.recsys.cold_start`): learn the full
   histories of 100 background users (one draw per seed), then reveal k of each fixed held-out user's
   positives; Recall@10 on their next 5, and the gain over the frozen control on the same targets (the
   raw recall may fall with k when later positives are harder to hit; the gain need not). Again *as of each
   user's arrival*: only the background events before the user's first one — on a log of many years
   the background's end is years after most users, and a time-decayed model at that clock recommends
   what is popular then.
3. **Interactive**: 100 simulated users; cumulative regret against the oracle per exploration strategy
   (ε-greedy, LinUCB, greedy) with the frozen control, via :func:`lifelong.eval.protocols.cumulative_regret`.
4. **Latency**: feedback-to-policy time (``learn`` then ``rank`` for the same user) in process, and with
   the feedback appended durably to a SQLite experience log first.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import parse_columns, parse_delimiter
from lifelong.envs.recsys import RATING_COLUMNS, Ratings, SimulatedUsers, load_ratings
from lifelong.errors import BackendUnavailable, InvalidInput
from lifelong.eval.protocols import cumulative_regret
from lifelong.eval.recsys import (
    ColdStart,
    background_users,
    held_out_users,
    learn_throughput,
    rating_step,
    replay,
)
from lifelong.eval.recsys import cold_start as cold_start_protocol
from lifelong.eval.result import Curve, Result, merge_results
from lifelong.experience import ExperienceLog
from lifelong.learners.base import Learner
from lifelong.learners.recsys._kernels import compile_kernels
from lifelong.learners.recsys.bandits import EpsilonGreedy, LinUCB
from lifelong.learners.recsys.covisitation import CoVisitation
from lifelong.learners.recsys.factorization import StreamingFactorization
from lifelong.learners.recsys.implicit import ImplicitFactorization
from lifelong.learners.recsys.popularity import Popularity
from lifelong.learners.recsys.ranking import RankFusion

WARMUP = 10_000  # events the frozen controls learn from before they stop
RANK_EVERY = 25  # peers rank every 25th positive event (one predict_one per item is slow)
CURVE_WINDOW = 5_000
HALF_LIFE = 30 * 86_400.0  # popularity's half-life on MovieLens 100K: the best of HALF_LIVES there
#: The popularity control's half-lives (seconds); a run takes the best on its own replay (choose_half_life).
HALF_LIVES = (6 * 3_600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0, math.inf)
LATENCY_EVERY = 50
KS = (0, 1, 2, 5, 10, 20)


def rating_model(seed: int) -> StreamingFactorization:
    """The rating model's settings: chosen by a small grid on this stream (docs/benchmarks.md)."""
    return StreamingFactorization(dim=10, learning_rate=0.2, reg=0.08, init_scale=0.01, seed=seed)


def rating_model_with_features(data: Ratings) -> Callable[[int], StreamingFactorization]:
    """The rating model with item genres and user demographics as shared side features."""
    if data.genres is None or data.age is None or data.gender is None or data.occupation is None:
        raise InvalidInput(f"{data.source} has no side features", field="--data")
    items, users = range(1, data.n_items + 1), range(1, data.n_users + 1)
    genres = {f"i{n}": [f"genre{g}" for g in np.flatnonzero(data.genres[n])] for n in items}
    people = {
        f"u{n}": [f"age{data.age[n] // 10}", f"gender:{data.gender[n]}", f"job:{data.occupation[n]}"]
        for n in users
    }

    def make(seed: int) -> StreamingFactorization:
        return StreamingFactorization(
            dim=10,
            learning_rate=0.2,
            reg=0.08,
            init_scale=0.01,
            item_features=lambda item: genres.get(item, []),
            user_features=lambda user: people.get(user, []),
            seed=seed,
        )

    return make


def fpmc_model(seed: int) -> ImplicitFactorization:
    return ImplicitFactorization(dim=64, negatives=10, window=3, learning_rate=0.1, seed=seed)


def covisitation_model(seed: int) -> CoVisitation:
    return CoVisitation(window=5, context=5, alpha=0.5)


def ranking_model(seed: int) -> RankFusion:
    """Our top-N recommender: the factor model and co-visitation fused by reciprocal rank."""
    return RankFusion({"fpmc": fpmc_model(seed), "covisitation": covisitation_model(seed)})


def popularity_model(data: Ratings, half_life: float = HALF_LIFE) -> Callable[[int], Popularity]:
    """Time-decayed popularity counting the data's own positives (``data.threshold``)."""

    def make(seed: int) -> Popularity:
        return Popularity(half_life=half_life, threshold=data.threshold)

    return make


def river_peers() -> dict[str, Callable[[int], Any]]:
    """river's reco models with the settings of its MovieLens 100K example."""
    try:
        from river import optim, reco
    except ImportError:
        return {}
    from lifelong.interop.recsys import RiverRecommender

    def biased_mf(seed: int) -> Any:
        return RiverRecommender(
            reco.BiasedMF(
                n_factors=10,
                bias_optimizer=optim.SGD(0.025),
                latent_optimizer=optim.SGD(0.05),
                weight_initializer=optim.initializers.Zeros(),
                latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
                l2_bias=0.0,
                l2_latent=0.0,
            )
        )

    def funk_mf(seed: int) -> Any:
        return RiverRecommender(
            reco.FunkMF(
                n_factors=10,
                optimizer=optim.SGD(0.05),
                initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
            )
        )

    return {"river.BiasedMF": biased_mf, "river.FunkMF": funk_mf}


def vw_peer() -> dict[str, Callable[[int], Any]]:
    from lifelong.interop.recsys import VowpalWabbitMF

    try:
        VowpalWabbitMF()
    except BackendUnavailable:
        return {}
    return {"vw.rank": lambda seed: VowpalWabbitMF(rank=10)}


def choose_half_life(data: Ratings, n_events: int | None) -> tuple[float, dict[str, float]]:
    """The popularity control's half-life: the best HR@10 of :data:`HALF_LIVES` on this replay.

    A constant in seconds does not carry over between logs: 30 days was the best on MovieLens 100K's
    7 months, but on a log of many years it is a sliver of the span (and a count thousands of half-lives
    old is nothing). The control is tuned on the stream it is measured on — optimistic for the control,
    so conservative for any claim of beating it. Returns the half-life and HR@10 by half-life in days.
    """
    scores: dict[str, float] = {}
    best, best_hr = HALF_LIFE, -1.0
    for half_life in HALF_LIVES:
        model = Popularity(half_life=half_life, threshold=data.threshold)
        hr = replay(model, data, n_events=n_events, predicts_ratings=False).summary()["hr_at_k"]
        scores["inf" if math.isinf(half_life) else f"{half_life / 86_400:g}"] = hr
        if hr > best_hr:  # ties: the shorter half-life, first in the grid
            best, best_hr = half_life, hr
    return best, scores


# -- 1. prequential replay ------------------------------------------------------------------------
def prequential_replay(
    data: Ratings, seeds: list[int], n_events: int | None, result: Result, half_life: float = HALF_LIFE
) -> None:
    features: dict[str, tuple[Callable[[int], Any], bool, int | None]] = {}
    if data.has_features:
        features["ours.rating+features"] = (rating_model_with_features(data), True, None)
    else:
        result.extra.setdefault("skipped", {})["replay.ours.rating+features"] = (
            f"{data.source} has no side features (item genres, user demographics)"
        )
    arms: dict[str, tuple[Callable[[int], Any], bool, int | None]] = {
        # name: (factory, predicts ratings, frozen after)
        "ours.rating": (rating_model, True, None),
        "ours.rating.frozen": (rating_model, True, WARMUP),
        **features,
        "ours.ranking": (ranking_model, False, None),
        "ours.ranking.frozen": (ranking_model, False, WARMUP),
        "ours.fpmc": (fpmc_model, False, None),
        "ours.covisitation": (covisitation_model, False, None),
        "popularity": (popularity_model(data, half_life), False, None),
    }
    peers = {**river_peers(), **vw_peer()}
    for name, make in peers.items():
        arms[name] = (make, True, None)
    summaries: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    curves: dict[tuple[str, str], tuple[list[float], list[list[float]]]] = {}
    latency: list[float] = []
    for seed in seeds:
        for name, (make, rates, frozen_after) in arms.items():
            is_peer = name in peers
            model = make(seed)
            started = time.perf_counter()
            trace = replay(
                model,
                data,
                n_events=n_events,
                predicts_ratings=rates,
                frozen_after=frozen_after,
                rank_every=RANK_EVERY if is_peer else 1,
                latency_every=LATENCY_EVERY if name == "ours.ranking" else 0,
            )
            summary = trace.summary()
            if not is_peer:  # the same sample of positive events the peers are ranked on
                summary["hr_at_k_sampled"] = float(np.mean(trace.hits[RANK_EVERY - 1 :: RANK_EVERY]))
            else:
                summary["hr_at_k_sampled"] = summary["hr_at_k"]
            summary["seconds"] = time.perf_counter() - started
            if frozen_after is None and name != "popularity":
                summary["learn_events_per_second"] = learn_throughput(make(seed), data, n_events)
            summaries[name].append(summary)
            latency.extend(trace.feedback_to_policy_ms)
            for metric, (x, values) in trace.curves(CURVE_WINDOW).items():
                if is_peer and metric == "hr_at_k":
                    continue  # too few ranked events per window
                curves.setdefault((name, metric), (x, []))[1].append(values)
            print(
                f"  seed {seed} {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in summary.items()), flush=True
            )
    for (name, metric), (x, per_seed) in curves.items():
        label = "HR@10" if metric == "hr_at_k" else "RMSE"
        result.curves[f"{name} {label}"] = Curve(x, per_seed, kind=label, xlabel="events", ylabel=label)
    for name, rows in summaries.items():
        for metric in rows[0]:
            result.add_metric(f"replay.{name}.{metric}", [row[metric] for row in rows])
    result.extra["replay_latency_ms"] = _percentiles(latency)
    rated = [n for n, (_, rates, frozen) in arms.items() if rates and frozen is None]
    ranked = [n for n in arms if not n.endswith(".frozen")]
    result.extra["rmse"] = {n: result.metric_mean(f"replay.{n}.rmse") for n in rated}
    result.extra["mae"] = {n: result.metric_mean(f"replay.{n}.mae") for n in rated}
    result.extra["hr_at_10"] = {
        n: result.metric_mean(f"replay.{n}.hr_at_k") for n in ranked if n not in peers
    } | {f"{n} (sampled)": result.metric_mean(f"replay.{n}.hr_at_k") for n in peers}
    result.extra["hr_at_10_sampled"] = {n: result.metric_mean(f"replay.{n}.hr_at_k_sampled") for n in ranked}
    result.extra["frozen_control"] = {
        "rmse": result.metric_mean("replay.ours.rating.frozen.rmse"),
        "hr_at_10": result.metric_mean("replay.ours.ranking.frozen.hr_at_k"),
        "frozen_after_events": WARMUP,
    }
    learners = [n for n in ranked if n != "popularity"]
    result.extra["events_per_second"] = {
        n: result.metric_mean(f"replay.{n}.learn_events_per_second") for n in learners
    }
    result.extra["events_per_second_in_replay"] = {
        n: result.metric_mean(f"replay.{n}.events_per_second") for n in learners
    }
    ours = result.metric_mean("replay.ours.rating.learn_events_per_second") or math.nan
    best_river = min(
        (result.metric_mean(f"replay.{n}.rmse") or math.inf for n in peers if n.startswith("river")),
        default=math.nan,
    )
    pop_hr = result.metric_mean("replay.popularity.hr_at_k") or math.nan
    result.extra["ratios"] = {
        "throughput_ours_rating_vs": {
            n: ours / (result.metric_mean(f"replay.{n}.learn_events_per_second") or math.nan) for n in peers
        },
        "rmse_ours_vs_best_river": (result.metric_mean("replay.ours.rating.rmse") or math.nan) / best_river,
        "hr_at_10_ours_ranking_vs_popularity": (result.metric_mean("replay.ours.ranking.hr_at_k") or math.nan)
        / pop_hr,
    }


# -- 2. cold start ------------------------------------------------------------------------------
def cold_start(data: Ratings, seeds: list[int], result: Result, half_life: float = HALF_LIFE) -> None:
    held_out = held_out_users(data, 100, seed=12345)
    models: dict[str, tuple[Callable[[int], Learner], int]] = {
        # name: (factory, passes over the background log)
        "ours.ranking": (ranking_model, 1),
        "ours.fpmc": (fpmc_model, 1),
        "ours.fpmc (5 passes)": (fpmc_model, 5),
        "ours.covisitation": (covisitation_model, 1),
        "popularity": (popularity_model(data, half_life), 1),
    }
    runs: dict[tuple[str, str], list[ColdStart]] = {}
    for seed in seeds:
        background = background_users(data, held_out, 100, seed=seed)
        for as_of in ("end", "arrival"):
            for name, (make, epochs) in models.items():
                if as_of == "arrival" and epochs > 1:
                    continue  # offline passes over the background need the whole of it
                run = cold_start_protocol(
                    make, data, held_out, background, seed=seed, ks=KS, epochs=epochs, as_of=as_of
                )
                runs.setdefault((as_of, name), []).append(run)
                where = "" if as_of == "end" else " (as of arrival)"
                print(
                    f"  cold start{where} seed {seed} {name}: "
                    + ", ".join(f"k={k} {run.recall[k]:.3f} ({run.gain[k]:+.3f})" for k in KS),
                    flush=True,
                )
    x = [float(k) for k in KS]

    def table(
        rows: list[ColdStart], row: str, stat: Callable[[list[float]], Any] = np.mean
    ) -> dict[str, float]:
        return {str(k): float(stat([getattr(r, row)[k] for r in rows])) for k in KS}

    for (as_of, name), rows in runs.items():
        label = "cold start" if as_of == "end" else "cold start as of arrival"
        kind = "recall_at_10" if as_of == "end" else "recall_at_10_as_of_arrival"
        result.curves[f"{label}: {name}"] = Curve(
            x,
            [[r.recall[k] for k in KS] for r in rows],
            kind=kind,
            xlabel="positives revealed (k)",
            ylabel="Recall@10",
        )
        if as_of == "end":
            result.curves[f"cold start gain over frozen: {name}"] = Curve(
                x,
                [[r.gain[k] for k in KS] for r in rows],
                kind="recall_gain_at_10",
                xlabel="positives revealed (k)",
                ylabel="Recall@10 − frozen control's",
            )
    end = {name: rows for (as_of, name), rows in runs.items() if as_of == "end"}
    arrival = {name: rows for (as_of, name), rows in runs.items() if as_of == "arrival"}
    result.extra["recall_at_10_by_k"] = {name: table(rows, "recall") for name, rows in end.items()}
    result.extra["recall_at_10_by_k_std"] = {
        name: table(rows, "recall", np.std) for name, rows in end.items()
    }
    result.extra["recall_at_10_by_k_frozen"] = {name: table(rows, "frozen") for name, rows in end.items()}
    result.extra["recall_at_10_gain_by_k"] = {name: table(rows, "gain") for name, rows in end.items()}
    result.extra["cold_start_as_of_arrival"] = {
        "recall_at_10_by_k": {name: table(rows, "recall") for name, rows in arrival.items()},
        "recall_at_10_gain_by_k": {name: table(rows, "gain") for name, rows in arrival.items()},
        "protocol": "the background events before each held-out user's first event only",
    }
    result.extra["cold_start"] = {
        "held_out_users": held_out,
        "background_users": 100,
        "next_positives": 5,
        "frozen_control": "the background state, ranking for the same user with the same items left out",
    }


# -- 3. interactive -----------------------------------------------------------------------------
def interactive(seeds: list[int], horizon: int, result: Result) -> None:
    strategies: dict[str, Callable[[int], Learner]] = {
        "epsilon_greedy": lambda seed: EpsilonGreedy(0.1, seed=seed),
        "linucb": lambda seed: LinUCB(1.0, seed=seed),
        "greedy": lambda seed: EpsilonGreedy(0.0, seed=seed),
    }
    regret: dict[str, float | None] = {}
    for name, make in strategies.items():
        run = cumulative_regret(
            make,
            lambda seed: SimulatedUsers(n_users=100, n_items=200, horizon=horizon, seed=seed),
            seeds,
            warmup=500,
            max_steps=horizon,
            progress=False,
            name=f"interactive {name}",
        )
        merge_results(result, run, f"interactive.{name}")
        regret[name] = run.metric_mean("regret")
        regret[f"{name}.frozen_control"] = run.metric_mean("frozen.regret")
        print(
            f"  interactive {name}: regret {regret[name]:.1f} (frozen {regret[name + '.frozen_control']:.1f})"
        )
    result.extra["interactive_regret"] = regret


# -- 4. latency ---------------------------------------------------------------------------------
def logged_latency(data: Ratings, end: int, n_events: int) -> dict[str, float]:
    """learn+rank after appending the interaction and its feedback to a SQLite log (synchronous=FULL),
    for the ``n_events`` events before ``end``, the model having learned all events before them."""
    model = ranking_model(0)
    split = max(0, end - n_events)
    for n in range(split):
        model.learn(rating_step(data, n))
    times = []
    with tempfile.TemporaryDirectory() as folder:
        log = ExperienceLog(f"sqlite:///{Path(folder) / 'experience.db'}")
        try:
            for n in range(split, end):
                step = rating_step(data, n)
                started = time.perf_counter()
                log.append_many([step.interaction, *step.feedback])
                model.learn(step)
                model.rank(str(step.interaction.scope.user), k=10)
                times.append(1000 * (time.perf_counter() - started))
        finally:
            log.close()
    return _percentiles(times)


def _percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50": math.nan, "p99": math.nan, "n": 0}
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "n": len(ms)}


def load_data(args: argparse.Namespace) -> Ratings:
    """The rating log ``--data`` names (a CSV file, a MovieLens 100K folder, or a data folder holding
    ``ml-100k``; default: the shared ``ml-100k``), read with ``--columns``, ``--delimiter``,
    ``--positive``."""
    return load_ratings(
        getattr(args, "data", None),
        columns=parse_columns(getattr(args, "columns", None), tuple(RATING_COLUMNS)),
        delimiter=parse_delimiter(getattr(args, "delimiter", None)),
        positive=getattr(args, "positive", None),
    )


def recsys(args: argparse.Namespace) -> Result:
    if args.seeds < 1:
        raise InvalidInput(f"must be >= 1, got {args.seeds}", field="--seeds")
    data = load_data(args)
    days = getattr(args, "half_life", None)
    compile_kernels()
    if days is None:
        half_life, grid = choose_half_life(data, args.steps)
    else:
        half_life, grid = days * 86_400.0, {}
    seeds = list(range(args.seeds))
    result = Result(name=f"recsys ({data.name} + simulated users)", protocol="recsys", seeds=seeds)
    result.config = {
        "data": data.describe(),
        "events": min(args.steps or len(data), len(data)),
        "warmup_before_frozen": WARMUP,
        "rank_every_for_peers": RANK_EVERY,
        "popularity_half_life_days": None if math.isinf(half_life) else half_life / 86_400,
        "popularity_half_life_hr_at_10": grid or "set by --half-life",
        "rating_model": rating_model(0).config(),
        "ranking_model": ranking_model(0).config(),
        "cold_start": "100 background users per seed; the same 100 held-out users (>= 25 positives) for all",
    }
    started = time.perf_counter()
    print(f"data: {data.source} ({len(data):,} events, {data.n_users:,} users, {data.n_items:,} items)")
    print(
        f"popularity half-life: {half_life / 86_400:g} days" + (f" (HR@10 by days: {grid})" if grid else "")
    )
    print("prequential replay", flush=True)
    prequential_replay(data, seeds, args.steps, result, half_life)
    result.timings["replay_seconds"] = time.perf_counter() - started
    print("cold start", flush=True)
    cold_start(data, seeds, result, half_life)
    print("interactive", flush=True)
    interactive(seeds, min(10_000, args.steps or 10_000), result)
    print("latency", flush=True)
    result.extra["feedback_to_policy_ms"] = result.extra.pop("replay_latency_ms")
    end = min(len(data), args.steps or len(data))
    result.extra["feedback_to_policy_logged_ms"] = logged_latency(data, end, min(2_000, end // 2))
    result.timings["total_seconds"] = time.perf_counter() - started
    return result
