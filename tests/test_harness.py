"""The harness search: background replay scoring, gated promotion, live watch and rollback, no leaks."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

from lifelong.agents import Agent, LabelTask
from lifelong.agents.harness import HarnessConfig, HarnessSearch
from lifelong.envs.intent_stream import IntentStream
from lifelong.errors import InvalidInput
from lifelong.eval.agents import run_agent
from lifelong.experience import ExperienceLog, Scope
from lifelong.learners import ExampleBank
from lifelong.models import HashingEmbedder
from lifelong.models.base import Completion
from lifelong.state import VersionStore

EMBED = HashingEmbedder()


class DemoReader:
    """A stand-in for a base model that copies a demonstration's label: the first one in the prompt
    (the farthest, with the nearest last), or — in ``mode="sabotage"`` — a wrong label whenever the
    prompt has a single demonstration and the last one otherwise."""

    name = "demo-reader"

    def __init__(self) -> None:
        self.mode = "first"
        self.prompts: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        temperature: float = 0.0,
        choices: Sequence[str] | None = None,
    ) -> Completion:
        self.prompts.append(prompt)
        labels = re.findall(r"^Intent: (\S+)$", prompt, flags=re.M)
        assert choices is not None
        if not labels:
            text = choices[0]
        elif self.mode == "sabotage" and len(labels) == 1:
            text = next(c for c in choices if c != " " + labels[0])
        elif self.mode == "sabotage":
            text = " " + labels[-1]
        else:
            text = " " + labels[0]
        return Completion(text, 10, 1)


def topic_stream(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    topics = {f"t{t}": [f"w{t}x{j}" for j in range(5)] for t in range(6)}
    texts, labels = [], []
    for _ in range(n):
        label = str(rng.choice(sorted(topics)))
        texts.append(" ".join([*rng.choice(topics[label], size=3), f"n{rng.integers(99)}"]))
        labels.append(label)
    return texts, labels


def agent_with(search: HarnessSearch, model: DemoReader, labels: list[str]) -> Agent:
    return Agent(
        model,
        LabelTask(sorted(set(labels))),
        ExperienceLog(":memory:"),
        examples=ExampleBank(EMBED),
        harness=search,
    )


def test_a_better_configuration_is_found_by_replay_promoted_behind_the_gate_and_kept() -> None:
    texts, labels = topic_stream(160)
    store = VersionStore(":memory:")
    search = HarnessSearch(
        HarnessConfig(examples=6),
        candidates=[HarnessConfig(examples=1)],
        every=40,
        replay=16,
        budget=2,
        watch=20,
        store=store,
    )
    model = DemoReader()
    agent = agent_with(search, model, labels)
    trace = run_agent(agent, IntentStream(texts, labels), seed=0)
    first = search.rounds[0]
    assert (
        first["promoted"] == "ex1-le2-me2" and first["scores"]["ex1-le2-me2"] > first["scores"]["ex6-le2-me2"]
    )
    assert first["calls"] == 2 * 16 + 20 and search.calls >= first["calls"]  # the stated cost in model calls
    assert first["watch"]["promoted"] >= first["watch"]["previous"] and first["rolled_back"] is False
    assert agent.config == HarnessConfig(examples=1)
    assert store.promoted("HarnessSearch") is not None
    # the work was spread over the stream: never more than `budget` extra calls after one feedback
    assert len(model.prompts) <= len(trace) + 2 * len(trace)
    assert np.mean(trace.right[-40:]) > np.mean(trace.right[:40])


def test_a_promotion_that_loses_on_the_live_stream_is_rolled_back() -> None:
    texts, labels = topic_stream(200, seed=1)
    store = VersionStore(":memory:")
    search = HarnessSearch(
        HarnessConfig(examples=6),
        candidates=[HarnessConfig(examples=1)],
        every=40,
        replay=16,
        budget=2,
        watch=20,
        store=store,
    )
    model = DemoReader()
    agent = agent_with(search, model, labels)
    env = IntentStream(texts, labels)
    from lifelong.eval.agents import AgentRun

    run = AgentRun(agent, env, seed=0)
    while search.phase != "watch":
        run.step()
    model.mode = "sabotage"  # the world changes: one demonstration now misleads the model
    while search.phase == "watch":
        run.step()
    record = search.rounds[0]
    assert record["rolled_back"] is True and record["watch"]["promoted"] < record["watch"]["previous"]
    assert agent.config == HarnessConfig(examples=6)
    assert [h["action"] for h in store.history("HarnessSearch")][-1] == "rollback"


def test_a_replay_recalls_only_what_was_learned_before_the_request() -> None:
    model = DemoReader()
    agent = agent_with(HarnessSearch(every=10**6), model, ["a", "b"])
    first = agent.act("alpha beta gamma", Scope("t"), now=100.0)
    agent.feedback(first.id, correction="a", now=100.5)
    second = agent.act("alpha beta gamma", Scope("t"), now=101.0)
    agent.feedback(second.id, correction="a", now=101.5)
    logged = agent.log.get(second.id).interaction
    model.prompts.clear()
    agent.model_answer(agent.log.get(first.id).interaction, HarnessConfig(examples=3))
    assert "Intent:" not in model.prompts[-1].rsplit("Query:", 1)[0]  # nothing was known before the first
    agent.model_answer(logged, HarnessConfig(examples=3))
    assert model.prompts[-1].count("Intent: a") == 1  # the first request's example, not its own


def test_a_frozen_search_makes_no_calls_and_configs_are_validated() -> None:
    search = HarnessSearch(every=1, replay=1)
    search.freeze()
    assert search.tick(None) == 0  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        HarnessConfig(examples=-1)
    with pytest.raises(InvalidInput):
        HarnessSearch(every=0)


def test_the_search_state_round_trips_mid_round() -> None:
    texts, labels = topic_stream(60)
    search = HarnessSearch(
        HarnessConfig(examples=6), candidates=[HarnessConfig(examples=1)], every=20, replay=10, budget=1
    )
    agent = agent_with(search, DemoReader(), labels)
    run_agent(agent, IntentStream(texts, labels, limit=30), seed=0)
    assert search.phase == "search"
    copy = HarnessSearch(
        HarnessConfig(examples=6), candidates=[HarnessConfig(examples=1)], every=20, replay=10, budget=1
    )
    copy.load_state_dict(search.state_dict())
    assert copy.state_dict() == search.state_dict()


def test_forgetting_a_user_drops_their_requests_from_the_search() -> None:
    texts, labels = topic_stream(40)
    search = HarnessSearch(
        HarnessConfig(examples=6), candidates=[HarnessConfig(examples=1)], every=20, replay=10, budget=1
    )
    agent = agent_with(search, DemoReader(), labels)
    run_agent(agent, IntentStream(texts, labels, limit=25, scope=Scope("t", user="ada")), seed=0)
    assert search.phase == "search" and search._pool
    report = agent.forget_user("ada", tenant="t")
    assert "harness" in report.rows_dropped
    assert not search._pool and not search._replayed and search.phase == "idle"
    assert "ada" not in str(search.state_dict()["state"]["pool"]) and search.rounds[-1]["aborted"]
