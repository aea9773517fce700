"""Benchmark suite for personalization with fast weights: ``lifelong bench recsys``.

Four measurements in one run (``docs/benchmarks.md`` has the numbers and the command):

1. **Prequential replay of MovieLens 100K** (:func:`lifelong.eval.recsys.replay`): every model predicts
   and ranks before it learns each of the 100,000 events in time order. Ours: the rating model
   (:class:`StreamingFactorization`) and the top-N ranker (:class:`ImplicitFactorization`), each with its
   frozen control (same model, learning stopped after ``WARMUP`` events), and time-decayed popularity.
   Peers on the same stream: river's ``BiasedMF`` and ``FunkMF`` (with the settings of river's own
   MovieLens example) and Vowpal Wabbit ``--rank``. Peers rank one ``predict_one`` per item, so HR@10 is
   measured for everyone on every ``RANK_EVERY``-th positive event as well (``hr_at_10_sampled``).
2. **Cold start / 100 users → user A** (:func:`lifelong.eval.recsys.cold_start_recall`): learn the full
   histories of 100 background users (one draw per seed), then reveal k of each fixed held-out user's
   positives; Recall@10 on their next 5.
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

from lifelong.envs.recsys import MovieLens, SimulatedUsers, load_movielens
from lifelong.errors import BackendUnavailable, InvalidInput
from lifelong.eval.protocols import cumulative_regret
from lifelong.eval.recsys import (
    background_users,
    cold_start_recall,
    held_out_users,
    learn_throughput,
    movielens_step,
    replay,
)
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
HALF_LIFE = 30 * 86_400.0  # popularity's half-life: the best of 6 h / 1 d / 7 d / 30 d / ∞ on this stream
LATENCY_EVERY = 50
KS = (0, 1, 2, 5, 10, 20)


def rating_model(seed: int) -> StreamingFactorization:
    """The rating model's settings: chosen by a small grid on this stream (docs/benchmarks.md)."""
    return StreamingFactorization(dim=10, learning_rate=0.2, reg=0.08, init_scale=0.01, seed=seed)


def rating_model_with_features(data: MovieLens) -> Callable[[int], StreamingFactorization]:
    """The rating model with item genres and user demographics as shared side features."""
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


def popularity(seed: int) -> Popularity:
    return Popularity(half_life=HALF_LIFE)


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


# -- 1. prequential replay ------------------------------------------------------------------------
def prequential_replay(data: MovieLens, seeds: list[int], n_events: int | None, result: Result) -> None:
    arms: dict[str, tuple[Callable[[int], Any], bool, int | None]] = {
        # name: (factory, predicts ratings, frozen after)
        "ours.rating": (rating_model, True, None),
        "ours.rating.frozen": (rating_model, True, WARMUP),
        "ours.rating+features": (rating_model_with_features(data), True, None),
        "ours.ranking": (ranking_model, False, None),
        "ours.ranking.frozen": (ranking_model, False, WARMUP),
        "ours.fpmc": (fpmc_model, False, None),
        "ours.covisitation": (covisitation_model, False, None),
        "popularity": (popularity, False, None),
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
def cold_start(data: MovieLens, seeds: list[int], result: Result) -> None:
    held_out = held_out_users(data, 100, seed=12345)
    models: dict[str, tuple[Callable[[int], Learner], int]] = {
        # name: (factory, passes over the background log)
        "ours.ranking": (ranking_model, 1),
        "ours.fpmc": (fpmc_model, 1),
        "ours.fpmc (5 passes)": (fpmc_model, 5),
        "ours.covisitation": (covisitation_model, 1),
        "popularity": (popularity, 1),
    }
    curves: dict[str, list[list[float]]] = {name: [] for name in models}
    for seed in seeds:
        background = background_users(data, held_out, 100, seed=seed)
        for name, (make, epochs) in models.items():
            by_k = cold_start_recall(make, data, held_out, background, seed=seed, ks=KS, epochs=epochs)
            curves[name].append([by_k[k] for k in KS])
            print(
                f"  cold start seed {seed} {name}: " + ", ".join(f"k={k} {by_k[k]:.3f}" for k in KS),
                flush=True,
            )
    for name, per_seed in curves.items():
        result.curves[f"cold start: {name}"] = Curve(
            [float(k) for k in KS],
            per_seed,
            kind="recall_at_10",
            xlabel="positives revealed (k)",
            ylabel="Recall@10",
        )
    result.extra["recall_at_10_by_k"] = {
        name: {str(k): float(np.mean([row[n] for row in rows])) for n, k in enumerate(KS)}
        for name, rows in curves.items()
    }
    result.extra["recall_at_10_by_k_std"] = {
        name: {str(k): float(np.std([row[n] for row in rows])) for n, k in enumerate(KS)}
        for name, rows in curves.items()
    }
    result.extra["cold_start"] = {"held_out_users": held_out, "background_users": 100, "next_positives": 5}


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
def logged_latency(data: MovieLens, end: int, n_events: int) -> dict[str, float]:
    """learn+rank after appending the interaction and its feedback to a SQLite log (synchronous=FULL),
    for the ``n_events`` events before ``end``, the model having learned all events before them."""
    model = ranking_model(0)
    split = max(0, end - n_events)
    for n in range(split):
        model.learn(movielens_step(data, n))
    times = []
    with tempfile.TemporaryDirectory() as folder:
        log = ExperienceLog(f"sqlite:///{Path(folder) / 'experience.db'}")
        try:
            for n in range(split, end):
                step = movielens_step(data, n)
                started = time.perf_counter()
                log.append_many([step.interaction, *step.feedback])
                model.learn(step)
                model.rank(str(step.interaction.scope.user), k=10)
                times.append(1000 * (time.perf_counter() - started))
        finally:
            log.close()
    return _percentiles(times)


def _movielens_folder(path: str | None) -> Path | None:
    """``--data`` may name the MovieLens folder itself or the data folder that holds ``ml-100k``."""
    if path is None:
        return None
    folder = Path(path)
    return (
        folder / "ml-100k" if not (folder / "u.data").exists() and (folder / "ml-100k").is_dir() else folder
    )


def _percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50": math.nan, "p99": math.nan, "n": 0}
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "n": len(ms)}


def recsys(args: argparse.Namespace) -> Result:
    if args.seeds < 1:
        raise InvalidInput(f"must be >= 1, got {args.seeds}", field="--seeds")
    data = load_movielens(_movielens_folder(args.data))
    seeds = list(range(args.seeds))
    result = Result(name="recsys (MovieLens 100K + simulated users)", protocol="recsys", seeds=seeds)
    result.config = {
        "events": args.steps or len(data),
        "warmup_before_frozen": WARMUP,
        "rank_every_for_peers": RANK_EVERY,
        "popularity_half_life_days": HALF_LIFE / 86_400,
        "rating_model": rating_model(0).config(),
        "ranking_model": ranking_model(0).config(),
        "cold_start": "100 background users per seed; the same 100 held-out users (>= 25 positives) for all",
    }
    compile_kernels()
    started = time.perf_counter()
    print("prequential replay", flush=True)
    prequential_replay(data, seeds, args.steps, result)
    result.timings["replay_seconds"] = time.perf_counter() - started
    print("cold start", flush=True)
    cold_start(data, seeds, result)
    print("interactive", flush=True)
    interactive(seeds, min(10_000, args.steps or 10_000), result)
    print("latency", flush=True)
    result.extra["feedback_to_policy_ms"] = result.extra.pop("replay_latency_ms")
    end = min(len(data), args.steps or len(data))
    result.extra["feedback_to_policy_logged_ms"] = logged_latency(data, end, min(2_000, end // 2))
    result.timings["total_seconds"] = time.perf_counter() - started
    return result
