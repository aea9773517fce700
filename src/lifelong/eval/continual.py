"""The continual-learning matrix: learn tasks one after another, score every task after each.

Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017, section 2: with T
tasks learned in sequence, ``R[i, j]`` is the test score on task j after learning tasks 0..i and ``b[j]``
the score on task j before learning anything. Average accuracy, backward transfer (negative =
forgetting) and forward transfer (positive = what earlier tasks teach about later ones) follow from R
and b by eqs. (2)–(4), see :func:`lifelong.eval.metrics.continual_scores`.

Each order is a seeded random permutation of the tasks; ACC/BWT/FWT are computed per order in the
learned order and reported mean ± std over orders.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from lifelong.envs.base import Probe
from lifelong.errors import InvalidInput
from lifelong.eval.loop import (
    MakeEnv,
    MakeLearner,
    build_learner,
    check_int,
    check_seeds,
    progress_bar,
    run_stream,
    stream_length,
)
from lifelong.eval.metrics import continual_scores
from lifelong.eval.result import Result

#: Key of the matrix mean over orders with rows and columns in the tasks' own indexing.
R_TASKS = "R (task index, mean over orders)"
#: Key of the matrix mean over orders in learned order (row/column i: the i-th task learned).
R_LEARNED = "R (learned order, mean over orders)"


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

    Parameters
    ----------
    make_learner
        Called once per order with the order's seed.
    tasks
        ``tasks[j] = (make_env, probe)``: ``make_env(seed)`` is task j's stream, ``probe(learner)`` its
        held-out score.
    orders
        One seed per order; order ``s`` learns the tasks in ``np.random.default_rng(s).permutation(T)``.
    max_steps
        Steps per task (default: each task's whole stream).

    Returns
    -------
    Result
        Metrics ``acc``, ``bwt``, ``fwt`` (mean ± std over orders), the frozen control's ``frozen.acc``
        (= mean b: a frozen learner's every row of R is b, so its BWT and FWT are 0) and ``delta.acc``.
        ``matrices`` holds R averaged over orders in the tasks' own indexing (``R[a, j]``: score on task
        j right after learning task a) and in learned order; ``config`` holds each order's permutation,
        R and b in learned order (``R_per_order``, ``b_per_order``), from which the metrics follow.
    """
    orders = check_seeds(orders, field="orders")
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", 1)
    t_count = len(tasks)
    if t_count < 2:
        raise InvalidInput(f"needs at least two tasks, got {t_count}", field="tasks")
    for j, task in enumerate(tasks):
        if not (isinstance(task, tuple) and len(task) == 2 and callable(task[0]) and callable(task[1])):
            raise InvalidInput(f"task {j} must be a (make_env, probe) pair", field="tasks")
    permutations, learned, by_task, bs, scores, seconds = [], [], [], [], [], []
    for seed in orders:
        started = time.perf_counter()
        order = [int(j) for j in np.random.default_rng(seed).permutation(t_count)]
        stages, b = _run_order(make_learner, tasks, order, seed, max_steps, progress, name)
        r_learned = stages[:, order]  # R[i, j]: score on the j-th task learned, after the i-th
        b_learned = b[order]
        r_tasks = np.empty_like(stages)
        r_tasks[order] = stages  # row a: after learning task a; columns: tasks in their own indexing
        permutations.append(order)
        learned.append(r_learned)
        by_task.append(r_tasks)
        bs.append(b_learned)
        scores.append(continual_scores(r_learned, b_learned))
        seconds.append(time.perf_counter() - started)

    result = Result(name=name, protocol="continual_matrix", seeds=orders)
    result.add_metric("acc", [s.acc for s in scores])
    result.add_metric("bwt", [s.bwt for s in scores])
    result.add_metric("fwt", [s.fwt for s in scores])
    result.add_metric("frozen.acc", [float(np.mean(b)) for b in bs])
    result.add_metric("delta.acc", [s.acc - float(np.mean(b)) for s, b in zip(scores, bs, strict=True)])
    result.matrices[R_TASKS] = np.mean(by_task, axis=0).tolist()
    result.matrices[R_LEARNED] = np.mean(learned, axis=0).tolist()
    result.config.update(
        protocol="continual_matrix",
        tasks=t_count,
        max_steps=max_steps,
        task_orders=permutations,
        R_per_order=[r.tolist() for r in learned],
        b_per_order=[b.tolist() for b in bs],
        b=np.mean([b[np.argsort(order)] for b, order in zip(bs, permutations, strict=True)], axis=0).tolist(),
    )
    result.timings["seconds_per_order"] = seconds
    return result


def _run_order(
    make_learner: MakeLearner,
    tasks: Sequence[tuple[MakeEnv, Probe]],
    order: list[int],
    seed: int,
    max_steps: int | None,
    progress: bool,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every task (own indexing) before learning (b) and after each task of ``order``."""
    learner = build_learner(make_learner, seed)

    def probe_all() -> list[float]:
        return [float(probe(learner)) for _, probe in tasks]

    b = np.asarray(probe_all())
    stages = np.zeros((len(tasks), len(tasks)))
    for i, j in enumerate(order):
        env = tasks[j][0](seed)
        try:
            total = stream_length(env, max_steps)
            with progress_bar(total, f"{name} order {seed} task {j}", progress) as bar:
                run_stream(learner, env, seed, max_steps=max_steps, bar=bar)
        finally:
            env.close()
        stages[i] = probe_all()
    return stages, b
