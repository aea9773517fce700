"""Benchmark suites for ELLA: ``lifelong bench ella | ella-synthetic | ella-scale``.

``ella`` runs the comparison of Ruvolo & Eaton (ICML 2013, Table 1) — ELLA, batch GO-MTL, single-task
learning and one pooled model, on the same splits in one run, with accuracy, training time, time per new
task and ELLA's speed-up over GO-MTL — on the land mine data by default, or on any multi-task data that
``--data`` names (a folder of per-task CSV files, one ``.npz``, the land mine ``.mat``: see
:func:`~lifelong.learners.multitask.data.load_tasks`; ``--target`` and ``--task-type`` are read when the
CLI passes them). ``ella-synthetic`` does the same on the paper's synthetic regression tasks.
``ella-scale`` feeds ELLA 10,000 tasks and shows the time per new task and the memory staying flat.

The protocol is :mod:`lifelong.eval.multitask`'s: features (and a regression target) standardised on
the training half, every method choosing its own hyper-parameters on the training half — ELLA on the
full grid of :func:`ella_grid`, GO-MTL on :func:`gomtl_grid` (its own; a coarser k), STL and pooled on
the ridge — and scored on the test half in the data's units.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.eval.multitask import (
    Standardizer,
    grid,
    learn_in_order,
    mean_score,
    random_split,
    select,
)
from lifelong.eval.result import Curve, Result
from lifelong.learners.multitask.baselines import GOMTL, Pooled, SingleTask
from lifelong.learners.multitask.data import MultiTaskData, load_tasks, synthetic_tasks, task_type
from lifelong.learners.multitask.ella import ELLA

E = math.exp
RIDGES = [E(-8), E(-5), E(-2), 1.0, E(2)]
MUS = [E(-12), E(-6), E(-2)]
LAMS = [E(-10), E(-6), E(-2)]
#: k values GO-MTL tries (those within ELLA's range, plus its largest): every GO-MTL fit is a batch
#: optimisation over all tasks, hundreds of times ELLA's cost, so its grid is coarser in k.
GOMTL_KS = (1, 2, 3, 5, 7, 10)

#: Help of each suite, for ``lifelong bench SUITE --help``.
HELP = {
    "ella": (
        "ELLA (lifelong, one task at a time) vs batch GO-MTL vs single-task (STL) vs one pooled model on "
        "multi-task data, in the protocol of Ruvolo & Eaton (ICML 2013, section 5): random 50/50 "
        "train/test splits of every task (--seeds: how many), features (and a regression target) "
        "standardised on the training half, every method choosing its own hyper-parameters by two "
        "inner 50/50 splits of the training half, tasks fed to ELLA in a random order. Reports the "
        "per-task mean test AUC (classification) or RMSE (regression, in the target's units) as "
        "mean +- std over splits, training times, ELLA's time per new task and speed-up over GO-MTL, "
        "the tasks-seen-so-far curve and reverse transfer.\n"
        "Data (--data): the land mine data by default (29 tasks, paper Table 1; a folder holding "
        "landminedata.mat, or the .mat file); or your own: a folder of CSV files, one per task (file "
        "name = task name), each with a header row, the same numeric feature columns, and one target "
        "column (--target NAME; default: the column named 'target' or 'y'); or one .npz with arrays "
        "X_<task> (rows x features) and y_<task>. The task type is detected from the target (values "
        "0/1, or exactly two distinct values mapped to 0/1 in sorted order -> classification, else "
        "regression) unless --task-type regression|classification says it. Errors name the file, "
        "line and column. The result's config.data names the path, tasks, rows, features and loss.\n"
        "Example: python -m lifelong.bench.make_multitask_csv --out runs/diabetes-tasks && "
        "lifelong bench ella --data runs/diabetes-tasks --out runs/bench-diabetes --seeds 10"
    ),
    "ella-synthetic": (
        "The ella protocol on the paper's synthetic regression tasks: 100 tasks drawn from a known "
        "basis (12 features + bias, k = 6, half of every code zero, 100 rows per task, noise N(0, 1)); "
        "RMSE of ELLA, GO-MTL, STL and pooled, mean +- std over --seeds splits. Generates its data "
        "(no --data; run 'lifelong bench ella --data PATH' on your own).\n"
        "Example: lifelong bench ella-synthetic --out runs/bench --seeds 10"
    ),
    "ella-scale": (
        "ELLA fed 10,000 synthetic regression tasks (--steps to change) one at a time with "
        "keep_data=False: time per new task by window of tasks, the size of the shared state (L, A, b), "
        "the state per task and the process RSS — all should stay flat. Generates its data (no --data)."
        "\nExample: lifelong bench ella-scale --out runs/bench"
    ),
}


def ella_grid(n_tasks: int, n_features: int | None = None) -> list[dict[str, Any]]:
    """k ∈ 1..min(10, T/4) (paper §5) and at most the parameter count d + 1 (a basis of more columns
    than θ has entries is degenerate), μ and λ on a log scale, the single-task ridge."""
    top = max(1, min(10, n_tasks // 4, n_features + 1 if n_features is not None else 10))
    return grid(k=list(range(1, top + 1)), mu=MUS, lam=LAMS, ridge=[E(-5), E(-2), 1.0])


def gomtl_grid(n_tasks: int, n_features: int | None = None) -> list[dict[str, Any]]:
    """GO-MTL's own grid: k from :data:`GOMTL_KS` within ELLA's range (and its largest), μ and λ as ELLA's.

    The ridge only shapes GO-MTL's initialisation (the single-task solutions whose singular vectors
    start L); the protocol sets it to the ridge STL selected.
    """
    ks = sorted({c["k"] for c in ella_grid(n_tasks, n_features)})
    coarse = sorted({k for k in GOMTL_KS if k in ks} | {ks[-1]})
    return grid(k=coarse, mu=MUS, lam=LAMS)


def fit_ella(params: dict[str, Any], train: MultiTaskData, seed: int) -> ELLA:
    model = ELLA(loss=train.loss, seed=seed, **params)
    for t in np.random.default_rng(seed).permutation(train.n_tasks):
        model.add_task(int(t), train.X[t], train.y[t])
    return model


def fit_gomtl(params: dict[str, Any], train: MultiTaskData, seed: int) -> GOMTL:
    return GOMTL(loss=train.loss, **params).fit(train)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS/LAPACK on one thread (via threadpoolctl, when installed).

    Every matrix here is small (d·k ≤ a few hundred): BLAS threads only add overhead to such calls,
    and on a shared machine they contend with every other process — a GO-MTL fit on the synthetic
    tasks (130 × 130 Newton systems) took 24× longer with OpenBLAS's default threads than on one, on a
    loaded 2-core box. Timings are then also
    comparable between ELLA and GO-MTL and between machines (one core each, as the other suites).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up, not a requirement
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def compare(
    data: MultiTaskData, n_splits: int, *, name: str, progress: bool = True, standardize: bool = True
) -> Result:
    """The paper's protocol on ``data``: every method on the same splits; see the module docstring.

    ``standardize=False`` fits every method on the raw features and target (the protocol before the
    standardisation was added; kept to measure what it changes). BLAS runs on one thread
    (:func:`one_blas_thread`).
    """
    with one_blas_thread():
        return _compare(data, n_splits, name=name, progress=progress, standardize=standardize)


def _compare(data: MultiTaskData, n_splits: int, *, name: str, progress: bool, standardize: bool) -> Result:
    if n_splits < 1:
        raise InvalidInput(f"must be >= 1, got {n_splits}", field="--seeds")
    metric = "auc" if data.loss == "logistic" else "rmse"
    methods = ("ella", "gomtl", "stl", "pooled")
    scores: dict[str, list[float]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    choosing: dict[str, list[float]] = {m: [] for m in methods}
    selected: list[dict[str, Any]] = []
    seen_curves, reverse, stl_seen, per_task_ms, split_seconds = [], [], [], [], []
    gomtl_iterations: list[float] = []
    gomtl_converged: list[float] = []
    ella_candidates = ella_grid(data.n_tasks, data.n_features)
    gomtl_candidates = gomtl_grid(data.n_tasks, data.n_features)
    ridge_candidates = grid(ridge=RIDGES)
    for split in range(n_splits):
        split_started = time.perf_counter()
        raw_train, test = random_split(data, seed=split)
        scaling = Standardizer.fit(raw_train) if standardize else Standardizer.identity(data.n_features)
        train = scaling.transform(raw_train)
        if progress:
            print(
                f"{name}: split {split + 1}/{n_splits}: selecting hyper-parameters on the training half "
                f"(ELLA {len(ella_candidates)}, GO-MTL {len(gomtl_candidates)}, STL and pooled "
                f"{len(ridge_candidates)} settings, 2 inner splits each)",
                flush=True,
            )
        choice = select(fit_ella, ella_candidates, train, seed=split, progress=progress, desc="ELLA grid")
        stl_choice = select(
            lambda p, d, s: SingleTask(loss=d.loss, **p).fit(d), ridge_candidates, train, seed=split
        )
        pooled_choice = select(
            lambda p, d, s: Pooled(loss=d.loss, **p).fit(d), ridge_candidates, train, seed=split
        )
        # GO-MTL chooses its own k, μ, λ: ELLA's choice is tuned to ELLA's approximation (its codes
        # and D_t come from single-task fits with their own ridge) and need not suit the batch objective.
        stl_ridge = stl_choice.params["ridge"]
        gomtl_choice = select(
            fit_gomtl,
            [{**c, "ridge": stl_ridge} for c in gomtl_candidates],
            train,
            seed=split,
            progress=progress,
            desc="GO-MTL grid",
        )
        for method, chosen in (
            ("ella", choice),
            ("gomtl", gomtl_choice),
            ("stl", stl_choice),
            ("pooled", pooled_choice),
        ):
            choosing[method].append(chosen.seconds)
        selected.append(
            {
                "ella": choice.params,
                "gomtl": gomtl_choice.params,
                "stl": stl_choice.params,
                "pooled": pooled_choice.params,
            }
        )

        order = np.random.default_rng(split).permutation(data.n_tasks).tolist()
        ella = ELLA(loss=data.loss, seed=split, **choice.params)
        trace = learn_in_order(ella, train, test, order, scorer=scaling.predictor(ella))
        scores["ella"].append(mean_score(scaling.predictor(ella), test))
        seconds["ella"].append(sum(trace.seconds_per_task))
        per_task_ms.append(1000 * float(np.mean(trace.seconds_per_task)))
        seen_curves.append(trace.seen_so_far)
        reverse.append([b - a for a, b in zip(trace.right_after, trace.after_all, strict=True)])

        for method, model in (
            ("gomtl", GOMTL(loss=data.loss, **gomtl_choice.params)),
            ("stl", SingleTask(loss=data.loss, **stl_choice.params)),
            ("pooled", Pooled(loss=data.loss, **pooled_choice.params)),
        ):
            started = time.perf_counter()
            model.fit(train)
            seconds[method].append(time.perf_counter() - started)
            scorer = scaling.predictor(model)
            scores[method].append(mean_score(scorer, test))
            if isinstance(model, GOMTL):
                gomtl_iterations.append(float(len(model.history)))
                gomtl_converged.append(float(model.converged))
            if method == "stl":
                stl_seen.append([mean_score(scorer, test, order[: i + 1]) for i in range(len(order))])
        split_seconds.append(time.perf_counter() - split_started)
        if progress:
            print(
                "  "
                + ", ".join(f"{m} {metric} {scores[m][-1]:.4f} ({seconds[m][-1]:.3g} s)" for m in methods)
                + f"; selection {', '.join(f'{m} {choosing[m][-1]:.1f} s' for m in methods)}"
                + f"; split {split_seconds[-1]:.1f} s",
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
        result.add_metric(f"{m}.selection_seconds", choosing[m])
    speedups = [g / e for g, e in zip(seconds["gomtl"], seconds["ella"], strict=True)]
    result.add_metric("speedup_vs_gomtl", speedups)
    result.add_metric("ella.ms_per_new_task", per_task_ms)
    result.add_metric("gomtl.iterations", gomtl_iterations)
    result.add_metric("gomtl.converged", gomtl_converged)
    result.add_metric("split_seconds", split_seconds)
    result.add_metric(
        f"ella_over_gomtl.{metric}", [e / g for e, g in zip(scores["ella"], scores["gomtl"], strict=True)]
    )
    result.add_metric(
        f"gomtl_over_pooled.{metric}", [g / p for g, p in zip(scores["gomtl"], scores["pooled"], strict=True)]
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
                "selection_seconds": result.metrics[f"{m}.selection_seconds"].mean,
                "per_split": scores[m],
            }
            for m in methods
        },
        "speedup_vs_gomtl": result.metrics["speedup_vs_gomtl"].mean,
    }
    result.config.update(
        data=data.describe(),
        splits=n_splits,
        protocol="50/50 split per task; "
        + ("features (and a regression target) standardised on the training half; " if standardize else "")
        + "every method's hyper-parameters by 2 inner 50/50 splits of the training half",
        standardize=standardize,
        ella_grid_size=len(ella_candidates),
        gomtl_grid_size=len(gomtl_candidates),
        gomtl="selects its own k, mu, lam (coarser k grid); ridge of its initialisation = STL's selection",
        selected=selected,
    )
    return result


def _no_data(args: argparse.Namespace, suite: str) -> None:
    if getattr(args, "data", None) is not None:
        raise InvalidInput(
            f"{suite} generates its data; run 'lifelong bench ella --data PATH' on your own", field="--data"
        )


def ella_landmine(args: argparse.Namespace) -> Result:
    """The ``ella`` suite: the land mine data, or whatever ``--data`` names (see the module docstring)."""
    data = load_tasks(
        getattr(args, "data", None),
        target=getattr(args, "target", None),
        loss=task_type(getattr(args, "task_type", None)),
    )
    return compare(data, args.seeds, name=f"ella ({data.name})")


def ella_synthetic(args: argparse.Namespace) -> Result:
    _no_data(args, "ella-synthetic")
    data, _, _ = synthetic_tasks(seed=12345)
    return compare(data, args.seeds, name="ella (synthetic regression)")


def ella_scale(args: argparse.Namespace) -> Result:
    """10,000 synthetic tasks fed one by one: time per new task, ELLA's state size and the process RSS."""
    _no_data(args, "ella-scale")
    with one_blas_thread():
        return _scale(args)


def _scale(args: argparse.Namespace) -> Result:
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
