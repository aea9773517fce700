"""Benchmark suites for ``lifelong bench SUITE --out DIR``.

Each suite runs one or more protocols on real data and writes ``DIR/<suite>.json`` and
``DIR/<suite>.png``. A suite is a function of the parsed command-line arguments returning a
:class:`~lifelong.eval.Result`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lifelong.envs.intent_stream import IntentStream, accuracy_probe
from lifelong.errors import InvalidInput
from lifelong.eval import Result, merge_results, prequential
from lifelong.learners import Learner, OnlineSoftmax

#: Steps both the learner and its control learn from before the control is frozen.
INTENT_WARMUP = 500


@dataclass(frozen=True)
class Suite:
    help: str
    run: Callable[[argparse.Namespace], Result]


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
        speed = zip(
            result.timings["steps_per_second"], peer_result.timings["steps_per_second"], strict=True
        )
        result.add_metric("ratio_vs_river.steps_per_second", [a / b for a, b in speed])
    result.config["data"] = "BANKING77 train.csv stream (held-out probe: test.csv)"
    return result


SUITES: dict[str, Suite] = {
    "intent-linear": Suite(
        "BANKING77 prequential stream: online softmax vs frozen control vs river naive Bayes",
        intent_linear,
    ),
}


def run_suite(args: argparse.Namespace) -> int:
    suite = SUITES[args.suite]
    result = suite.run(args)
    out = Path(args.out)
    json_path, png_path = result.save(out, args.suite)
    print(result.summary())
    print(f"wrote {json_path} and {png_path}")
    return 0
