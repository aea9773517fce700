"""Forgetting a user: their events, their own learned rows, and — on request — everything they taught.

:func:`forget_user` deletes the user's interactions and feedback from the experience log and drops the
user's own rows from every learner that keeps per-user state (``learner.forget_user(user)``: the user
embedding and bias of the factorization learners, their recent-item context). What it cannot undo in
place is what the user's events taught *shared* parameters: item embeddings and biases, side-feature
rows, the global mean, popularity counts. Those are only clean after a rebuild — a fresh learner that
replays the remaining log — which :func:`rebuild` does and :func:`forget_user` runs when given the
learners' factories. The report says which case you are in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lifelong.errors import InvalidInput
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import Scope
from lifelong.learners.base import Learner

#: What stays behind in shared parameters until a rebuild.
RESIDUAL = (
    "shared parameters (item embeddings and biases, side-feature rows, global mean, popularity counts) "
    "still carry this user's updates until the learner is rebuilt from the remaining log"
)


@dataclass
class ErasureReport:
    user: str
    interactions_deleted: int
    feedback_deleted: int
    rows_dropped: list[str] = field(default_factory=list)  # learners that held a row for the user
    rebuilt: dict[str, Learner] = field(default_factory=dict)  # name → learner replayed without the user
    residual: str = RESIDUAL

    @property
    def clean(self) -> bool:
        """True when nothing learned from the user remains (every learner was rebuilt)."""
        return bool(self.rebuilt)


def rebuild(make_learner: Callable[[], Learner], log: ExperienceLog, scope: Scope | None = None) -> Learner:
    """A fresh learner from ``make_learner`` that has learned every step of ``log`` (in ``scope``)."""
    learner = make_learner()
    learner.learn_many(log.replay(scope))
    return learner


def forget_user(
    user: str,
    *,
    log: ExperienceLog,
    learners: Mapping[str, Learner],
    tenant: str = "default",
    rebuild_with: Mapping[str, Callable[[], Learner]] | None = None,
) -> ErasureReport:
    """Delete ``user``'s events in ``tenant`` and drop their rows; rebuild the learners in ``rebuild_with``.

    The learners key users by the observation's ``"user"`` field, which is expected to equal the scope's
    user (as the environments in :mod:`lifelong.envs.recsys` produce it).
    """
    if not user:
        raise InvalidInput("name the user to forget", field="user")
    unknown = set(rebuild_with or {}) - set(learners)
    if unknown:
        raise InvalidInput(f"no learner named {sorted(unknown)} to rebuild", field="rebuild_with")
    deleted = log.forget(Scope(tenant=tenant, user=user))
    report = ErasureReport(user, deleted.interactions, deleted.feedback)
    for name, learner in learners.items():
        drop = getattr(learner, "forget_user", None)
        if drop is not None and drop(user):
            report.rows_dropped.append(name)
    for name, make in (rebuild_with or {}).items():
        report.rebuilt[name] = rebuild(make, log)
    return report
