"""The suites of ``lifelong bench SUITE --out DIR``: name → what it measures and where its code is.

Each suite is a function ``run(args) -> Result`` in one module of this package, imported only when the
suite runs (the agent and weight suites load llama.cpp and torch). A run writes ``DIR/<suite>.json`` and
``DIR/<suite>.png``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from lifelong.eval.result import Result

__all__ = ["SUITES", "Suite", "run_suite"]


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: a one-line ``help`` and ``module:function`` in :mod:`lifelong.bench`."""

    help: str
    target: str

    def load(self) -> Callable[[argparse.Namespace], Result]:
        module, function = self.target.split(":")
        return cast(
            Callable[[argparse.Namespace], Result],
            getattr(importlib.import_module(f"lifelong.bench.{module}"), function),
        )

    def run(self, args: argparse.Namespace) -> Result:
        return self.load()(args)


SUITES: dict[str, Suite] = {
    "intent-linear": Suite(
        "BANKING77 prequential stream: online softmax vs frozen control vs river naive Bayes",
        "intents:intent_linear",
    ),
    "intent-continual": Suite(
        "BANKING77 as 5 sequential tasks: continual matrix R with ACC/BWT/FWT", "intents:intent_continual"
    ),
    "intent-adaptation": Suite(
        "BANKING77: adaptation gap G(k) on 10 unseen intents after learning the other 67",
        "intents:intent_adaptation",
    ),
    "ella": Suite(
        "land mine (29 tasks): ELLA vs batch GO-MTL vs STL vs pooled, AUC and training time (paper Table 1)",
        "ella:ella_landmine",
    ),
    "ella-synthetic": Suite(
        "synthetic regression (100 tasks, k=6): ELLA vs GO-MTL vs STL vs pooled, RMSE and time",
        "ella:ella_synthetic",
    ),
    "ella-scale": Suite(
        "ELLA on 10,000 synthetic tasks (--steps to change): time per new task and memory", "ella:ella_scale"
    ),
    "recsys": Suite(
        "MovieLens 100K replay (ours vs frozen vs popularity vs river vs Vowpal Wabbit), cold start, "
        "exploration regret on simulated users, feedback-to-policy latency",
        "recsys:recsys",
    ),
    "intent-stream": Suite(
        "intents (BANKING77, or --data DIR in its layout): Gemma 3 270M with learned context and five "
        "more experts combined online (ExpertMixture), a harness search, vs frozen vs every expert alone "
        "vs Hedge; repeat errors by intent and on near-duplicates; recall latency (--steps: items)",
        "agents:intent_stream",
    ),
    "code-completion": Suite(
        "a developer writes stdlib packages (or --source DIR); Gemma 3 270M completes lines with and "
        "without learned context, a gate with an explicit --objective, a harness search, vs frozen vs "
        "kNN vs each model expert alone (--steps: requests)",
        "agents:code_completion",
    ),
    "weights": Suite(
        "code completion in weight space: Gemma 3 270M LoRA updated online by policy gradient from "
        "accept/reject (gated, guarded) vs the frozen base, guard ablation, token vs weights vs both, "
        "retention (--steps: requests)",
        "weights:weights",
    ),
}


def run_suite(args: argparse.Namespace) -> int:
    """Run ``args.suite``, save its result under ``args.out`` and print the summary."""
    result = SUITES[args.suite].run(args)
    json_path, png_path = result.save(Path(args.out), args.suite)
    print(result.summary())
    print(f"wrote {json_path} and {png_path}")
    return 0
