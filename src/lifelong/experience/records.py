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

import functools
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lifelong.errors import InvalidInput

JSON = Any  # a value json.dumps accepts: None, bool, int, float, str, list, dict with str keys

MAX_ID_LENGTH = 128
MAX_SCOPE_LENGTH = 256
MAX_DEPTH = 64  # nesting of lists/dicts in a JSON value; far beyond any real observation
MAX_TIME = 1e11  # seconds (year ~5100): a larger time is almost surely in milliseconds

# Characters an id or scope name must not hold: C0/C1 controls (NUL, newline, escape...), line and
# paragraph separators, bidi overrides (they make a name print as another) and lone surrogates (not
# storable as UTF-8).
_BAD_NAME_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def new_id() -> str:
    """A fresh random id (UUID4, 32 hex characters)."""
    return uuid.uuid4().hex


def to_json_value(value: Any, field_name: str) -> JSON:
    """Return ``value`` as plain JSON data, or raise :class:`InvalidInput` naming ``field_name``.

    NumPy scalars and arrays become numbers and (nested) lists; tuples become lists. Refused, because the
    log could not store them or read them back: non-finite floats, lone surrogates (no UTF-8 form) and
    nesting deeper than :data:`MAX_DEPTH`.
    """
    kind = type(value)
    if kind is str:  # the common scalars, without a JSON round trip
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
    elif value is None or kind is bool or kind is int or (kind is float and math.isfinite(value)):
        return value
    elif kind is dict and not value:
        return {}
    try:
        text = json.dumps(value, default=_numpy_default, allow_nan=False, sort_keys=True, ensure_ascii=False)
    except RecursionError:
        raise InvalidInput(f"nests deeper than {MAX_DEPTH} levels", field=field_name) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"must be JSON-compatible with finite numbers ({exc})", field=field_name) from None
    bad = None if text.isascii() else _SURROGATE.search(text)  # isascii: a fast C pass, the usual case
    if bad is not None:
        raise InvalidInput(
            f"holds a lone surrogate U+{ord(bad.group()):04X}, which UTF-8 cannot store", field=field_name
        )
    data = json.loads(text)
    if text.count("[") + text.count("{") > MAX_DEPTH:  # cheap bound first: brackets in strings count too
        _check_depth(data, field_name)
    return data


def _check_depth(data: JSON, field_name: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH; level by level, as the value may be too deep to recurse on."""
    level, depth = ([data] if type(data) is list or type(data) is dict else []), 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise InvalidInput(f"nests deeper than {MAX_DEPTH} levels", field=field_name)
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is list or type(child) is dict:
                    below.append(child)
        level = below


def _numpy_default(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)  # NumPy arrays and scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def canonical_json(value: JSON) -> str:
    """The one JSON text of ``value`` used for storage and equality (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _check_name(value: Any, field_name: str, max_length: int) -> str:
    """An id or scope name: a non-blank string of printable characters, at most ``max_length`` long."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"must be a non-empty string, got {_short(value)}", field=field_name)
    if len(value) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters, got {len(value)}", field=field_name)
    bad = None if value.isprintable() else _BAD_NAME_CHAR.search(value)  # every bad char is unprintable
    if bad is not None:
        raise InvalidInput(
            f"holds the control or unpaired character U+{ord(bad.group()):04X} at position {bad.start()}",
            field=field_name,
        )
    return value


def _check_id(value: Any, field_name: str) -> str:
    return _check_name(value, field_name, MAX_ID_LENGTH)


def _short(value: Any) -> str:
    """``repr(value)`` cut to a readable length, for messages about values that may be huge."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (bools are not; NumPy scalars are), else None.

    An int too large for a float is no number we can store, so it is None too, never OverflowError.
    """
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        item = getattr(value, "item", None)  # a NumPy scalar (or 0-d array)
        if not callable(item) or getattr(value, "ndim", None) != 0:
            return None
        value = item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
    try:
        return float(value)
    except OverflowError:
        return None


def _check_number(value: Any, field_name: str) -> float:
    number = _real(value)
    if number is None or not math.isfinite(number):
        raise InvalidInput(f"must be a finite number, got {_short(value)}", field=field_name)
    return number


def _check_time(value: Any, field_name: str) -> float:
    number = _real(value)
    if number is None or not math.isfinite(number):
        raise InvalidInput(f"must be a finite number of seconds, got {_short(value)}", field=field_name)
    if number < 0:
        raise InvalidInput(f"must be >= 0 (unix time in seconds), got {number!r}", field=field_name)
    if number > MAX_TIME:
        raise InvalidInput(
            f"{number!r} is too large for unix time in seconds (milliseconds?)", field=field_name
        )
    return number


def _check_metadata(value: Any, field_name: str) -> dict[str, JSON]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"must be a mapping, got {type(value).__name__}", field=field_name)
    data = to_json_value(dict(value), field_name)
    assert isinstance(data, dict)
    return data


@functools.cache
def _keys(required: tuple[str, ...], optional: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(required), frozenset((*required, *optional))


def _record(data: Any, what: str, required: tuple[str, ...], optional: tuple[str, ...]) -> Mapping[str, Any]:
    """Check that ``data`` is a mapping with the ``required`` keys and no keys outside both tuples."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"must be a mapping (a JSON object), got {type(data).__name__}", field=what)
    must, allowed = _keys(required, optional)
    keys = data.keys()
    if keys <= allowed and keys >= must:
        return data  # the usual case, checked with set operations in C
    missing = [k for k in required if k not in data]
    if missing:
        raise InvalidInput(f"missing from {what} record: {', '.join(missing)}", field=f"{what}.{missing[0]}")
    unknown = sorted(str(k) for k in data if k not in required and k not in optional)
    if unknown:
        known = ", ".join((*required, *optional))
        raise InvalidInput(f"unknown key(s) {', '.join(unknown)}; known: {known}", field=what)
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
            _check_name(value, f"scope.{name}", MAX_SCOPE_LENGTH)
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
        data = _record(data, "scope", (), ("tenant", "user", "session"))
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
            _check_name(key, "versions", MAX_ID_LENGTH)  # a learner name
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
        data = _record(
            data, "interaction", ("id", "scope", "time", "observation"), ("action", "versions", "metadata")
        )
        return cls(
            scope=Scope.from_dict(data["scope"]),
            observation=data["observation"],
            action=data.get("action"),
            id=data["id"],
            time=data["time"],
            versions=_or_empty(data.get("versions")),
            metadata=_or_empty(data.get("metadata")),
        )


def _or_empty(value: Any) -> Any:
    """None (or an absent key) means an empty mapping; anything else is checked as it is."""
    return {} if value is None else value


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
            raise InvalidInput(
                f"unknown kind {_short(self.kind)}; use one of {kinds}", field="kind"
            ) from None
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
            lo, hi = _check_scale(self.scale if self.scale is not None else DEFAULT_RATING_SCALE)
            object.__setattr__(self, "scale", (lo, hi))
            number = _finite_number(value, "rating")
            if not lo <= number <= hi:
                raise InvalidInput(f"rating {value:g} is outside its scale [{lo:g}, {hi:g}]", field="value")
            return number
        if self.scale is not None:
            raise InvalidInput("only ratings have a scale", field="scale")
        if kind is FeedbackKind.REWARD:
            return _finite_number(value, "reward")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidInput(f"{kind.value} feedback needs a value, got {value!r}", field="value")
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
        data = _record(
            data, "feedback", ("id", "interaction_id", "kind", "time"), ("value", "scale", "metadata")
        )
        scale = data.get("scale")
        return cls(
            interaction_id=data["interaction_id"],
            kind=data["kind"],
            value=data.get("value"),
            scale=_check_scale(scale) if scale is not None else None,
            id=data["id"],
            time=data["time"],
            metadata=_or_empty(data.get("metadata")),
        )


def _check_scale(scale: Any) -> tuple[float, float]:
    """A rating scale: exactly two finite numbers, low < high."""
    if isinstance(scale, str | bytes | Mapping) or not isinstance(scale, Iterable):
        raise InvalidInput(f"must be a pair (low, high), got {_short(scale)}", field="scale")
    bounds = list(scale)
    if len(bounds) != 2:
        raise InvalidInput(f"must be a pair (low, high), got {len(bounds)} values", field="scale")
    lo, hi = (_check_number(b, "scale") for b in bounds)
    if not lo < hi:
        raise InvalidInput(f"must be (low, high) with low < high, got {_short(scale)}", field="scale")
    return lo, hi


def _finite_number(value: Any, what: str) -> float:
    number = _real(value)
    if number is None:
        raise InvalidInput(f"{what} must be a number, got {_short(value)}", field="value")
    if not math.isfinite(number):
        raise InvalidInput(f"{what} must be finite, got {_short(value)}", field="value")
    return number


def feedback_of(
    interaction_id: str,
    *,
    reward: float | None = None,
    accept: bool | None = None,
    correction: JSON = None,
    rating: float | None = None,
    outcome: JSON = None,
    time: float | None = None,
    rating_scale: tuple[float, float] | None = None,
) -> list[Feedback]:
    """The feedback records the keywords given describe (at least one), e.g. for ``Agent.feedback``.
    They share one time — they arrive together, and learners see them together (:func:`arrivals`).

    >>> made = feedback_of("i1", accept=False, correction="card_lost")
    >>> [f.kind.value for f in made], made[0].time == made[1].time
    (['reject', 'correction'], True)
    """
    kw: dict[str, Any] = {"time": _clock() if time is None else time}
    made: list[Feedback] = []
    if reward is not None:
        made.append(Feedback.reward(interaction_id, reward, **kw))
    if accept is not None:
        made.append((Feedback.accept if accept else Feedback.reject)(interaction_id, **kw))
    if correction is not None:
        made.append(Feedback.correction(interaction_id, correction, **kw))
    if rating is not None:
        scale = {} if rating_scale is None else {"scale": rating_scale}
        made.append(Feedback.rating(interaction_id, rating, **scale, **kw))
    if outcome is not None:
        made.append(Feedback.outcome(interaction_id, outcome, **kw))
    if not made:
        raise InvalidInput(
            "give at least one of reward, accept, correction, rating, outcome", field="feedback"
        )
    return made


_clock = time.time  # ``feedback_of``'s parameter named ``time`` hides the module there


def arrivals(rows: Iterable[tuple[int, Step]]) -> list[tuple[int, Step]]:
    """Feedback rows in seq order, one step per *arrival*: consecutive rows on the same interaction at
    the same time (what one call gave — :func:`feedback_of` stamps them alike) become one step with all
    of them, numbered by its last seq. An online learner (``Agent.feedback``) learns from a call's
    feedback at once; a log read row by row must hand it to learners the same way, or a reject and its
    correction would teach twice."""
    out: list[tuple[int, Step]] = []
    for seq, step in rows:
        if out:
            _, last = out[-1]
            same = last.interaction.id == step.interaction.id
            if same and last.feedback and step.feedback and last.feedback[-1].time == step.feedback[0].time:
                out[-1] = (seq, Step(last.interaction, last.feedback + step.feedback))
                continue
        out.append((seq, step))
    return out


@dataclass(frozen=True, slots=True)
class Step:
    """An interaction joined with its feedback: what learners learn from."""

    interaction: Interaction
    feedback: tuple[Feedback, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.interaction, Interaction):
            raise InvalidInput(
                f"must be an Interaction, got {type(self.interaction).__name__}", field="interaction"
            )
        not_a_sequence = isinstance(self.feedback, Feedback | str | bytes | Mapping)
        if not_a_sequence or not isinstance(self.feedback, Iterable):
            raise InvalidInput(
                f"must be a sequence of Feedback, got {type(self.feedback).__name__}", field="feedback"
            )
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
        if not isinstance(kind, FeedbackKind):
            try:
                kind = FeedbackKind(kind)
            except ValueError:
                raise InvalidInput(f"unknown kind {_short(kind)}", field="kind") from None
        if not self.feedback:
            return None
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
        if not isinstance(data, Mapping):
            raise InvalidInput(f"must be a mapping (a JSON object), got {type(data).__name__}", field="step")
        interaction = Interaction.from_dict({k: v for k, v in data.items() if k != "feedback"})
        feedback = _or_list(data.get("feedback"))
        if not isinstance(feedback, list | tuple):
            raise InvalidInput(
                f"must be a list of feedback records, got {type(feedback).__name__}", field="feedback"
            )
        return cls(interaction, tuple(Feedback.from_dict(f) for f in feedback))


def _or_list(value: Any) -> Any:
    return [] if value is None else value


def _latest(feedback: list[Feedback]) -> Feedback | None:
    """The latest by time; among equal times the one that arrived last."""
    latest = None
    for fb in feedback:  # a linear scan: this runs on every learn() of every learner
        if latest is None or fb.time >= latest.time:
            latest = fb
    return latest
