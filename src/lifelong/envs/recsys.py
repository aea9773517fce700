"""Recommendation environments: a rating log replayed in time order, and a simulated user population.

- :class:`Ratings` is a rating (or interaction) log sorted by time, with dense integer ids and, when the
  data has them, item genres and user demographics. :func:`load_ratings` reads either
  :func:`load_movielens` — a MovieLens 100K folder: ``u.data`` (user, item, rating 1–5, unix time),
  ``u.item`` (19 genre flags per movie), ``u.user`` (age, gender, occupation) — or
  :func:`load_ratings_csv` — any CSV with user, item, rating (or a 0/1 label) and time columns: string
  ids, float ratings (half stars), unix seconds or ISO 8601 times, no side features. Both fail with a
  message naming the file, the line (and the column) when something is missing or malformed.
- :class:`SimulatedUsers` is a population with hidden preference vectors and a logistic click model:
  each step one user arrives, the action is the item shown, the user accepts (clicks) with probability
  σ(u·v + b_item); ``info["best_reward"]`` is the click probability of the user's best item, so the
  harness can measure regret.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import SOURCES, CsvTable, data_path
from lifelong.envs.base import Env, StepResult
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import MAX_TIME, Scope
from lifelong.utils.validation import check_scalar

N_GENRES = 19

#: Header names of the rating CSV's columns, tried in order (``--columns user=...,time=...`` overrides).
RATING_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid"),
    "item": ("item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid"),
    "rating": ("rating", "label", "score", "value"),
    "time": ("time", "timestamp", "ts", "datetime", "date"),
}
#: The rating at or above which an event is a positive, unless the data says otherwise (4 of 5 stars).
DEFAULT_POSITIVE = 4.0


@dataclass(frozen=True)
class Ratings:
    """Ratings sorted by time (ties by file order), with the ids the file wrote and optional side features.

    ``user`` and ``item`` are dense ids 1..n (row 0 unused); ``user_ids[u]`` / ``item_ids[i]`` are the
    ids as the file wrote them (MovieLens's numbers, or any string). ``threshold``: a rating at or above
    it is a positive (what the top-N protocols rank for). ``genres`` (n_items + 1 × 19 flags), ``age``,
    ``gender`` and ``occupation`` (indexed by dense id) are None when the data has no side features.
    ``source`` says what the data is and where it was read from.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    time: np.ndarray
    n_users: int
    n_items: int
    source: str
    format: str
    user_ids: list[str]
    item_ids: list[str]
    threshold: float = DEFAULT_POSITIVE
    genres: np.ndarray | None = None
    titles: list[str] | None = None
    age: np.ndarray | None = None
    gender: list[str] | None = None
    occupation: list[str] | None = None

    def __len__(self) -> int:
        return len(self.rating)

    @property
    def name(self) -> str:
        """The data's name: MovieLens 100K, or the CSV file's name."""
        return "MovieLens 100K" if self.format.startswith("MovieLens") else Path(self.source).name

    @property
    def has_features(self) -> bool:
        """Whether item genres and user demographics are known (the +features rating model needs them)."""
        return self.genres is not None and self.age is not None

    def describe(self) -> dict[str, Any]:
        """What a result records as its data: path, format, sizes, rating range, time span."""
        span = float(self.time.max() - self.time.min()) if len(self) else 0.0
        return {
            "path": self.source,
            "format": self.format,
            "events": len(self),
            "users": self.n_users,
            "items": self.n_items,
            "ratings": [float(self.rating.min()), float(self.rating.max())] if len(self) else [],
            "positive_at_or_above": self.threshold,
            "positives": int((self.rating >= self.threshold).sum()),
            "span_days": round(span / 86_400, 1),
            "side_features": self.has_features,
        }


def _lines(file: Path, folder: Path) -> list[str]:
    if not file.is_file():
        raise NotFound(f"{file} is missing; {folder} should hold {SOURCES['ml-100k']}")
    try:
        lines = file.read_text(encoding="latin-1").splitlines()  # latin-1 decodes any byte
    except OSError as exc:
        raise NotFound(f"cannot read {file}: {exc.strerror or exc}") from None
    if not lines:
        raise InvalidInput(f"is empty; {folder} should hold {SOURCES['ml-100k']}", field=str(file))
    return lines


def load_ratings(
    path: str | Path | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    positive: float | None = None,
) -> Ratings:
    """A rating log from ``path``: a CSV file (:func:`load_ratings_csv`), a MovieLens 100K folder, or a data
    folder holding ``ml-100k/``; None is the shared ``ml-100k``. ``columns`` and ``delimiter`` apply to a
    CSV only; ``positive`` overrides the positive threshold of either."""
    if path is not None and Path(path).is_file():
        return load_ratings_csv(path, columns=columns, delimiter=delimiter, positive=positive)
    if path is not None and not Path(path).exists():
        raise NotFound(f"{path} does not exist; expected {SOURCES['ratings-csv']}, or {SOURCES['ml-100k']}")
    if columns or delimiter is not None:
        raise InvalidInput(
            f"{path or 'the MovieLens folder'} is a MovieLens folder; --columns and --delimiter describe a "
            "CSV file",
            field="--columns" if columns else "--delimiter",
        )
    folder = None if path is None else Path(path)
    if folder is not None and not (folder / "u.data").exists() and (folder / "ml-100k").is_dir():
        folder = folder / "ml-100k"
    data = load_movielens(folder)
    if positive is None:
        return data
    return dataclasses.replace(data, threshold=_positive(positive))


def _positive(value: float) -> float:
    if not math.isfinite(value):
        raise InvalidInput(f"must be a finite rating, got {value}", field="--positive")
    return float(value)


def load_movielens(path: str | Path | None = None) -> Ratings:
    """MovieLens 100K from its folder (``u.data``, ``u.item``, ``u.user``)."""
    folder = data_path("ml-100k", path)
    rows = []
    for number, line in enumerate(_lines(folder / "u.data", folder), 1):
        parts = line.split("\t")
        try:
            user, item, rating, stamp = (int(p) for p in parts)
        except ValueError:
            raise InvalidInput(
                f"line {number}: expected 4 tab-separated integers (user item rating time), "
                f"got {line[:60]!r}",
                field=str(folder / "u.data"),
            ) from None
        if not 1 <= rating <= 5 or not 1 <= user < 2**31 or not 1 <= item < 2**31 or not 0 <= stamp < 2**62:
            raise InvalidInput(
                f"line {number}: rating {rating}, an id or the time out of range",
                field=str(folder / "u.data"),
            )
        rows.append((user, item, rating, stamp))
    if not rows:
        raise InvalidInput("no ratings", field=str(folder / "u.data"))
    data = np.asarray(rows, dtype=np.int64)
    order = np.argsort(data[:, 3], kind="stable")
    data = data[order]

    item_lines = _lines(folder / "u.item", folder)
    genres = np.zeros((len(item_lines) + 1, N_GENRES), dtype=np.int8)
    titles = [""] * (len(item_lines) + 1)
    seen_items: set[int] = set()
    for number, line in enumerate(item_lines, 1):
        parts = line.split("|")
        try:
            item_id = int(parts[0])
            flags = [int(f) for f in parts[-N_GENRES:]]
        except (ValueError, IndexError):
            raise InvalidInput(f"line {number}: not a u.item record", field=str(folder / "u.item")) from None
        if len(parts) < 5 + N_GENRES or not 1 <= item_id < len(genres) or not set(flags) <= {0, 1}:
            raise InvalidInput(
                f"line {number}: not a u.item record (id|title|...|{N_GENRES} genre flags 0/1)",
                field=str(folder / "u.item"),
            )
        if item_id in seen_items:
            raise InvalidInput(f"line {number}: item {item_id} is listed twice", field=str(folder / "u.item"))
        seen_items.add(item_id)
        genres[item_id] = flags
        titles[item_id] = parts[1]

    user_lines = _lines(folder / "u.user", folder)
    age = np.zeros(len(user_lines) + 1, dtype=np.int64)
    gender = [""] * (len(user_lines) + 1)
    occupation = [""] * (len(user_lines) + 1)
    seen_users: set[int] = set()
    for number, line in enumerate(user_lines, 1):
        parts = line.split("|")
        try:
            user_id, years = int(parts[0]), int(parts[1])
            sex, job = parts[2], parts[3]
        except (ValueError, IndexError):
            raise InvalidInput(f"line {number}: not a u.user record", field=str(folder / "u.user")) from None
        if not 1 <= user_id < len(age) or years < 0:  # a negative id would index from the end
            raise InvalidInput(
                f"line {number}: user id {user_id} or age {years} out of range", field=str(folder / "u.user")
            )
        if user_id in seen_users:
            raise InvalidInput(f"line {number}: user {user_id} is listed twice", field=str(folder / "u.user"))
        seen_users.add(user_id)
        age[user_id], gender[user_id], occupation[user_id] = years, sex, job

    if data[:, 1].max() >= len(genres) or data[:, 0].max() >= len(age):
        raise InvalidInput(
            "u.data refers to items or users that u.item / u.user do not list", field=str(folder)
        )
    n_users, n_items = len(age) - 1, len(genres) - 1
    return Ratings(
        user=data[:, 0],
        item=data[:, 1],
        rating=data[:, 2].astype(np.float64),
        time=data[:, 3],
        n_users=n_users,
        n_items=n_items,
        source=str(folder),
        format="MovieLens 100K folder (u.data, u.item, u.user)",
        user_ids=[""] + [str(n) for n in range(1, n_users + 1)],
        item_ids=[""] + [str(n) for n in range(1, n_items + 1)],
        genres=genres,
        titles=titles,
        age=age,
        gender=gender,
        occupation=occupation,
    )


def load_ratings_csv(
    file: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    positive: float | None = None,
) -> Ratings:
    """A rating or interaction log from a CSV file with a header row (``docs/data.md``).

    Columns (found by the names of :data:`RATING_COLUMNS`, or named by ``columns``): ``user`` and
    ``item`` — any non-empty strings, mapped to dense ids 1..n in order of first appearance; ``rating``
    — a finite number (half stars, a score, or a 0/1 label); ``time`` — unix seconds (a number) or an
    ISO 8601 date or date-time (UTC when it names no zone). Rows are sorted by time, ties in file order.
    An event is a positive when its rating is at least ``positive``: by default 1 when every rating is
    0 or 1 (a label), else :data:`DEFAULT_POSITIVE`. Such a log has no side features.
    """
    file = Path(file)
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    user_col: list[int] = []
    item_col: list[int] = []
    ratings: list[float] = []
    times: list[float] = []
    expected = f"(expected {SOURCES['ratings-csv']})"
    with CsvTable(file, RATING_COLUMNS, columns=columns, delimiter=delimiter, expected=expected) as table:
        for line, row in table:
            user, item = row["user"].strip(), row["item"].strip()
            if not user:
                raise table.error(line, "user", "is empty")
            if not item:
                raise table.error(line, "item", "is empty")
            try:
                rating = float(row["rating"])
            except ValueError:
                raise table.error(line, "rating", f"{row['rating'][:40]!r} is not a number") from None
            if not math.isfinite(rating):
                raise table.error(line, "rating", f"{row['rating'][:40]!r} is not a finite number")
            stamp = _seconds(row["time"])
            if stamp is None:
                raise table.error(
                    line,
                    "time",
                    f"{row['time'][:40]!r} is neither unix seconds nor an ISO 8601 time "
                    "(e.g. 1700000000 or 2023-11-14T22:13:20Z)",
                )
            if not 0 <= stamp <= MAX_TIME:
                raise table.error(
                    line,
                    "time",
                    f"{row['time'][:40]!r} is before 1970"
                    if stamp < 0
                    else f"{row['time'][:40]!r} is too large for unix seconds (milliseconds? divide by 1000)",
                )
            user_col.append(users.setdefault(user, len(users) + 1))
            item_col.append(items.setdefault(item, len(items) + 1))
            ratings.append(rating)
            times.append(stamp)
    if not ratings:
        raise InvalidInput(f"has a header but no rows {expected}", field=str(file))
    time = np.asarray(times, dtype=np.float64)
    order = np.argsort(time, kind="stable")
    rating_array = np.asarray(ratings, dtype=np.float64)
    if positive is None:
        positive = 1.0 if set(np.unique(rating_array)) <= {0.0, 1.0} else DEFAULT_POSITIVE
    return Ratings(
        user=np.asarray(user_col, dtype=np.int64)[order],
        item=np.asarray(item_col, dtype=np.int64)[order],
        rating=rating_array[order],
        time=time[order],
        n_users=len(users),
        n_items=len(items),
        source=str(file),
        format=f"ratings CSV (columns {', '.join(f'{r}={n}' for r, n in table.names.items())})",
        user_ids=["", *users],
        item_ids=["", *items],
        threshold=_positive(positive),
    )


def _seconds(text: str) -> float | None:
    """Unix seconds from a number or an ISO 8601 date / date-time (naive: UTC); None if it is neither."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) else None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class SimulatedUsers(Env[dict[str, Any], int]):
    """Users with hidden taste vectors who accept or reject the item shown to them.

    Click probability p(u, i) = σ(θ_uᵀ φ_i + β_i) with θ_u, φ_i ~ N(0, σ²I/dim) and item popularity β_i;
    the reward is 1 for a click, 0 otherwise. Each step a user drawn at random arrives; the episode lasts
    ``horizon`` steps. ``info["best_reward"]`` is the best item's click probability for that user (so
    regret is in expected clicks) and ``info["accepted"]`` is the click.
    """

    def __init__(
        self,
        n_users: int = 100,
        n_items: int = 200,
        dim: int = 8,
        horizon: int = 5000,
        *,
        scale: float = 3.0,
        seed: int = 0,
    ) -> None:
        for name, value in (("n_users", n_users), ("n_items", n_items), ("dim", dim), ("horizon", horizon)):
            check_scalar(value, name, int, min_val=1)
        rng = np.random.default_rng(seed)
        self.n_users, self.n_items, self.horizon = n_users, n_items, horizon
        self.user_taste = rng.normal(0, scale / np.sqrt(dim), size=(n_users, dim))
        self.item_traits = rng.normal(0, 1.0, size=(n_items, dim))
        self.popularity = rng.normal(-1.0, 0.5, size=n_items)
        logits = self.user_taste @ self.item_traits.T + self.popularity
        self.click_probability = 1.0 / (1.0 + np.exp(-logits))
        self.scope = Scope(tenant="simulated")
        self._rng = np.random.default_rng(seed + 1)
        self._t = 0
        self._user = 0

    def reset(self, *, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:  # gymnasium's rule: without a seed, carry on with the same generator
            self._rng = np.random.default_rng(seed)
        self._t = 0
        return self._arrive(), {"scope": self._scope()}

    def _arrive(self) -> dict[str, Any]:
        self._user = int(self._rng.integers(self.n_users))
        return {"user": self._user, "items": self.n_items}

    def _scope(self) -> Scope:
        return Scope(tenant="simulated", user=f"u{self._user}")

    def step(self, action: int) -> StepResult:
        if self._t >= self.horizon:
            raise InvalidInput("the episode has ended; call reset()", field="step")
        if not isinstance(action, int | np.integer) or not 0 <= int(action) < self.n_items:
            raise InvalidInput(
                f"must be an item index in [0, {self.n_items}), got {action!r}", field="action"
            )
        p = self.click_probability[self._user]
        clicked = bool(self._rng.random() < p[int(action)])
        self._t += 1
        done = self._t >= self.horizon
        observation = self._arrive()
        info: dict[str, Any] = {
            "accepted": clicked,
            "best_reward": float(p.max()),
            "expected_reward": float(p[int(action)]),
            "scope": self._scope(),  # whose turn the next observation is
        }
        return observation, float(clicked), done, False, info
