"""Multi-task supervised data: a list of per-task (X, y) arrays, validated, with loaders and a generator.

- :func:`load_landmine` — land mine detection (Xue et al., JMLR 2007): 29 tasks (regions), 9 features,
  labels 0/1; ELLA's benchmark (Ruvolo & Eaton, ICML 2013, Table 1);
- :func:`synthetic_tasks` — the paper's synthetic regression tasks: θ_t = L s_t with a random basis
  L (12 features + bias, k = 6 latent components) and codes s_t with half their entries zero, Gaussian
  inputs and Gaussian noise;
- :func:`load_tasks` — your own data: a folder of per-task CSV files, one ``.npz`` of per-task arrays,
  or the land mine ``.mat`` (see its docstring for the formats and how the task type is detected);
- :class:`MultiTaskData` — any list of per-task arrays, checked for what would silently corrupt a fit.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import SOURCES, data_path
from lifelong.errors import InvalidInput, NotFound
from lifelong.learners.multitask.single_task import Loss
from lifelong.utils.validation import check_scalar


@dataclass
class MultiTaskData:
    """Tasks ``(X_t, y_t)``: same feature count everywhere, finite values, no empty task.

    For ``loss="logistic"`` labels must be 0 or 1.
    """

    X: list[np.ndarray]
    y: list[np.ndarray]
    loss: Loss
    name: str = "tasks"
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss not in ("squared", "logistic"):
            raise InvalidInput(f"must be 'squared' or 'logistic', got {self.loss!r}", field="loss")
        if len(self.X) != len(self.y):
            raise InvalidInput(f"{len(self.X)} feature arrays but {len(self.y)} label arrays", field="y")
        if not self.X:
            raise InvalidInput("no tasks", field="X")
        xs, ys = [], []
        d = None
        for t, (X, y) in enumerate(zip(self.X, self.y, strict=True)):
            X = np.asarray(X, dtype=np.float64)
            y = np.asarray(y, dtype=np.float64).ravel()
            if X.ndim != 2:
                raise InvalidInput(f"task {t}: features must be a 2-d array, got shape {X.shape}", field="X")
            if len(X) == 0:
                raise InvalidInput(f"task {t} is empty", field="X")
            if len(X) != len(y):
                raise InvalidInput(f"task {t}: {len(X)} rows but {len(y)} labels", field="y")
            if d is None:
                d = X.shape[1]
            elif X.shape[1] != d:
                raise InvalidInput(f"task {t} has {X.shape[1]} features, task 0 has {d}", field="X")
            if not np.isfinite(X).all():
                raise InvalidInput(f"task {t}: features contain NaN or inf", field="X")
            if not np.isfinite(y).all():
                raise InvalidInput(f"task {t}: labels contain NaN or inf", field="y")
            if self.loss == "logistic" and not np.isin(y, (0.0, 1.0)).all():
                bad = sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:3]
                raise InvalidInput(f"task {t}: logistic labels must be 0 or 1, found {bad}", field="y")
            xs.append(X)
            ys.append(y)
        self.X, self.y = xs, ys

    @property
    def n_tasks(self) -> int:
        return len(self.X)

    @property
    def n_features(self) -> int:
        return int(self.X[0].shape[1])

    @property
    def n_rows(self) -> int:
        return sum(len(y) for y in self.y)

    def describe(self) -> dict[str, Any]:
        """What a result should say about the data it ran on: name, path, format, size, loss, target."""
        out: dict[str, Any] = {
            "name": self.name,
            "path": self.meta.get("path"),
            "format": self.meta.get("format", "arrays"),
            "n_tasks": self.n_tasks,
            "rows": self.n_rows,
            "features": self.n_features,
            "loss": self.loss,
        }
        for key in ("target", "classes", "feature_names"):
            if key in self.meta:
                out[key] = self.meta[key]
        return out

    def subset(self, rows: Sequence[np.ndarray]) -> MultiTaskData:
        """Keep ``rows[t]`` of every task t."""
        return MultiTaskData(
            [X[r] for X, r in zip(self.X, rows, strict=True)],
            [y[r] for y, r in zip(self.y, rows, strict=True)],
            self.loss,
            self.name,
            self.meta,
        )


def load_landmine(path: str | Path | None = None) -> MultiTaskData:
    """The land mine data: 29 tasks, 9 features, labels 0/1 (no bias column)."""
    from scipy.io import loadmat

    folder = data_path("landmine", path)
    file = folder / "landminedata.mat" if folder.is_dir() else folder
    if not file.is_file():
        raise NotFound(f"{file} is missing; it should be {SOURCES['landmine']}")
    try:
        mat = loadmat(file)
    except Exception as exc:  # scipy's reader raises many kinds on a damaged file; all mean "not this file"
        raise InvalidInput(
            f"not a readable .mat file ({type(exc).__name__}: {exc}); it should be {SOURCES['landmine']}",
            field=str(file),
        ) from exc
    try:
        features, labels = mat["feature"], mat["label"]
        X = [np.asarray(features[0, t], dtype=np.float64) for t in range(features.shape[1])]
        y = [np.asarray(labels[0, t], dtype=np.float64).ravel() for t in range(labels.shape[1])]
        meta: dict[str, object] = {"source": SOURCES["landmine"], "path": str(file), "format": "mat"}
        return MultiTaskData(X, y, "logistic", name="landmine", meta=meta)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:  # InvalidInput too
        reason = exc.reason if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
        raise InvalidInput(
            f"not the land mine data ({reason}); it should be {SOURCES['landmine']}", field=str(file)
        ) from exc


def synthetic_tasks(
    n_tasks: int = 100,
    n_features: int = 12,
    k: int = 6,
    n_per_task: int = 100,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[MultiTaskData, np.ndarray, np.ndarray]:
    """Regression tasks drawn from a known basis; returns (data, L, S).

    L ∈ R^{(d+1)×k} (the last row weighs the bias feature) and every s_t have standard normal entries,
    with half of each s_t set to zero; x ~ N(0, I_d); y = θ_tᵀ[x; 1] + ε with θ_t = L s_t and
    ε ~ N(0, noise²). The data holds the d raw features: learners add the bias feature themselves.
    """
    check_scalar(n_tasks, "n_tasks", int, min_val=1)
    check_scalar(n_features, "n_features", int, min_val=1)
    check_scalar(k, "k", int, min_val=1)
    check_scalar(n_per_task, "n_per_task", int, min_val=1)
    rng = np.random.default_rng(seed)
    d = n_features + 1
    L = rng.normal(size=(d, k))
    S = rng.normal(size=(k, n_tasks))
    for t in range(n_tasks):
        S[rng.permutation(k)[: k // 2], t] = 0.0
    X, y = [], []
    for t in range(n_tasks):
        features = rng.normal(size=(n_per_task, n_features))
        theta = L @ S[:, t]
        X.append(features)
        y.append(features @ theta[:-1] + theta[-1] + noise * rng.normal(size=n_per_task))
    data = MultiTaskData(X, y, "squared", name="synthetic", meta={"seed": seed, "k": k, "noise": noise})
    return data, L, S


# -- your own data: a folder of per-task CSV files, or one .npz ---------------------------------------

#: ``--task-type`` values and the loss each means; ``auto`` (or None) detects it from the target.
TASK_TYPES: dict[str, Loss | None] = {
    "auto": None,
    "regression": "squared",
    "classification": "logistic",
    "squared": "squared",
    "logistic": "logistic",
}
#: Target column names tried, in this order, when no ``target`` is given.
DEFAULT_TARGETS = ("target", "y")
FORMATS = (
    "a folder of per-task CSV files (header row; feature columns and one target column), "
    "one .npz with arrays X_<task> and y_<task>, or the land mine .mat"
)


def task_type(value: str | None) -> Loss | None:
    """The loss for a ``--task-type`` value: ``regression`` → squared, ``classification`` → logistic."""
    if value is None:
        return None
    if value not in TASK_TYPES:
        raise InvalidInput(f"must be one of {', '.join(TASK_TYPES)}, got {value!r}", field="--task-type")
    return TASK_TYPES[value]


def load_tasks(
    path: str | Path | None, *, target: str | None = None, loss: Loss | None = None
) -> MultiTaskData:
    """Multi-task data from ``path``, by what it is:

    - a **folder of CSV files**, one file per task (the task's name is the file name without ``.csv``,
      tasks in natural order: ``t2`` before ``t10``). Every file has a header row with the same column
      names (in any order); one of them is the target — ``target``, or else a column named ``target``
      or ``y`` — and all the others are numeric features;
    - one **.npz** file (``numpy.savez``) with, for every task name ``<t>``, an array ``X_<t>``
      (rows × features) and ``y_<t>`` (rows); optionally ``feature_names``;
    - the land mine **.mat** file, or a folder holding ``landminedata.mat`` (:func:`load_landmine`);
      ``None`` is the land mine data in the default data folder.

    The task type, unless ``loss`` says it (``"squared"`` regression, ``"logistic"`` classification),
    comes from the target over all tasks: values within {0, 1} → logistic; exactly two distinct values
    (numbers or strings, e.g. -1/1 or no/yes) → logistic, the smaller (or first in sorted order) mapped
    to 0 and the other to 1, recorded in ``meta["classes"]``; anything else → squared. A numeric
    regression target that takes only two values is therefore read as classes: pass ``loss="squared"``.

    A malformed file raises :class:`InvalidInput` whose ``field`` is the file and whose message names
    the line and column (CSV) or the array, row and column (.npz); a missing path raises
    :class:`NotFound`.
    """
    if path is None:
        if target is not None:
            raise InvalidInput("the land mine data has no named columns", field="--target")
        return _with_loss(load_landmine(None), loss)
    file = Path(path)
    if not file.exists():
        raise NotFound(f"{file} does not exist; expected {FORMATS}")
    if file.is_dir():
        csvs = sorted(file.glob("*.csv"), key=_natural)
        if csvs:
            return _read_csv_folder(file, csvs, target, loss)
        if (file / "landminedata.mat").is_file():
            return _landmine(file, target, loss)
        if (file / "landmine" / "landminedata.mat").is_file():  # the shared data folder itself
            return _landmine(file / "landmine", target, loss)
        raise InvalidInput(
            f"holds no .csv files and no landminedata.mat; expected {FORMATS}", field=str(file)
        )
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return _read_npz(file, target, loss)
    if suffix == ".mat":
        return _landmine(file, target, loss)
    if suffix == ".csv":
        raise InvalidInput(
            "is one CSV file; put one CSV file per task in a folder and pass the folder", field=str(file)
        )
    raise InvalidInput(f"is not a folder, .npz or .mat file; expected {FORMATS}", field=str(file))


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def _landmine(path: Path, target: str | None, loss: Loss | None) -> MultiTaskData:
    if target is not None:
        raise InvalidInput("the land mine .mat has no named columns", field="--target")
    return _with_loss(load_landmine(path), loss)


def _with_loss(data: MultiTaskData, loss: Loss | None) -> MultiTaskData:
    if loss is None or loss == data.loss:
        return data
    return MultiTaskData(data.X, data.y, loss, data.name, data.meta)


@dataclass
class _Targets:
    """Target cells as read, with where the first non-numeric one was (to name it in an error)."""

    raw: list[np.ndarray] = field(default_factory=list)  # per task: strings (CSV) or numbers (.npz)
    first_text: tuple[str, str] | None = None  # (field, where) of the first cell that is not a number


def _read_csv_folder(folder: Path, files: list[Path], target: str | None, loss: Loss | None) -> MultiTaskData:
    names: list[str] | None = None
    features: list[str] = []
    target_name = ""
    Xs: list[np.ndarray] = []
    targets = _Targets()
    for file in files:
        where = str(file)
        try:
            with file.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                try:
                    header = next(reader, None)
                    if header is None or not any(cell.strip() for cell in header):
                        raise InvalidInput("line 1: no header row (column names)", field=where)
                    header = [cell.strip() for cell in header]
                    _check_header(header, where)
                    if names is None:
                        names = header
                        target_name = _target_column(header, target, where)
                        features = [c for c in header if c != target_name]
                        if not features:
                            raise InvalidInput(
                                f"line 1: no feature columns besides {target_name!r}", field=where
                            )
                    elif set(header) != set(names):
                        missing = [c for c in names if c not in header]
                        extra = [c for c in header if c not in names]
                        raise InvalidInput(
                            f"line 1: columns differ from {files[0].name}: "
                            + "; ".join(
                                part
                                for part in (
                                    f"missing {', '.join(map(repr, missing))}" if missing else "",
                                    f"extra {', '.join(map(repr, extra))}" if extra else "",
                                )
                                if part
                            ),
                            field=where,
                        )
                    index = [header.index(c) for c in features]
                    y_index = header.index(target_name)
                    rows: list[list[float]] = []
                    labels: list[str] = []
                    for record in reader:
                        line = reader.line_num
                        if not record or not any(cell.strip() for cell in record):
                            continue  # a blank line
                        if len(record) != len(header):
                            raise InvalidInput(
                                f"line {line}: {len(record)} fields, the header has {len(header)}",
                                field=where,
                            )
                        rows.append([_number(record[i], where, line, header[i]) for i in index])
                        label = record[y_index].strip()
                        if not label:
                            raise InvalidInput(
                                f"line {line}, column {target_name!r}: empty target (missing value?)",
                                field=where,
                            )
                        if targets.first_text is None and not _is_number(label):
                            targets.first_text = (
                                where,
                                f"line {line}, column {target_name!r}: {label!r:.40}",
                            )
                        labels.append(label)
                except csv.Error as exc:
                    raise InvalidInput(
                        f"line {reader.line_num}: not valid CSV ({exc})", field=where
                    ) from None
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"is not UTF-8 text ({exc.reason})", field=where) from None
        except OSError as exc:
            raise NotFound(f"cannot read {file}: {exc.strerror or exc}") from None
        if not rows:
            raise InvalidInput("has a header but no rows", field=where)
        Xs.append(np.asarray(rows, dtype=np.float64))
        targets.raw.append(np.asarray(labels))
    y, chosen, classes = _decide_loss(targets, loss, target_name, str(folder))
    meta: dict[str, object] = {
        "path": str(folder),
        "format": "csv-folder",
        "tasks": [f.stem for f in files],
        "feature_names": features,
        "target": target_name,
    }
    if classes is not None:
        meta["classes"] = classes
    return MultiTaskData(Xs, y, chosen, name=folder.name, meta=meta)


def _check_header(header: list[str], where: str) -> None:
    for n, name in enumerate(header, start=1):
        if not name:
            raise InvalidInput(f"line 1: column {n} has no name", field=where)
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InvalidInput(f"line 1: column names appear twice: {', '.join(map(repr, twice))}", field=where)


def _target_column(header: list[str], target: str | None, where: str) -> str:
    if target is not None:
        if target not in header:
            raise InvalidInput(
                f"line 1: no target column {target!r}; columns are {', '.join(header)}", field=where
            )
        return target
    for name in DEFAULT_TARGETS:
        if name in header:
            return name
    raise InvalidInput(
        f"line 1: no column named {' or '.join(map(repr, DEFAULT_TARGETS))}; say which column is the "
        f"target (--target NAME); columns are {', '.join(header)}",
        field=where,
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _number(cell: str, where: str, line: int, column: str) -> float:
    text = cell.strip()
    if not text:
        raise InvalidInput(f"line {line}, column {column!r}: empty cell (missing value?)", field=where)
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(
            f"line {line}, column {column!r}: not a number: {text!r:.40}", field=where
        ) from None
    if not np.isfinite(value):
        raise InvalidInput(f"line {line}, column {column!r}: {text!r} is not a finite number", field=where)
    return value


def _decide_loss(
    targets: _Targets, loss: Loss | None, target_name: str, where: str
) -> tuple[list[np.ndarray], Loss, list[Any] | None]:
    """The labels as floats, the loss, and the two original class values when they were mapped to 0/1."""
    if loss is not None and loss not in ("squared", "logistic"):
        raise InvalidInput(f"must be 'squared' or 'logistic', got {loss!r}", field="loss")
    numeric = targets.first_text is None
    if numeric:
        values = [np.asarray(raw, dtype=np.float64) for raw in targets.raw]
        for t, v in enumerate(values):
            if not np.isfinite(v).all():
                raise InvalidInput(f"task {t}: target {target_name!r} holds NaN or inf", field=where)
        distinct: list[Any] = np.unique(np.concatenate(values)).tolist()
    else:
        distinct = sorted(set(np.concatenate(targets.raw).tolist()))
    if loss is None:
        loss = "logistic" if (numeric and set(distinct) <= {0.0, 1.0}) or len(distinct) == 2 else "squared"
    if loss == "squared":
        if targets.first_text is not None:
            bad_field, bad = targets.first_text
            raise InvalidInput(
                f"{bad}: a regression target must be a number (text labels need exactly two distinct "
                f"values, found {len(distinct)})",
                field=bad_field,
            )
        return values, loss, None
    if numeric and set(distinct) <= {0.0, 1.0}:
        return values, loss, None
    if len(distinct) != 2:
        shown = ", ".join(repr(v) for v in distinct[:5]) + (" ..." if len(distinct) > 5 else "")
        raise InvalidInput(
            f"target {target_name!r} has {len(distinct)} distinct values ({shown}); classification needs "
            "two (0/1 or any two values); for regression pass --task-type regression",
            field=where,
        )
    negative = distinct[0]
    raws = values if numeric else targets.raw
    return [(np.asarray(r) != negative).astype(np.float64) for r in raws], loss, distinct


def _read_npz(file: Path, target: str | None, loss: Loss | None) -> MultiTaskData:
    where = str(file)
    if target is not None:
        raise InvalidInput(
            "an .npz has arrays X_<task> and y_<task>, no target column to name", field="--target"
        )
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInput(
            f"not a readable .npz of numeric arrays ({type(exc).__name__}: {exc})", field=where
        ) from None
    xs = {key[2:]: value for key, value in arrays.items() if key.startswith("X_")}
    ys = {key[2:]: value for key, value in arrays.items() if key.startswith("y_")}
    if not xs:
        raise InvalidInput(
            f"has no arrays named X_<task>; found {', '.join(sorted(arrays)) or 'none'}", field=where
        )
    for name in sorted(set(xs) ^ set(ys)):
        have, lack = ("X", "y") if name in xs else ("y", "X")
        raise InvalidInput(f"array {have}_{name} has no {lack}_{name}", field=where)
    tasks = sorted(xs, key=lambda name: _natural(Path(name)))
    Xs: list[np.ndarray] = []
    targets = _Targets()
    width: int | None = None
    for name in tasks:
        X, y = xs[name], ys[name]
        if X.ndim != 2 or X.dtype.kind not in "biuf":
            raise InvalidInput(f"X_{name} must be a 2-d numeric array, got {X.ndim}-d {X.dtype}", field=where)
        if width is None:
            width = X.shape[1]
        elif X.shape[1] != width:
            raise InvalidInput(f"X_{name} has {X.shape[1]} columns, X_{tasks[0]} has {width}", field=where)
        if len(X) == 0:
            raise InvalidInput(f"X_{name} has no rows", field=where)
        bad = np.argwhere(~np.isfinite(X.astype(np.float64)))
        if len(bad):
            row, column = bad[0]
            raise InvalidInput(
                f"X_{name} row {row}, column {column}: {X[row, column]} is not finite", field=where
            )
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(X):
            raise InvalidInput(
                f"y_{name} must have one value per row of X_{name} ({len(X)}), got shape {y.shape}",
                field=where,
            )
        if y.dtype.kind in "US":
            if targets.first_text is None:
                targets.first_text = (where, f"y_{name} row 0: {y[0]!r:.40}")
        elif y.dtype.kind not in "biuf":
            raise InvalidInput(f"y_{name} must hold numbers or strings, got {y.dtype}", field=where)
        Xs.append(X.astype(np.float64))
        targets.raw.append(y)
    labels, chosen, classes = _decide_loss(targets, loss, "y", where)
    meta: dict[str, object] = {"path": where, "format": "npz", "tasks": tasks, "target": "y"}
    if "feature_names" in arrays:
        meta["feature_names"] = [str(v) for v in np.ravel(arrays["feature_names"])]
    if classes is not None:
        meta["classes"] = classes
    return MultiTaskData(Xs, labels, chosen, name=file.stem, meta=meta)
