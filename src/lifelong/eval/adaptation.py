"""How fast a learner adapts to something new: the adaptation gap G(k) and the cold-start curve Perf(k).

Both put a learner in front of an environment it has not seen (a new user, new intents) and score it
with a probe on that environment's held-out part after k = 0, 1, 2, 5, … interactions:

    Perf(k) = probe(learner after k interactions),     G(k) = Perf(k) − Perf(0).

:func:`adaptation_gap` does it for one unseen environment per seed; :func:`cold_start` averages Perf(k)
over many new users per seed. The frozen control is the same (possibly pre-trained) learner with
learning switched off, on the same environment and order: its G(k) is 0 unless the probe is noisy, so
the learner's G(k) is what its online learning adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from lifelong.envs.base import Env, Probe
from lifelong.errors import InvalidInput
from lifelong.eval.loop import MakeLearner, build_learner, check_seeds, progress_bar, run_stream
from lifelong.eval.result import Curve, Result
from lifelong.learners.base import Learner

#: An unseen environment and the probe that scores a learner on its held-out part.
Task = tuple[Env[Any, Any], Probe]

DEFAULT_KS = (0, 1, 2, 5, 10, 20)
ARMS = ("learner", "frozen")


def perf_by_k(
    learner: Learner,
    env: Env[Any, Any],
    probe: Probe,
    seed: int,
    ks: Sequence[int],
    *,
    restart: bool = False,
) -> list[float]:
    """Perf(k) for every k in ``ks``: the probe just before the learner's k-th interaction.

    A k beyond the end of the environment's episode gives NaN, unless ``restart`` lets the next
    episode continue the run.
    """
    trace = run_stream(learner, env, seed, checkpoints=ks, probe=probe, restart=restart)
    return [trace.checkpoints[int(k)] for k in ks]


def _arms(
    make_learner: MakeLearner, task: Task, seed: int, ks: list[int], restart: bool
) -> dict[str, list[float]]:
    """Perf(k) of a fresh learner and of its frozen control on the same environment and order."""
    env, probe = task
    try:
        learner = build_learner(make_learner, seed)
        control = build_learner(make_learner, seed).freeze()
        return {
            "learner": perf_by_k(learner, env, probe, seed, ks, restart=restart),
            "frozen": perf_by_k(control, env, probe, seed, ks, restart=restart),
        }
    finally:
        env.close()


def adaptation_gap(
    make_learner: MakeLearner,
    make_task: Callable[[int], Task | Env[Any, Any]],
    seeds: Sequence[int],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    probe: Probe | None = None,
    restart: bool = False,
    progress: bool = True,
    name: str = "adaptation gap",
) -> Result:
    """G(k) = Perf(after k interactions) − Perf(0) on an unseen environment, learner vs frozen control.

    Parameters
    ----------
    make_learner
        Called with the seed; may return a learner already trained elsewhere (what transfers is part of
        what is measured). Called twice per seed: the learner, then its control.
    make_task
        ``make_task(seed)`` returns the unseen environment and the probe scoring a learner on its
        held-out part, ``(env, probe)``; or only the environment, with ``probe=`` given here.
    ks
        Numbers of interactions at which to probe (0 = before any).
    restart
        Whether an environment whose episode ends before the largest k starts a new episode (a game);
        by default it does not (a user's stream of data ends), and Perf(k) beyond its end is NaN.

    Returns
    -------
    Result
        Curves ``learner`` / ``frozen`` (Perf(k) vs k) and ``learner G(k)`` / ``frozen G(k)``; metrics
        ``perf@k``, ``gap@k`` (= G(k)), the same prefixed ``frozen.``, and ``delta.gap@k``.
    """
    seeds, ks = check_seeds(seeds), _check_ks(ks)
    if probe is not None and not callable(probe):
        raise InvalidInput(f"must be callable, got {type(probe).__name__}", field="probe")
    perf: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
    seconds = []
    for seed in tqdm(seeds, desc=name, unit="seed", disable=None if progress else True, leave=False):
        started = time.perf_counter()
        task = _task(make_task(seed), probe, "make_task")
        for arm, row in _arms(make_learner, task, seed, ks, restart).items():
            perf[arm].append(row)
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
    restart: bool = False,
    progress: bool = True,
    name: str = "cold start",
) -> Result:
    """Perf(k) averaged over many new users (one task each), for k ∈ ``ks``; mean ± std over seeds.

    ``make_tasks(seed)`` returns one ``(env, probe)`` per new user; each user gets a fresh learner from
    ``make_learner(seed)`` (which may carry what was learned from other users) and a fresh frozen
    control. A user whose stream ends before k interactions is left out of the mean at that k
    (``restart`` as for :func:`adaptation_gap`).
    Result as for :func:`adaptation_gap`, plus ``config["users_per_seed"]``.
    """
    seeds, ks = check_seeds(seeds), _check_ks(ks)
    perf: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
    seconds, users = [], []
    for seed in seeds:
        started = time.perf_counter()
        tasks = [_task(task, None, "make_tasks") for task in make_tasks(seed)]
        if not tasks:
            raise InvalidInput("returned no users", field="make_tasks")
        rows: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
        with progress_bar(len(tasks), f"{name} seed {seed}", progress, unit="user") as bar:
            for task in tasks:
                for arm, row in _arms(make_learner, task, seed, ks, restart).items():
                    rows[arm].append(row)
                bar.update(1)
        for arm in ARMS:
            perf[arm].append(_nanmean_rows(rows[arm]))
        seconds.append(time.perf_counter() - started)
        users.append(len(tasks))
    result = _by_k_result(name, "cold_start", seeds, ks, perf)
    result.config["users_per_seed"] = users[0] if len(set(users)) == 1 else users
    result.timings["seconds_per_seed"] = seconds
    return result


def _nanmean_rows(rows: list[list[float]]) -> list[float]:
    """Column means ignoring NaN; NaN where every user's stream ended before that k."""
    values = np.asarray(rows, dtype=np.float64)
    counts = np.sum(~np.isnan(values), axis=0)
    sums = np.nansum(values, axis=0)
    means: list[float] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).tolist()
    return means


def _task(task: Any, probe: Probe | None, field: str) -> tuple[Env[Any, Any], Probe]:
    """``(env, probe)`` from what a task factory returned."""
    if isinstance(task, tuple) and len(task) == 2:
        env, task_probe = task
    else:
        env, task_probe = task, probe
    if not (hasattr(env, "reset") and hasattr(env, "step")):
        raise InvalidInput(f"must give environments (reset/step), got {type(env).__name__}", field=field)
    if task_probe is None or not callable(task_probe):
        raise InvalidInput("must give (env, probe) pairs, or pass probe=", field=field)
    return env, task_probe


def _check_ks(ks: Sequence[int]) -> list[int]:
    try:
        out = sorted({int(k) for k in ks})
    except (TypeError, ValueError):
        raise InvalidInput(f"must be a sequence of ints, got {ks!r}", field="ks") from None
    if not out or out[0] < 0:
        raise InvalidInput(f"must be non-empty and >= 0, got {out}", field="ks")
    return out


def _by_k_result(
    name: str, protocol: str, seeds: list[int], ks: list[int], perf: dict[str, list[list[float]]]
) -> Result:
    """Perf(k) and G(k) curves and metrics of every arm, and the learner − control difference of G(k)."""
    result = Result(name=name, protocol=protocol, seeds=seeds)
    x = [float(k) for k in ks]
    for arm, rows in perf.items():
        gaps = [[value - row[0] for value in row] for row in rows]  # G(k) = Perf(k) − Perf(0)
        result.curves[arm] = Curve(x, rows, kind="perf_by_k", xlabel="interactions k", ylabel="Perf(k)")
        result.curves[f"{arm} G(k)"] = Curve(
            x, gaps, kind="gap_by_k", xlabel="interactions k", ylabel="G(k) = Perf(k) − Perf(0)"
        )
        prefix = "" if arm == "learner" else f"{arm}."
        for i, k in enumerate(ks):
            result.add_metric(f"{prefix}perf@{k}", [row[i] for row in rows])
            result.add_metric(f"{prefix}gap@{k}", [row[i] for row in gaps])
    for k in ks:
        ours, theirs = result.metrics[f"gap@{k}"].per_seed, result.metrics[f"frozen.gap@{k}"].per_seed
        result.add_metric(f"delta.gap@{k}", [a - b for a, b in zip(ours, theirs, strict=True)])
    result.config.update(protocol=protocol, ks=ks)
    return result
