"""The agent loop (act → log → feedback → learn), the suggestion gate, the code-completion environment and
the agent protocol's metrics. The last tests run the real embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifelong.agents import Agent, CodeCompletionTask, LabelTask
from lifelong.agents.agent import Context
from lifelong.agents.tasks import code_facts, label_facts
from lifelong.envs.code_completion import (
    ACCEPT_REWARD,
    REJECT_REWARD,
    CodeCompletion,
    normalise,
    stdlib_files,
)
from lifelong.errors import InvalidInput, NotFound
from lifelong.eval.agents import repeat_error_rate, run_agent
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.context.gate import GATE, SuggestionGate
from lifelong.models import HashingEmbedder

EMBED = HashingEmbedder()
LABELS = ["card_arrival", "change_pin", "lost_or_stolen_card", "top_up_failed"]


def knn_agent(log: ExperienceLog) -> Agent:
    return Agent(None, LabelTask(LABELS), log, examples=ExampleBank(EMBED), lessons=Lessons(EMBED))


def test_act_logs_the_interaction_with_what_it_recalled_and_feedback_learns_at_once() -> None:
    log = ExperienceLog(":memory:")
    agent = knn_agent(log)
    first = agent.act("my card never arrived", Scope(user="ada"))
    assert first.action is None and log.get(first.id).interaction.observation == "my card never arrived"
    agent.feedback(first.id, correction="card_arrival", accept=False)
    second = agent.act("my card never arrived", Scope(user="ada"))
    assert second.action == "card_arrival"  # the very next call benefits
    logged = log.get(second.id).interaction
    assert logged.metadata["recalled"]["ExampleBank"] == [f"{first.id}/ExampleBank/0"]
    assert logged.versions["ExampleBank"] == 1
    assert [f.kind.value for f in log.get(first.id).feedback] == ["reject", "correction"]


def test_feedback_on_an_unknown_interaction_or_with_nothing_to_say_is_refused() -> None:
    agent = knn_agent(ExperienceLog(":memory:"))
    with pytest.raises(NotFound, match="no interaction"):
        agent.feedback("nope", reward=1.0)
    response = agent.act("hello", Scope())
    with pytest.raises(InvalidInput, match="at least one"):
        agent.feedback(response.id)


def test_feedback_is_found_in_the_log_after_the_pending_cache_forgot_it() -> None:
    log = ExperienceLog(":memory:")
    agent = Agent(None, LabelTask(LABELS), log, examples=ExampleBank(EMBED), pending=1)
    a = agent.act("card has not arrived", Scope())
    agent.act("something else", Scope())
    agent.feedback(a.id, correction="card_arrival")
    assert agent.examples is not None and len(agent.examples) == 1


def test_a_frozen_agent_acts_but_learns_nothing() -> None:
    agent = knn_agent(ExperienceLog(":memory:")).freeze()
    r = agent.act("my card never arrived", Scope())
    agent.feedback(r.id, correction="card_arrival")
    assert all(len(learner) == 0 for learner in agent.learners.values())


def test_the_knn_baseline_needs_an_example_bank() -> None:
    with pytest.raises(InvalidInput, match="example bank"):
        Agent(None, LabelTask(LABELS), ExperienceLog(":memory:"))


def test_context_drops_the_weakest_recall_first() -> None:
    bank = ExampleBank(EMBED)
    for n, text in enumerate(["card arrived late", "card lost", "pin change"]):
        i = Interaction(Scope(), text, time=float(n))
        bank.learn(Step(i, (Feedback.correction(i.id, "x"),)))
    context = Context(examples=bank.recall("card arrived", Scope(), k=3))
    weakest = context.examples[-1].id
    assert context.drop_weakest() and weakest not in [r.id for r in context.examples]


def test_label_prompt_puts_the_nearest_demonstration_last() -> None:
    bank = ExampleBank(EMBED)
    for text, label in [("pin change please", "change_pin"), ("card has not arrived", "card_arrival")]:
        i = Interaction(Scope(), text)
        bank.learn(Step(i, (Feedback.correction(i.id, label),)))
    prompt = LabelTask(LABELS).prompt(
        "my card has not arrived", Context(examples=bank.recall("my card has not arrived", Scope()))
    )
    assert prompt.endswith(
        "Query: card has not arrived\nIntent: card_arrival\n\nQuery: my card has not arrived\nIntent:"
    )


# ---------------------------------------------------------------- the gate


def gate_step(features: dict[str, float], action: str, truth: str) -> Step:
    i = Interaction(Scope(), "q", action=action, metadata={GATE: [{"action": action, "features": features}]})
    return Step(i, (Feedback.correction(i.id, truth),))


def test_the_gate_learns_to_stay_silent_when_rejections_dominate() -> None:
    gate = SuggestionGate()
    assert gate.choose([("x", {"model": 1.0})])[0] == "x"  # before learning: suggests
    for _ in range(60):  # past the "keep" objective's warm-up with no accepted work at all
        gate.learn(gate_step({"model": 1.0}, "wrong", "right"))
    action, p = gate.choose([("x", {"model": 1.0})])
    assert action is None and p < gate.threshold


def test_the_gate_learns_which_feature_predicts_acceptance() -> None:
    gate = SuggestionGate()
    for n in range(200):
        confident = n % 2 == 0
        gate.learn(gate_step({"confidence": 1.0 if confident else 0.0}, "a", "a" if confident else "b"))
    assert gate.probability({"confidence": 1.0}) > 0.8 > 0.2 > gate.probability({"confidence": 0.0})
    assert gate.choose([("low", {"confidence": 0.0}), ("high", {"confidence": 1.0})])[0] == "high"


def test_the_gate_learns_from_silent_requests_through_the_correction() -> None:
    gate = SuggestionGate()
    i = Interaction(Scope(), "q", action=None, metadata={GATE: [{"action": "a", "features": {"f": 1.0}}]})
    assert gate.learn(Step(i, (Feedback.reward(i.id, 0.0), Feedback.correction(i.id, "a"))))
    assert gate.probability({"f": 1.0}) > 0.5


def test_gate_parameters_are_validated() -> None:
    with pytest.raises(InvalidInput, match="threshold"):
        SuggestionGate(threshold=1.0)


# ---------------------------------------------------------------- code completion environment and facts


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("import os\n\n\ndef f(x):\n    return x + 1\n")
    (tmp_path / "pkg" / "b.py").write_text("def g():\n    return  os.sep\n")
    return tmp_path


def test_the_developer_accepts_iff_the_line_matches_up_to_whitespace(repo: Path) -> None:
    env = CodeCompletion.from_path(repo, rate=1.0)
    obs, _ = env.reset(seed=0)
    assert obs["path"] == "pkg/a.py" and obs["context"] == "" and obs["indent"] == ""
    _, r, _, _, info = env.step("import  os ")
    assert (r, info["accepted"], info["chars_saved"]) == (ACCEPT_REWARD, True, len("import os"))
    obs, r, _, _, info = env.step("def f(y):")
    assert (r, info["accepted"], info["correct_action"]) == (REJECT_REWARD, False, "def f(x):")
    assert obs["indent"] == "    " and obs["context"].endswith("def f(x):")
    _, r, done, _, info = env.step(None)
    assert (r, info["accepted"], done) == (0.0, None, False)
    env.step("def g():")
    _, r, done, _, info = env.step("return os.sep")
    assert info["accepted"] and done and len(env) == 5
    with pytest.raises(InvalidInput, match="ended"):
        env.step(None)


def test_sampling_is_seeded_and_limited(repo: Path) -> None:
    env = CodeCompletion.from_path(repo, rate=0.5, limit=2)
    first = [env.reset(seed=3)[0]["query"]]
    again = [env.reset(seed=3)[0]["query"]]
    assert first == again and len(env) <= 2


def test_missing_sources_are_clear(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no source directory"):
        CodeCompletion.from_path(tmp_path / "missing")
    with pytest.raises(NotFound, match=r"no \.py files"):
        CodeCompletion.from_path(tmp_path)
    with pytest.raises(NotFound, match="no standard-library package"):
        stdlib_files(["no_such_package_xyz"])
    with pytest.raises(InvalidInput, match="rate"):
        CodeCompletion(stdlib_files(["json"]), rate=0.0)


def test_stdlib_packages_are_found_at_run_time() -> None:
    files = stdlib_files(["json"])
    assert any(f.name == "decoder.py" for f in files)


def code_step(line: str, indent: str = "") -> Step:
    i = Interaction(Scope(user="dev"), {"query": "q", "indent": indent, "context": ""}, action="x")
    return Step(i, (Feedback.correction(i.id, line),))


def test_code_facts_key_definitions_by_name() -> None:
    assert code_facts(code_step("def parse(text, *, strict=True):"))[0].key == "def parse"
    assert code_facts(code_step("class Decoder(object):"))[0].key == "class Decoder"
    assert code_facts(code_step("from json import loads, dumps"))[0].key == "import loads, dumps"
    assert code_facts(code_step("MAX_DEPTH = 100"))[0].key == "constant MAX_DEPTH"
    assert code_facts(code_step("MAX_DEPTH = 100", indent="    ")) == []
    assert code_facts(code_step("return x")) == []


def test_a_redefinition_supersedes_the_old_signature_in_memory() -> None:
    memory = Memory(EMBED, extract=code_facts)
    memory.learn(code_step("def parse(text):"))
    memory.learn(code_step("def parse(text, strict):"))
    assert [i.text for i in memory.active_items()] == ["def parse(text, strict):"]


def test_label_facts_remember_the_right_label_of_a_query() -> None:
    i = Interaction(Scope(), "lost my card", action="card_arrival")
    [fact] = label_facts(Step(i, (Feedback.correction(i.id, "lost_or_stolen_card"),)))
    assert "lost_or_stolen_card" in fact.text and fact.key == "lost my card"


def test_code_prompt_shows_snippets_then_the_file() -> None:
    bank = ExampleBank(EMBED)
    past = {"query": "def f(x): / 4>", "context": "def f(x):", "indent": "    ", "path": "a.py"}
    i = Interaction(Scope(), past)
    bank.learn(Step(i, (Feedback.correction(i.id, "return x + 1"),)))
    now = {"query": "def f(x): / 4>", "context": "import os\ndef f(x):", "indent": "    ", "path": "b.py"}
    prompt = CodeCompletionTask().prompt(now, Context(examples=bank.recall(now["query"], Scope())))
    assert prompt.startswith("def f(x):\n    return x + 1\n\n# file: b.py\nimport os\ndef f(x):\n")
    assert prompt.endswith("\n    ")


# ---------------------------------------------------------------- the protocol's metrics


def test_repeat_error_rate_counts_recurring_corrected_mistakes() -> None:
    pattern = ["a", "b", "a", "b", "a"]
    right = [False, False, True, False, False]
    # a: wrong at 0, right at 2 (fixed); b: wrong at 1, wrong at 3 (repeat); a: wrong at 4 (no later a)
    assert repeat_error_rate(pattern, right) == 0.5
    assert repeat_error_rate(["a"], [False]) != repeat_error_rate(["a"], [False])  # NaN: nothing recurs


def test_run_agent_learns_a_stream_against_its_frozen_control(repo: Path) -> None:
    texts = ["card not arrived", "change my pin", "card not arrived yet", "change pin now"] * 5
    labels = ["card_arrival", "change_pin", "card_arrival", "change_pin"] * 5
    from lifelong.envs.intent_stream import IntentStream

    env = IntentStream(texts, labels)
    learning = run_agent(knn_agent(ExperienceLog(":memory:")), env, seed=0)
    frozen = run_agent(knn_agent(ExperienceLog(":memory:")).freeze(), env, seed=0)
    assert learning.summary()["right_rate"] > 0.8 and frozen.summary()["right_rate"] == 0.0
    assert learning.summary()["repeat_error_rate"] == 0.0


# ---------------------------------------------------------------- with the real embedded model


@pytest.fixture(scope="module")
def gemma():  # type: ignore[no-untyped-def]
    from lifelong.models import LlamaCpp

    return LlamaCpp(n_ctx=1024)


@pytest.mark.slow
def test_the_real_model_labels_from_the_constrained_set(gemma) -> None:  # type: ignore[no-untyped-def]
    agent = Agent(gemma, LabelTask(LABELS), ExperienceLog(":memory:"), examples=ExampleBank(EMBED))
    for query in ["my card was stolen", "asdf qwer", "why did my top-up fail?"]:
        assert agent.act(query, Scope()).action in LABELS


@pytest.mark.slow
def test_a_correction_makes_the_very_next_identical_query_right(gemma) -> None:  # type: ignore[no-untyped-def]
    agent = Agent(
        gemma,
        LabelTask(LABELS),
        ExperienceLog(":memory:"),
        examples=ExampleBank(EMBED),
        lessons=Lessons(EMBED),
    )
    queries = ["I still have not received my new card", "How do I reset my PIN?", "my top up was declined"]
    truths = ["card_arrival", "change_pin", "top_up_failed"]
    for query, truth in zip(queries, truths, strict=True):
        first = agent.act(query, Scope())
        agent.feedback(first.id, correction=truth, accept=first.action == truth)
        assert agent.act(query, Scope()).action == truth


@pytest.mark.slow
def test_the_code_agent_suggests_a_line_or_abstains_and_counts_cost(gemma, repo: Path) -> None:  # type: ignore[no-untyped-def]
    agent = Agent(
        gemma,
        CodeCompletionTask(),
        ExperienceLog(":memory:"),
        examples=ExampleBank(EMBED, per_user=True),
        lessons=Lessons(EMBED, per_user=True),
        memory=Memory(EMBED, extract=code_facts),
        gate=SuggestionGate(),
    )
    trace = run_agent(agent, CodeCompletion.from_path(repo, rate=1.0), seed=0)
    summary = trace.summary()
    assert len(trace) == 5 and summary["model_calls_per_request"] == 1.0
    assert summary["tokens_per_request"] > 5
    assert all(normalise(p) == p for p in trace.pattern)


def test_weighted_vote_sums_similarity_per_answer() -> None:
    from lifelong.agents.agent import weighted_vote

    bank = ExampleBank(EMBED, k=3)
    for text, label in [
        ("card not arrived", "card_arrival"),
        ("card not here", "card_arrival"),
        ("pin", "change_pin"),
    ]:
        i = Interaction(Scope(), text)
        bank.learn(Step(i, (Feedback.correction(i.id, label),)))
    winner, share = weighted_vote(bank.recall("card not arrived yet", Scope()))
    assert winner == "card_arrival" and 0.5 < share <= 1.0


def test_a_source_tree_inside_a_virtual_environment_is_read(tmp_path: Path) -> None:
    from lifelong.envs.code_completion import source_files

    package = tmp_path / ".venv" / "lib" / "pkg"
    package.mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / ".venv").mkdir()
    (package / ".venv" / "b.py").write_text("y = 2\n")
    assert source_files(package) == [package / "a.py"]
