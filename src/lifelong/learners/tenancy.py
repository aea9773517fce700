"""One learner per tenant: any single-tenant learner serves many tenants without sharing anything.

A single-tenant learner (``tenancy = "single"``, see :mod:`lifelong.learners.base`) binds to the tenant
of its first step and refuses every other. :class:`PerTenant` holds one such learner per tenant, made by
a factory on the tenant's first step, and routes each step and each read to the learner of the step's
or the request's tenant. A tenant it has never seen is answered by a fresh, frozen learner, so a new
tenant gets the cold-start answer, never another tenant's.

>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> from lifelong.learners import OnlineSoftmax
>>> model = PerTenant(OnlineSoftmax)
>>> i = Interaction(Scope("acme", user="ada"), "card stolen")
>>> model.learn(Step(i, (Feedback.correction(i.id, "acme_secret_label"),)))
True
>>> model.predict("card stolen", Scope("acme")), model.predict("card stolen", Scope("globex"))
('acme_secret_label', None)

The state is one sub-state per tenant; provenance links of every tenant's learner land in the
wrapper's :attr:`provenance`, so a version store sees one learner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner, Predictor


class PerTenant(Predictor):
    """A learner per tenant, each made by ``make`` (a zero-argument factory of single-tenant learners)."""

    tenancy = "per_tenant"

    def __init__(self, make: Callable[[], Learner], *, name: str | None = None) -> None:
        template = make()
        if not isinstance(template, Learner):
            raise InvalidInput(f"make() must return a Learner, got {type(template).__name__}", field="make")
        self.name = name or template.name
        super().__init__()
        self.make = make
        self._cold = template.freeze()  # answers tenants with nothing learned yet
        self.tenants: dict[str, Learner] = {}

    def for_tenant(self, tenant: str, *, create: bool = False) -> Learner:
        """The learner of ``tenant``; an untouched frozen one (or, with ``create``, a new one) if none."""
        learner = self.tenants.get(tenant)
        if learner is not None:
            return learner
        if not create:
            return self._cold
        learner = self.make()
        learner.name = self.name
        learner.provenance = self.provenance
        learner.frozen = self.frozen
        self.tenants[tenant] = learner
        return learner

    def _reader(self, scope: Scope | None) -> Learner:
        if not isinstance(scope, Scope):
            raise InvalidInput(f"{self.name} serves many tenants: pass the request's scope", field="scope")
        return self.for_tenant(scope.tenant)

    # -- reads, routed by the request's tenant -------------------------------------------------------
    def predict(self, observation: JSON, scope: Scope | None = None) -> JSON:
        learner = self._reader(scope)
        if not isinstance(learner, Predictor):
            raise InvalidInput(f"{type(learner).__name__} does not predict", field="make")
        return learner.predict(observation, scope)

    def _method(self, scope: Scope | None, name: str) -> Any:
        learner = self._reader(scope)
        method = getattr(learner, name, None)
        if not callable(method):
            raise InvalidInput(f"{type(learner).__name__} has no {name}()", field=name)
        return method

    def scores(self, observation: JSON, scope: Scope | None = None) -> Any:
        return self._method(scope, "scores")(observation, scope=scope)

    def propose(self, observation: JSON, scope: Scope | None = None, k: int = 3) -> Any:
        return self._method(scope, "propose")(observation, scope, k)

    def rank(
        self, user: str, k: int = 10, exclude: Sequence[str] = (), *, scope: Scope | None = None
    ) -> list[str]:
        return list(self._method(scope, "rank")(user, k, exclude, scope=scope))

    # -- learning and erasure ------------------------------------------------------------------------
    def freeze(self) -> PerTenant:
        self.frozen = True
        for learner in self.tenants.values():
            learner.frozen = True
        return self

    def _learn(self, step: Step) -> bool:
        learner = self.for_tenant(step.interaction.scope.tenant, create=True)
        learner.frozen = False
        return learner.learn(step)

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop ``user``'s rows in ``tenant``'s learner (the other tenants are not touched)."""
        learner = self.tenants.get(tenant)
        drop = getattr(learner, "forget_user", None)
        return bool(drop(user, tenant)) if drop is not None else False

    def forget_tenant(self, tenant: str) -> bool:
        """Drop everything learned for ``tenant``."""
        return self.tenants.pop(tenant, None) is not None

    @classmethod
    def redact_state(
        cls, state: dict[str, Any], interaction_ids: set[str], scope: Scope | None = None
    ) -> dict[str, Any] | None:
        """Each tenant's sub-state redacted by its own class (None if any of them cannot be)."""
        tenants = {}
        for tenant, sub in state["state"]["tenants"].items():
            inner = Learner.registry.get(str(sub.get("learner")))
            redacted = None if inner is None else inner.redact_state(sub, interaction_ids, scope)
            if redacted is None:
                return None
            tenants[tenant] = redacted
        return {**state, "state": {"tenants": tenants}}

    def _get_state(self) -> dict[str, Any]:
        return {"tenants": {tenant: learner.state_dict() for tenant, learner in self.tenants.items()}}

    def _set_state(self, state: dict[str, Any]) -> None:
        tenants = state.get("tenants")
        if not isinstance(tenants, dict):
            raise InvalidInput("a PerTenant state holds a 'tenants' dict", field="state")
        self.tenants = {}
        for tenant, sub in tenants.items():
            self.for_tenant(str(tenant), create=True).load_state_dict(sub)

    def config(self) -> dict[str, JSON]:
        # The constructor takes a factory, not settings: report the learner it makes (the cold template).
        return {"learner": repr(self._cold), "tenants": len(self.tenants)}


def tenant_part(learner: Learner, scope: Scope) -> Learner:
    """The part of ``learner`` that serves ``scope``'s tenant: itself, or its tenant's learner."""
    if isinstance(learner, PerTenant):
        return learner.for_tenant(scope.tenant)
    learner.check_scope(scope)
    return learner
