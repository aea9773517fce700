"""The one turn pipeline (Agent.begin → the host's model calls → Agent.finish → Agent.record), the apps
that choose an agent's learners, the gate's features and its `answer` objective, and the free-text task."""

from __future__ import annotations

import pytest

from lifelong.agents import Agent, LabelTask
from lifelong.agents.agent import CONTEXT, PLAIN, Context, Limits
from lifelong.agents.apps import App, build_agent
from lifelong.agents.tasks import ChatTask
from lifelong.errors import InvalidInput
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import ExampleBank, Lessons, Memory
from lifelong.learners.context.base import Item, Recalled
from lifelong.learners.context.gate import Evidence, SuggestionGate, candidates, source_of
from lifelong.models import HashingEmbedder
from lifelong.models.base import Call, Completion, transcript
from lifelong.serve.apps import AppStore
from lifelong.serve.curve import learning_curve, scores
from lifelong.storage import open_database

EMBED = HashingEmbedder()
LABELS = ("card_arrival", "change_pin", "lost_or_stolen_card")


def recalled(text: str, score: float) -> Recalled:
    item = Item(id=f"i-{text}", text=text, query=text, payload={}, tenant="default", user=None)
    return Recalled(item, score, score)


# ------------------------------------------------------------------------------------------ the turn


def test_begin_renders_the_calls_and_changes_nothing_finish_and_record_read_the_answers_back() -> None:
    log = ExperienceLog(":memory:")
    agent = Agent(
        _Echo(),
        LabelTask(LABELS),
        log,
        examples=ExampleBank(EMBED),
        lessons=Lessons(EMBED),
        memory=Memory(EMBED),
    )
    scope = Scope(user="ada")
    first = agent.act("my card never arrived", scope)
    agent.feedback(first.id, correction="card_arrival")
    versions = {name: learner.version for name, learner in agent.all_learners.items()}
    turn = agent.begin("my card never arrived", scope, now=10.0, shadow=True)
    assert set(turn.calls) == {CONTEXT, PLAIN}  # a recalled example: the plain call is the control's
    assert "card_arrival" in str(turn.calls[CONTEXT].prompt) and "card_arrival" not in str(
        turn.calls[PLAIN].prompt
    )
    assert turn.calls[CONTEXT].choices == tuple(" " + label for label in sorted(LABELS))
    assert {name: learner.version for name, learner in agent.all_learners.items()} == versions
    outputs = {CONTEXT: Completion(" card_arrival", 5, 1), PLAIN: Completion(" change_pin", 5, 1)}
    decision = agent.finish(turn, outputs)
    interaction = agent.record(turn, decision, id="fixed-id", metadata={"endpoint": "chat"})
    assert (interaction.id, interaction.action, interaction.time) == ("fixed-id", "card_arrival", 10.0)
    assert interaction.metadata["plain_answer"] == "change_pin" and interaction.metadata["endpoint"] == "chat"
    assert len(log) == 1  # begin, finish and record log nothing: the host does
    with pytest.raises(InvalidInput, match="context"):
        agent.finish(turn, {PLAIN: outputs[PLAIN]})


def test_a_bare_request_needs_no_second_call_for_the_shadow() -> None:
    agent = Agent(_Echo(), LabelTask(LABELS), ExperienceLog(":memory:"), examples=ExampleBank(EMBED))
    turn = agent.begin("hello", Scope(), now=1.0, shadow=True)
    assert set(turn.calls) == {CONTEXT} and turn.plain_is_context
    decision = agent.finish(turn, {CONTEXT: Completion(" change_pin", 3, 1)})
    assert decision.plain is not None and decision.plain[0] == "change_pin"


def test_the_context_budget_drops_the_weakest_recalls_and_limits_pass_through() -> None:
    agent = Agent(_Echo(), ChatTask(), ExperienceLog(":memory:"), memory=Memory(EMBED), context_budget=8)
    for n in range(5):
        agent.memory.learn(_remember(f"ada fact number {n} is long enough to count", user="ada"))  # type: ignore[union-attr]
    observation = {"query": "facts?", "messages": [{"role": "user", "content": "facts? " * 50}]}
    turn = agent.begin(observation, Scope(user="ada"), now=1.0, limits=Limits(7, 0.5, ("END",), {"seed": 3}))
    call = turn.calls[CONTEXT]
    assert (call.max_tokens, call.temperature, call.stop, dict(call.extra)) == (7, 0.5, ("END",), {"seed": 3})
    added = _Echo().count_tokens(call.text()) - _Echo().count_tokens("facts? " * 50)
    assert added <= 8 + 20  # the learned context fits its budget (plus the heading's few words)
    assert len(turn.context.memory) < 4  # the weakest went; the client's long message was never cut


# ------------------------------------------------------------------------------------------ free text


def test_the_chat_task_writes_what_was_learned_into_the_system_message() -> None:
    context = Context(memory=[recalled("Ada lives in Paris", 0.9)], examples=[recalled("q => a", 0.5)])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where do I live?"}]
    out = ChatTask().prompt({"query": "Where do I live?", "messages": messages}, context)
    assert isinstance(out, tuple) and out[0]["role"] == "system"
    assert out[0]["content"].startswith("Be brief.") and "- Ada lives in Paris" in out[0]["content"]
    assert out[1] == messages[1]
    instructed = ChatTask(instruction="You answer for Acme.").prompt(
        {"query": "x", "messages": [messages[1]]}, Context()
    )
    assert instructed == ({"role": "system", "content": "You answer for Acme."}, messages[1])
    completion = ChatTask().prompt({"query": "x", "prompt": "def f():"}, context)
    assert isinstance(completion, str) and completion.endswith("\n\ndef f():")
    assert ChatTask().parse("  ", {}) is None and ChatTask().parse(" hi", {}) == " hi"
    with pytest.raises(InvalidInput, match="observation"):
        ChatTask().prompt("plain text", Context())


def test_a_chat_call_runs_on_a_model_without_chat_as_a_transcript() -> None:
    call = Call(({"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}), max_tokens=3)
    assert call.chat and call.text() == "S\nHi"
    assert transcript(call.prompt) == "S\n\nUser: Hi\nAssistant:"  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the gate


def test_the_gate_owns_the_candidates_features() -> None:
    evidence = Evidence(similarity=0.97, example_answer="port 8443", novelty=0.2)
    options = candidates(
        evidence, model=("I do not know", [-0.5]), plain=("no idea", [-1.0]), direct=("port 8443", 0.9)
    )
    assert [source_of(f) for _, f in options] == ["model", "plain", "direct"]
    direct = options[2][1]
    assert direct["combined_p"] == 0.9 and direct["novelty"] == 0.2 and direct["agrees_with_example"] == 1.0
    same = candidates(Evidence(), model=("x", []), plain=("x", []))
    assert len(same) == 1 and same[0][1]["agrees_with_plain"] == 1.0  # the plain answer said the same


def test_the_answer_objective_serves_a_recalled_answer_only_within_its_misapply_budget() -> None:
    gate = SuggestionGate(objective="answer", misapply_budget=0.1, window=50)
    near = candidates(
        Evidence(similarity=0.98, example_answer="port 8443", novelty=0.0),
        model=("I am not sure", [-0.1]),
        direct=("port 8443", 0.9),
    )
    far = candidates(
        Evidence(similarity=0.7, example_answer="port 8443", novelty=0.5),
        model=("I am not sure", [-0.1]),
        direct=("port 8443", 0.4),
    )
    assert gate.choose(near)[0] == "I am not sure"  # nothing known yet: no recalled answer clears the cut
    for _ in range(25):  # the near-duplicate's recalled answer is right; the look-alike's is not
        gate.learn(_gate_step(near, truth="port 8443"))
        gate.learn(_gate_step(far, truth="port 9000"))
    p_near, p_far = (gate.probability(options[1][1]) for options in (near, far))
    assert p_far < gate.answer_cut <= p_near
    assert gate.choose(near)[0] == "port 8443" and gate.choose(far)[0] == "I am not sure"
    assert SuggestionGate(objective="answer").choose([]) == (None, 0.0)
    with pytest.raises(InvalidInput, match="misapply_budget"):
        SuggestionGate(objective="answer", misapply_budget=1.5)


# ------------------------------------------------------------------------------------------ apps


def test_an_app_gets_the_learners_of_its_task() -> None:
    log = ExperienceLog(":memory:")
    label = build_agent(App("intents", "label", labels=LABELS), _Echo(), EMBED, log)
    assert {"OnlineSoftmax", "Prototypes", "EmbeddingSoftmax", "combiner", "harness"} <= set(
        label.all_learners
    )
    assert label.gate is None and isinstance(label.task, LabelTask)
    chat = build_agent(App("help", "chat", misapply_budget=0.02), _Echo(), EMBED, log)
    assert chat.gate is not None and chat.gate.objective == "answer" and chat.gate.misapply_budget == 0.02
    assert chat.plain and chat.combiner is not None and "OnlineSoftmax" not in chat.all_learners
    code = build_agent(App("code", "completion"), _Echo(), EMBED, log)
    assert code.gate is not None and code.gate.objective == "keep" and code.plain
    undeclared = build_agent(None, _Echo(), EMBED, log)
    assert set(undeclared.all_learners) == {"examples", "lessons", "memory"}
    assert build_agent(App("x", "label", labels=LABELS, harness=False), _Echo(), EMBED, log).harness is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "", "task": "chat"}, "name"),
        ({"name": "a b", "task": "chat"}, "name"),
        ({"name": "x", "task": "json"}, "task"),
        ({"name": "x", "task": "label", "labels": ("a",)}, "labels"),
        ({"name": "x", "task": "label", "labels": ("a", " ")}, "labels"),
        ({"name": "x", "task": "completion", "labels": ("a", "b")}, "labels"),
        ({"name": "x", "task": "chat", "misapply_budget": float("nan")}, "misapply_budget"),
    ],
)
def test_a_bad_app_is_refused_naming_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        App(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    with pytest.raises(InvalidInput, match="unknown"):
        App.from_dict({"name": "x", "task": "chat", "colour": "red"})


def test_apps_are_stored_per_tenant() -> None:
    store = AppStore(open_database(":memory:"), cache_seconds=0.0)
    app = App("intents", "label", labels=LABELS)
    assert store.put("acme", app) == (app, True) and store.put("acme", app) == (app, False)
    assert store.get("acme", "intents") == app and store.get("globex", "intents") is None
    changed = App("intents", "label", labels=(*LABELS, "top_up_failed"))
    assert store.put("acme", changed)[1] and store.get("acme", "intents") == changed
    assert store.delete("acme", "intents") and not store.delete("acme", "intents")
    assert store.list("acme") == []


# ------------------------------------------------------------------------------------------ the curve


def test_the_shadow_is_judged_by_its_own_answer() -> None:
    def step(action: str, plain: str | None, truth: str) -> Step:
        metadata = {"endpoint": "chat", **({"plain_answer": plain} if plain is not None else {})}
        i = Interaction(Scope(), "q", action, metadata=metadata)
        return Step(i, (Feedback.correction(i.id, truth),))

    assert scores(step("a", "a", "a")) == (1.0, 1.0)
    assert scores(step("a", "b", "a")) == (1.0, 0.0)
    assert scores(step("b", "a", "a")) == (0.0, 1.0)
    assert scores(step("a", None, "a")) == (1.0, None)  # no shadow asked
    curve = learning_curve([step("a", "b", "a"), step("a", "a", "a")], window=1)
    assert (curve["right_served"], curve["right_shadow"], len(curve["points"])) == (2.0, 1.0, 2)


# ------------------------------------------------------------------------------------------ helpers


class _Echo:
    """A deterministic text model for tests of the pipeline's bookkeeping: it answers the first choice (or
    "ok"), and counts a token per four characters."""

    name = "echo"

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: object = (),
        temperature: float = 0.0,
        choices: object = None,
    ) -> Completion:
        text = next(iter(choices)) if choices else "ok"  # type: ignore[call-overload]
        return Completion(text, self.count_tokens(prompt), 1)

    def count_tokens(self, text: str) -> int:
        return max(1, (len(text) + 3) // 4)


def _remember(text: str, *, user: str) -> Step:
    i = Interaction(Scope(user=user), "remember")
    return Step(i, (Feedback.outcome(i.id, {"remember": [{"text": text}]}),))


def _gate_step(options: list[tuple[object, dict[str, float]]], *, truth: str) -> Step:
    gate = [{"action": a, "features": f} for a, f in options]
    i = Interaction(Scope(), "q", options[0][0], metadata={"gate": gate})  # type: ignore[arg-type]
    return Step(i, (Feedback.correction(i.id, truth),))
