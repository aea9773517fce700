"""Protocols: how learning is measured. Each runs several seeds and returns a :class:`Result`.

All of them drive the same loop, :func:`~lifelong.eval.loop.run_stream` — observe, predict, let the
environment judge, log the interaction and its feedback, learn — and all of them run a *frozen control*:
the same learner, built by the same factory on the same seed, with learning switched off (after an
optional warm-up), on the same stream order (DESIGN principle 4).

- :func:`prequential` — the test-then-train stream (Dawid 1984; Gama, Sebastião & Rodrigues 2013):
  every prediction is scored before the learner sees its feedback, so the curve is honest about what
  was known when.
- :func:`cumulative_regret` — Σ_t (best reward_t − reward_t) over the stream.
- :func:`~lifelong.eval.adaptation.adaptation_gap` — G(k) = Perf(after k interactions) − Perf(0) on an
  unseen environment.
- :func:`~lifelong.eval.adaptation.cold_start` — Perf(k), k ∈ {0, 1, 2, 5, 10, 20}, averaged over many
  new users.
- :func:`~lifelong.eval.continual.continual_matrix` — R[i, j] after each task, with ACC / BWT / FWT
  (Lopez-Paz & Ranzato 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.envs.base import Probe
from lifelong.errors import InvalidInput
from lifelong.eval.adaptation import DEFAULT_KS, Task, adaptation_gap, cold_start
from lifelong.eval.continual import continual_matrix
from lifelong.eval.loop import (
    MakeEnv,
    MakeLearner,
    Trace,
    build_learner,
    check_int,
    check_seeds,
    progress_bar,
    run_stream,
    stream_length,
)
from lifelong.eval.metrics import aulc, first_last_gap, slope_ci, windowed
from lifelong.eval.metrics import cumulative_regret as regret_curve
from lifelong.eval.result import Curve, Result
from lifelong.experience import ExperienceLog

__all__ = [
    "DEFAULT_KS",
    "MakeEnv",
    "MakeLearner",
    "Task",
    "Trace",
    "adaptation_gap",
    "cold_start",
    "continual_matrix",
    "cumulative_regret",
    "prequential",
    "run_stream",
]

#: Metrics reported for the learner and its control, and as their difference ``delta.<metric>``.
COMPARED = (
    "final_window",
    "aulc",
    "first_last_gap",
    "slope_per_1k",
    "mean_reward",
    "regret",
    "probe",
)
#: Points kept of a cumulative-regret curve (it is smooth; the JSON stays small).
REGRET_POINTS = 200


def prequential(
    make_learner: MakeLearner,
    make_env: MakeEnv,
    seeds: Sequence[int],
    *,
    warmup: int | None = 0,
    window: int = 100,
    log: ExperienceLog | None = None,
    probe: Probe | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    name: str = "prequential",
) -> Result:
    """Test-then-train over a stream, learner vs its frozen control, on every seed.

    For each seed, ``env = make_env(seed)`` is reset with the seed and ``make_learner(seed)`` works
    through it; then a second learner from ``make_learner(seed)`` — the control — runs on the same
    environment reset with the same seed again (so it sees the same order), learning during the first
    ``warmup`` steps and frozen after them.

    Parameters
    ----------
    make_learner, make_env
        Factories called with the seed.
    warmup
        Steps the control learns before it is frozen; ``None`` runs no control (e.g. for a peer).
    window
        Window size (in steps) of the reward curves.
    log
        Experience log the learner's interactions and feedback are appended to, before it learns from
        them. The control's are not logged: it is a measuring instrument, thrown away after the run, and
        its steps would otherwise be replayed as a second copy of the stream.
    probe
        Scores each learner on held-out data at the end of the stream (metric ``probe``).
    max_steps
        Stop after this many steps; episodes restart until then. Without it the run ends with the
        environment's first episode (a finite stream ends with its data).

    Returns
    -------
    Result
        Curves ``learner`` and ``frozen`` (windowed reward, seeds × windows) and, when the environment
        reports ``info["best_reward"]``, ``learner regret`` / ``frozen regret``. Metrics, mean ± std over
        seeds: ``final_window``, ``aulc``, ``first_last_gap``, ``slope_per_1k`` (OLS slope per 1,000
        steps, with its per-seed bootstrap interval ``slope_lo_per_1k`` / ``slope_hi_per_1k``),
        ``mean_reward``, ``regret``, ``probe``; the same prefixed ``frozen.`` for the control, and
        ``delta.<metric>`` = learner − control per seed.
    """
    seeds = check_seeds(seeds)
    window = check_int(window, "window", 1)
    if warmup is not None:
        warmup = check_int(warmup, "warmup", 0)
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", 1)
    arms: dict[str, int | None] = {"learner": None}  # arm → freeze_after
    if warmup is not None:
        arms["frozen"] = warmup
    runs: dict[str, list[Trace]] = {arm: [] for arm in arms}
    probes: dict[str, list[float]] = {arm: [] for arm in arms}
    learner_config: dict[str, Any] = {}
    for seed in seeds:
        env = make_env(seed)
        try:
            for arm, freeze_after in arms.items():
                learner = build_learner(make_learner, seed)
                learner_config = {"learner": repr(learner), **learner.config()}
                total = stream_length(env, max_steps)
                with progress_bar(total, f"{name} seed {seed} {arm}", progress) as bar:
                    trace = run_stream(
                        learner,
                        env,
                        seed,
                        max_steps=max_steps,
                        freeze_after=freeze_after,
                        log=log if arm == "learner" else None,
                        bar=bar,
                    )
                runs[arm].append(trace)
                if probe is not None:
                    probes[arm].append(float(probe(learner)))
        finally:
            env.close()

    result = Result(name=name, protocol="prequential", seeds=seeds)
    for arm, traces in runs.items():
        prefix = "" if arm == "learner" else f"{arm}."
        _stream_summary(result, arm, prefix, traces, window)
        if probes[arm]:
            result.add_metric(f"{prefix}probe", probes[arm])
    if "frozen" in runs:
        _deltas(result, "frozen")
    result.config.update(
        protocol="prequential",
        window=window,
        warmup=warmup,
        max_steps=max_steps,
        steps_per_seed=[t.steps for t in runs["learner"]],
        logged=log is not None,
        **learner_config,
    )
    result.timings = {
        "seconds_per_seed": [t.seconds for t in runs["learner"]],
        "steps_per_second": [t.steps / max(t.seconds, 1e-9) for t in runs["learner"]],
        "control_seconds_per_seed": [t.seconds for t in runs.get("frozen", [])],
    }
    return result


def _stream_summary(result: Result, arm: str, prefix: str, traces: list[Trace], window: int) -> None:
    """The windowed reward curve of ``arm`` and its metrics; the regret curve if best rewards are known."""
    n = min(t.steps for t in traces)  # seeds may end at different lengths: compare the common part
    if n == 0:
        raise InvalidInput("the environment produced no interactions", field="make_env")
    curves = [windowed(t.rewards[:n], window) for t in traces]
    result.curves[arm] = Curve(
        curves[0][0].tolist(), [y.tolist() for _, y in curves], ylabel=f"reward (mean over {window} steps)"
    )
    # Slope per 1,000 steps, so its size does not depend on the window.
    slopes = [slope_ci(x, y, seed=seed) for (x, y), seed in zip(curves, result.seeds, strict=True)]
    result.add_metric(f"{prefix}final_window", [float(y[-1]) for _, y in curves])
    result.add_metric(f"{prefix}aulc", [aulc(x, y) for x, y in curves])
    result.add_metric(f"{prefix}first_last_gap", [first_last_gap(y) for _, y in curves])
    result.add_metric(f"{prefix}slope_per_1k", [1000 * s.slope for s in slopes])
    result.add_metric(f"{prefix}slope_lo_per_1k", [1000 * s.lo for s in slopes])
    result.add_metric(f"{prefix}slope_hi_per_1k", [1000 * s.hi for s in slopes])
    result.add_metric(f"{prefix}mean_reward", [float(np.mean(t.rewards[:n])) for t in traces])
    # One interval from the windows of all seeds pooled: the headline "is the curve rising?".
    pooled = slope_ci(np.concatenate([x for x, _ in curves]), np.concatenate([y for _, y in curves]))
    result.extra.setdefault("slope_ci_per_1k", {})[arm] = {
        "slope": 1000 * pooled.slope,
        "lo": 1000 * pooled.lo,
        "hi": 1000 * pooled.hi,
        "level": pooled.level,
    }
    if all(t.has_best for t in traces):
        regrets = [regret_curve(t.rewards[:n], [float(b or 0.0) for b in t.best_rewards[:n]]) for t in traces]
        keep = np.unique(np.linspace(0, n - 1, min(n, REGRET_POINTS)).astype(int))
        result.curves[f"{arm} regret"] = Curve(
            (keep + 1).astype(float).tolist(),
            [r[keep].tolist() for r in regrets],
            kind="regret",
            ylabel="cumulative regret Σ (best − reward)",
        )
        result.add_metric(f"{prefix}regret", [float(r[-1]) for r in regrets])


def _deltas(result: Result, control: str) -> None:
    """``delta.<metric>`` = learner − control, seed by seed (both ran on the same order)."""
    for metric in COMPARED:
        ours, theirs = result.metrics.get(metric), result.metrics.get(f"{control}.{metric}")
        if ours is not None and theirs is not None:
            result.add_metric(
                f"delta.{metric}", [a - b for a, b in zip(ours.per_seed, theirs.per_seed, strict=True)]
            )


def cumulative_regret(
    make_learner: MakeLearner, make_env: MakeEnv, seeds: Sequence[int], **kwargs: Any
) -> Result:
    """Prequential run whose headline is the regret ``Σ_t (best reward_t − reward_t)``.

    Takes the keyword arguments of :func:`prequential`. The environment must report
    ``info["best_reward"]`` on every step; curves ``learner regret`` and ``frozen regret``, metrics
    ``regret``, ``frozen.regret`` and ``delta.regret`` (negative: the learner regrets less).
    """
    result = prequential(make_learner, make_env, seeds, **{"name": "regret", **kwargs})
    if "regret" not in result.metrics:
        raise InvalidInput(
            "the environment does not report info['best_reward'], so regret is undefined", field="make_env"
        )
    result.protocol = "regret"
    result.config["protocol"] = "regret"
    return result
