"""Where the shared data sets live, and loaders that fail clearly when they are missing.

Data sets are never shipped with ``lifelong``; loaders take a path. Without one they look in
``$LIFELONG_DATA``, then ``./shared/data`` and ``../shared/data`` (the layout of a checkout beside the
shared folder).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from lifelong.errors import InvalidInput, NotFound

SOURCES = {
    "banking77": "BANKING77 (PolyAI, Casanueva et al. 2020, CC BY 4.0): train.csv and test.csv "
    "with columns text,category",
    "landmine": "Land mine detection (Xue et al., JMLR 2007): landminedata.mat from the "
    "Lifelong-ML/ELLA repository's Datasets/ folder",
    "ml-100k": "MovieLens 100K (GroupLens): u.data, u.item, u.user",
}


def default_data_dir() -> Path:
    """The first of ``$LIFELONG_DATA``, ``./shared/data``, ``../shared/data`` that exists."""
    candidates = [os.environ.get("LIFELONG_DATA"), "shared/data", "../shared/data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    raise NotFound(
        "no data directory: set LIFELONG_DATA or pass --data; looked in "
        + ", ".join(c for c in candidates if c)
    )


def data_path(name: str, path: str | Path | None = None) -> Path:
    """The folder of data set ``name``: ``path`` itself, or ``<default data dir>/<name>``."""
    folder = Path(path) if path is not None else default_data_dir() / name
    if not folder.exists():
        raise NotFound(f"{folder} does not exist; it should hold {SOURCES[name]}")
    return folder


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_banking77(
    path: str | Path | None = None,
) -> tuple[LabelledTexts, LabelledTexts, list[str]]:
    """BANKING77 as (train, test, the 77 label names); ``path`` is the folder with the CSV files.

    A malformed file fails with :class:`InvalidInput` naming the file, the line and where the data comes
    from, never with a parser's exception.
    """
    folder = data_path("banking77", path)
    splits = []
    for name in ("train.csv", "test.csv"):
        file = folder / name
        if not file.is_file():
            raise NotFound(f"{file} is missing; {folder} should hold {SOURCES['banking77']}")
        splits.append(_read_labelled_csv(file))
    categories_file = folder / "categories.json"
    if categories_file.is_file():
        categories = _read_categories(categories_file)
        known = set(categories)
        for split, name in zip(splits, ("train.csv", "test.csv"), strict=True):
            unknown = sorted(set(split.labels) - known)
            if unknown:
                raise InvalidInput(
                    f"{name} has categories that categories.json does not list: {', '.join(unknown[:3])}"
                    + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""),
                    field=str(categories_file),
                )
    else:
        categories = sorted(set(splits[0].labels))
    return splits[0], splits[1], categories


def _expected(name: str) -> str:
    return f"(expected {SOURCES[name]})"


def _read_labelled_csv(file: Path) -> LabelledTexts:
    """One BANKING77 split: a CSV with a header naming (at least) the columns text and category."""
    texts: list[str] = []
    labels: list[str] = []
    where = str(file)
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            try:
                fields = reader.fieldnames
                if fields is None:
                    raise InvalidInput(f"is empty {_expected('banking77')}", field=where)
                if not {"text", "category"} <= set(fields):
                    raise InvalidInput(
                        f"line 1: needs columns text,category, has {','.join(fields)} "
                        f"{_expected('banking77')}",
                        field=where,
                    )
                for row in reader:
                    line = reader.line_num
                    text, label = row["text"], row["category"]
                    if None in row:  # more fields than the header names: an unquoted comma
                        raise InvalidInput(
                            f"line {line} has more fields than the header ({len(fields)})", field=where
                        )
                    if text is None or label is None:
                        raise InvalidInput(
                            f"line {line} has fewer fields than the header ({len(fields)})", field=where
                        )
                    if not text.strip() or not label.strip():
                        raise InvalidInput(f"line {line} has an empty text or category", field=where)
                    if "\x00" in text or "\x00" in label:
                        raise InvalidInput(
                            f"line {line} holds a NUL byte: a damaged or binary file?", field=where
                        )
                    texts.append(text)
                    labels.append(label)
            except csv.Error as exc:
                raise InvalidInput(f"line {reader.line_num}: not valid CSV ({exc})", field=where) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"is not UTF-8 text ({exc.reason}) {_expected('banking77')}", field=where
        ) from None
    except OSError as exc:
        raise NotFound(f"cannot read {file}: {exc.strerror or exc}") from None
    if not texts:
        raise InvalidInput(f"has a header but no rows {_expected('banking77')}", field=where)
    return LabelledTexts(texts, labels)


def _read_categories(file: Path) -> list[str]:
    """categories.json: a JSON list of the distinct label names."""
    where = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"line {exc.lineno}: not valid JSON ({exc.msg}) {_expected('banking77')}", field=where
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"is not UTF-8 text ({exc.reason})", field=where) from None
    except RecursionError:
        raise InvalidInput("nests too deeply to be a list of names", field=where) from None
    except OSError as exc:
        raise NotFound(f"cannot read {file}: {exc.strerror or exc}") from None
    if not isinstance(data, list) or not data:
        raise InvalidInput(
            f"must be a non-empty JSON list of category names, got {type(data).__name__}", field=where
        )
    for n, name in enumerate(data):
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"entry {n} must be a non-empty string, got {name!r:.60}", field=where)
    if len(set(data)) != len(data):
        twice = sorted({name for name in data if data.count(name) > 1})
        raise InvalidInput(f"lists categories twice: {', '.join(twice[:3])}", field=where)
    return data
