"""OnlineSoftmax and river learning from text, and the intent stream (the contract: test_contract.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from lifelong.envs.base import feedback_from
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners import Learner, OnlineSoftmax
from lifelong.utils.text import HashedText

WORDS = {
    "card_lost": "card stolen lost missing",
    "top_up": "top up failed money",
    "pin": "pin blocked code",
}


def synthetic_steps(n: int, seed: int = 0) -> list[Step]:
    rng = np.random.default_rng(seed)
    labels = list(WORDS)
    steps = []
    for t in range(n):
        label = labels[rng.integers(len(labels))]
        words = [*rng.choice(WORDS[label].split(), size=2).tolist(), "please", "help"]
        i = Interaction(Scope(user=f"u{t % 5}"), " ".join(words), None, time=1000.0 + t)
        steps.append(Step(i, (Feedback.correction(i.id, label, time=1000.5 + t),)))
    return steps


def river_learner() -> Learner:
    from river import feature_extraction, naive_bayes

    from lifelong.interop.river import RiverLearner

    return RiverLearner(feature_extraction.BagOfWords() | naive_bayes.MultinomialNB(), allow_pickle=True)


FACTORIES: dict[str, Callable[[], Learner]] = {
    "OnlineSoftmax": OnlineSoftmax,
    "river": river_learner,
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[[], Learner]:
    return FACTORIES[request.param]


def test_learning_beats_chance_and_is_visible_at_next_predict(make: Callable[[], Learner]) -> None:
    learner = make()
    steps = synthetic_steps(200)
    hits = []
    for step in steps:
        hits.append(learner.predict(step.interaction.observation) == step.correction)  # type: ignore[attr-defined]
        learner.learn(step)
    assert np.mean(hits[-100:]) > 0.9  # three well-separated intents
    # a correction is visible at the very next prediction
    odd = Interaction(Scope(), "zebra crossing")
    learner.learn(Step(odd, (Feedback.correction(odd.id, "zebra"),)))
    for _ in range(5):
        if learner.predict("zebra crossing") == "zebra":  # type: ignore[attr-defined]
            break
        learner.learn(Step(odd, (Feedback.correction(odd.id, "zebra"),)))
    assert learner.predict("zebra crossing") == "zebra"  # type: ignore[attr-defined]


def test_learn_time_is_bounded() -> None:
    """The cost of one update does not grow with the number of updates seen."""
    learner = OnlineSoftmax()
    steps = synthetic_steps(3000)
    durations = []
    for step in steps:
        start = time.perf_counter()
        learner.learn(step)
        durations.append(time.perf_counter() - start)
    early, late = np.median(durations[100:600]), np.median(durations[-500:])
    assert late < 3 * early


def test_softmax_learns_from_reject_without_correction() -> None:
    learner = OnlineSoftmax()
    learner.learn_many(synthetic_steps(60))
    text = "card stolen please help"
    assert learner.predict(text) == "card_lost"
    for _ in range(30):
        i = Interaction(Scope(), text, learner.predict(text))
        if i.action != "card_lost":
            break
        learner.learn(Step(i, (Feedback.reject(i.id),)))
    assert learner.predict(text) != "card_lost"


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInput):
        OnlineSoftmax(learning_rate=0)
    with pytest.raises(InvalidInput):
        HashedText(1000)
    with pytest.raises(InvalidInput):
        OnlineSoftmax().learn("not a step")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        OnlineSoftmax().predict(42)
    with pytest.raises(InvalidInput):
        OnlineSoftmax().load_state_dict({"learner": "Other", "version": 0, "state": {}})


def test_intent_stream_feedback() -> None:
    env = IntentStream(["a", "b", "c"], ["x", "y", "z"])
    obs, _ = env.reset(seed=3)
    seen = []
    done = False
    while not done:
        _, reward, done, _, info = env.step("x")
        i = Interaction(env.scope, obs)
        fb = feedback_from(i.id, reward, info)
        assert [f.kind.value for f in fb] == ["reward", "correction"]
        seen.append(info["correct_action"])
        obs = _
    assert sorted(seen) == ["x", "y", "z"]
    with pytest.raises(InvalidInput):
        env.step("x")
    with pytest.raises(InvalidInput):
        IntentStream([], [])


def test_intent_stream_reset_without_seed_continues_the_generator() -> None:
    a, b = IntentStream(list("abcdefgh"), list("abcdefgh")), IntentStream(list("abcdefgh"), list("abcdefgh"))
    assert a.reset(seed=5)[0] == b.reset(seed=5)[0]
    assert [a.reset()[0] for _ in range(5)] == [b.reset()[0] for _ in range(5)]  # reproducible passes
