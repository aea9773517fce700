"""Write a second real multi-task regression set, as a folder of per-task CSV files, from scikit-learn.

The diabetes data of Efron, Hastie, Johnstone & Tibshirani ("Least Angle Regression", Annals of
Statistics 2004), shipped inside scikit-learn (``sklearn/datasets/data/diabetes_data_raw.csv.gz``, so no
network): 442 patients, 10 baseline measurements, and a quantitative measure of disease progression one
year later. Read *unscaled* (``load_diabetes(scaled=False)``: age in years, BMI, blood pressure in mm Hg,
six blood serum values in their own units — standard deviations from 0.5 to 35), the way a new user's
data arrives. A task is one group of patients: sex × age band (under 30, 30s, 40s, 50s, 60 and over),
10 tasks of 14 to 64 patients; the features are the 9 measurements other than sex (constant within a
task), the target column is ``target`` (the progression measure, 25 to 346).

Nothing here is tuned to ELLA: the grouping is the obvious one (the two variables that define patient
groups) and was fixed before any model was run on it.

    python -m lifelong.bench.make_multitask_csv --out runs/diabetes-tasks
    lifelong bench ella --data runs/diabetes-tasks --out runs/bench-diabetes --seeds 10
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from lifelong.errors import NotFound

#: Upper edges of the age bands (years); the last band is open.
AGE_EDGES = (30, 40, 50, 60)
BANDS = ("19-29", "30-39", "40-49", "50-59", "60-79")
SOURCE = (
    "scikit-learn's bundled diabetes data (Efron et al., Least Angle Regression, Ann. Statist. 2004), "
    "unscaled; one task per sex x age band; target = disease progression after one year"
)


def diabetes_tasks() -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Task name → (feature names, X, y), from ``sklearn.datasets.load_diabetes(scaled=False)``."""
    try:
        from sklearn.datasets import load_diabetes
    except ImportError as exc:
        raise NotFound("the diabetes data ships with scikit-learn: pip install scikit-learn") from exc

    bunch = load_diabetes(scaled=False)
    X, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.float64)
    names = list(bunch.feature_names)
    sex, age = X[:, names.index("sex")], X[:, names.index("age")]
    keep = [i for i, name in enumerate(names) if name != "sex"]
    band = np.digitize(age, AGE_EDGES)
    tasks = {}
    for s in sorted(np.unique(sex)):
        for b, label in enumerate(BANDS):
            rows = (sex == s) & (band == b)
            if rows.any():
                tasks[f"sex{int(s)}_age{label}"] = ([names[i] for i in keep], X[rows][:, keep], y[rows])
    return tasks


def write_csv_folder(out: Path, tasks: dict[str, tuple[list[str], np.ndarray, np.ndarray]]) -> int:
    """One ``<task>.csv`` per task (features, then ``target``); returns the number of rows written."""
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for name, (features, X, y) in tasks.items():
        with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*features, "target"])
            for x, target in zip(X, y, strict=True):
                writer.writerow([*(f"{v:g}" for v in x), f"{target:g}"])
        rows += len(y)
    (out / "SOURCE.txt").write_text(SOURCE + "\n", encoding="utf-8")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the CSV files into")
    args = parser.parse_args(argv)
    tasks = diabetes_tasks()
    rows = write_csv_folder(args.out, tasks)
    sizes = ", ".join(str(len(y)) for _, _, y in tasks.values())
    print(f"{len(tasks)} tasks ({sizes} rows), {rows} rows, 9 unscaled features -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
