"""Benchmark suites for ELLA: ``lifelong bench ella | ella-synthetic | ella-scale``.

``ella`` reproduces the comparison of Ruvolo & Eaton (ICML 2013, Table 1) on the land mine data: ELLA,
batch GO-MTL, single-task learning and one pooled model, on the same splits in one run, with accuracy,
training time, time per new task and ELLA's speed-up over GO-MTL. ``ella-synthetic`` does the same on the
paper's synthetic regression tasks. ``ella-scale`` feeds ELLA 10,000 tasks and shows the time per new task
and the memory staying flat.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.eval.multitask import grid, learn_in_order, mean_score, random_split, select
from lifelong.eval.result import Curve, Result
from lifelong.learners.multitask.baselines import GOMTL, Pooled, SingleTask
from lifelong.learners.multitask.data import MultiTaskData, load_landmine, synthetic_tasks
from lifelong.learners.multitask.ella import ELLA

E = math.exp
RIDGES = [E(-8), E(-5), E(-2), 1.0, E(2)]
#: The hyper-parameters of the objective (eq. 1) that GO-MTL shares with ELLA.
SHARED_WITH_GOMTL = ("k", "mu", "lam", "ridge")


def ella_grid(n_tasks: int) -> list[dict[str, Any]]:
    """k ∈ 1..min(10, T/4) (paper §5), μ and λ on a log scale, the single-task ridge."""
    ks = list(range(1, max(1, min(10, n_tasks // 4)) + 1))
    return grid(k=ks, mu=[E(-12), E(-6), E(-2)], lam=[E(-10), E(-6), E(-2)], ridge=[E(-5), E(-2), 1.0])


def fit_ella(params: dict[str, Any], train: MultiTaskData, seed: int) -> ELLA:
    model = ELLA(loss=train.loss, seed=seed, **params)
    for t in np.random.default_rng(seed).permutation(train.n_tasks):
        model.add_task(int(t), train.X[t], train.y[t])
    return model


def compare(data: MultiTaskData, n_splits: int, *, name: str, progress: bool = True) -> Result:
    """The paper's protocol on ``data``: every method on the same splits; see the module docstring."""
    if n_splits < 1:
        raise InvalidInput(f"must be >= 1, got {n_splits}", field="--seeds")
    metric = "auc" if data.loss == "logistic" else "rmse"
    methods = ("ella", "gomtl", "stl", "pooled")
    scores: dict[str, list[float]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    selected: list[dict[str, Any]] = []
    seen_curves, reverse, stl_seen, per_task_ms, selection_seconds = [], [], [], [], []
    gomtl_iterations: list[float] = []
    ella_candidates = ella_grid(data.n_tasks)
    ridge_candidates = grid(ridge=RIDGES)
    for split in range(n_splits):
        train, test = random_split(data, seed=split)
        if progress:
            print(
                f"{name}: split {split + 1}/{n_splits}: selecting hyper-parameters on the training half",
                flush=True,
            )
        choice = select(fit_ella, ella_candidates, train, seed=split)
        stl_choice = select(
            lambda p, d, s: SingleTask(loss=d.loss, **p).fit(d), ridge_candidates, train, seed=split
        )
        pooled_choice = select(
            lambda p, d, s: Pooled(loss=d.loss, **p).fit(d), ridge_candidates, train, seed=split
        )
        selection_seconds.append(choice.seconds)
        selected.append({"ella": choice.params, "stl": stl_choice.params, "pooled": pooled_choice.params})

        order = np.random.default_rng(split).permutation(data.n_tasks).tolist()
        ella = ELLA(loss=data.loss, seed=split, **choice.params)
        trace = learn_in_order(ella, train, test, order)
        scores["ella"].append(mean_score(ella, test))
        seconds["ella"].append(sum(trace.seconds_per_task))
        per_task_ms.append(1000 * float(np.mean(trace.seconds_per_task)))
        seen_curves.append(trace.seen_so_far)
        reverse.append([b - a for a, b in zip(trace.right_after, trace.after_all, strict=True)])

        # GO-MTL optimises the same objective (eq. 1), so it gets ELLA's selected k, μ, λ, ridge.
        for method, model in (
            ("gomtl", GOMTL(loss=data.loss, **{p: choice.params[p] for p in SHARED_WITH_GOMTL})),
            ("stl", SingleTask(loss=data.loss, **stl_choice.params)),
            ("pooled", Pooled(loss=data.loss, **pooled_choice.params)),
        ):
            started = time.perf_counter()
            model.fit(train)
            seconds[method].append(time.perf_counter() - started)
            scores[method].append(mean_score(model, test))
            if isinstance(model, GOMTL):
                gomtl_iterations.append(float(len(model.history)))
            if method == "stl":
                stl_seen.append([mean_score(model, test, order[: i + 1]) for i in range(len(order))])
        if progress:
            print(
                "  "
                + ", ".join(f"{m} {metric} {scores[m][-1]:.4f} ({seconds[m][-1]:.3g} s)" for m in methods),
                flush=True,
            )

    result = Result(name=name, protocol="multitask_lifelong", seeds=list(range(n_splits)))
    x = [float(i + 1) for i in range(data.n_tasks)]
    result.curves["ELLA: tasks seen so far"] = Curve(
        x, seen_curves, kind="tasks_seen", xlabel="tasks learned", ylabel=f"mean {metric} over tasks seen"
    )
    result.curves["STL (all data): same tasks"] = Curve(
        x, stl_seen, kind="tasks_seen", xlabel="tasks learned", ylabel=f"mean {metric} over tasks seen"
    )
    result.curves["ELLA: after all − right after learned"] = Curve(
        x, reverse, kind="reverse_transfer", xlabel="position of the task in the order", ylabel=f"Δ {metric}"
    )
    for m in methods:
        result.add_metric(f"{m}.{metric}", scores[m])
        result.add_metric(f"{m}.train_seconds", seconds[m])
    speedups = [g / e for g, e in zip(seconds["gomtl"], seconds["ella"], strict=True)]
    result.add_metric("speedup_vs_gomtl", speedups)
    result.add_metric("ella.ms_per_new_task", per_task_ms)
    result.add_metric("ella.selection_seconds", selection_seconds)
    result.add_metric("gomtl.iterations", gomtl_iterations)
    result.add_metric(
        f"ella_over_gomtl.{metric}", [e / g for e, g in zip(scores["ella"], scores["gomtl"], strict=True)]
    )
    result.add_metric(
        "reverse_transfer.mean_delta_first_half",
        [float(np.nanmean(r[: data.n_tasks // 2])) for r in reverse],
    )
    result.extra = {
        "methods": {
            m: {
                "metric": metric,
                "mean": result.metrics[f"{m}.{metric}"].mean,
                "std": result.metrics[f"{m}.{metric}"].std,
                "train_seconds": result.metrics[f"{m}.train_seconds"].mean,
                "per_split": scores[m],
            }
            for m in methods
        },
        "speedup_vs_gomtl": result.metrics["speedup_vs_gomtl"].mean,
    }
    result.config.update(
        data=data.name,
        tasks=data.n_tasks,
        features=data.n_features,
        splits=n_splits,
        protocol="50/50 split per task; hyper-parameters by 2 inner 50/50 splits of the training half",
        ella_grid_size=len(ella_candidates),
        gomtl="uses ELLA's selected k, mu, lam, ridge (same objective, eq. 1)",
        selected=selected,
    )
    return result


def ella_landmine(args: argparse.Namespace) -> Result:
    return compare(load_landmine(args.data), args.seeds, name="ella (land mine)")


def ella_synthetic(args: argparse.Namespace) -> Result:
    data, _, _ = synthetic_tasks(seed=12345)
    return compare(data, args.seeds, name="ella (synthetic regression)")


def ella_scale(args: argparse.Namespace) -> Result:
    """10,000 synthetic tasks fed one by one: time per new task, ELLA's state size and the process RSS."""
    n_tasks = args.steps or 10_000
    data, _, _ = synthetic_tasks(n_tasks=n_tasks, n_per_task=50, seed=7)
    window = max(1, n_tasks // 20)
    result = Result(name=f"ella scale ({n_tasks} tasks)", protocol="scale", seeds=[0])
    model = ELLA(k=6, loss="squared", mu=E(-6), lam=E(-10), ridge=E(-5), keep_data=False)
    times: list[float] = []
    shared_kib, per_task_kib, rss_mib = [], [], []
    for t in range(n_tasks):
        started = time.perf_counter()
        model.add_task(t, data.X[t], data.y[t])
        times.append(time.perf_counter() - started)
        if (t + 1) % window == 0:
            shared = model.L.nbytes + model.A.nbytes + model.b.nbytes
            tasks = sum(m.theta.nbytes + m.D.nbytes + m.s.nbytes for m in model.tasks.values())
            shared_kib.append(shared / 1024)
            per_task_kib.append(tasks / 1024 / (t + 1))
            rss_mib.append(_rss_mib())
            print(
                f"tasks {t + 1:>6}: {1000 * np.mean(times[-window:]):.3f} ms per new task; basis L, A, b "
                f"{shared_kib[-1]:.1f} KiB; per task {per_task_kib[-1]:.2f} KiB; "
                f"process RSS {rss_mib[-1]:.0f} MiB",
                flush=True,
            )
    x = [float((i + 1) * window) for i in range(len(rss_mib))]
    per_window = [1000 * float(np.mean(times[i * window : (i + 1) * window])) for i in range(len(rss_mib))]
    result.curves["ms per new task"] = Curve(
        x, [per_window], kind="time", xlabel="tasks learned", ylabel="ms per new task"
    )
    result.curves["process RSS (MiB)"] = Curve(
        x, [rss_mib], kind="memory", xlabel="tasks learned", ylabel="MiB"
    )
    result.add_metric("ms_per_task_first_window", [per_window[0]])
    result.add_metric("ms_per_task_last_window", [per_window[-1]])
    result.add_metric("shared_state_kib", [shared_kib[-1]])
    result.add_metric("state_kib_per_task", [per_task_kib[-1]])
    result.config.update(tasks=n_tasks, window=window, k=6, features=12, n_per_task=50, keep_data=False)
    result.config["ms_per_new_task_by_window"] = per_window
    return result


def _rss_mib() -> float:
    """Resident memory of this process (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return math.nan
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
