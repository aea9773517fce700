"""Intent suites on BANKING77: ``intent-linear``, ``intent-continual``, ``intent-adaptation``.

The online softmax on hashed text against its frozen control and river's naive Bayes, prequentially;
as five sequential tasks (ACC/BWT/FWT); and its adaptation gap on intents it has never seen.

``--data`` names a folder in BANKING77 layout (``train.csv`` streamed, ``test.csv`` probed) or one CSV of
text and label whose ``--holdout`` share of each label is the probe (:func:`lifelong.data.load_intents`;
formats in ``docs/data.md``). The result's ``config["data"]`` says which data ran and its size.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from lifelong.data import INTENT_COLUMNS, IntentData, load_intents, parse_columns, parse_delimiter
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


def load_data(args: argparse.Namespace, *, holdout: float | None = None) -> IntentData:
    """The intents ``--data`` names (default: the shared BANKING77), read with ``--columns``,
    ``--delimiter`` and ``--holdout`` (for a single CSV file)."""
    share = getattr(args, "holdout", None)
    return load_intents(
        getattr(args, "data", None),
        columns=parse_columns(getattr(args, "columns", None), tuple(INTENT_COLUMNS)),
        delimiter=parse_delimiter(getattr(args, "delimiter", None)),
        holdout=holdout if holdout is not None else 0.2 if share is None else share,
    )


def _need_labels(data: IntentData, n: int, suite: str) -> None:
    if len(data.categories) < n:
        raise InvalidInput(
            f"{data.source} has {len(data.categories)} labels; {suite} needs at least {n}", field="--data"
        )


def intent_linear(args: argparse.Namespace) -> Result:
    """Prequential intents: OnlineSoftmax vs its frozen control (after a warm-up) vs river NB."""
    seeds = list(range(args.seeds))
    if not seeds:
        raise InvalidInput("must be >= 1", field="--seeds")
    data = load_data(args)
    probe_env = IntentStream.from_data(data, split="test")
    probe = accuracy_probe(probe_env.texts, probe_env.labels)

    def make_env(seed: int) -> IntentStream:
        return IntentStream.from_data(data, limit=args.steps)

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
    result.config["data"] = {**data.describe(), "use": "the train split streamed, the test split probed"}
    return result


def _intent_groups(categories: list[str], n_groups: int, seed: int) -> list[list[str]]:
    order = np.random.default_rng(seed).permutation(len(categories))
    return [sorted(categories[i] for i in part) for part in np.array_split(order, n_groups)]


def _subset(texts: list[str], labels: list[str], keep: set[str]) -> tuple[list[str], list[str]]:
    pairs = [(t, y) for t, y in zip(texts, labels, strict=True) if y in keep]
    return [t for t, _ in pairs], [y for _, y in pairs]


def intent_continual(args: argparse.Namespace) -> Result:
    """The intents as 5 tasks (BANKING77: ~15 intents each), learned one after another: R, ACC, BWT, FWT."""
    data = load_data(args)
    _need_labels(data, 5, "intent-continual")
    train, test, categories = data.train, data.test, data.categories
    tasks = []
    for group in _intent_groups(categories, 5, seed=0):
        keep = set(group)
        texts, labels = _subset(train.texts, train.labels, keep)
        probe = accuracy_probe(*_subset(test.texts, test.labels, keep))
        tasks.append((lambda seed, t=texts, y=labels: IntentStream(t, y, limit=args.steps), probe))
    result = continual_matrix(
        lambda seed: OnlineSoftmax(), tasks, list(range(args.seeds)), name="intent-continual"
    )
    result.config["data"] = {
        **data.describe(),
        "use": "5 tasks of a fifth of the labels each (train split streams, test split probes)",
    }
    return result


def intent_adaptation(args: argparse.Namespace) -> Result:
    """Adaptation gap G(k) on 10 intents never seen, after learning the others (BANKING77: 67) from their
    stream."""
    data = load_data(args)
    _need_labels(data, 11, "intent-adaptation")
    train, test, categories = data.train, data.test, data.categories

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
    result.config["data"] = {
        **data.describe(),
        "use": f"learn {len(categories) - 10} labels, then adapt to 10 unseen ones (probe: their test split)",
    }
    return result
