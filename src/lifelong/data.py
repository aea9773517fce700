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
    """BANKING77 as (train, test, the 77 label names); ``path`` is the folder with the CSV files."""
    folder = data_path("banking77", path)
    splits = []
    for name in ("train.csv", "test.csv"):
        file = folder / name
        if not file.is_file():
            raise NotFound(f"{file} is missing; {folder} should hold {SOURCES['banking77']}")
        texts: list[str] = []
        labels: list[str] = []
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
                raise InvalidInput(f"needs columns text,category, has {reader.fieldnames}", field=str(file))
            for line, row in enumerate(reader, 2):
                if not row["text"] or not row["category"]:
                    raise InvalidInput(f"line {line} has an empty text or category", field=str(file))
                texts.append(row["text"])
                labels.append(row["category"])
        splits.append(LabelledTexts(texts, labels))
    categories_file = folder / "categories.json"
    if categories_file.is_file():
        categories = list(json.loads(categories_file.read_text(encoding="utf-8")))
    else:
        categories = sorted(set(splits[0].labels))
    return splits[0], splits[1], categories
