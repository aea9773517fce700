"""The vocabulary of experience: :class:`Scope`, :class:`Interaction`, :class:`Feedback`, :class:`Step`.

Every record is an immutable dataclass validated on construction: a bad value raises
:class:`~lifelong.errors.InvalidInput` naming the field, so nothing malformed reaches the log or a learner.
Observations, actions and feedback values must be JSON-compatible (NumPy scalars and arrays are turned
into plain numbers and lists) because the log is the truth and stores them as JSON.

>>> i = Interaction(Scope(user="ada"), observation="2+2?", action="4")
>>> step = Step(i, (Feedback.correction(i.id, "4"), Feedback.reward(i.id, 1.0)))
>>> step.correction, step.reward
('4', 1.0)
>>> Feedback.rating(i.id, 7, scale=(1, 5))
Traceback (most recent call last):
...
lifelong.errors.InvalidInput: value: rating 7 is outside its scale [1, 5]
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lifelong.errors import InvalidInput

JSON = Any  # a value json.dumps accepts: None, bool, int, float, str, list, dict with str keys

MAX_ID_LENGTH = 128
MAX_SCOPE_LENGTH = 256


def new_id() -> str:
    """A fresh random id (UUID4, 32 hex characters)."""
    return uuid.uuid4().hex


def to_json_value(value: Any, field_name: str) -> JSON:
    """Return ``value`` as plain JSON data, or raise :class:`InvalidInput` naming ``field_name``.

    NumPy scalars and arrays become numbers and (nested) lists; tuples become lists; non-finite
    floats are refused because JSON cannot hold them.
    """
    try:
        text = json.dumps(value, default=_numpy_default, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"must be JSON-compatible with finite numbers ({exc})", field=field_name) from None
    return json.loads(text)


def _numpy_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)  # NumPy arrays and scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def canonical_json(value: JSON) -> str:
    """The one JSON text of ``value`` used for storage and equality (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_id(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"must be a non-empty string, got {value!r}", field=field_name)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"must be at most {MAX_ID_LENGTH} characters", field=field_name)
    return value


def _check_time(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"must be a finite number of seconds, got {value!r}", field=field_name)
    return float(value)


def _check_metadata(value: Any, field_name: str) -> dict[str, JSON]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"must be a mapping, got {type(value).__name__}", field=field_name)
    data = to_json_value(dict(value), field_name)
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True, slots=True)
class Scope:
    """Who an interaction belongs to: a tenant, optionally a user, optionally a session.

    A scope used as a *filter* matches every interaction whose fields equal the fields it sets.
    """

    tenant: str = "default"
    user: str | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        for name in ("tenant", "user", "session"):
            value = getattr(self, name)
            if value is None and name != "tenant":
                continue
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"must be a non-empty string, got {value!r}", field=f"scope.{name}")
            if len(value) > MAX_SCOPE_LENGTH:
                raise InvalidInput(f"must be at most {MAX_SCOPE_LENGTH} characters", field=f"scope.{name}")
        if self.session is not None and self.user is None:
            raise InvalidInput("a session needs a user", field="scope.session")

    def contains(self, other: Scope) -> bool:
        """True when ``other`` lies inside this scope (same tenant, and same user/session if set)."""
        return (
            self.tenant == other.tenant
            and (self.user is None or self.user == other.user)
            and (self.session is None or self.session == other.session)
        )

    def to_dict(self) -> dict[str, str | None]:
        return {"tenant": self.tenant, "user": self.user, "session": self.session}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        return cls(data.get("tenant", "default"), data.get("user"), data.get("session"))


@dataclass(frozen=True, slots=True)
class Interaction:
    """One exchange: what was observed (the request) and what was done (the response).

    ``versions`` names the learner versions that produced the action, so every logged response can be
    traced to the learned state that made it.
    """

    scope: Scope
    observation: JSON
    action: JSON = None
    id: str = field(default_factory=new_id)
    time: float = field(default_factory=time.time)
    versions: Mapping[str, int] = field(default_factory=dict)
    metadata: Mapping[str, JSON] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.scope, Scope):
            raise InvalidInput(f"must be a Scope, got {type(self.scope).__name__}", field="scope")
        _check_id(self.id, "id")
        set_ = object.__setattr__
        set_(self, "time", _check_time(self.time, "time"))
        set_(self, "observation", to_json_value(self.observation, "observation"))
        set_(self, "action", to_json_value(self.action, "action"))
        versions = _check_metadata(self.versions, "versions")
        for key, value in versions.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"version of {key!r} must be an int >= 0", field="versions")
        set_(self, "versions", versions)
        set_(self, "metadata", _check_metadata(self.metadata, "metadata"))

    def to_dict(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "scope": self.scope.to_dict(),
            "time": self.time,
            "observation": self.observation,
            "action": self.action,
            "versions": dict(self.versions),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interaction:
        try:
            return cls(
                scope=Scope.from_dict(data["scope"]),
                observation=data["observation"],
                action=data.get("action"),
                id=data["id"],
                time=data["time"],
                versions=data.get("versions") or {},
                metadata=data.get("metadata") or {},
            )
        except KeyError as exc:
            raise InvalidInput("missing from an interaction record", field=str(exc.args[0])) from None


class FeedbackKind(StrEnum):
    """What a piece of feedback says about an interaction."""

    REWARD = "reward"  # a real number, bigger is better
    ACCEPT = "accept"  # the response was taken as it was
    REJECT = "reject"  # the response was refused
    RATING = "rating"  # a number on a bounded scale, e.g. 1..5 stars
    CORRECTION = "correction"  # the right answer
    OUTCOME = "outcome"  # what happened afterwards (any JSON value: "resolved", {"tests": "pass"})


DEFAULT_RATING_SCALE = (1.0, 5.0)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A signal about one interaction. It may arrive late and more than once.

    Use the constructors :meth:`reward`, :meth:`accept`, :meth:`reject`, :meth:`rating`,
    :meth:`correction` and :meth:`outcome`; they validate the value for its kind.
    """

    interaction_id: str
    kind: FeedbackKind
    value: JSON = None
    scale: tuple[float, float] | None = None
    id: str = field(default_factory=new_id)
    time: float = field(default_factory=time.time)
    metadata: Mapping[str, JSON] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _check_id(self.interaction_id, "interaction_id")
        _check_id(self.id, "id")
        try:
            set_(self, "kind", FeedbackKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in FeedbackKind)
            raise InvalidInput(f"unknown kind {self.kind!r}; use one of {kinds}", field="kind") from None
        set_(self, "time", _check_time(self.time, "time"))
        set_(self, "metadata", _check_metadata(self.metadata, "metadata"))
        set_(self, "value", self._checked_value())

    def _checked_value(self) -> JSON:
        kind, value = self.kind, self.value
        if kind in (FeedbackKind.ACCEPT, FeedbackKind.REJECT):
            if value is not None:
                raise InvalidInput(f"{kind.value} feedback carries no value", field="value")
            if self.scale is not None:
                raise InvalidInput("only ratings have a scale", field="scale")
            return None
        if kind is FeedbackKind.RATING:
            scale = self.scale if self.scale is not None else DEFAULT_RATING_SCALE
            lo, hi = (_check_time(s, "scale") for s in scale)  # finite numbers
            if not lo < hi:
                raise InvalidInput(f"must be (low, high) with low < high, got {scale!r}", field="scale")
            object.__setattr__(self, "scale", (lo, hi))
            number = _finite_number(value, "rating")
            if not lo <= number <= hi:
                raise InvalidInput(f"rating {value:g} is outside its scale [{lo:g}, {hi:g}]", field="value")
            return number
        if self.scale is not None:
            raise InvalidInput("only ratings have a scale", field="scale")
        if kind is FeedbackKind.REWARD:
            return _finite_number(value, "reward")
        if value is None or value == "":
            raise InvalidInput(f"{kind.value} feedback needs a value", field="value")
        return to_json_value(value, "value")

    # -- constructors, one per kind -------------------------------------------------------------
    @classmethod
    def reward(cls, interaction_id: str, value: float, **kw: Any) -> Feedback:
        return cls(interaction_id, FeedbackKind.REWARD, value, **kw)

    @classmethod
    def accept(cls, interaction_id: str, **kw: Any) -> Feedback:
        return cls(interaction_id, FeedbackKind.ACCEPT, **kw)

    @classmethod
    def reject(cls, interaction_id: str, **kw: Any) -> Feedback:
        return cls(interaction_id, FeedbackKind.REJECT, **kw)

    @classmethod
    def rating(
        cls,
        interaction_id: str,
        value: float,
        scale: tuple[float, float] = DEFAULT_RATING_SCALE,
        **kw: Any,
    ) -> Feedback:
        return cls(interaction_id, FeedbackKind.RATING, value, scale=scale, **kw)

    @classmethod
    def correction(cls, interaction_id: str, right_answer: JSON, **kw: Any) -> Feedback:
        return cls(interaction_id, FeedbackKind.CORRECTION, right_answer, **kw)

    @classmethod
    def outcome(cls, interaction_id: str, value: JSON, **kw: Any) -> Feedback:
        return cls(interaction_id, FeedbackKind.OUTCOME, value, **kw)

    def to_dict(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "interaction_id": self.interaction_id,
            "kind": self.kind.value,
            "value": self.value,
            "scale": list(self.scale) if self.scale is not None else None,
            "time": self.time,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Feedback:
        scale = data.get("scale")
        try:
            return cls(
                interaction_id=data["interaction_id"],
                kind=data["kind"],
                value=data.get("value"),
                scale=(scale[0], scale[1]) if scale is not None else None,
                id=data["id"],
                time=data["time"],
                metadata=data.get("metadata") or {},
            )
        except KeyError as exc:
            raise InvalidInput("missing from a feedback record", field=str(exc.args[0])) from None


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        tolist = getattr(value, "item", None)  # NumPy scalar
        if callable(tolist) and not isinstance(value, bool):
            return _finite_number(tolist(), what)
        raise InvalidInput(f"{what} must be a number, got {value!r}", field="value")
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be finite, got {value!r}", field="value")
    return float(value)


@dataclass(frozen=True, slots=True)
class Step:
    """An interaction joined with its feedback: what learners learn from."""

    interaction: Interaction
    feedback: tuple[Feedback, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "feedback", tuple(self.feedback))
        for fb in self.feedback:
            if not isinstance(fb, Feedback):
                raise InvalidInput(f"must hold Feedback, got {type(fb).__name__}", field="feedback")
            if fb.interaction_id != self.interaction.id:
                raise InvalidInput(
                    f"feedback {fb.id} is about interaction {fb.interaction_id}, not {self.interaction.id}",
                    field="feedback",
                )

    def last(self, kind: FeedbackKind | str) -> Feedback | None:
        """The most recent feedback of ``kind`` (by time, then order of arrival), or None."""
        if not self.feedback:
            return None
        if not isinstance(kind, FeedbackKind):
            kind = FeedbackKind(kind)
        return _latest([fb for fb in self.feedback if fb.kind is kind])

    @property
    def reward(self) -> float | None:
        """The latest explicit reward, or None when no reward feedback arrived."""
        fb = self.last(FeedbackKind.REWARD)
        return None if fb is None else float(fb.value)

    @property
    def correction(self) -> JSON:
        """The latest right answer given as a correction, or None."""
        fb = self.last(FeedbackKind.CORRECTION)
        return None if fb is None else fb.value

    @property
    def corrected(self) -> bool:
        """True when a correction arrived (whatever its right answer, null included)."""
        return self.last(FeedbackKind.CORRECTION) is not None

    @property
    def accepted(self) -> bool | None:
        """True if the latest accept/reject was an accept, False if a reject, None if neither came."""
        verdict = _latest(
            [fb for fb in self.feedback if fb.kind in (FeedbackKind.ACCEPT, FeedbackKind.REJECT)]
        )
        return None if verdict is None else verdict.kind is FeedbackKind.ACCEPT

    @property
    def rating(self) -> float | None:
        fb = self.last(FeedbackKind.RATING)
        return None if fb is None else float(fb.value)

    def to_dict(self) -> dict[str, JSON]:
        return {**self.interaction.to_dict(), "feedback": [fb.to_dict() for fb in self.feedback]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        interaction = Interaction.from_dict({k: v for k, v in data.items() if k != "feedback"})
        return cls(interaction, tuple(Feedback.from_dict(f) for f in data.get("feedback", [])))


def _latest(feedback: list[Feedback]) -> Feedback | None:
    """The latest by time; among equal times the one that arrived last."""
    latest = None
    for fb in feedback:  # a linear scan: this runs on every learn() of every learner
        if latest is None or fb.time >= latest.time:
            latest = fb
    return latest
