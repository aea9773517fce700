"""Records are validated on construction: a bad value raises InvalidInput naming the field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lifelong.errors import InvalidInput
from lifelong.experience import Feedback, FeedbackKind, Interaction, Scope, Step


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Scope(tenant=""), "scope.tenant"),
        (lambda: Scope(user="  "), "scope.user"),
        (lambda: Scope(user="a", session=""), "scope.session"),
        (lambda: Scope(session="s"), "scope.session"),
        (lambda: Scope(user="x" * 300), "scope.user"),
        (lambda: Interaction("ada", "q"), "scope"),  # type: ignore[arg-type]
        (lambda: Interaction(Scope(), float("nan")), "observation"),
        (lambda: Interaction(Scope(), {"x": object()}), "observation"),
        (lambda: Interaction(Scope(), "q", time=math.inf), "time"),
        (lambda: Interaction(Scope(), "q", id=""), "id"),
        (lambda: Interaction(Scope(), "q", versions={"m": -1}), "versions"),
        (lambda: Feedback.reward("i", math.nan), "value"),
        (lambda: Feedback.reward("i", math.inf), "value"),
        (lambda: Feedback.reward("i", True), "value"),
        (lambda: Feedback.reward("i", "1"), "value"),
        (lambda: Feedback.rating("i", 6), "value"),
        (lambda: Feedback.rating("i", 0.5, scale=(1, 5)), "value"),
        (lambda: Feedback.rating("i", 3, scale=(5, 1)), "scale"),
        (lambda: Feedback("i", FeedbackKind.ACCEPT, value=1), "value"),
        (lambda: Feedback("i", FeedbackKind.REWARD, 1.0, scale=(0, 1)), "scale"),
        (lambda: Feedback.correction("i", ""), "value"),
        (lambda: Feedback.correction("i", None), "value"),
        (lambda: Feedback.outcome("i", None), "value"),
        (lambda: Feedback("i", "like"), "kind"),  # type: ignore[arg-type]
        (lambda: Feedback.accept(""), "interaction_id"),
    ],
)
def test_bad_values_name_their_field(make: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_numpy_values_become_plain_json() -> None:
    i = Interaction(Scope(), np.array([1.5, 2.0]), np.int64(3))
    assert i.observation == [1.5, 2.0] and i.action == 3 and type(i.action) is int
    assert Feedback.reward(i.id, np.float32(0.5)).value == 0.5
    assert Feedback.rating(i.id, 5).value == 5.0 and Feedback.rating(i.id, 5).scale == (1.0, 5.0)


def test_round_trip_through_dicts() -> None:
    i = Interaction(Scope("acme", "ada", "s1"), {"q": "2+2?"}, "5", versions={"m": 3}, metadata={"k": 1})
    feedback = (
        Feedback.rating(i.id, 2, scale=(0, 10)),
        Feedback.correction(i.id, "4"),
        Feedback.outcome(i.id, {"tests": "pass"}),
    )
    step = Step(i, feedback)
    assert Step.from_dict(step.to_dict()) == step


def test_step_takes_the_latest_feedback() -> None:
    i = Interaction(Scope(), "q")
    step = Step(
        i,
        (
            Feedback.reward(i.id, 1.0, time=10),
            Feedback.reward(i.id, -1.0, time=20),  # repeated feedback: the later one counts
            Feedback.accept(i.id, time=11),
            Feedback.reject(i.id, time=12),
            Feedback.correction(i.id, "b", time=30),
            Feedback.correction(i.id, "a", time=5),  # late-arriving but older
            Feedback.rating(i.id, 4, time=1),
        ),
    )
    assert step.reward == -1.0 and step.accepted is False and step.correction == "b" and step.rating == 4.0
    empty = Step(i)
    assert empty.reward is None and empty.accepted is None and empty.correction is None


def test_step_rejects_feedback_about_another_interaction() -> None:
    a, b = Interaction(Scope(), "a"), Interaction(Scope(), "b")
    with pytest.raises(InvalidInput) as info:
        Step(a, (Feedback.accept(b.id),))
    assert info.value.field == "feedback"


def test_scope_contains() -> None:
    assert Scope("t").contains(Scope("t", "u", "s"))
    assert Scope("t", "u").contains(Scope("t", "u", "s"))
    assert not Scope("t", "u").contains(Scope("t", "v"))
    assert not Scope("t").contains(Scope("other", "u"))
