"""Multi-task data from files: a folder of per-task CSVs, one .npz, the land mine .mat; errors that point."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from lifelong.errors import InvalidInput, NotFound
from lifelong.learners.multitask.data import load_tasks, synthetic_tasks, task_type

LANDMINE = Path(__file__).resolve().parents[2] / "shared" / "data" / "landmine"


def write_tasks(folder: Path, tables: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def regression_folder(folder: Path, n_tasks: int = 8, rows: int = 30, seed: int = 0) -> Path:
    data, _, _ = synthetic_tasks(n_tasks=n_tasks, n_features=3, k=2, n_per_task=rows, seed=seed)
    tables = {}
    for t in range(n_tasks):
        lines = ["a,b,c,target"] + [
            ",".join(repr(float(v)) for v in [*x, y]) for x, y in zip(data.X[t], data.y[t], strict=True)
        ]
        tables[f"task{t}"] = "\n".join(lines) + "\n"
    return write_tasks(folder, tables)


def test_csv_folder_regression_in_natural_order(tmp_path: Path) -> None:
    folder = write_tasks(
        tmp_path / "mine",
        {
            "t2": "x1,x2,y\n1,2,3.5\n4,5,6.25\n",
            "t10": "x2,y,x1\n20,7.5,10\n\n50,8,40\n",  # other column order, a blank line
        },
    )
    data = load_tasks(folder)
    assert data.loss == "squared" and data.n_tasks == 2 and data.n_features == 2
    # tasks in natural order (t2 before t10); features in the first file's order
    assert data.meta["tasks"] == ["t2", "t10"] and data.meta["feature_names"] == ["x1", "x2"]
    assert data.X[1].tolist() == [[10.0, 20.0], [40.0, 50.0]] and data.y[1].tolist() == [7.5, 8.0]
    assert data.describe() == {
        "name": "mine",
        "path": str(folder),
        "format": "csv-folder",
        "n_tasks": 2,
        "rows": 4,
        "features": 2,
        "loss": "squared",
        "target": "y",
        "feature_names": ["x1", "x2"],
    }


@pytest.mark.parametrize(
    ("labels", "classes", "expected"),
    [
        (("0", "1", "1"), None, [0.0, 1.0, 1.0]),
        (("-1", "1", "-1"), [-1.0, 1.0], [0.0, 1.0, 0.0]),  # the smaller value is 0
        (("yes", "no", "yes"), ["no", "yes"], [1.0, 0.0, 1.0]),  # sorted order: the first is 0
    ],
)
def test_classification_is_detected_and_two_values_are_mapped(
    tmp_path: Path, labels: tuple[str, str, str], classes: list[object] | None, expected: list[float]
) -> None:
    rows = "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    folder = write_tasks(tmp_path / "c", {"a": "f,label\n" + rows, "b": "f,label\n" + rows})
    data = load_tasks(folder, target="label")
    assert data.loss == "logistic" and data.meta.get("classes") == classes
    assert data.y[0].tolist() == expected and data.describe().get("classes") == classes
    # the task type can be forced; a two-valued numeric target can stay a regression
    if labels[0] != "yes":
        assert load_tasks(folder, target="label", loss="squared").loss == "squared"
    else:
        with pytest.raises(InvalidInput, match=r"line 2, column 'label'.*must be a number"):
            load_tasks(folder, target="label", loss="squared")


def test_many_values_is_regression_and_classification_needs_two(tmp_path: Path) -> None:
    folder = write_tasks(tmp_path / "r", {"a": "f,y\n1,0\n2,1\n3,2\n"})
    assert load_tasks(folder).loss == "squared"
    with pytest.raises(InvalidInput, match="3 distinct values"):
        load_tasks(folder, loss="logistic")
    assert task_type("classification") == "logistic" and task_type("regression") == "squared"
    assert task_type(None) is None and task_type("auto") is None
    with pytest.raises(InvalidInput, match="--task-type"):
        task_type("ranking")


def test_npz_of_per_task_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"X_{t}": rng.normal(size=(6, 3)) for t in (0, 1, 10)}
    arrays |= {f"y_{t}": rng.normal(size=6) for t in (0, 1, 10)}
    np.savez(tmp_path / "tasks.npz", feature_names=np.array(["u", "v", "w"]), **arrays)
    data = load_tasks(tmp_path / "tasks.npz")
    assert data.loss == "squared" and data.meta["tasks"] == ["0", "1", "10"] and data.n_features == 3
    assert np.array_equal(data.X[2], arrays["X_10"]) and data.describe()["feature_names"] == ["u", "v", "w"]
    np.savez(tmp_path / "labels.npz", X_a=np.ones((3, 2)), y_a=np.array(["spam", "ham", "spam"]))
    labelled = load_tasks(tmp_path / "labels.npz")
    assert labelled.loss == "logistic" and labelled.meta["classes"] == ["ham", "spam"]
    assert labelled.y[0].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X_a": np.ones((3, 2))}, "X_a has no y_a"),
        ({"X_a": np.ones((3, 2)), "y_a": np.ones(3), "X_b": np.ones((3, 4)), "y_b": np.ones(3)}, "4 columns"),
        ({"X_a": np.array([[1.0, np.nan]]), "y_a": np.ones(1)}, r"X_a row 0, column 1: nan is not finite"),
        ({"X_a": np.ones((3, 2)), "y_a": np.ones(2)}, "one value per row"),
        ({"weights": np.ones(3)}, "no arrays named X_<task>"),
    ],
)
def test_malformed_npz_names_the_array(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    file = tmp_path / "bad.npz"
    np.savez(file, **arrays)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=message) as caught:
        load_tasks(file)
    assert caught.value.field == str(file)


def test_damaged_npz_is_invalid_input(tmp_path: Path) -> None:
    file = tmp_path / "damaged.npz"
    file.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InvalidInput, match=r"not a readable \.npz"):
        load_tasks(file)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("x,y\n1,2\n3,abc\n", r"line 3, column 'y'"),  # a text target among numbers: not a regression
        ("x,y\n1,2\nfoo,4\n", r"line 3, column 'x': not a number: 'foo'"),
        ("x,y\n1,2\n,4\n", r"line 3, column 'x': empty cell"),
        ("x,y\n1,2\ninf,4\n", r"line 3, column 'x': 'inf' is not a finite number"),
        ("x,y\n1,2\n3,4,5\n", r"line 3: 3 fields, the header has 2"),
        ("x,z\n1,2\n", r"line 1: columns differ from a.csv: missing 'y'; extra 'z'"),
        ("x,x,y\n1,2,3\n", r"line 1: column names appear twice: 'x'"),
        ("x,y\n", "has a header but no rows"),
        ("", "line 1: no header row"),
        ("x,y\n1,\n", r"line 2, column 'y': empty target"),
    ],
)
def test_malformed_csv_names_file_line_and_column(tmp_path: Path, second: str, message: str) -> None:
    folder = write_tasks(tmp_path / "bad", {"a": "x,y\n1,2\n3,4\n5,6\n", "b": second})
    with pytest.raises(InvalidInput, match=message) as caught:
        load_tasks(folder)
    assert caught.value.field == str(folder / "b.csv")


def test_missing_target_column_lists_the_columns(tmp_path: Path) -> None:
    folder = write_tasks(tmp_path / "t", {"a": "x,progression\n1,2\n"})
    with pytest.raises(InvalidInput, match=r"--target NAME.*columns are x, progression"):
        load_tasks(folder)
    with pytest.raises(InvalidInput, match="no target column 'label'"):
        load_tasks(folder, target="label")
    assert load_tasks(folder, target="progression").meta["feature_names"] == ["x"]


def test_paths_that_are_not_multitask_data(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_tasks(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=r"no \.csv files"):
        load_tasks(tmp_path / "empty")
    (tmp_path / "one.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="one CSV file per task in a folder"):
        load_tasks(tmp_path / "one.csv")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"not a folder, \.npz or \.mat"):
        load_tasks(tmp_path / "notes.txt")
    folder = write_tasks(tmp_path / "latin", {"a": "x,y\n1,2\n"})
    (folder / "b.csv").write_bytes("x,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="not UTF-8") as caught:
        load_tasks(folder)
    assert caught.value.field == str(folder / "b.csv")


@pytest.mark.skipif(not (LANDMINE / "landminedata.mat").is_file(), reason=f"no land mine data in {LANDMINE}")
def test_the_mat_path_stays_the_land_mine_loader() -> None:
    for path in (LANDMINE, LANDMINE / "landminedata.mat", LANDMINE.parent):
        data = load_tasks(path)
        assert data.name == "landmine" and data.n_tasks == 29 and data.loss == "logistic"
        assert data.describe()["format"] == "mat" and data.describe()["rows"] == 14820
    with pytest.raises(InvalidInput, match="no named columns"):
        load_tasks(LANDMINE, target="label")


def test_the_suite_runs_on_a_csv_folder_and_names_it(tmp_path: Path) -> None:
    from lifelong.bench.ella import ella_landmine, ella_synthetic

    folder = regression_folder(tmp_path / "tasks")
    # no target / task_type attributes: the suite works before the CLI has those flags
    result = ella_landmine(argparse.Namespace(data=str(folder), seeds=1))
    described = result.config["data"]
    assert described["path"] == str(folder) and described["format"] == "csv-folder"
    assert (described["n_tasks"], described["rows"], described["features"]) == (8, 240, 3)
    assert described["loss"] == "squared" and result.name == "ella (tasks)"
    assert set(result.config["selected"][0]) == {"ella", "gomtl", "stl", "pooled"}
    forced = ella_landmine(argparse.Namespace(data=str(folder), seeds=1, target="a", task_type="regression"))
    assert forced.config["data"]["target"] == "a" and forced.config["data"]["feature_names"] == [
        "b",
        "c",
        "target",
    ]
    with pytest.raises(InvalidInput, match="generates its data"):
        ella_synthetic(argparse.Namespace(data=str(folder), seeds=1))
