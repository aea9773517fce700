"""The learner contract every learner in ``lifelong`` follows.

A learner takes in one :class:`~lifelong.experience.Step` at a time with :meth:`Learner.learn`, in time
bounded independently of how much it has seen, and what it learned is visible at the very next
``predict``/``recall`` (DESIGN principle 2). It can be switched to ``frozen`` — it then acts with its
current state and learns nothing — which is how every protocol builds its control (principle 4).

Its learned state is a plain ``state_dict()`` of JSON values and NumPy arrays (see
:mod:`lifelong.state.codec`), so it can be snapshotted, compared, promoted and rolled back by
:class:`lifelong.state.VersionStore` (principle 3). Each learned item records the interactions it came
from in :attr:`Learner.provenance` (principle 1).

Subclasses implement ``_learn`` (return True when the state changed), ``_get_state`` and ``_set_state``;
the public methods here keep the version counter and the frozen switch consistent for all of them.

Tenants never share learned state. A learner is either

- ``tenancy = "per_tenant"``: it keys every piece of state by the step's tenant itself (the context
  learners, the per-tenant experts, :class:`~lifelong.learners.tenancy.PerTenant`); or
- ``tenancy = "single"`` (the default): one instance learns for one tenant. It binds to the tenant of
  the first step it learns, refuses steps and reads (:meth:`Learner.check_scope`) from any other with
  :class:`TenantMismatch`, and the binding is part of its state. Wrap it in ``PerTenant(factory)`` to
  serve many tenants.

Whether *items* are shared across the users of one tenant is each learner's own documented setting
(``per_user`` for the context learners; the recommenders share item parameters by design).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Interaction, Scope, Step, feedback_of
from lifelong.utils.params import get_params
from lifelong.utils.validation import check_scalar

Tenancy = Literal["per_tenant", "single"]


class TenantMismatch(InvalidInput):
    """A single-tenant learner was handed a step or a request of another tenant."""


@dataclass(frozen=True, slots=True)
class Link:
    """One provenance link: learned ``item`` was derived from interaction ``interaction_id``."""

    item: str
    interaction_id: str
    tenant: str
    user: str | None


class Provenance:
    """Which interactions each learned item came from.

    Links accumulate as the learner learns; :meth:`drain` hands the links recorded since the last call
    to a :class:`~lifelong.state.VersionStore`, which keeps them durably and answers
    "what was derived from interaction X / from user U".
    """

    def __init__(self) -> None:
        # (item, interaction id) → the interaction's scope; Links are built on drain (record is hot).
        self._pending: dict[tuple[str, str], Scope] = {}

    def record(self, item: str, step: Step) -> None:
        self._pending.setdefault((item, step.interaction.id), step.interaction.scope)

    def extend(self, links: Iterable[Link]) -> None:
        """Put links back (e.g. when the commit that drained them failed)."""
        for link in links:
            self._pending.setdefault((link.item, link.interaction_id), Scope(link.tenant, user=link.user))

    def discard(self, interaction_ids: set[str]) -> int:
        """Drop the pending links of ``interaction_ids`` (their interactions were erased)."""
        doomed = [key for key in self._pending if key[1] in interaction_ids]
        for key in doomed:
            del self._pending[key]
        return len(doomed)

    def drain(self) -> list[Link]:
        links = [Link(item, id_, scope.tenant, scope.user) for (item, id_), scope in self._pending.items()]
        self._pending.clear()
        return links

    def __len__(self) -> int:
        return len(self._pending)


class Learner(ABC):
    """Learns from steps. See the module docstring for the contract."""

    #: Name under which versions are stored; defaults to the class name.
    name: str = ""

    #: How the learner keeps tenants apart (see the module docstring).
    tenancy: ClassVar[Tenancy] = "single"

    #: True when ``forget_user`` removes everything the learner took from a user (itemised state);
    #: False when shared parameters keep a forgotten user's updates until a rebuild from the log.
    erases_in_place: ClassVar[bool] = False

    #: Where :meth:`learn_one` writes before it learns (an in-memory log made on first use).
    log: ExperienceLog | None = None

    #: Every learner class by name: how a stored state finds its class (e.g. to redact a snapshot).
    registry: ClassVar[dict[str, type[Learner]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Learner.registry.setdefault(cls.__name__, cls)

    def __init__(self) -> None:
        self.frozen = False
        self._version = 0
        self.provenance = Provenance()
        #: The tenant a single-tenant learner learns for (bound by its first step).
        self.tenant: str | None = None
        if not self.name:
            self.name = type(self).__name__

    @property
    def version(self) -> int:
        """How many updates changed this learner's state (monotonic; restored by load_state_dict)."""
        return self._version

    def learn(self, step: Step) -> bool:
        """Learn from one step; returns True if the state changed. A frozen learner learns nothing."""
        if not isinstance(step, Step):
            raise InvalidInput(f"expected a Step, got {type(step).__name__}", field="step")
        self.check_scope(step.interaction.scope)
        if self.frozen:
            return False
        changed = self._learn(step)
        if self.tenancy == "single" and self.tenant is None:
            self.tenant = step.interaction.scope.tenant
        if changed:
            self._version += 1
        return changed

    def check_scope(self, scope: Scope | None) -> None:
        """Refuse a step or request of another tenant than the one a single-tenant learner is bound to."""
        if (
            self.tenancy == "single"
            and scope is not None
            and self.tenant is not None
            and scope.tenant != self.tenant
        ):
            raise TenantMismatch(
                f"{self.name} learns for tenant {self.tenant!r} and cannot serve tenant {scope.tenant!r}; "
                "give each tenant its own learner, e.g. PerTenant(factory)",
                field="scope.tenant",
            )

    def learn_one(
        self,
        observation: JSON,
        *,
        action: JSON = None,
        scope: Scope | None = None,
        correction: JSON = None,
        accept: bool | None = None,
        reward: float | None = None,
        rating: float | None = None,
        outcome: JSON = None,
        log: ExperienceLog | None = None,
        time: float | None = None,
    ) -> Step:
        """Teach one interaction in one call: the log first, then :meth:`learn` (river's ``learn_one``).

        Builds the :class:`~lifelong.experience.Interaction` (``observation``, the ``action`` taken) and
        its :class:`~lifelong.experience.Feedback` from the keywords given, appends them to ``log`` —
        by default :attr:`log`, an in-memory log made on first use — and learns the step, so
        ``learner.log.replay()`` rebuilds what was taught. Returns the step.

        >>> from lifelong.learners import OnlineSoftmax
        >>> model = OnlineSoftmax()
        >>> step = model.learn_one("my card was stolen", correction="card_lost")
        >>> model.predict("someone stole my card"), len(model.log)
        ('card_lost', 1)
        """
        interaction = Interaction(scope or Scope(), observation, action)
        if time is not None:  # default: now
            interaction = Interaction(interaction.scope, observation, action, id=interaction.id, time=time)
        made = feedback_of(
            interaction.id,
            reward=reward,
            accept=accept,
            correction=correction,
            rating=rating,
            outcome=outcome,
            time=time,
        )
        if log is None:
            log = self.log = self.log or ExperienceLog(":memory:")
        log.append_many([interaction, *made])  # the log first: a crash after this loses nothing
        step = Step(interaction, tuple(made))
        self.learn(step)
        return step

    def learn_many(self, steps: Iterable[Step]) -> int:
        """Learn from steps in order (e.g. a replay of the log); returns how many changed the state."""
        return sum(self.learn(step) for step in steps)

    def freeze(self) -> Learner:
        self.frozen = True
        return self

    @classmethod
    def redact_state(
        cls, state: dict[str, Any], interaction_ids: set[str], scope: Scope | None = None
    ) -> dict[str, Any] | None:
        """A stored ``state`` without what ``interaction_ids`` contributed, or None when the learner
        cannot separate it (shared parameters: its snapshots are erased, the learner rebuilt)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The learned state: JSON values and NumPy arrays, detached from the learner (a copy)."""
        state: dict[str, Any] = {
            "learner": type(self).__name__,
            "version": self._version,
            "state": self._get_state(),
        }
        if self.tenancy == "single":
            state["tenant"] = self.tenant
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict` of the same kind of learner."""
        if state.get("learner") != type(self).__name__:
            raise InvalidInput(
                f"state of {state.get('learner')!r} cannot be loaded into {type(self).__name__}",
                field="state",
            )
        tenant = check_scalar(state.get("tenant"), "state.tenant", str, allow_none=True)
        self._set_state(state["state"])
        self._version = int(state["version"])
        self.tenant = tenant

    def config(self) -> dict[str, JSON]:
        """Hyper-parameters, for reports and repr: the constructor's parameters read back from the
        attributes of the same names (:func:`lifelong.utils.params.get_params`: JSON values; a nested
        learner as its name and config; an embedder or model as its name; callables and other objects
        left out). Keep each argument under its own name and there is nothing to override."""
        return get_params(self)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({params})"

    @abstractmethod
    def _learn(self, step: Step) -> bool: ...

    @abstractmethod
    def _get_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _set_state(self, state: dict[str, Any]) -> None: ...


class Predictor(Learner):
    """A learner that answers: a label, a score or a ranking for an observation."""

    @abstractmethod
    def predict(self, observation: JSON, scope: Scope | None = None) -> JSON:
        """The action for ``observation``; None means abstain."""


def replay_into(learner: Learner, steps: Iterable[Step]) -> Learner:
    """Feed ``steps`` (e.g. ``log.replay()``) to ``learner`` in order and return it."""
    learner.learn_many(steps)
    return learner
