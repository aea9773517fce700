"""Streaming matrix factorization: per-user and per-item fast weights updated on every event.

Prediction (biased MF, Koren, Bell & Volinsky, IEEE Computer 2009, eq. 3, with optional shared
side-feature components in the spirit of feature-based MF, for ids seen rarely or never):

    r̂(u, i) = μ + b_u + b̄_G(u) + b_i + b̄_F(i) + (p_u + z̄_G(u))ᵀ (q_i + z̄_F(i)),

where F(i) are the item's side features (e.g. genres), G(u) the user's (e.g. age band, occupation), and
b̄, z̄ the means of their feature rows. Rows for users and items live in collision-free
:class:`~lifelong.learners.recsys.id_table.IdTable` tables (minimum count, expiry); an id without a row falls
back to the shared parts (μ, feature terms), which is what a new item or user gets: a new user with
demographics starts from what users like them taught the feature rows.

Why AdaGrad (Duchi et al., JMLR 2011) for the per-event update: every id has its own accumulated
squared gradient, so a user's first ratings move their row a lot and later ones less, without a global
learning-rate schedule — a schedule has no natural clock in an open stream where ids keep arriving. It
is what production recommenders use for sparse embeddings (Monolith; McMahan et al., KDD 2013).
Everything is O(dim) per event and visible at the very next ``predict``/``rank``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.recsys._kernels import squared_loss_step
from lifelong.learners.recsys.id_table import IdTable
from lifelong.learners.recsys.ranking import user_item
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar

EPS = 1e-8


@dataclass(frozen=True)
class Catalog:
    """Known items and, flattened, which side-feature rows each has (weights 1/number of features)."""

    keys: list[str]
    rows: np.ndarray
    owners: np.ndarray  # position in keys, per (item, feature) pair
    features: np.ndarray  # feature row, per pair
    weights: np.ndarray


class StreamingFactorization(Predictor):
    """Biased matrix factorization learned one rating at a time.

    Parameters
    ----------
    dim
        Embedding size.
    learning_rate
        AdaGrad base step.
    reg
        L2 weight on the touched parameters at every step.
    init_scale
        Standard deviation of a new row's embedding (seeded by the id, so replays are identical).
    min_count, ttl
        Admission and expiry of user and item ids (see :class:`IdTable`).
    item_features, user_features
        Map an item / user id to its side-feature keys (e.g. genres; age band, occupation); None for
        no side features on that side.
    """

    def __init__(
        self,
        dim: int = 16,
        *,
        learning_rate: float = 0.05,
        reg: float = 0.02,
        init_scale: float = 0.1,
        min_count: int = 1,
        ttl: float = math.inf,
        item_features: Callable[[str], Sequence[str]] | None = None,
        user_features: Callable[[str], Sequence[str]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_scalar(dim, "dim", int, min_val=1)
        check_scalar(learning_rate, "learning_rate", float, min_val=0, include_boundaries="neither")
        check_scalar(reg, "reg", float, min_val=0)
        check_scalar(init_scale, "init_scale", float, min_val=0)
        self.dim, self.learning_rate, self.reg, self.init_scale = dim, learning_rate, reg, init_scale
        self.item_features, self.user_features, self.seed = item_features, user_features, seed
        self.users = self._table(min_count, ttl)
        self.items = self._table(min_count, ttl)
        self.features = self._table(1, math.inf)
        self.mean = 0.0
        self.count = 0
        self._catalog: tuple[tuple[int, int, int, int], Catalog] | None = None

    def _table(self, min_count: int, ttl: float) -> IdTable:
        table = IdTable(min_count=min_count, ttl=ttl)
        table.register("bias", 0)
        table.register("bias_g2", 0)
        table.register("vec", self.dim)
        table.register("vec_g2", self.dim)
        return table

    @property
    def min_count(self) -> int:
        """Sightings before an id gets a row (kept by the id tables; ``config()`` reports it)."""
        return self.users.min_count

    @property
    def ttl(self) -> float:
        """Seconds unseen before an id's row is dropped (kept by the id tables)."""
        return self.users.ttl

    # -- rows ---------------------------------------------------------------------------------------
    def _row(self, table: IdTable, key: str, now: float, kind: str) -> int | None:
        return table.seeded_row(key, now, init=("vec",), scale=self.init_scale, seed=self.seed, salt=kind)

    def _feature_rows(self, side: str, key: str, now: float | None) -> list[int]:
        """Rows of the side features of a user or item (``side``); with ``now``, admitting new ones."""
        lookup = self.item_features if side == "item" else self.user_features
        if lookup is None:
            return []
        keys = [f"{side}:{feature}" for feature in lookup(key)]  # user and item features never collide
        if now is None:
            return [r for r in (self.features.get(k) for k in keys) if r is not None]
        return [r for r in (self._row(self.features, k, now, "feature") for k in keys) if r is not None]

    def _parts(self, side: str, key: str) -> tuple[float, np.ndarray]:
        """Bias and vector of one side: its row (if any) plus the mean of its feature rows (if any)."""
        table = self.users if side == "user" else self.items
        row, feature_rows = table.get(key), self._feature_rows(side, key, None)
        bias, vec = 0.0, np.zeros(self.dim)
        if row is not None:
            bias += float(table.arrays["bias"][row])
            vec = vec + table.arrays["vec"][row]
        if feature_rows:
            bias += float(self.features.arrays["bias"][feature_rows].mean())
            vec = vec + self.features.arrays["vec"][feature_rows].mean(axis=0)
        return bias, vec

    # -- prediction ---------------------------------------------------------------------------------
    def score(self, user: str, item: str) -> float:
        """The predicted rating (or click score) of ``item`` for ``user``."""
        user_bias, p = self._parts("user", str(user))
        item_bias, q = self._parts("item", str(item))
        return float(self.mean + user_bias + item_bias + p @ q)

    def score_many(self, user: str, items: Sequence[str]) -> np.ndarray:
        """``score(user, item)`` for every item (vectorised when all have rows and no item features)."""
        rows = [self.items.get(str(item)) for item in items]
        if self.item_features is not None or None in rows:
            return np.array([self.score(user, item) for item in items])
        index = np.asarray(rows, dtype=np.int64)
        user_bias, p = self._parts("user", str(user))
        scores: np.ndarray = self.items.arrays["bias"][index] + self.items.arrays["vec"][index] @ p
        return scores + (self.mean + user_bias)

    def predict(self, observation: JSON, scope: Scope | None = None) -> float:
        self.check_scope(scope)
        user, item = user_item(observation)
        return self.score(user, item)

    def catalog(self) -> Catalog:
        """The known items with their item-side bias and vector (row + side features), cached until the
        item or feature table changes."""
        stamp = (id(self.items), self.items.generation, id(self.features), self.features.generation)
        if self._catalog is None or self._catalog[0] != stamp:
            keys = list(self.items.rows)
            rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
            owners: list[int] = []
            features: list[int] = []
            weights: list[float] = []
            for n, key in enumerate(keys):
                found = self._feature_rows("item", key, None)
                if not found:
                    continue
                owners += [n] * len(found)
                features += found
                weights += [1.0 / len(found)] * len(found)
            self._catalog = (
                stamp,
                Catalog(
                    keys,
                    rows,
                    np.array(owners, dtype=np.int64),
                    np.array(features, dtype=np.int64),
                    np.array(weights),
                ),
            )
        return self._catalog[1]

    def rank(
        self, user: str, k: int = 10, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> list[str]:
        self.check_scope(scope)
        """The k known items with the highest predicted score for ``user`` (vectorised over items)."""
        if k < 1:
            raise InvalidInput(f"must be >= 1, got {k}", field="k")
        c = self.catalog()
        bias = self.items.arrays["bias"][c.rows].copy()
        vec = self.items.arrays["vec"][c.rows].copy()
        if len(c.features):
            np.add.at(bias, c.owners, c.weights * self.features.arrays["bias"][c.features])
            np.add.at(vec, c.owners, c.weights[:, None] * self.features.arrays["vec"][c.features])
        _, p = self._parts("user", str(user))
        scores = bias + vec @ p  # μ and the user's bias shift every item equally
        banned = set(map(str, exclude))
        scores[[n for n, key in enumerate(c.keys) if key in banned]] = -np.inf
        return [c.keys[n] for n in top_k(scores, k) if np.isfinite(scores[n])]

    # -- learning -----------------------------------------------------------------------------------
    def _target(self, step: Step) -> float | None:
        for value in (step.rating, step.reward):
            if value is not None:
                return value
        if step.accepted is not None:
            return 1.0 if step.accepted else 0.0
        return None

    def _learn(self, step: Step) -> bool:
        target = self._target(step)
        if target is None:
            return False
        user, item = user_item(step.interaction.observation)
        now = step.interaction.time
        u = self._row(self.users, user, now, "user")
        i = self._row(self.items, item, now, "item")
        user_features = np.array(self._feature_rows("user", user, now), dtype=np.int64)
        item_features = np.array(self._feature_rows("item", item, now), dtype=np.int64)
        # The global mean is a running average, not a gradient step (updated after the prediction).
        us, it, fs = self.users.arrays, self.items.arrays, self.features.arrays
        squared_loss_step(
            self.mean, us["bias"], us["bias_g2"], us["vec"], us["vec_g2"],
            it["bias"], it["bias_g2"], it["vec"], it["vec_g2"],
            fs["bias"], fs["bias_g2"], fs["vec"], fs["vec_g2"],
            -1 if u is None else u, -1 if i is None else i, user_features, item_features, target,
            self.learning_rate, self.reg,
        )  # fmt: skip
        self.count += 1
        self.mean += (target - self.mean) / self.count
        self.provenance.record(f"user:{user}", step)
        self.provenance.record(f"item:{item}", step)
        return True

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop the user's row. What they taught shared item rows stays until a rebuild from the log."""
        if self.tenant is not None and tenant != self.tenant:
            return False  # this learner holds nothing of that tenant
        return self.users.remove(str(user))

    def expire(self, now: float) -> tuple[list[str], list[str]]:
        """Evict users and items unseen for longer than ``ttl``; returns (users, items)."""
        return self.users.expire(now), self.items.expire(now)

    # -- state --------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "config": self.config(),
            "mean": self.mean,
            "count": self.count,
            "users": self.users.state(),
            "items": self.items.state(),
            "features": self.features.state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        c = state["config"]
        self.dim, self.learning_rate, self.reg = int(c["dim"]), float(c["learning_rate"]), float(c["reg"])
        self.init_scale, self.seed = float(c["init_scale"]), int(c["seed"])
        self.mean, self.count = float(state["mean"]), int(state["count"])
        self.users = IdTable.from_state(state["users"])
        self.items = IdTable.from_state(state["items"])
        self.features = IdTable.from_state(state["features"])
        self._catalog = None
