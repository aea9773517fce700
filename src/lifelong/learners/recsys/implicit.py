"""Top-N ranking from implicit feedback: which item will this user pick next?

A rating regressor (:class:`~lifelong.learners.recsys.factorization.StreamingFactorization`) only sees items
users chose, so it never learns *which* items they choose. This learner does: every positive event
(a rating, a click, a reward > 0) is a pair "item i over an item j the user did not pick", scored by a
factorized personalized Markov chain (FPMC; Rendle, Freudenthaler & Schmidt-Thieme, WWW 2010, eq. 6-7)

    x̂(u, i | L_u) = b_i + p_uᵀ q_i + (1/|L_u|) Σ_{l ∈ L_u} a_lᵀ c_i,

where L_u are the user's last ``window`` items: the long-term taste p_u and the short-term context
(what they just watched) both vote. It is learned with the BPR criterion (Rendle et al., UAI 2009,
eq. 6 and the LearnBPR update of §4.3): for a positive (u, i) and ``negatives`` items j drawn uniformly
from the known items, ascend ln σ(x̂_ui − x̂_uj) − λ‖Θ‖². The negatives of one event are one mini-batch,
and every touched row takes an AdaGrad step (per-row step sizes; see the factorization module for why).

Cost per event is O(negatives · dim); ``rank`` scores every known item with two matrix-vector products.
A user without a row falls back to b_i plus their context, an item without a row is not ranked until
it has been seen ``min_count`` times. Negative events (reject, reward ≤ 0) carry no pair and are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.learners.recsys._kernels import bpr_step
from lifelong.learners.recsys.id_table import IdTable
from lifelong.learners.recsys.ranking import positive_event, user_item
from lifelong.utils.arrays import top_k
from lifelong.utils.validation import check_scalar


class ImplicitFactorization(Predictor):
    """BPR-trained FPMC ranker (see the module docstring).

    Parameters
    ----------
    dim
        Embedding size of the taste (p, q) and transition (a, c) factors.
    negatives
        Items sampled as "not picked" per positive event.
    window
        How many of the user's latest items form the context L_u (0: plain BPR matrix factorization).
    learning_rate, reg
        AdaGrad base step and L2 weight λ.
    threshold
        Ratings at or above it are positives; None counts every rated item as a positive (a watch).
    min_count, ttl
        Admission and expiry of user and item ids (see :class:`IdTable`).
    """

    def __init__(
        self,
        dim: int = 64,
        *,
        negatives: int = 10,
        window: int = 3,
        learning_rate: float = 0.1,
        reg: float = 0.01,
        init_scale: float = 0.1,
        threshold: float | None = None,
        min_count: int = 1,
        ttl: float = math.inf,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_scalar(dim, "dim", int, min_val=1)
        check_scalar(negatives, "negatives", int, min_val=1)
        check_scalar(window, "window", int, min_val=0)
        check_scalar(learning_rate, "learning_rate", float, min_val=0, include_boundaries="neither")
        check_scalar(reg, "reg", float, min_val=0)
        check_scalar(init_scale, "init_scale", float, min_val=0)
        self.dim, self.negatives, self.window = dim, negatives, window

        self.learning_rate, self.reg, self.init_scale = learning_rate, reg, init_scale
        self.threshold, self.seed = threshold, seed
        self.users = IdTable(min_count=min_count, ttl=ttl)
        for name, columns in (("p", dim), ("p_g2", dim)):
            self.users.register(name, columns)
        self.items = IdTable(min_count=min_count, ttl=ttl)
        for name, columns in (("b", 0), ("q", dim), ("a", dim), ("c", dim)):
            self.items.register(name, columns)
            self.items.register(f"{name}_g2", columns)  # AdaGrad's sum of squared gradients
        self.recent: dict[str, list[str]] = {}
        self.rng = np.random.default_rng(seed)
        # Cache of (keys, rows, position of each key) for one generation of the item table.
        self._known: tuple[list[str], np.ndarray, dict[str, int]] | None = None
        self._known_at: tuple[int, int] = (0, -1)

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
        init = ("p",) if kind == "user" else ("q", "a", "c")
        return table.seeded_row(key, now, init=init, scale=self.init_scale, seed=self.seed, salt=kind)

    def known_items(self) -> tuple[list[str], np.ndarray]:
        """Ids of the items that have rows, and their rows (cached until the item table changes)."""
        keys, rows, _ = self._known_index()
        return keys, rows

    def _known_index(self) -> tuple[list[str], np.ndarray, dict[str, int]]:
        if self._known is None or self._known_at != (id(self.items), self.items.generation):
            self._known_at = (id(self.items), self.items.generation)
            keys = list(self.items.rows)
            rows = np.fromiter(self.items.rows.values(), dtype=np.int64, count=len(keys))
            self._known = keys, rows, {key: n for n, key in enumerate(keys)}
        return self._known

    def _context(self, user: str) -> np.ndarray | None:
        rows = [r for r in (self.items.get(k) for k in self.recent.get(user, ())) if r is not None]
        return self.items.arrays["a"][rows].mean(axis=0) if rows else None

    # -- prediction ---------------------------------------------------------------------------------
    def scores(self, user: str, *, scope: Scope | None = None) -> tuple[list[str], np.ndarray]:
        """Every known item and its score x̂(user, item | recent items)."""
        self.check_scope(scope)
        keys, rows = self.known_items()
        a = self.items.arrays
        scores = a["b"][rows].copy()
        u = self.users.get(str(user))
        if u is not None:
            scores += a["q"][rows] @ self.users.arrays["p"][u]
        context = self._context(str(user))
        if context is not None:
            scores += a["c"][rows] @ context
        return keys, scores

    def predict(self, observation: JSON, scope: Scope | None = None) -> float:
        self.check_scope(scope)
        """The ranking score of ``{"user", "item"}`` (higher = more likely next; not a rating)."""
        user, item = user_item(observation)
        i = self.items.get(item)
        if i is None:
            return -math.inf
        a = self.items.arrays
        value = float(a["b"][i])
        u = self.users.get(user)
        if u is not None:
            value += float(a["q"][i] @ self.users.arrays["p"][u])
        context = self._context(user)
        if context is not None:
            value += float(a["c"][i] @ context)
        return value

    def rank(
        self, user: str, k: int = 10, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> list[str]:
        self.check_scope(scope)
        """The k known items with the highest score for ``user``, leaving out ``exclude``."""
        if k < 1:
            raise InvalidInput(f"must be >= 1, got {k}", field="k")
        keys, scores = self.scores(user)
        if not keys:
            return []
        if exclude:
            positions = self._known_index()[2]
            scores[[positions[key] for key in map(str, exclude) if key in positions]] = -np.inf
        top = top_k(scores, k)
        return [keys[n] for n in top if np.isfinite(scores[n])]

    # -- learning -----------------------------------------------------------------------------------
    def _learn(self, step: Step) -> bool:
        if not positive_event(step, self.threshold):
            return False
        user, item = user_item(step.interaction.observation)
        now = step.interaction.time
        u = self._row(self.users, user, now, "user")
        i = self._row(self.items, item, now, "item")
        context_keys = self.recent.get(user, [])
        if i is not None:
            self._bpr_step(u, i, context_keys)
        if self.window:
            self.recent[user] = ([*context_keys, item])[-self.window :]
        self.provenance.record(f"user:{user}", step)
        self.provenance.record(f"item:{item}", step)
        return True

    def _bpr_step(self, u: int | None, i: int, context_keys: list[str]) -> None:
        _, rows = self.known_items()
        negatives = rows[self.rng.integers(len(rows), size=self.negatives)]
        context = np.array([r for r in (self.items.get(k) for k in context_keys) if r is not None], np.int64)
        p, it = self.users.arrays, self.items.arrays
        bpr_step(
            p["p"], p["p_g2"], it["b"], it["b_g2"], it["q"], it["q_g2"], it["a"], it["a_g2"],
            it["c"], it["c_g2"], -1 if u is None else u, i, negatives, context,
            self.learning_rate, self.reg,
        )  # fmt: skip

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop the user's row and context. What they taught item rows stays until a rebuild."""
        if self.tenant is not None and tenant != self.tenant:
            return False  # this learner holds nothing of that tenant
        self.recent.pop(str(user), None)
        return self.users.remove(str(user))

    def expire(self, now: float) -> tuple[list[str], list[str]]:
        """Evict users and items unseen for longer than ``ttl``; returns (users, items)."""
        users, items = self.users.expire(now), self.items.expire(now)
        for user in users:
            self.recent.pop(user, None)
        return users, items

    # -- state --------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "config": self.config(),
            "users": self.users.state(),
            "items": self.items.state(),
            "recent": {user: list(items) for user, items in self.recent.items()},
            "rng": self.rng.bit_generator.state,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        c = state["config"]
        self.dim, self.negatives, self.window = int(c["dim"]), int(c["negatives"]), int(c["window"])

        self.learning_rate, self.reg = float(c["learning_rate"]), float(c["reg"])
        self.init_scale, self.seed = float(c["init_scale"]), int(c["seed"])
        self.threshold = None if c["threshold"] is None else float(c["threshold"])
        self.users = IdTable.from_state(state["users"])
        self.items = IdTable.from_state(state["items"])
        self.recent = {str(u): [str(i) for i in items] for u, items in state["recent"].items()}
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._known = None
