"""Budgets bound memory and snapshots however a careless or hostile stream repeats itself."""

from __future__ import annotations

import math

from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners import ExampleBank, IdTable, Lessons, Memory
from lifelong.learners.context.base import HISTORY_LIMIT, MAX_SOURCES
from lifelong.learners.context.lessons import MAX_DELTAS, MAX_WRONGS
from lifelong.models import HashingEmbedder
from lifelong.state.codec import encode

EMBED = HashingEmbedder()
ADA = Scope("t", user="ada")


def corrected(text: str, action: str | None, label: str, t: float) -> Step:
    i = Interaction(ADA, text, action, time=t)
    return Step(i, (Feedback.correction(i.id, label, time=t + 0.1),))


def test_rewriting_one_input_keeps_an_example_bank_bounded() -> None:
    bank = ExampleBank(EMBED, budget=10)
    sizes = []
    for n in range(3000):
        bank.learn(corrected("the same input", None, f"answer {n % 7}", float(n)))  # supersede each time
        if n in (1000, 2999):
            sizes.append(len(encode(bank.state_dict())))
    assert len(bank.items) <= 10 + HISTORY_LIMIT
    assert len(bank.history(ADA)) <= HISTORY_LIMIT
    assert sizes[1] <= sizes[0] * 1.05  # the snapshot stopped growing


def test_confirming_one_input_forever_keeps_its_sources_bounded() -> None:
    bank = ExampleBank(EMBED, budget=10)
    steps = [corrected("the same input", None, "the same answer", float(n)) for n in range(2000)]
    bank.learn_many(steps)
    [item] = bank.active_items(ADA)
    assert len(item.sources) == MAX_SOURCES and item.source_users == ["ada"]
    assert item.sources[0] == steps[0].interaction.id  # the first source stays: where it came from
    assert item.sources[-1] == steps[-1].interaction.id


def test_rewriting_one_memory_keeps_it_bounded() -> None:
    memory = Memory(EMBED, budget=10)
    for n in range(2000):
        i = Interaction(ADA, "x", None, time=float(n))
        fact = {"remember": {"text": f"my address is street {n}", "key": "address"}}
        memory.learn(Step(i, (Feedback.outcome(i.id, fact, time=n + 0.1),)))
    assert len(memory.active_items(ADA)) == 1
    assert len(memory.items) <= 1 + HISTORY_LIMIT


def test_lessons_keep_bounded_deltas_and_wrong_answers() -> None:
    lessons = Lessons(EMBED, budget=10)
    for n in range(3000):
        lessons.learn(corrected("what is the capital", f"wrong guess {n}", "paris", float(n)))
    assert len(lessons.deltas) <= MAX_DELTAS
    for item in lessons.items.values():
        wrong = item.payload["wrong"]
        assert isinstance(wrong, list) and len(wrong) <= MAX_WRONGS


def test_id_table_pending_ids_expire_and_are_capped() -> None:
    table = IdTable(min_count=3, ttl=100.0, max_pending=1000)
    for n in range(20_000):
        table.row(f"one-off-{n}", now=float(n) / 100)
    assert len(table.pending) == 1000 and len(table.pending_seen) == 1000
    table.expire(now=10_000.0)
    assert table.pending == {} and table.pending_seen == {}
    never = IdTable(min_count=2, ttl=math.inf, max_pending=10)
    for n in range(100):
        never.row(f"id{n}", now=0.0)
    assert len(never.pending) == 10
    restored = IdTable.from_state(never.state())
    assert restored.pending == never.pending and restored.max_pending == 10
