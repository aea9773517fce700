"""The benchmark JSON's headline fields come from the full runs, not from the ablations' prefixes."""

from __future__ import annotations

from lifelong.bench.agents import _headline
from lifelong.eval.result import Result


def test_headline_ignores_prefix_metrics() -> None:
    result = Result(name="x", protocol="p", seeds=[0, 1])
    result.add_metric("control.reward_per_request", [-0.2, -0.1])
    result.add_metric("control.first_96.reward_per_request", [-0.5])  # added after the full metric
    _headline(result, "reward_per_request")
    assert result.extra["reward_per_request"]["control"]["per_seed"] == [-0.2, -0.1]
