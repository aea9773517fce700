"""Memory, example bank and lessons: the rules of each, recall, replay and erasure through provenance."""

from __future__ import annotations

import numpy as np
import pytest

from lifelong.agents import Agent, LabelTask
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.context.base import RECALLED
from lifelong.learners.context.vector_index import VectorIndex
from lifelong.models import HashingEmbedder
from lifelong.state import digest
from lifelong.state.erasure import forget_user

EMBED = HashingEmbedder()
ADA = Scope(tenant="t", user="ada")
BOB = Scope(tenant="t", user="bob")


def tell(memory: Memory, text: str, *, key: str | None = None, scope: Scope = ADA, t: float = 0.0) -> Step:
    i = Interaction(scope, "chat", time=t)
    step = Step(i, (Feedback.outcome(i.id, {"remember": {"text": text, "key": key}}),))
    memory.learn(step)
    return step


def credit(learner: Memory | ExampleBank | Lessons, ids: list[str], *, accept: bool, t: float = 0.0) -> None:
    i = Interaction(ADA, "q", action="a", time=t, metadata={RECALLED: {learner.name: ids}})
    learner.learn(Step(i, ((Feedback.accept if accept else Feedback.reject)(i.id),)))


# ---------------------------------------------------------------- memory


def test_memory_merges_near_duplicates_and_keeps_both_sources() -> None:
    memory = Memory(EMBED, merge_threshold=0.9)
    first = tell(memory, "Ada prefers green tea in the morning")
    second = tell(memory, "ada prefers green tea in the morning!")
    [item] = memory.active_items(ADA)
    assert item.sources == [first.interaction.id, second.interaction.id]
    assert item.text == "ada prefers green tea in the morning!"  # rewritten in the newer words


def test_memory_keeps_different_facts_apart() -> None:
    memory = Memory(EMBED)
    tell(memory, "Ada prefers green tea")
    tell(memory, "Ada works on the compiler team")
    assert len(memory.active_items(ADA)) == 2


def test_a_contradicting_fact_supersedes_and_the_old_one_is_history() -> None:
    memory = Memory(EMBED)
    tell(memory, "Ada lives in Paris", key="city")
    tell(memory, "Ada lives in Berlin", key="city", t=1.0)
    assert [i.text for i in memory.active_items(ADA)] == ["Ada lives in Berlin"]
    [old] = memory.history(ADA)
    assert old.status == "superseded" and old.replaced_by == memory.active_items(ADA)[0].id
    recalled = [r.item.text for r in memory.recall("where does Ada live, Paris?", ADA, k=5)]
    assert recalled == ["Ada lives in Berlin"]  # never returned once superseded


def test_the_same_keyed_fact_again_is_absorbed_not_duplicated() -> None:
    memory = Memory(EMBED)
    tell(memory, "Ada lives in Paris", key="city")
    tell(memory, "ada lives in  paris", key="city")
    [item] = memory.active_items(ADA)
    assert len(item.sources) == 2 and not memory.history()


def test_budget_evicts_the_least_useful_item() -> None:
    memory = Memory(EMBED, budget=3, merge_threshold=0.99)
    texts = ["likes cats", "plays the violin", "reads sci-fi novels"]
    for n, text in enumerate(texts):
        tell(memory, text, t=float(n))
    items = {i.text: i for i in memory.active_items(ADA)}
    credit(memory, [items["likes cats"].id], accept=True, t=5.0)  # useful
    credit(memory, [items["plays the violin"].id], accept=False, t=5.0)  # recalled, then rejected
    tell(memory, "runs marathons", t=6.0)
    assert sorted(i.text for i in memory.active_items(ADA)) == [
        "likes cats",
        "reads sci-fi novels",
        "runs marathons",
    ]


def test_usefulness_raises_an_item_in_recall() -> None:
    memory = Memory(EMBED, merge_threshold=0.99, w_usefulness=0.5, w_recency=0.0)
    tell(memory, "project deadline is friday")
    tell(memory, "project deadline moved to monday")
    a, b = sorted(memory.active_items(ADA), key=lambda i: i.text)
    before = [r.item.id for r in memory.recall("project deadline", ADA, k=2)]
    for _ in range(5):
        credit(memory, [before[1]], accept=True)
        credit(memory, [before[0]], accept=False)
    after = [r.item.id for r in memory.recall("project deadline", ADA, k=2)]
    assert after == before[::-1]
    assert {a.id, b.id} == set(after)


def test_memory_is_per_user_and_recall_changes_nothing() -> None:
    memory = Memory(EMBED)
    tell(memory, "Ada likes jazz")
    tell(memory, "Bob likes opera", scope=BOB)
    assert [r.item.text for r in memory.recall("music taste", ADA)] == ["Ada likes jazz"]
    state = digest(memory.state_dict())
    memory.recall("music taste", ADA)
    assert digest(memory.state_dict()) == state


def test_memory_validates_its_parameters() -> None:
    with pytest.raises(InvalidInput, match="merge_threshold"):
        Memory(EMBED, merge_threshold=1.5)
    with pytest.raises(InvalidInput, match="budget"):
        Memory(EMBED, budget=0)


# ---------------------------------------------------------------- example bank and lessons


def correct(
    learner: ExampleBank | Lessons, query: str, wrong: str | None, right: str, t: float = 0.0
) -> Step:
    i = Interaction(ADA, query, action=wrong, time=t)
    feedback = [Feedback.correction(i.id, right)]
    if wrong is not None:
        feedback.append((Feedback.accept if wrong == right else Feedback.reject)(i.id))
    step = Step(i, tuple(feedback))
    learner.learn(step)
    return step


def test_example_bank_recalls_the_nearest_inputs_first() -> None:
    bank = ExampleBank(EMBED, k=2)
    correct(bank, "my card has not arrived", "x", "card_arrival")
    correct(bank, "how do I top up by bank transfer", "x", "transfer_into_account")
    correct(bank, "I want to change my PIN", "x", "change_pin")
    recalled = bank.recall("card still has not arrived", ADA)
    assert recalled[0].item.payload["output"] == "card_arrival"
    assert len(recalled) == 2 and recalled[0].similarity >= recalled[1].similarity


def test_example_bank_keeps_accepted_answers_and_a_new_correction_supersedes() -> None:
    bank = ExampleBank(EMBED)
    correct(bank, "card not here", "card_arrival", "card_arrival")  # accepted as it was
    correct(bank, "card not here", "card_arrival", "card_delivery_estimate", t=1.0)
    [active] = bank.active_items()
    assert active.payload["output"] == "card_delivery_estimate"
    assert [i.status for i in bank.history()] == ["superseded"]


def test_example_bank_ignores_steps_without_a_known_right_answer() -> None:
    bank = ExampleBank(EMBED)
    i = Interaction(ADA, "hello", action="greeting")
    assert not bank.learn(Step(i, (Feedback.reject(i.id),)))


def test_lessons_from_a_correction_amend_the_same_mistake() -> None:
    lessons = Lessons(EMBED)
    correct(lessons, "where is my new card", "lost_or_stolen_card", "card_arrival")
    recalled = lessons.recall("where is my new card?", ADA)
    assert "not 'lost_or_stolen_card'" in recalled[0].item.text
    assert lessons.amend("lost_or_stolen_card", recalled) == "card_arrival"
    assert lessons.amend("something_else", recalled) == "something_else"
    assert lessons.recall("how do I open a savings account for my kid", ADA) == []  # not like X


def test_repeated_mistakes_merge_into_one_lesson() -> None:
    lessons = Lessons(EMBED)
    correct(lessons, "where is my new card", "lost_or_stolen_card", "card_arrival")
    correct(lessons, "where is my new card", "card_linking", "card_arrival")
    [lesson] = lessons.active_items()
    assert lesson.payload["wrong"] == ["lost_or_stolen_card", "card_linking"]


def test_a_lesson_followed_by_negative_feedback_is_dropped() -> None:
    lessons = Lessons(EMBED, drop_after=2)
    correct(lessons, "where is my new card", "lost_or_stolen_card", "card_arrival")
    [lesson] = lessons.active_items()
    credit(lessons, [lesson.id], accept=False)
    assert lesson.active
    credit(lessons, [lesson.id], accept=False)
    assert not lesson.active and lesson.status == "dropped"
    assert lessons.recall("where is my new card", ADA) == []


def test_a_lesson_that_keeps_helping_survives_negative_feedback() -> None:
    lessons = Lessons(EMBED, drop_after=2)
    correct(lessons, "where is my new card", "lost_or_stolen_card", "card_arrival")
    [lesson] = lessons.active_items()
    for accept in (True, True, False, False):
        credit(lessons, [lesson.id], accept=accept)
    assert lesson.active


def test_no_lesson_without_a_mistake() -> None:
    lessons = Lessons(EMBED)
    correct(lessons, "where is my card", "card_arrival", "card_arrival")
    correct(lessons, "where is my card", None, "card_arrival")
    assert len(lessons) == 0


# ---------------------------------------------------------------- through the agent: replay and erasure


def agent_with_learners(log: ExperienceLog) -> Agent:
    return Agent(
        None,
        LabelTask(["card_arrival", "change_pin", "lost_card"]),
        log,
        examples=ExampleBank(EMBED, per_user=False),
        lessons=Lessons(EMBED, per_user=False),
        memory=Memory(EMBED, per_user=True, extract=lambda s: []),
    )


def drive(agent: Agent) -> dict[str, list[str]]:
    """Ada and Bob each ask and correct; returns each user's interaction ids."""
    ids: dict[str, list[str]] = {"ada": [], "bob": []}
    queries = [
        ("ada", "my card has not arrived", "card_arrival"),
        ("bob", "I need to change my PIN", "change_pin"),
        ("ada", "I lost my card yesterday", "lost_card"),
        ("bob", "my card still has not arrived", "card_arrival"),
        ("ada", "how can I change my PIN number", "change_pin"),
    ]
    for t, (user, query, label) in enumerate(queries):
        response = agent.act(query, Scope(tenant="bank", user=user), now=float(t))
        agent.feedback(response.id, correction=label, accept=response.action == label, now=t + 0.5)
        ids[user].append(response.id)
    return ids


def test_replaying_the_log_rebuilds_every_learner_exactly() -> None:
    log = ExperienceLog(":memory:")
    agent = agent_with_learners(log)
    drive(agent)
    fresh = agent_with_learners(ExperienceLog(":memory:"))
    for name, learner in fresh.learners.items():
        learner.learn_many(log.replay())
        assert digest(learner.state_dict()) == digest(agent.learners[name].state_dict()), name


def test_forget_user_removes_everything_derived_from_their_interactions() -> None:
    log = ExperienceLog(":memory:")
    agent = agent_with_learners(log)
    ids = drive(agent)
    learners = agent.learners
    assert any(learner.derived_from(ids["ada"]) for learner in learners.values())
    report = forget_user("ada", log=log, learners=learners, tenant="bank")
    assert report.interactions_deleted == 3
    for learner in learners.values():
        assert learner.derived_from(ids["ada"]) == []  # checked through each item's provenance
        assert all("ada" not in item.source_users for item in learner.items.values())
    assert agent.examples is not None and agent.examples.derived_from(ids["bob"])  # Bob's stay
    with pytest.raises(NotFound):
        log.get(ids["ada"][0])


def test_the_agent_forgets_a_user_in_one_call() -> None:
    log = ExperienceLog(":memory:")
    agent = agent_with_learners(log)
    ids = drive(agent)
    report = agent.forget_user("bob", tenant="bank")
    assert report.interactions_deleted == 2
    assert all(learner.derived_from(ids["bob"]) == [] for learner in agent.learners.values())
    assert log.stats().interactions == 3


# ---------------------------------------------------------------- the index


def test_vector_index_search_matches_brute_force_after_removals() -> None:
    rng = np.random.default_rng(0)
    index = VectorIndex(dim=8, capacity=2)
    vectors = {f"k{i}": rng.normal(size=8) for i in range(50)}
    for key, v in vectors.items():
        index.add(key, v)
    for key in ["k3", "k49", "k0", "k17"]:
        index.remove(key)
        del vectors[key]
    query = rng.normal(size=8)
    brute = sorted(vectors, key=lambda k: -float(vectors[k] @ query / np.linalg.norm(vectors[k])))[:5]
    assert [k for k, _ in index.search(query, 5)] == brute
    assert len(index) == 46 and "k3" not in index
    with pytest.raises(NotFound):
        index.remove("k3")
    with pytest.raises(InvalidInput, match="dimensions"):
        index.add("bad", np.ones(3))


def test_lessons_grow_by_deltas_and_are_never_rewritten_wholesale() -> None:
    lessons = Lessons(EMBED, drop_after=1)
    texts = [f"query about topic {n} with words w{n} v{n}" for n in range(30)]
    total = 0
    for n, text in enumerate(texts):
        correct(lessons, text, f"wrong{n}", f"right{n}")
        now = sum(len(item.text) for item in lessons.active_items())
        assert now >= total  # adding never shrinks the playbook
        total = now
    correct(lessons, texts[0], "wrong_again", "right0")  # the same lesson again: a merge
    [first] = [i for i in lessons.active_items() if i.query == texts[0]]
    credit(lessons, [first.id], accept=False)  # a lesson that misled: retired, on its own
    ops = [d["op"] for d in lessons.deltas]
    # 30 lessons, one merge, the misleading one retired — and the rejection of "q" is a lesson of its own
    assert ops.count("add") == 31 and ops.count("merge") == 1 and ops.count("retire") == 1
    [retired] = [d for d in lessons.deltas if d["op"] == "retire"]
    assert retired["item"] == first.id and retired["losses"] == 1
    assert len(lessons.active_items()) == 30 and not first.active  # nothing else was touched
    copy = Lessons(EMBED, drop_after=1)
    copy.load_state_dict(lessons.state_dict())
    assert copy.deltas == lessons.deltas


def test_the_model_is_judged_by_its_own_answer_when_the_agent_logged_it() -> None:
    from lifelong.learners.context.base import MODEL_ANSWER, outcome

    i = Interaction(ADA, "q", action="served_by_another_expert", metadata={MODEL_ANSWER: "model_said"})
    right = Step(i, (Feedback.correction(i.id, "model_said"),))
    assert outcome(right) == 1  # the served answer was someone else's; the model was right
    wrong = Step(i, (Feedback.correction(i.id, "served_by_another_expert"),))
    assert outcome(wrong) == -1
    lessons = Lessons(EMBED)
    lessons.learn(wrong)
    [lesson] = lessons.active_items()
    assert lesson.payload["wrong"] == ["model_said"]  # the lesson is about the model's mistake


def test_the_hnsw_shortlist_finds_what_the_exact_scan_finds() -> None:
    """Past ann_min rows the shortlist comes from an HNSW graph kept up to date by adds, replacements
    and deletes; recall@10 against the exact scan stays high and the scores are exact cosines."""
    from lifelong.learners.context.vector_index import VectorIndex

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 64))
    rows = centres[rng.integers(0, 50, 3000)] + 0.6 * rng.normal(size=(3000, 64))  # clustered, like texts
    index = VectorIndex(64, ann_min=1000)
    for n, row in enumerate(rows):
        index.add(f"k{n}", row)
    for n in range(0, 3000, 3):  # deletes and replacements after the graph exists
        if n == 300:
            index.shortlist(rows[0], 10)  # builds the graph
        if n % 2:
            index.remove(f"k{n}")
        else:
            index.add(f"k{n}", rng.normal(size=64))
    assert index._graph is not None
    hits = 0
    for q in rng.normal(size=(100, 64)) + centres[rng.integers(0, 50, 100)]:
        keys, sims = index.shortlist(q, 10)
        exact = {key for key, _ in index.search(q, 10)}
        hits += len(exact & set(keys))
        assert np.allclose(
            sims, [float(index.vector(key) @ (q / np.linalg.norm(q))) for key in keys], atol=1e-5
        )
        assert all(key in index for key in keys)  # never a deleted key
    assert hits / 1000 >= 0.95
    small = VectorIndex(64, ann_min=1000)
    small.add("a", rows[0])
    assert small.shortlist(rows[0], 10)[0] == ["a"]  # below the threshold: the exact scan


def test_a_later_arrival_on_the_same_interaction_gets_an_item_of_its_own() -> None:
    """A reject and, in another call, its correction: each derives a lesson from the same interaction; the
    second supersedes the first and must not reuse its id (which the history would later drop while the
    new lesson is still served)."""
    lessons = Lessons(HashingEmbedder(), history_limit=1)
    for n in range(3):
        i = Interaction(Scope(), f"question {n}", f"wrong {n}")
        lessons.learn(Step(i, (Feedback.reject(i.id),)))
        lessons.learn(Step(i, (Feedback.correction(i.id, f"right {n}"),)))
    ids = [item.id for item in lessons.active_items()]
    assert len(ids) == 3 and all(i.endswith("/1") for i in ids)
    assert all(r.item.status == "active" for n in range(3) for r in lessons.recall(f"question {n}", Scope()))
