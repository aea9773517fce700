"""Online expert selection (ExpertMixture, Hedge), the embedding experts, the gate's objectives and the
near-duplicate repeat-error metric. Fast: hashing embeddings, synthetic streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelong.agents import Agent, LabelTask
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.eval.agents import near_duplicate_repeat_rate, run_agent
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import ExampleBank, OnlineSoftmax
from lifelong.learners.context.gate import GATE, SuggestionGate
from lifelong.learners.experts.mixture import EXPERTS, ExpertMixture, Hedge, logged_proposals
from lifelong.learners.experts.scoring import EmbeddingSoftmax, Prototypes
from lifelong.models import HashingEmbedder
from lifelong.models.base import Completion
from lifelong.state import digest

EMBED = HashingEmbedder()


def expert_step(proposals: dict[str, list[tuple[str, float]]], truth: str, mixture: ExpertMixture) -> Step:
    candidates = mixture.candidates(proposals)
    metadata = {
        EXPERTS: {
            "proposals": {k: [[a, s] for a, s in v] for k, v in proposals.items()},
            "candidates": [{"action": a, "features": f} for a, f in candidates],
        }
    }
    i = Interaction(Scope(), "q", action=mixture.choose(candidates)[0], metadata=metadata)
    return Step(i, (Feedback.correction(i.id, truth),))


def _context_stream(n: int, seed: int = 0) -> list[tuple[dict[str, list[tuple[str, float]]], str]]:
    """Two experts, each right 60% of the time: "a" on duplicates, "b" otherwise — so following either
    alone scores ~0.6 while the request feature says which one to follow (the combination ~1.0)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        truth = str(rng.integers(10))
        dup = bool(rng.random() < 0.5)
        wrong = str((int(truth) + 1 + rng.integers(9)) % 10)
        a_right = dup or rng.random() < 0.2
        b_right = not dup or rng.random() < 0.2
        proposals = {
            "a": [(truth if a_right else wrong, 0.7)],
            "b": [(truth if b_right else str((int(wrong) + 1) % 10), 0.7)],
            "dup": [(truth if a_right else wrong, 1.0 if dup else 0.0)],
        }
        out.append((proposals, truth))
    return out


def test_the_mixture_learns_per_request_which_expert_to_trust_and_beats_each_alone() -> None:
    mixture = ExpertMixture()
    right = {"mixture": [], "a": [], "b": []}
    for proposals, truth in _context_stream(600):
        step = expert_step(proposals, truth, mixture)
        right["mixture"].append(step.interaction.action == truth)
        right["a"].append(proposals["a"][0][0] == truth)
        right["b"].append(proposals["b"][0][0] == truth)
        mixture.learn(step)
    last = {k: float(np.mean(v[-200:])) for k, v in right.items()}
    assert last["mixture"] > max(last["a"], last["b"]) + 0.2, last


def test_hedge_follows_the_best_expert_within_its_regret_bound() -> None:
    rng = np.random.default_rng(1)
    hedge = Hedge()
    mixture = ExpertMixture()
    mistakes, best = 0, {"good": 0, "bad": 0, "worse": 0}
    n = 400
    for _ in range(n):
        truth = str(rng.integers(5))
        proposals = {
            name: [(truth if rng.random() < p else "x", 1.0)]
            for name, p in (("good", 0.8), ("bad", 0.5), ("worse", 0.2))
        }
        step = expert_step(proposals, truth, mixture)
        mistakes += hedge.choose(logged_proposals(step))[0] != truth
        for name, rows in proposals.items():
            best[name] += rows[0][0] != truth
        hedge.learn(step)
    bound = 2 * math.sqrt(n * math.log(3) / 2) + math.sqrt(math.log(3) / 8)
    assert mistakes - min(best.values()) <= bound
    assert max(hedge.weights(), key=hedge.weights().get) == "good"


def test_the_mixture_without_the_right_answer_among_candidates_learns_nothing_but_counts_it() -> None:
    mixture = ExpertMixture()
    step = expert_step({"a": [("x", 1.0)]}, "y", mixture)
    assert mixture.learn(step) and mixture.weights == {} and (mixture.seen, mixture.covered) == (1, 0)


def test_combiner_parameters_are_validated() -> None:
    for kw in ({"lr": 0.0}, {"l2": -1.0}, {"per_expert": 0}):
        with pytest.raises(InvalidInput):
            ExpertMixture(**kw)  # type: ignore[arg-type]


def _label_step(text: str, label: str, tenant: str = "t1") -> Step:
    i = Interaction(Scope(tenant), text)
    return Step(i, (Feedback.correction(i.id, label),))


@pytest.mark.parametrize("make", [lambda: Prototypes(EMBED), lambda: EmbeddingSoftmax(EMBED)])
def test_embedding_experts_learn_a_class_from_one_example_and_keep_tenants_apart(make) -> None:  # type: ignore[no-untyped-def]
    expert = make()
    assert expert.propose("card stolen", Scope("t1")) == []
    expert.learn(_label_step("my card was stolen yesterday", "stolen"))
    expert.learn(_label_step("how do I change my pin", "pin"))
    assert expert.predict("someone stole my card yesterday", Scope("t1")) == "stolen"
    assert expert.propose("someone stole my card", Scope("t2")) == []  # another tenant knows nothing
    expert.learn(_label_step("my card was stolen", "secret", tenant="t2"))
    assert {a for a, _ in expert.propose("card stolen", Scope("t1"), 5)} == {"stolen", "pin"}


def test_an_agent_with_experts_logs_their_proposals_and_beats_its_vote_on_a_stream() -> None:
    rng = np.random.default_rng(0)
    topics = {f"topic{t}": [f"w{t}_{j}" for j in range(6)] for t in range(8)}
    texts, labels = [], []
    for _ in range(400):
        label = str(rng.choice(list(topics)))
        words = list(rng.choice(topics[label], size=3)) + [f"noise{rng.integers(200)}" for _ in range(3)]
        texts.append(" ".join(words))
        labels.append(label)
    log = ExperienceLog(":memory:")
    agent = Agent(
        None,
        LabelTask(sorted(topics)),
        log,
        examples=ExampleBank(EMBED),
        experts=[OnlineSoftmax(), Prototypes(EMBED)],
        combiner=ExpertMixture(),
    )
    trace = run_agent(agent, IntentStream(texts, labels, scope=Scope("t")), seed=0)
    steps = list(log.replay())
    assert set(logged_proposals(steps[-1])) >= {"knn", "nearest", "OnlineSoftmax", "Prototypes"}
    knn = [logged_proposals(s)["knn"][0][0] == s.correction for s in steps[1:]]
    assert np.mean(trace.right[-200:]) >= np.mean(knn[-200:])
    fresh = Agent(
        None,
        LabelTask(sorted(topics)),
        ExperienceLog(":memory:"),
        examples=ExampleBank(EMBED),
        experts=[OnlineSoftmax(), Prototypes(EMBED)],
        combiner=ExpertMixture(),
    )
    for name, learner in fresh.all_learners.items():  # the log rebuilds every learner, combiner included
        learner.learn_many(steps)
        assert digest(learner.state_dict()) == digest(agent.all_learners[name].state_dict()), name


def test_expert_names_must_not_clash_with_the_agents_own() -> None:
    with pytest.raises(InvalidInput, match="expert names"):
        Agent(
            None,
            LabelTask(["a"]),
            ExperienceLog(":memory:"),
            examples=ExampleBank(EMBED),
            experts=[Prototypes(EMBED), Prototypes(EMBED)],
        )


# ---------------------------------------------------------------- the gate's objectives


def gate_step(features: dict[str, float], action: str, truth: str) -> Step:
    i = Interaction(Scope(), "q", action=action, metadata={GATE: [{"action": action, "features": features}]})
    return Step(i, (Feedback.correction(i.id, truth),))


def _gate_stream(gate: SuggestionGate, n: int = 600) -> None:
    """Candidates with a confidence feature c: accepted with probability 0.02 + 0.4 c^2."""
    rng = np.random.default_rng(3)
    for _ in range(n):
        c = float(rng.random())
        accepted = rng.random() < 0.02 + 0.4 * c * c
        gate.learn(gate_step({"c": c}, "line", "line" if accepted else "other"))


def test_keep_loses_little_accepted_work_where_reward_silences_more() -> None:
    keep, reward = SuggestionGate(objective="keep"), SuggestionGate(objective="reward")
    _gate_stream(keep)
    _gate_stream(reward)
    grid = np.linspace(0, 1, 101)
    accepted_mass = 0.02 + 0.4 * grid**2  # where accepted suggestions come from
    kept_keep = sum(
        m for c, m in zip(grid, accepted_mass, strict=True) if keep.choose([("x", {"c": c})])[0] is not None
    )
    kept_reward = sum(
        m for c, m in zip(grid, accepted_mass, strict=True) if reward.choose([("x", {"c": c})])[0] is not None
    )
    assert kept_keep / accepted_mass.sum() >= 0.9 > kept_reward / accepted_mass.sum()
    assert 0 < keep.cut < reward.threshold  # it still stays silent on the hopeless ones


def test_the_chars_objective_prefers_long_likely_lines_and_is_silent_on_unlikely_short_ones() -> None:
    gate = SuggestionGate(objective="chars", reject_chars=4.0)
    assert gate.value("x" * 40, 0.2) > 0 > gate.value("x", 0.2)
    assert (
        gate.utility("abc", "abc") == 3.0
        and gate.utility("abd", "abc") == -4.0
        and gate.utility(None, "a") == 0.0
    )


def test_gate_objective_is_validated() -> None:
    with pytest.raises(InvalidInput, match="objective"):
        SuggestionGate(objective="silence")  # type: ignore[arg-type]


# ---------------------------------------------------------------- repeat errors on near-duplicates


def test_near_duplicate_repeat_rate_counts_only_re_typed_inputs_after_a_mistake() -> None:
    v = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [1.0, 0.01]])
    # request 0 wrong; 1 is its near-duplicate and right; 2 unrelated; 3 a near-duplicate and wrong
    assert near_duplicate_repeat_rate(v, [False, True, False, False]) == pytest.approx(0.5)
    assert math.isnan(near_duplicate_repeat_rate(v, [True, True, True, True]))


class TwoMinds:
    """A stand-in model that completes differently with and without recalled snippets."""

    name = "two-minds"

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(self, prompt: str, **kw: object) -> Completion:
        self.calls += 1
        return Completion(
            "plain_line()" if prompt.startswith("# file:") else "context_line()", 5, 3, token_logprobs=(-0.1,)
        )


def test_the_plain_model_answer_is_offered_to_the_gate_and_logged() -> None:
    from lifelong.agents import CodeCompletionTask
    from lifelong.agents.agent import PLAIN_ANSWER

    model = TwoMinds()
    log = ExperienceLog(":memory:")
    agent = Agent(
        model, CodeCompletionTask(), log, examples=ExampleBank(EMBED), gate=SuggestionGate(), plain=True
    )
    observation = {"path": "a.py", "context": "import os\n", "indent": "", "query": "import os / 0>"}
    first = agent.act(observation, Scope("t", user="u"))
    assert model.calls == 1  # nothing recalled yet: the plain prompt is the prompt
    agent.feedback(first.id, correction="plain_line()")
    second = agent.act(observation, Scope("t", user="u"))
    logged = log.get(second.id).interaction
    assert model.calls == 3 and second.model_calls == 2
    assert logged.metadata[PLAIN_ANSWER] == "plain_line()"
    assert {c["action"] for c in logged.metadata[GATE]} >= {"context_line()", "plain_line()"}


def duel_step(model_right: bool, plain_right: bool) -> Step:
    rows = [
        {"action": "m()", "features": {"model": 1.0, "p_mean": 0.5}},
        {"action": "p()", "features": {"plain": 1.0, "p_mean": 0.5}},
    ]
    truth = "m()" if model_right else "p()" if plain_right else "other()"
    i = Interaction(Scope(), "q", action="p()", metadata={GATE: rows})
    return Step(i, (Feedback.correction(i.id, truth),))


def test_the_plain_answer_is_served_until_another_source_beats_it_with_confidence() -> None:
    candidates = [("m()", {"model": 1.0, "p_mean": 0.5}), ("p()", {"plain": 1.0, "p_mean": 0.5})]
    gate = SuggestionGate()
    assert gate.choose(candidates)[0] == "p()"  # the frozen model's answer first
    rng = np.random.default_rng(0)
    for _ in range(15):  # a lucky start for the other source is not enough evidence
        gate.learn(duel_step(model_right=True, plain_right=False))
    assert gate.trusted_source() == "plain"
    for _ in range(40):
        r = rng.random()
        gate.learn(duel_step(model_right=r < 0.5, plain_right=0.5 <= r < 0.6))
    assert gate.trusted_source() == "model" and gate.choose(candidates)[0] == "m()"
    worse = SuggestionGate()
    for _ in range(100):
        r = rng.random()
        worse.learn(duel_step(model_right=r < 0.2, plain_right=0.2 <= r < 0.5))
    assert worse.trusted_source() == "plain" and worse.choose(candidates)[0] == "p()"
    copy = SuggestionGate()
    copy.load_state_dict(gate.state_dict())
    assert copy.trusted_source() == "model"


def test_an_experts_trace_is_read_from_the_log_exactly() -> None:
    from lifelong.eval.agents import logged_steps, trace_of_answers

    texts = [f"w{n % 5} v{n % 3} z{n}" for n in range(60)]
    labels = [f"l{n % 5}" for n in range(60)]
    log = ExperienceLog(":memory:")
    agent = Agent(
        None,
        LabelTask(sorted(set(labels))),
        log,
        examples=ExampleBank(EMBED),
        experts=[Prototypes(EMBED)],
        combiner=ExpertMixture(),
    )
    live = run_agent(agent, IntentStream(texts, labels, scope=Scope("t")), seed=0)
    steps = logged_steps(log)

    def served(step: Step) -> object:
        return step.interaction.action

    again = trace_of_answers(steps, served, live, suggestions=False)
    assert again.right == live.right and again.pattern == live.pattern  # the log tells the same story
    alone = trace_of_answers(
        steps, lambda s: (logged_proposals(s).get("Prototypes") or [(None, 0)])[0][0], live, suggestions=False
    )
    assert len(alone) == len(live) and alone.summary()["right_rate"] > 0.5
