"""Sleep-time consolidation on a tiny randomly initialised Gemma 3 (byte tokenizer): corrections become
supervised updates of the adapter in idle time, never served before the gate promotes them; per-user
fast weights over the shared adapter; provenance, erasure and the background scheduler."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lifelong.agents import Agent, CodeCompletionTask  # noqa: E402
from lifelong.errors import InvalidInput  # noqa: E402
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step  # noqa: E402
from lifelong.learners.weights.consolidation import Consolidation, SleepScheduler  # noqa: E402
from lifelong.learners.weights.policy_gradient import SAMPLE, Probe  # noqa: E402
from lifelong.models.trainable import TrainableModel  # noqa: E402
from lifelong.state.erasure import forget  # noqa: E402

TEXTS = ["The quick brown fox jumps over the lazy dog. " * 3, "import os\nprint(os.getcwd())\n" * 3]


def learner_of(**kw: object) -> Consolidation:
    options: dict[str, object] = {"update_every": 4, "batch": 4, "lr": 1e-2, "replay": 0.0}
    options.update(kw)
    return Consolidation(TrainableModel.tiny(seed=0, threads=1), **options)  # type: ignore[arg-type]


def corrected(prompt: str, right: str, user: str = "dev", t: int = 0, tenant: str = "t") -> Step:
    """A request served with ``prompt`` whose suggestion was rejected and corrected to ``right``."""
    interaction = Interaction(
        Scope(tenant, user=user),
        {"prompt": prompt},
        "wrong",
        time=1.7e9 + t,
        metadata={SAMPLE: {"prompt": prompt, "completion_ids": [], "logprobs": [], "temperature": 0.7}},
    )
    return Step(interaction, (Feedback.reject(interaction.id), Feedback.correction(interaction.id, right)))


def target_logprob(learner: Consolidation, prompt: str, right: str) -> float:
    model = learner.model
    with torch.no_grad():
        scored = model.score(model.encode_prompt(prompt), model.tokenizer.encode(right + "\n"), 1.0)
    return float(scored.logprobs.mean())


def test_learning_only_queues_and_sleep_consolidates_the_corrections() -> None:
    learner = learner_of()
    before = learner.model.adapter_weights()
    lp0 = target_logprob(learner, "x = ", "42")
    for t in range(4):
        started = time.perf_counter()
        assert learner.learn(corrected("x = ", "42", t=t)) is False
        assert time.perf_counter() - started < 0.05  # no gradient on the request's path
    assert learner.queued == 4 and learner.version == 0
    assert all(np.array_equal(before[k], v) for k, v in learner.model.adapter_weights().items())
    for _ in range(6):
        report = learner.sleep(steps=1)
        for t in range(4):
            learner.learn(corrected("x = ", "42", t=10 + 4 * _ + t))
    assert learner.version >= 1 and report.steps == 1
    assert target_logprob(learner, "x = ", "42") > lp0 + 1.0  # the model now knows the line
    ids = learner.model.encode_prompt("x = ")
    greedy, _ = learner.model.line_match(ids, learner.model.tokenizer.encode("42\n"))
    assert greedy


def test_the_candidate_is_never_served_before_the_gate() -> None:
    learner = learner_of(update_every=8, batch=2)
    served = learner.model.adapter_weights()
    for t in range(4):
        learner.learn(corrected("y = ", "[]", t=t))
    learner.sleep(steps=1)  # 2 pairs: a candidate exists, not yet gated
    assert learner._candidate is not None and learner.version == 0
    now = learner.model.adapter_weights()
    assert all(np.array_equal(served[k], now[k]) for k in served), "a request would see the candidate"
    learner.sleep(steps=1)
    assert learner.version == 0  # 4 pairs < update_every
    for t in range(4, 8):
        learner.learn(corrected("y = ", "[]", t=t))
    learner.sleep(steps=2)
    assert learner.version == 1 and learner._candidate is None
    assert any(not np.array_equal(served[k], v) for k, v in learner.model.adapter_weights().items())


def test_a_failing_probe_rolls_the_candidate_and_its_moments_back() -> None:
    probe = Probe([("x = ", "42")], TEXTS, tolerance=-1.0)  # demands a reward gain no policy can make
    learner = learner_of(probe=probe)
    base = learner.model.adapter_weights()
    for t in range(8):
        learner.learn(corrected("x = ", "42", t=t))
    learner.sleep(steps=4)
    assert learner.version == 0 and learner.history and not any(u.promoted for u in learner.history)
    assert all(np.array_equal(base[k], v) for k, v in learner.model.adapter_weights().items())
    assert not learner.optimizer.state  # the moments of the abandoned candidate went with it


def test_promoted_versions_link_to_the_interactions_they_trained_on() -> None:
    learner = learner_of()
    steps = [corrected("x = ", "42", t=t) for t in range(4)]
    for step in steps:
        learner.learn(step)
    learner.sleep(steps=1)
    links = learner.provenance.drain()
    assert {link.item for link in links} == {"adapter:v1"}
    assert {link.interaction_id for link in links} == {s.interaction.id for s in steps}


def test_steps_without_a_right_line_or_a_prompt_are_skipped() -> None:
    learner = learner_of()
    interaction = Interaction(Scope("t", user="dev"), {"prompt": "x"}, "a")
    assert learner.learn(Step(interaction, (Feedback.reject(interaction.id),))) is False  # no right line
    no_prompt = Interaction(Scope("t", user="dev"), {"prompt": "x"}, "a")
    assert learner.learn(Step(no_prompt, (Feedback.correction(no_prompt.id, "b"),))) is False
    assert learner.queued == 0
    with_prompt = learner_of(prompt=lambda observation: str(observation["prompt"]))  # type: ignore[index]
    with_prompt.learn(Step(no_prompt, (Feedback.correction(no_prompt.id, "b"),)))
    assert with_prompt.queued == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch", 0),
        ("replay", -1.0),
        ("policy_weight", -0.5),
        ("steps_per_sleep", 0),
        ("max_prompt_tokens", 2),
    ],
)
def test_bad_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        learner_of(**{field: value})


def test_per_user_fast_weights_learn_each_users_spelling_over_the_shared_adapter() -> None:
    learner = learner_of(user_rank=4, user_lr=1e-1, user_update_every=4, lr=1e-3, batch=2)
    for t in range(48):
        learner.learn(corrected("n = ", "1", user="ada", t=2 * t))
        learner.learn(corrected("n = ", "1.0", user="bob", t=2 * t + 1))
    while learner.queued:
        learner.sleep(steps=8)
    assert set(learner.users) == {"ada", "bob"}
    shared = learner.model.adapter_weights()
    learner.serve(Scope("t", user="ada"))
    ada = target_logprob(learner, "n = ", "1") - target_logprob(learner, "n = ", "1.0")
    learner.serve(Scope("t", user="bob"))
    bob = target_logprob(learner, "n = ", "1.0") - target_logprob(learner, "n = ", "1")
    learner.serve(Scope("t", user="cy"))  # never seen: the shared adapter alone
    neutral = target_logprob(learner, "n = ", "1") - target_logprob(learner, "n = ", "1.0")
    # Each user's served model prefers that user's spelling, by more than the shared adapter alone does
    # (which leans to one of the two: it learned both).
    assert ada > 0 and bob > 0 and ada > neutral + 0.2 and bob > -neutral + 0.2, (ada, bob, neutral)
    assert all(np.array_equal(shared[k], v) for k, v in learner.model.adapter_weights().items())
    assert 0 < learner.user_bytes("ada") < 100_000
    links = {link.item for link in learner.provenance.drain()}
    assert any(item.startswith("user-adapter:ada:") for item in links)
    assert learner.forget_user("ada", "another-tenant") is False
    assert learner.forget_user("ada", "t") is True and "ada" not in learner.users
    assert "ada" not in str(learner.state_dict()["state"]["users"])


def sampled(prompt: str, right: str, user: str, t: int) -> Step:
    """A sampled suggestion (a policy-gradient sample too), rejected and corrected to ``right``."""
    meta = {"prompt": prompt, "completion_ids": [104, 105], "logprobs": [-1.0, -2.0], "temperature": 0.7}
    interaction = Interaction(
        Scope("t", user=user), {"prompt": prompt}, "hi", time=1.7e9 + t, metadata={SAMPLE: meta}
    )
    return Step(interaction, (Feedback.reject(interaction.id), Feedback.correction(interaction.id, right)))


def test_forget_user_leaves_nothing_of_the_user_in_any_per_user_field() -> None:
    """Found by a probe: ``_user_versions`` kept the forgotten user's id (and ``_learned`` of the base
    class their interaction ids)."""
    learner = learner_of(user_rank=2, user_update_every=1, batch=2, update_every=2, policy_weight=0.5)
    steps = [sampled("n = ", "1", "ada", 0), sampled("n = ", "2", "ada", 1), sampled("n = ", "3", "bob", 2)]
    for step in steps:
        learner.learn(step)
    while learner.queued:
        learner.sleep(steps=8)
    learner.learn(sampled("m = ", "4", "ada", 3))  # and one still queued
    learner.serve(Scope("t", user="ada"))
    ada = ["'ada'", *(s.interaction.id for s in steps[:2])]
    ada.append(learner.queue[-1].interaction_id)

    def holding(needles: list[str]) -> list[str]:
        skip = {"model", "optimizer", "_user_optimizer", "_served_optimizer", "provenance", "probe"}
        return sorted(
            k for k, v in vars(learner).items() if k not in skip and any(n in repr(v) for n in needles)
        )

    assert {"users", "_user_versions", "_learned"} <= set(holding(ada))  # the check can fail
    assert learner.forget_user("ada", "t") is True
    assert holding(ada) == [], holding(ada)
    assert not learner._user_optimizer.state  # no user's moments left in the optimizer either
    assert set(learner.users) == {"bob"} and learner._user_versions == {"bob": 1}
    assert steps[2].interaction.id in learner._learned  # bob's stay
    assert learner.forget_user("ada", "t") is False


def test_erasure_rebuilds_the_adapter_from_the_remaining_log() -> None:
    log = ExperienceLog(":memory:")
    learner = learner_of()
    for t in range(8):
        step = corrected("x = ", "42" if t % 2 else "7", user="ada" if t % 2 else "bob", t=t)
        log.append_many([step.interaction, *step.feedback])
        learner.learn(step)
    learner.sleep(steps=4)
    assert learner.version == 2

    def fresh() -> Consolidation:
        return learner_of()

    report = forget(Scope("t", user="ada"), log=log, learners={"consolidation": learner},
                    rebuild_with={"consolidation": fresh})  # fmt: skip
    rebuilt = report.rebuilt["consolidation"]
    assert isinstance(rebuilt, Consolidation) and rebuilt.queued == 0 and rebuilt.version == 1
    links = rebuilt.provenance.drain()
    assert links and all(link.user == "bob" for link in links)
    clean = learner_of()
    for t in range(0, 8, 2):
        clean.learn(corrected("x = ", "7", user="bob", t=t))
    clean.sleep(steps=4)
    a, b = rebuilt.model.adapter_weights(), clean.model.adapter_weights()
    assert all(np.allclose(a[k], b[k]) for k in a), "the rebuild still holds what ada taught"


def test_the_scheduler_consolidates_in_idle_time_and_a_request_waits_at_most_one_step() -> None:
    learner = learner_of(update_every=4)
    agent_lock_waits: list[float] = []
    with SleepScheduler(learner, idle_after=0.01) as scheduler:
        for t in range(12):
            learner.learn(corrected("x = ", "42", t=t))
        deadline = time.monotonic() + 30
        while learner.queued and time.monotonic() < deadline:
            started = time.perf_counter()
            with scheduler.busy():  # a request: the model is ours while we hold it
                agent_lock_waits.append(time.perf_counter() - started)
                served = learner.adapters[learner.version]
                now = learner.model.adapter_weights()
                assert all(np.array_equal(served[k], now[k]) for k in served)
            time.sleep(0.02)
    assert not scheduler.errors and learner.queued == 0 and learner.version >= 1
    one_step = max(r.seconds for r in scheduler.reports)
    assert max(agent_lock_waits) <= one_step + 0.25
    assert not any(t.name == "lifelong-sleep" for t in threading.enumerate())


def test_an_agent_serves_each_user_their_fast_weights_and_learns_between_requests() -> None:
    model = TrainableModel.tiny(seed=1, threads=1)
    learner = Consolidation(
        model, user_rank=2, update_every=2, user_update_every=1, batch=2, lr=1e-2, temperature=1.0
    )
    task = CodeCompletionTask(context_lines=4)
    task.max_tokens = 4
    log = ExperienceLog(":memory:")
    agent = Agent(model, task, log, policy=learner)
    seen: list[tuple[str | None, bool]] = []
    complete = model.complete

    def recording(*args: object, **kw: object) -> object:  # which fast weights answer each request
        user = learner._serving_user
        wanted = learner.users.get(user) if user else None
        now = model.user_weights()
        same = all(np.array_equal(now[k], (wanted or model._user_zero)[k]) for k in now)
        seen.append((user, same))
        return complete(*args, **kw)  # type: ignore[arg-type]

    model.complete = recording  # type: ignore[method-assign]
    for t in range(6):
        user = "ada" if t % 2 else "bob"
        response = agent.act(
            {"path": "a.py", "context": "x = 1", "indent": "", "query": "x = 1"}, Scope("t", user=user)
        )
        agent.feedback(response.id, accept=False, correction="y = 2")
        learner.sleep(steps=2)
    assert seen == [("bob", True), ("ada", True)] * 3
    assert set(learner.users) == {"ada", "bob"}
    assert learner.version >= 1 and len(log) == 6
