"""Where the shared data sets live, the CSV files a researcher brings, and loaders that fail clearly.

Data sets are never shipped with ``lifelong``; loaders take a path. Without one they look in
``$LIFELONG_DATA``, then ``./shared/data`` and ``../shared/data`` (the layout of a checkout beside the
shared folder).

Every format a suite reads is described in ``docs/data.md``. Your own data comes as a CSV with a header
row (:class:`CsvTable`: the delimiter is sniffed from the header or given, a UTF-8 byte-order mark is
skipped, quoted fields may hold the delimiter); columns are found by their usual names or named with
``--columns role=NAME,...``. Intents are a CSV of text and label (:func:`load_intents`); ratings are read
by :func:`lifelong.envs.recsys.load_ratings`. Every malformed value fails with :class:`InvalidInput`
naming the file, the line and the column.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from lifelong.errors import InvalidInput, NotFound

SOURCES = {
    "banking77": "BANKING77 (PolyAI, Casanueva et al. 2020, CC BY 4.0): train.csv and test.csv "
    "with columns text,category",
    "landmine": "Land mine detection (Xue et al., JMLR 2007): landminedata.mat from the "
    "Lifelong-ML/ELLA repository's Datasets/ folder",
    "ml-100k": "MovieLens 100K (GroupLens): u.data, u.item, u.user",
    "intents-csv": "a CSV with a header row and the columns text,label (docs/data.md)",
    "ratings-csv": "a CSV with a header row and the columns user,item,rating,time (docs/data.md)",
    "locomo": "LoCoMo (Maharana et al., ACL 2024; snap-research/LoCoMo data/locomo10.json, CC BY-NC 4.0): "
    "a JSON list of samples with conversation and qa (docs/data.md)",
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


# -- CSV files with a header ------------------------------------------------------------------------
#: Delimiters the header is sniffed for, and the names ``--delimiter`` accepts for them.
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def parse_delimiter(text: str | None) -> str | None:
    """``--delimiter``: one character, or ``comma``, ``tab`` (also ``\\t``), ``semicolon``, ``pipe``; None
    sniffs it from the header."""
    if text is None:
        return None
    names = {name: char for char, name in DELIMITERS.items()} | {"\\t": "\t"}
    char = names.get(text.strip().lower(), text)
    if len(char) != 1 or char in '"\r\n':
        raise InvalidInput(
            f"must be one character or one of {', '.join(names)}, got {text!r}", field="--delimiter"
        )
    return char


def parse_columns(text: str | None, roles: Sequence[str]) -> dict[str, str]:
    """``--columns``: ``role=NAME,...`` → {role: header name}; every role must be one of ``roles``.

    >>> parse_columns("user=userId, item=movieId", ("user", "item", "rating", "time"))
    {'user': 'userId', 'item': 'movieId'}
    """
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        role, sep, name = part.partition("=")
        role, name = role.strip().lower(), name.strip()
        if not sep or not name:
            raise InvalidInput(f"expected role=NAME pairs, got {part.strip()!r}", field="--columns")
        if role not in roles:
            raise InvalidInput(
                f"unknown role {role!r}; this data has the roles {', '.join(roles)}", field="--columns"
            )
        if role in out:
            raise InvalidInput(f"role {role!r} is named twice", field="--columns")
        out[role] = name
    return out


class CsvTable:
    """The rows of a CSV file with a header, reduced to the columns a loader wants.

    ``wanted`` maps each role (``"user"``, ``"text"``, ...) to the header names it may have, tried in
    order and without regard to case or surrounding spaces; ``columns`` (from ``--columns``) names a
    role's column exactly. The delimiter is the one of :data:`DELIMITERS` the header holds most of,
    unless given. A UTF-8 byte-order mark is skipped; quoted fields may hold delimiters and newlines;
    blank lines are skipped. Iterating yields ``(line, {role: value})`` with the line number of the
    file; :meth:`error` builds the :class:`InvalidInput` for a bad value, naming the file, the line and
    the column::

        with CsvTable(path, {"text": ["text"], "label": ["label", "category"]}) as table:
            for line, row in table:
                ...

    ``expected`` (e.g. "(expected ...)") ends the messages about the file's shape.
    """

    def __init__(
        self,
        file: str | Path,
        wanted: Mapping[str, Sequence[str]],
        *,
        columns: Mapping[str, str] | None = None,
        delimiter: str | None = None,
        expected: str = "",
    ) -> None:
        self.file = Path(file)
        self.where = str(self.file)
        self.columns = dict(columns or {})
        self.wanted = {
            role: [self.columns[role]] if role in self.columns else list(names)
            for role, names in wanted.items()
        }
        self.delimiter = delimiter
        self.expected = f" {expected}" if expected else ""
        self.header: list[str] = []
        self.names: dict[str, str] = {}  # role → the header's name for it
        self._index: dict[str, int] = {}
        self._handle: IO[str] | None = None
        self._reader: Iterator[list[str]] | None = None
        self._line = 1

    def __enter__(self) -> CsvTable:
        if not self.file.is_file():
            what = "is a directory, not a CSV file" if self.file.is_dir() else "does not exist"
            raise NotFound(f"{self.file} {what}")
        try:
            self._handle = self.file.open(newline="", encoding="utf-8-sig")  # -sig: skip a byte-order mark
            self._read_header()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _read_header(self) -> None:
        assert self._handle is not None
        with self._decoding():
            first = self._handle.readline()
            while first and not first.strip():  # leading blank lines
                self._line += 1
                first = self._handle.readline()
        if not first:
            raise InvalidInput(
                f"is empty: a CSV starts with a header row naming its columns{self.expected}",
                field=self.where,
            )
        if self.delimiter is None:
            counts = {char: first.count(char) for char in DELIMITERS}
            best = max(counts, key=lambda char: counts[char])
            self.delimiter = best if counts[best] > 0 else ","
        reader = csv.reader(itertools.chain([first], self._handle), delimiter=self.delimiter, strict=True)
        with self._decoding():
            header = next(reader)
        self._reader = reader
        self.header = [name.strip() for name in header]
        folded = [name.casefold() for name in self.header]
        looked_for = {name.casefold() for names in self.wanted.values() for name in names}
        for n, name in enumerate(folded):
            if name in looked_for and name in folded[:n]:  # which one is meant? (others are ignored)
                raise InvalidInput(
                    f"line {self._line}: column {self.header[n]!r} appears twice in the header",
                    field=self.where,
                )
        missing = []
        for role, names in self.wanted.items():
            found = next((folded.index(name.casefold()) for name in names if name.casefold() in folded), None)
            if found is None:
                missing.append(role)
                continue
            twice = [other for other, n in self._index.items() if n == found]
            if twice:
                raise InvalidInput(
                    f"roles {twice[0]} and {role} both name column {self.header[found]!r}", field="--columns"
                )
            self._index[role], self.names[role] = found, self.header[found]
        if missing:
            role = missing[0]
            hint = (
                f"no column {self.columns[role]!r}"
                if role in self.columns
                else f"no {role} column (looked for {', '.join(repr(n) for n in self.wanted[role])})"
            )
            shown = DELIMITERS.get(self.delimiter, repr(self.delimiter))
            raise InvalidInput(
                f"line {self._line}: {hint}; the header has {', '.join(repr(h) for h in self.header)} "
                f"(read with delimiter {shown}); name the column with --columns {role}=NAME{self.expected}",
                field=self.where,
            )

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        """Turn decoding, CSV and OS errors into :class:`InvalidInput` / :class:`NotFound`."""
        try:
            yield
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"is not UTF-8 text ({exc.reason}){self.expected}", field=self.where) from None
        except csv.Error as exc:
            read = getattr(self._reader, "line_num", 0)
            line = read + self._line - 1 if read else self._line
            raise InvalidInput(f"line {line}: not valid CSV ({exc})", field=self.where) from None
        except OSError as exc:
            raise NotFound(f"cannot read {self.file}: {exc.strerror or exc}") from None

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        if self._reader is None:
            raise InvalidInput("read a CsvTable inside its with block", field=self.where)
        reader = self._reader
        width = len(self.header)
        with self._decoding():
            for row in reader:
                line = reader.line_num + self._line - 1  # type: ignore[attr-defined]  # after blank lines
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if len(row) > width:
                    raise InvalidInput(
                        f"line {line} has more fields than the header ({len(row)} > {width}): "
                        f"an unquoted {DELIMITERS.get(str(self.delimiter), 'delimiter')}?",
                        field=self.where,
                    )
                if len(row) < width:
                    raise InvalidInput(
                        f"line {line} has fewer fields than the header ({len(row)} < {width})",
                        field=self.where,
                    )
                yield line, {role: row[n] for role, n in self._index.items()}

    def error(self, line: int, role: str, message: str) -> InvalidInput:
        """``FILE: line N, column 'NAME': message`` — the error for one bad value."""
        return InvalidInput(f"line {line}, column {self.names[role]!r}: {message}", field=self.where)


# -- intents -----------------------------------------------------------------------------------------
#: Header names of the two intent columns, tried in order (``--columns text=...,label=...`` overrides).
INTENT_COLUMNS: dict[str, tuple[str, ...]] = {"text": ("text",), "label": ("label", "category", "intent")}


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class IntentData:
    """Labelled texts to stream (``train``) and to probe on (``test``), the label names, and what they are.

    ``source`` names the folder or file; ``layout`` is ``"banking77"`` (a folder with train.csv and
    test.csv) or ``"csv"`` (one file, ``holdout`` of each label held out as the test split).
    """

    train: LabelledTexts
    test: LabelledTexts
    categories: list[str]
    source: str
    layout: str
    holdout: float | None = None

    @property
    def name(self) -> str:
        """The folder's or the file's name (without .csv)."""
        return Path(self.source).stem if self.layout == "csv" else Path(self.source).name

    @property
    def tenant(self) -> str:
        return "banking77" if self.layout == "banking77" else "intents"

    def describe(self) -> dict[str, object]:
        """What ``result.config["data"]`` records: the path, its layout and sizes."""
        out: dict[str, object] = {
            "path": self.source,
            "format": "BANKING77 layout (train.csv, test.csv)"
            if self.layout == "banking77"
            else "intents CSV",
            "train": len(self.train),
            "test": len(self.test),
            "labels": len(self.categories),
        }
        if self.holdout is not None:
            out["test_split"] = f"{self.holdout:g} of each label held out (fixed seed 0)"
        return out


def load_intents(
    path: str | Path | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    holdout: float = 0.2,
) -> IntentData:
    """Intents from a folder in BANKING77 layout or from one CSV file of text and label.

    - A folder (or None: the shared ``banking77``): ``train.csv`` is streamed, ``test.csv`` probed; an
      optional ``categories.json`` lists the labels. A data folder holding ``banking77/`` is accepted too.
    - A file: its rows are split per label, ``holdout`` of each label's rows (at least one when the label
      has two or more, never all) held out as the test split, drawn once with seed 0 in file order;
      ``holdout = 0`` keeps every row in ``train`` (for the suites that stream without a probe).

    Columns are ``text`` and ``label`` (or ``category``, ``intent``) unless ``columns`` names them.
    """
    if path is not None and Path(path).is_file():
        if not 0 <= holdout < 1:
            raise InvalidInput(f"must be in [0, 1), got {holdout}", field="--holdout")
        rows = _read_labelled_csv(
            Path(path), columns=columns, delimiter=delimiter, expected=_expected("intents-csv")
        )
        train, test = _hold_out(rows, holdout, Path(path))
        return IntentData(train, test, sorted(set(rows.labels)), str(Path(path)), "csv", holdout)
    if path is not None and not (Path(path) / "train.csv").exists() and (Path(path) / "banking77").is_dir():
        path = Path(path) / "banking77"
    train, test, categories = load_banking77(path, columns=columns, delimiter=delimiter)
    return IntentData(train, test, categories, str(data_path("banking77", path)), "banking77")


def _hold_out(rows: LabelledTexts, share: float, file: Path) -> tuple[LabelledTexts, LabelledTexts]:
    if share == 0:
        return rows, LabelledTexts([], [])
    by_label: dict[str, list[int]] = {}
    for n, label in enumerate(rows.labels):
        by_label.setdefault(label, []).append(n)
    rng = np.random.default_rng(0)
    held: set[int] = set()
    for label in sorted(by_label):
        members = by_label[label]
        count = min(len(members) - 1, max(1, round(share * len(members)))) if len(members) > 1 else 0
        held.update(int(members[i]) for i in rng.permutation(len(members))[:count])
    if not held:
        raise InvalidInput(
            f"no label has two rows, so none can be held out for the test split (--holdout {share:g})",
            field=str(file),
        )
    keep = [n for n in range(len(rows)) if n not in held]
    test = sorted(held)
    return (
        LabelledTexts([rows.texts[n] for n in keep], [rows.labels[n] for n in keep]),
        LabelledTexts([rows.texts[n] for n in test], [rows.labels[n] for n in test]),
    )


def load_banking77(
    path: str | Path | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
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
        splits.append(_read_labelled_csv(file, columns=columns, delimiter=delimiter))
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


def _read_labelled_csv(
    file: Path,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    expected: str | None = None,
) -> LabelledTexts:
    """A CSV with a header naming (at least) a text and a label column (:data:`INTENT_COLUMNS`)."""
    texts: list[str] = []
    labels: list[str] = []
    expected = _expected("banking77") if expected is None else expected
    with CsvTable(file, INTENT_COLUMNS, columns=columns, delimiter=delimiter, expected=expected) as table:
        for line, row in table:
            text, label = row["text"], row["label"]
            if not text.strip():
                raise table.error(line, "text", "is empty")
            if not label.strip():
                raise table.error(line, "label", "is empty")
            if "\x00" in text or "\x00" in label:
                raise InvalidInput(
                    f"line {line} holds a NUL byte: a damaged or binary file?", field=str(file)
                )
            texts.append(text)
            labels.append(label)
    if not texts:
        raise InvalidInput(f"has a header but no rows {expected}", field=str(file))
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


# -- LoCoMo: long two-person conversations with questions about them ------------------------------------
#: LoCoMo's question categories (the numbering of the data set's files; the paper's Table 3 names).
LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation: who said it, its dialogue id ("D<session>:<n>"), the text, and the
    caption of the image it shared (if any)."""

    speaker: str
    dia_id: str
    text: str
    caption: str | None = None


@dataclass(frozen=True)
class Session:
    """One session of a conversation, with its date (as written and as a Unix time)."""

    number: int
    date: str
    time: float
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    """A question about a conversation, its answer, the dialogue ids of its evidence, its category."""

    question: str
    answer: str
    evidence: tuple[str, ...]
    category: int


@dataclass(frozen=True)
class Conversation:
    """One LoCoMo sample: the sessions of one conversation and the questions about it."""

    id: str
    speakers: tuple[str, str]
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]


def load_locomo(path: str | Path) -> list[Conversation]:
    """The samples of a JSON file in LoCoMo's layout (``docs/data.md``). A missing file, bad JSON or a
    missing or malformed field fails with :class:`InvalidInput` / :class:`NotFound` naming the file and
    the field, e.g. ``[2].conversation.session_3[4].text``."""
    file = Path(path)
    if file.is_dir():
        file = file / "locomo-dev.json" if (file / "locomo-dev.json").is_file() else file / "locomo10.json"
    if not file.is_file():
        raise NotFound(f"{file} does not exist; it should hold {SOURCES['locomo']}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{file} is not JSON: {exc}", field=str(file)) from None
    if not isinstance(data, list) or not data:
        raise InvalidInput(
            f"{file} must hold a non-empty list of samples {_expected('locomo')}", field=str(file)
        )
    return [_locomo_sample(file, n, sample) for n, sample in enumerate(data)]


def _locomo_field(file: Path, where: str, value: object, kind: type | tuple[type, ...], what: str) -> object:
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{file}: {where} must be {what}", field=f"{file}:{where}")
    return value


def _locomo_sample(file: Path, n: int, sample: object) -> Conversation:
    at = f"[{n}]"
    _locomo_field(file, at, sample, dict, "an object with conversation and qa")
    assert isinstance(sample, dict)
    conversation = _locomo_field(file, f"{at}.conversation", sample.get("conversation"), dict, "an object")
    assert isinstance(conversation, dict)
    speakers = tuple(
        str(_locomo_field(file, f"{at}.conversation.{side}", conversation.get(side), str, "a name"))
        for side in ("speaker_a", "speaker_b")
    )
    sessions = []
    number = 1
    while f"session_{number}" in conversation:
        where = f"{at}.conversation.session_{number}"
        turns = _locomo_field(file, where, conversation[f"session_{number}"], list, "a list of turns")
        date = str(
            _locomo_field(
                file, f"{where}_date_time", conversation.get(f"session_{number}_date_time"), str, "a date"
            )
        )
        sessions.append(
            Session(
                number,
                date,
                _locomo_time(file, f"{where}_date_time", date),
                _locomo_turns(file, where, turns),
            )
        )
        number += 1
    if not sessions:
        raise InvalidInput(f"{file}: {at}.conversation has no session_1", field=f"{file}:{at}.conversation")
    questions = _locomo_field(file, f"{at}.qa", sample.get("qa"), list, "a list of questions")
    assert isinstance(questions, list)
    return Conversation(
        str(sample.get("sample_id") or f"sample-{n}"),
        (speakers[0], speakers[1]),
        tuple(sessions),
        tuple(_locomo_question(file, f"{at}.qa[{q}]", question) for q, question in enumerate(questions)),
    )


def _locomo_turns(file: Path, where: str, turns: object) -> tuple[Turn, ...]:
    assert isinstance(turns, list)
    out = []
    for t, turn in enumerate(turns):
        here = f"{where}[{t}]"
        _locomo_field(file, here, turn, dict, "an object with speaker, dia_id and text")
        assert isinstance(turn, dict)
        caption = turn.get("blip_caption")
        out.append(
            Turn(
                str(_locomo_field(file, f"{here}.speaker", turn.get("speaker"), str, "a name")),
                str(_locomo_field(file, f"{here}.dia_id", turn.get("dia_id"), str, "a dialogue id")),
                str(_locomo_field(file, f"{here}.text", turn.get("text"), str, "the text said")),
                caption if isinstance(caption, str) and caption.strip() else None,
            )
        )
    return tuple(out)


def _locomo_time(file: Path, where: str, date: str) -> float:
    """``"1:56 pm on 8 May, 2023"`` as a Unix time (UTC)."""
    from datetime import UTC, datetime

    try:
        return datetime.strptime(date.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidInput(
            f"{file}: {where} must be a date like '1:56 pm on 8 May, 2023', got {date!r}",
            field=f"{file}:{where}",
        ) from None


def _locomo_question(file: Path, where: str, question: object) -> Question:
    _locomo_field(file, where, question, dict, "an object with question, evidence and category")
    assert isinstance(question, dict)
    text = str(_locomo_field(file, f"{where}.question", question.get("question"), str, "the question"))
    evidence = _locomo_field(
        file, f"{where}.evidence", question.get("evidence", []), list, "a list of dia_ids"
    )
    assert isinstance(evidence, list)
    category = question.get("category")
    if category not in LOCOMO_CATEGORIES:
        raise InvalidInput(
            f"{file}: {where}.category must be one of {sorted(LOCOMO_CATEGORIES)}, got {category!r}",
            field=f"{file}:{where}.category",
        )
    answer = question.get("answer", question.get("adversarial_answer", ""))
    return Question(text, str(answer), tuple(str(e) for e in evidence), int(category))
