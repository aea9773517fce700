"""Protocols: how learning is measured. Each runs several seeds and returns a :class:`Result`.

All of them drive the same loop, :func:`run_stream` — observe, predict, let the environment judge,
log the interaction and its feedback, learn — and all of them run a *frozen control*: the same learner,
built by the same factory on the same seed, with learning switched off (after an optional warm-up).

- :func:`prequential` — the test-then-train stream (Dawid 1984; Gama et al. 2013): every prediction is
  scored before the learner sees its feedback, so the curve is honest about what was known when.
- :func:`adaptation_gap` — G(k) = Perf(after k interactions) − Perf(0) on an unseen environment.
- :func:`cold_start` — Perf(k), k ∈ {0, 1, 2, 5, 10, 20}, averaged over many new users.
- :func:`continual_matrix` — R[i, j] after each task, with ACC / BWT / FWT (Lopez-Paz & Ranzato 2017).
- :func:`cumulative_regret` — Σ (best reward − reward) over the stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from lifelong.envs.base import Env, Probe, feedback_from
from lifelong.errors import InvalidInput
from lifelong.eval.metrics import (
    aulc,
    continual_scores,
    first_last_gap,
    slope_ci,
    windowed,
)
from lifelong.eval.metrics import (
    cumulative_regret as regret_curve,
)
from lifelong.eval.result import Curve, Result
from lifelong.experience import ExperienceLog, Interaction, Step
from lifelong.learners.base import Learner

MakeLearner = Callable[[int], Learner]
MakeEnv = Callable[[int], Env[Any, Any]]
#: An unseen environment and the probe that scores a learner on its held-out part.
Task = tuple[Env[Any, Any], Probe]

DEFAULT_KS = (0, 1, 2, 5, 10, 20)


@dataclass
class Trace:
    """What one run of the loop produced."""

    rewards: list[float] = field(default_factory=list)
    best_rewards: list[float | None] = field(default_factory=list)
    checkpoints: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def has_best(self) -> bool:
        return bool(self.best_rewards) and all(b is not None for b in self.best_rewards)


class _Clock:
    """Strictly increasing wall-clock times, so the log replays in the order things happened."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(time.time(), self.last + 1e-6)
        return self.last


def run_stream(
    learner: Any,
    env: Env[Any, Any],
    seed: int | None,
    *,
    max_steps: int | None = None,
    freeze_after: int | None = None,
    log: ExperienceLog | None = None,
    checkpoints: Sequence[int] = (),
    probe: Probe | None = None,
    bar: Any = None,
) -> Trace:
    """Predict → judge → log → learn until the stream ends (or ``max_steps``; episodes restart).

    ``freeze_after=n`` freezes the learner after its first n steps (the warm-up of a control).
    ``checkpoints`` are step counts k at which ``probe(learner)`` is recorded, before step k.
    With a ``log``, every interaction and its feedback are appended — in one transaction — before the
    learner learns from them: the log is the truth.
    """
    if freeze_after is not None and freeze_after < 0:
        raise InvalidInput(f"must be >= 0, got {freeze_after}", field="warmup")
    if checkpoints and probe is None:
        raise InvalidInput("checkpoints need a probe", field="probe")
    wanted = sorted(set(checkpoints))
    limit = max_steps if max_steps is not None else (max(wanted) if wanted else None)
    trace = Trace()
    clock = _Clock()
    started = time.perf_counter()
    observation, info = env.reset(seed=seed)
    scope = info.get("scope", env.scope)
    t = 0
    while limit is None or t < limit:
        if freeze_after is not None and t >= freeze_after:
            learner.frozen = True
        if t in wanted and probe is not None:
            trace.checkpoints[t] = float(probe(learner))
        action = learner.predict(observation, scope)
        interaction = Interaction(
            scope, observation, action, time=clock(), versions={learner.name: learner.version}
        )
        observation, reward, terminated, truncated, info = env.step(action)
        feedback = feedback_from(interaction.id, reward, info, time=clock())
        if log is not None:
            log.append_many([interaction, *feedback])
        learner.learn(Step(interaction, feedback))
        trace.rewards.append(float(reward))
        best = info.get("best_reward")
        trace.best_rewards.append(None if best is None else float(best))
        scope = info.get("scope", scope)
        t += 1
        if bar is not None:
            bar.update(1)
        if terminated or truncated:
            if limit is None or t >= limit:
                break
            observation, info = env.reset()  # next episode, continuing the environment's randomness
            scope = info.get("scope", scope)
    if probe is not None:
        for k in wanted:
            if k not in trace.checkpoints:
                if k == t:
                    trace.checkpoints[k] = float(probe(learner))
                else:  # the environment ended before k interactions
                    trace.checkpoints[k] = math.nan
    trace.seconds = time.perf_counter() - started
    return trace


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    return tqdm(total=total, desc=desc, unit="step", disable=None if enabled else True, leave=False)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidInput("give at least one seed", field="seeds")
    return seeds


def _stream_length(env: Env[Any, Any], max_steps: int | None) -> int | None:
    if max_steps is not None:
        return max_steps
    return len(env) if hasattr(env, "__len__") else None


def _curve_metrics(result: Result, prefix: str, curves: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Final window, AULC, slope per 1,000 interactions (with a bootstrap CI) and first-last gap."""
    result.add_metric(f"{prefix}final_window", [float(y[-1]) for _, y in curves])
    result.add_metric(f"{prefix}aulc", [aulc(x, y) for x, y in curves])
    result.add_metric(f"{prefix}first_last_gap", [first_last_gap(y) for _, y in curves])
    result.add_metric(f"{prefix}slope_per_1k", [1000 * slope_ci(x, y).slope for x, y in curves])
    pooled = slope_ci(np.concatenate([x for x, _ in curves]), np.concatenate([y for _, y in curves]))
    result.config.setdefault("slope_ci_95_per_1k", {})[prefix.rstrip(".") or "learner"] = [
        1000 * pooled.lo,
        1000 * pooled.hi,
    ]


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

    Parameters
    ----------
    make_learner, make_env
        Factories called with the seed; the control is a second learner from ``make_learner`` run on
        a second environment from ``make_env`` reset with the same seed (the same order).
    warmup
        Steps the control learns before it is frozen; ``None`` runs no control (e.g. for a peer).
    window
        Window size of the curves.
    log
        Experience log the learner's interactions and feedback are appended to (the control's are not).
    probe
        Scores each learner on held-out data at the end of the stream (metric ``probe``).
    """
    seeds = _check_seeds(seeds)
    if window < 1:
        raise InvalidInput(f"must be >= 1, got {window}", field="window")
    result = Result(name=name, protocol="prequential", seeds=seeds)
    runs: dict[str, list[Trace]] = {"learner": [], "frozen": []}
    probes: dict[str, list[float]] = {"learner": [], "frozen": []}
    learner_config: dict[str, Any] = {}
    for seed in seeds:
        arms = [("learner", None, log)] + ([("frozen", warmup, None)] if warmup is not None else [])
        for arm, freeze_after, arm_log in arms:
            learner, env = make_learner(seed), make_env(seed)
            learner_config = {"learner": repr(learner), **learner.config()}
            total = _stream_length(env, max_steps)
            with _progress(total, f"{name} seed {seed} {arm}", progress) as bar:
                trace = run_stream(
                    learner, env, seed, max_steps=max_steps, freeze_after=freeze_after, log=arm_log, bar=bar
                )
            runs[arm].append(trace)
            if probe is not None:
                probes[arm].append(float(probe(learner)))
            env.close()

    for arm, traces in runs.items():
        if not traces:
            continue
        n = min(len(t.rewards) for t in traces)
        if n == 0:
            raise InvalidInput("the environment produced no interactions", field="make_env")
        curves = [windowed(t.rewards[:n], window) for t in traces]
        result.curves[arm] = Curve(
            curves[0][0].tolist(), [y.tolist() for _, y in curves], ylabel=f"reward (window {window})"
        )
        prefix = "" if arm == "learner" else f"{arm}."
        _curve_metrics(result, prefix, curves)
        result.add_metric(f"{prefix}mean_reward", [float(np.mean(t.rewards[:n])) for t in traces])
        if probes[arm]:
            result.add_metric(f"{prefix}probe", probes[arm])
        if all(t.has_best for t in traces):
            regrets = [regret_curve(t.rewards[:n], t.best_rewards[:n]) for t in traces]  # type: ignore[arg-type]
            x = np.arange(1, n + 1)
            keep = np.unique(np.linspace(0, n - 1, min(n, 200)).astype(int))
            result.curves[f"{arm} regret"] = Curve(
                x[keep].tolist(),
                [r[keep].tolist() for r in regrets],
                kind="regret",
                ylabel="cumulative regret",
            )
            result.add_metric(f"{prefix}regret", [float(r[-1]) for r in regrets])
    if runs["frozen"]:
        for metric in ("final_window", "aulc", "mean_reward", "probe"):
            if metric in result.metrics and f"frozen.{metric}" in result.metrics:
                a, b = result.metrics[metric].per_seed, result.metrics[f"frozen.{metric}"].per_seed
                result.add_metric(f"delta.{metric}", [x - y for x, y in zip(a, b, strict=True)])
    result.config.update(
        protocol="prequential", window=window, warmup=warmup, max_steps=max_steps, **learner_config
    )
    learner_seconds = [t.seconds for t in runs["learner"]]
    result.timings = {
        "seconds_per_seed": learner_seconds,
        "steps_per_second": [len(t.rewards) / max(t.seconds, 1e-9) for t in runs["learner"]],
        "control_seconds_per_seed": [t.seconds for t in runs["frozen"]],
    }
    return result


def cumulative_regret(
    make_learner: MakeLearner, make_env: MakeEnv, seeds: Sequence[int], **kwargs: Any
) -> Result:
    """Prequential run whose headline is the regret Σ_t (best reward_t − reward_t).

    The environment must report ``info["best_reward"]`` on every step.
    """
    result = prequential(make_learner, make_env, seeds, **kwargs)
    if "regret" not in result.metrics:
        raise InvalidInput(
            "the environment does not report info['best_reward'], so regret is undefined", field="make_env"
        )
    result.protocol = "regret"
    return result


def _perf_by_k(learner: Learner, task: Task, seed: int, ks: Sequence[int]) -> list[float]:
    env, probe = task
    trace = run_stream(learner, env, seed, checkpoints=ks, probe=probe)
    return [trace.checkpoints[k] for k in ks]


def _check_ks(ks: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 0:
        raise InvalidInput(f"must be non-empty and >= 0, got {ks}", field="ks")
    return ks


def _by_k_result(
    name: str, protocol: str, seeds: list[int], ks: list[int], perf: dict[str, list[list[float]]]
) -> Result:
    result = Result(name=name, protocol=protocol, seeds=seeds)
    for arm, rows in perf.items():
        result.curves[arm] = Curve(
            [float(k) for k in ks],
            rows,
            kind="by_k",
            xlabel="interactions k on the unseen task",
            ylabel="Perf(k)",
        )
        prefix = "" if arm == "learner" else f"{arm}."
        for i, k in enumerate(ks):
            result.add_metric(f"{prefix}perf@{k}", [row[i] for row in rows])
            result.add_metric(f"{prefix}gap@{k}", [row[i] - row[0] for row in rows])
    result.config.update(protocol=protocol, ks=ks)
    return result


def adaptation_gap(
    make_learner: MakeLearner,
    make_task: Callable[[int], Task],
    seeds: Sequence[int],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    name: str = "adaptation gap",
) -> Result:
    """G(k) = Perf(after k interactions) − Perf(0) on an unseen environment, learner vs frozen control.

    ``make_task(seed)`` returns the unseen environment and the probe scoring a learner on its held-out
    part; ``make_learner(seed)`` may return a learner already trained elsewhere (what transfers is
    part of what is measured). Metrics: ``perf@k`` and ``gap@k`` (= G(k)) for every k.
    """
    seeds, ks = _check_seeds(seeds), _check_ks(ks)
    perf: dict[str, list[list[float]]] = {"learner": [], "frozen": []}
    seconds = []
    for seed in seeds:
        started = time.perf_counter()
        perf["learner"].append(_perf_by_k(make_learner(seed), make_task(seed), seed, ks))
        perf["frozen"].append(_perf_by_k(make_learner(seed).freeze(), make_task(seed), seed, ks))
        seconds.append(time.perf_counter() - started)
    result = _by_k_result(name, "adaptation_gap", seeds, ks, perf)
    result.timings["seconds_per_seed"] = seconds
    return result


def cold_start(
    make_learner: MakeLearner,
    make_tasks: Callable[[int], Sequence[Task]],
    seeds: Sequence[int],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    progress: bool = True,
    name: str = "cold start",
) -> Result:
    """Perf(k) averaged over many new users (one task each), for k ∈ ``ks``; mean ± std over seeds.

    ``make_tasks(seed)`` returns one (environment, probe) per new user; each user gets a fresh learner
    from ``make_learner(seed)`` (which may carry what was learned from other users).
    """
    seeds, ks = _check_seeds(seeds), _check_ks(ks)
    perf: dict[str, list[list[float]]] = {"learner": [], "frozen": []}
    seconds = []
    for seed in seeds:
        started = time.perf_counter()
        tasks = list(make_tasks(seed))
        if not tasks:
            raise InvalidInput("make_tasks returned no users", field="make_tasks")
        rows: dict[str, list[list[float]]] = {"learner": [], "frozen": []}
        for task in tqdm(tasks, desc=f"{name} seed {seed}", disable=None if progress else True, leave=False):
            rows["learner"].append(_perf_by_k(make_learner(seed), task, seed, ks))
        for task in make_tasks(seed):  # fresh environments: the same users from the start
            rows["frozen"].append(_perf_by_k(make_learner(seed).freeze(), task, seed, ks))
        for arm in perf:
            perf[arm].append(np.nanmean(np.asarray(rows[arm]), axis=0).tolist())
        seconds.append(time.perf_counter() - started)
    result = _by_k_result(name, "cold_start", seeds, ks, perf)
    result.config["users_per_seed"] = len(tasks)
    result.timings["seconds_per_seed"] = seconds
    return result


def continual_matrix(
    make_learner: MakeLearner,
    tasks: Sequence[tuple[MakeEnv, Probe]],
    orders: Sequence[int],
    *,
    max_steps: int | None = None,
    progress: bool = True,
    name: str = "continual",
) -> Result:
    """Learn tasks one after another; after each, score every task: the matrix R and ACC/BWT/FWT.

    ``tasks[j] = (make_env, probe)``. Each seed in ``orders`` draws a random order of the tasks; R is
    kept in learned order (row i: after the i-th task learned; column j: the j-th task learned), as the
    metrics of Lopez-Paz & Ranzato (2017) need. The frozen control's row is its untrained score b.
    """
    orders = _check_seeds(orders)
    if len(tasks) < 2:
        raise InvalidInput("needs at least two tasks", field="tasks")
    t_count = len(tasks)
    matrices, scores, seconds = [], [], []
    for seed in orders:
        started = time.perf_counter()
        order = np.random.default_rng(seed).permutation(t_count).tolist()
        learner = make_learner(seed)
        b = [float(tasks[j][1](learner)) for j in order]
        r = np.zeros((t_count, t_count))
        for i, j in enumerate(order):
            env = tasks[j][0](seed)
            with _progress(_stream_length(env, max_steps), f"{name} order {seed} task {i}", progress) as bar:
                run_stream(learner, env, seed, max_steps=max_steps, bar=bar)
            r[i] = [float(tasks[jj][1](learner)) for jj in order]
        matrices.append(r)
        scores.append((continual_scores(r, b), float(np.mean(b))))
        seconds.append(time.perf_counter() - started)
    result = Result(name=name, protocol="continual_matrix", seeds=orders)
    result.add_metric("acc", [s.acc for s, _ in scores])
    result.add_metric("bwt", [s.bwt for s, _ in scores])
    result.add_metric("fwt", [s.fwt for s, _ in scores])
    result.add_metric("frozen.acc", [b for _, b in scores])
    result.matrices["R (learned order, mean over orders)"] = np.mean(matrices, axis=0).tolist()
    result.config.update(protocol="continual_matrix", tasks=t_count, max_steps=max_steps)
    result.config["R_per_order"] = [m.tolist() for m in matrices]
    result.timings["seconds_per_order"] = seconds
    return result
