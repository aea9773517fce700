"""Intent suites on BANKING77: ``intent-linear``, ``intent-continual``, ``intent-adaptation``.

The online softmax on hashed text against its frozen control and river's naive Bayes, prequentially;
as five sequential tasks (ACC/BWT/FWT); and its adaptation gap on intents it has never seen.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from lifelong.data import load_banking77
from lifelong.envs.intent_stream import IntentStream, accuracy_probe
from lifelong.errors import InvalidInput
from lifelong.eval import Result, adaptation_gap, continual_matrix, merge_results, prequential, run_stream
from lifelong.experience import Scope
from lifelong.learners import Learner, OnlineSoftmax

#: Steps both the learner and its control learn from before the control is frozen.
INTENT_WARMUP = 500


def _river_peer() -> Callable[[int], Learner] | None:
    """river's multinomial naive Bayes on a bag of words, if the interop extra is installed."""
    try:
        from river import feature_extraction, naive_bayes

        from lifelong.interop.river import RiverLearner
    except ImportError:
        return None

    def make(seed: int) -> Learner:
        return RiverLearner(feature_extraction.BagOfWords() | naive_bayes.MultinomialNB())  # type: ignore[no-untyped-call]

    return make


def intent_linear(args: argparse.Namespace) -> Result:
    """Prequential BANKING77: OnlineSoftmax vs its frozen control (after a warm-up) vs river NB."""
    seeds = list(range(args.seeds))
    if not seeds:
        raise InvalidInput("must be >= 1", field="--seeds")
    probe_env = IntentStream.banking77(args.data, split="test")
    probe = accuracy_probe(probe_env.texts, probe_env.labels)

    def make_env(seed: int) -> IntentStream:
        return IntentStream.banking77(args.data, limit=args.steps)

    def make_learner(seed: int) -> Learner:
        return OnlineSoftmax()

    result = prequential(
        make_learner,
        make_env,
        seeds,
        warmup=INTENT_WARMUP,
        window=250,
        probe=probe,
        name="intent-linear",
    )
    peer = _river_peer()
    if peer is not None:
        peer_result = prequential(
            peer, make_env, seeds, warmup=None, window=250, probe=probe, name="river.MultinomialNB"
        )
        result = merge_results(result, peer_result, prefix="river_nb")
        # Peers as ratios measured in the same run: ours / river's, per stream order.
        for metric in ("final_window", "probe"):
            ours, theirs = result.metrics[metric].per_seed, peer_result.metrics[metric].per_seed
            result.add_metric(f"ratio_vs_river.{metric}", [a / b for a, b in zip(ours, theirs, strict=True)])
        speed = zip(result.timings["steps_per_second"], peer_result.timings["steps_per_second"], strict=True)
        result.add_metric("ratio_vs_river.steps_per_second", [a / b for a, b in speed])
    result.config["data"] = "BANKING77 train.csv stream (held-out probe: test.csv)"
    return result


def _intent_groups(categories: list[str], n_groups: int, seed: int) -> list[list[str]]:
    order = np.random.default_rng(seed).permutation(len(categories))
    return [sorted(categories[i] for i in part) for part in np.array_split(order, n_groups)]


def _subset(texts: list[str], labels: list[str], keep: set[str]) -> tuple[list[str], list[str]]:
    pairs = [(t, y) for t, y in zip(texts, labels, strict=True) if y in keep]
    return [t for t, _ in pairs], [y for _, y in pairs]


def intent_continual(args: argparse.Namespace) -> Result:
    """BANKING77 as 5 tasks of ~15 intents each, learned one after another: R, ACC, BWT, FWT."""
    train, test, categories = load_banking77(args.data)
    tasks = []
    for group in _intent_groups(categories, 5, seed=0):
        keep = set(group)
        texts, labels = _subset(train.texts, train.labels, keep)
        probe = accuracy_probe(*_subset(test.texts, test.labels, keep))
        tasks.append((lambda seed, t=texts, y=labels: IntentStream(t, y, limit=args.steps), probe))
    result = continual_matrix(
        lambda seed: OnlineSoftmax(), tasks, list(range(args.seeds)), name="intent-continual"
    )
    result.config["data"] = "BANKING77: 5 tasks of 15-16 intents (train.csv streams, test.csv probes)"
    return result


def intent_adaptation(args: argparse.Namespace) -> Result:
    """Adaptation gap G(k) on 10 intents never seen, after learning the other 67 from their stream."""
    train, test, categories = load_banking77(args.data)

    def split(seed: int) -> tuple[set[str], set[str]]:
        order = np.random.default_rng(seed).permutation(len(categories))
        unseen = {categories[i] for i in order[:10]}
        return set(categories) - unseen, unseen

    def make_learner(seed: int) -> Learner:
        known, _ = split(seed)
        learner = OnlineSoftmax()
        env = IntentStream(*_subset(train.texts, train.labels, known), limit=args.steps)
        run_stream(learner, env, seed)  # one pass over the 67 known intents
        return learner

    def make_task(seed: int) -> tuple[IntentStream, Callable[[Any], float]]:
        _, unseen = split(seed)
        scope = Scope(tenant="intents", user="unseen")  # the same tenant: the learner adapts, not restarts
        env = IntentStream(*_subset(train.texts, train.labels, unseen), scope=scope)
        return env, accuracy_probe(*_subset(test.texts, test.labels, unseen))

    ks = (0, 10, 20, 50, 100, 200, 500, 1000)
    result = adaptation_gap(make_learner, make_task, list(range(args.seeds)), ks, name="intent-adaptation")
    result.config["data"] = (
        "BANKING77: learn 67 intents, then adapt to 10 unseen ones (probe: their test.csv)"
    )
    return result
