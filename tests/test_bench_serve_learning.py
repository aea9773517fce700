"""The serve-learning benchmark's measures (the runs themselves are `lifelong bench serve-learning`)."""

from __future__ import annotations

import math

import pytest

from lifelong.bench.serve_learning import (
    answer_text,
    label_judge,
    misapplied,
    repeat_error_by_intent,
    support_judge,
)
from lifelong.errors import InvalidInput


def test_repeat_error_counts_only_intents_corrected_before() -> None:
    pattern = ["a", "a", "b", "a", "b"]
    right = [False, False, False, True, True]
    corrected = [True, True, True, False, False]
    # request 1 (a, corrected at 0): wrong; request 3 (a): right; request 4 (b, corrected at 2): right
    assert repeat_error_by_intent(pattern, right, corrected) == pytest.approx(1 / 3)
    assert math.isnan(repeat_error_by_intent(["a", "b"], [False, False], [True, True]))


def test_misapplied_means_another_intents_answer_was_served() -> None:
    texts = {intent: answer_text(intent) for intent in ("card_arrival", "lost_card")}
    answers = [texts["lost_card"], texts["card_arrival"], "I do not know", None]
    assert misapplied(answers, ["card_arrival", "card_arrival", "lost_card", "lost_card"], texts) == 0.25


def test_the_simulated_apps_send_the_feedback_a_real_app_would() -> None:
    assert label_judge("card_arrival", "card_arrival") == (
        True,
        {"reward": 1.0, "correction": "card_arrival"},
    )
    assert support_judge(answer_text("lost_card"), "lost_card") == (True, {"accept": True})
    right, feedback = support_judge("hello", "lost_card")
    assert not right and feedback == {"accept": False, "correction": answer_text("lost_card")}
    assert answer_text("card_arrival") != answer_text("card_arrival_2")


def test_bad_flags_are_refused_before_anything_starts(tmp_path: object) -> None:
    import argparse

    from lifelong.bench.serve_learning import serve_learning

    for flags, field in (({"streams": "poems"}, "--streams"), ({"variants": "library"}, "--variants")):
        args = argparse.Namespace(
            out=str(tmp_path), seeds=1, steps=5, data=None, columns=None, delimiter=None, **flags
        )
        with pytest.raises(InvalidInput) as caught:
            serve_learning(args)
        assert caught.value.field == field
