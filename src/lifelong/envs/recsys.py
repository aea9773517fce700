"""Recommendation environments: MovieLens 100K replayed in time order, and a simulated user population.

- :func:`load_movielens` reads ``u.data`` (user, item, rating 1–5, unix time), ``u.item`` (19 genre
  flags per movie) and ``u.user`` (age, gender, occupation) from a MovieLens 100K folder, sorted by time,
  and fails with a message naming the file, the line and the source when something is missing or
  malformed.
- :class:`SimulatedUsers` is a population with hidden preference vectors and a logistic click model:
  each step one user arrives, the action is the item shown, the user accepts (clicks) with probability
  σ(u·v + b_item); ``info["best_reward"]`` is the click probability of the user's best item, so the
  harness can measure regret.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.data import SOURCES, data_path
from lifelong.envs.base import Env, StepResult
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import Scope

N_GENRES = 19


@dataclass(frozen=True)
class MovieLens:
    """Ratings sorted by time (ties by file order), with item genres and user demographics.

    Ids are the file's (1-based) ids; ``genres[item]`` and ``age[user]`` etc. are indexed by them
    (row 0 unused).
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    time: np.ndarray
    genres: np.ndarray  # (n_items + 1) × 19, 0/1
    titles: list[str]
    age: np.ndarray
    gender: list[str]
    occupation: list[str]

    def __len__(self) -> int:
        return len(self.rating)

    @property
    def n_users(self) -> int:
        return len(self.age) - 1

    @property
    def n_items(self) -> int:
        return len(self.genres) - 1


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


def load_movielens(path: str | Path | None = None) -> MovieLens:
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
    return MovieLens(
        data[:, 0],
        data[:, 1],
        data[:, 2].astype(np.float64),
        data[:, 3],
        genres,
        titles,
        age,
        gender,
        occupation,
    )


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
        if min(n_users, n_items, dim, horizon) < 1:
            raise InvalidInput("n_users, n_items, dim and horizon must be >= 1", field="n_users")
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
