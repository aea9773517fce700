"""Protocols on small synthetic intent streams: learning must show against the frozen control."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lifelong.envs.base import Env, StepResult
from lifelong.envs.intent_stream import IntentStream, accuracy_probe
from lifelong.errors import InvalidInput
from lifelong.eval import (
    Result,
    adaptation_gap,
    cold_start,
    continual_matrix,
    continual_scores,
    cumulative_regret,
    prequential,
)
from lifelong.experience import ExperienceLog, Scope
from lifelong.learners import Learner, OnlineSoftmax
from lifelong.state import digest

VOCAB = {
    "card_lost": ["stolen", "lost", "missing", "thief"],
    "top_up": ["topup", "recharge", "funds", "deposit"],
    "pin": ["pin", "code", "blocked", "locked"],
    "refund": ["refund", "return", "money", "back"],
    "fx": ["exchange", "currency", "rate", "euro"],
    "atm": ["atm", "cash", "machine", "withdraw"],
}


def make_data(labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts, ys = [], []
    for _ in range(n):
        label = labels[rng.integers(len(labels))]
        words = [*rng.choice(VOCAB[label], size=2).tolist(), "please", "help", "my", "account"]
        texts.append(" ".join(rng.permutation(words).tolist()))
        ys.append(label)
    return texts, ys


LABELS = list(VOCAB)[:3]
TEXTS, TRUTH = make_data(LABELS, 300, seed=0)


def stream(seed: int) -> IntentStream:
    return IntentStream(TEXTS, TRUTH, scope=Scope(tenant="t", user="u", session=f"s{seed}"))


def test_prequential_learner_beats_frozen_control() -> None:
    built: list[Learner] = []

    def make(seed: int) -> Learner:
        built.append(OnlineSoftmax())
        return built[-1]

    result = prequential(make, stream, [0, 1, 2], warmup=10, window=50, progress=False)
    assert set(result.curves) >= {"learner", "frozen", "learner regret", "frozen regret"}
    assert len(result.curves["learner"].per_seed) == 3
    assert result.metrics["final_window"].mean > 0.9
    assert result.metrics["delta.final_window"].mean > 0.2  # the control stopped after 10 steps
    assert all(learner.version <= 10 for learner in built[1::2])  # controls froze after the warm-up
    assert all(learner.version >= 250 for learner in built[0::2])
    assert result.metrics["regret"].mean < result.metrics["frozen.regret"].mean
    assert result.metrics["slope_per_1k"].mean > 0


def test_prequential_logs_everything_and_replay_rebuilds_the_state(tmp_path: Path) -> None:
    log = ExperienceLog(tmp_path / "log.db")
    learners: dict[int, Learner] = {}

    def make(seed: int) -> Learner:
        return learners.setdefault(seed, OnlineSoftmax())

    prequential(make, stream, [0, 1], warmup=None, window=50, log=log, progress=False)
    assert log.stats().interactions == 600 and log.stats().feedback == 1200
    for seed in (0, 1):
        rebuilt = OnlineSoftmax()
        rebuilt.learn_many(log.replay(Scope(tenant="t", user="u", session=f"s{seed}")))
        assert digest(rebuilt.state_dict()) == digest(learners[seed].state_dict())
        steps = list(log.replay(Scope(tenant="t", user="u", session=f"s{seed}")))
        assert [s.interaction.versions["OnlineSoftmax"] for s in steps] == list(range(300))


def test_adaptation_gap_grows_for_the_learner_only() -> None:
    test_texts, test_truth = make_data(LABELS, 60, seed=9)

    def task(seed: int) -> tuple[IntentStream, Any]:
        return stream(seed), accuracy_probe(test_texts, test_truth)

    result = adaptation_gap(lambda seed: OnlineSoftmax(), task, [0, 1], ks=(0, 5, 20, 60))
    assert result.metrics["gap@0"].mean == 0.0
    assert result.metrics["gap@60"].mean > 0.5
    assert result.metrics["frozen.gap@60"].mean == 0.0
    assert result.curves["learner"].x == [0.0, 5.0, 20.0, 60.0]
    assert len(result.timings["seconds_per_seed"]) == 2


def test_cold_start_averages_over_users() -> None:
    def users(seed: int) -> list[tuple[IntentStream, Any]]:
        out = []
        for user in range(4):
            texts, truth = make_data(LABELS, 40, seed=100 * seed + user)
            out.append((IntentStream(texts, truth), accuracy_probe(*make_data(LABELS, 30, seed=user))))
        return out

    result = cold_start(lambda seed: OnlineSoftmax(), users, [0, 1], progress=False)
    perf = result.curves["learner"].mean
    assert perf[0] == 0.0 and perf[-1] > 0.8  # k = 0 … 20
    assert result.metrics["frozen.perf@20"].mean == 0.0
    assert result.config["users_per_seed"] == 4


def test_continual_matrix_is_consistent() -> None:
    groups = [list(VOCAB)[0:2], list(VOCAB)[2:4], list(VOCAB)[4:6]]
    tasks = []
    for g, labels in enumerate(groups):
        texts, truth = make_data(labels, 80, seed=g)
        probe = accuracy_probe(*make_data(labels, 40, seed=50 + g))
        tasks.append((lambda seed, t=texts, y=truth: IntentStream(t, y), probe))
    result = continual_matrix(lambda seed: OnlineSoftmax(), tasks, [0, 1, 2], progress=False)
    per_order = [np.asarray(r) for r in result.config["R_per_order"]]
    assert all(r.shape == (3, 3) for r in per_order)
    accs = [continual_scores(r, np.zeros(3)).acc for r in per_order]
    assert result.metrics["acc"].per_seed == pytest.approx(accs)
    assert all(r[i, i] > 0.9 for r in per_order for i in range(3))  # each task learned
    assert result.metrics["fwt"].mean == 0.0  # disjoint labels: nothing transfers forward
    assert result.metrics["acc"].mean > result.metrics["frozen.acc"].mean


class NoBest(Env[int, int]):
    def reset(self, *, seed: int | None = None) -> tuple[int, dict[str, Any]]:
        self.t = 0
        return 0, {}

    def step(self, action: int) -> StepResult:
        self.t += 1
        return 0, 1.0, self.t >= 5, False, {}


class Constant(OnlineSoftmax):
    def predict(self, observation: Any, scope: Scope | None = None) -> Any:
        return 0


def test_regret_needs_best_reward_and_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        cumulative_regret(lambda s: Constant(), lambda s: NoBest(), [0], progress=False)
    result = cumulative_regret(lambda s: OnlineSoftmax(), stream, [0], window=50, progress=False)
    assert result.protocol == "regret" and result.metrics["regret"].mean > 0
    with pytest.raises(InvalidInput):
        prequential(lambda s: OnlineSoftmax(), stream, [], progress=False)
    with pytest.raises(InvalidInput):
        prequential(lambda s: OnlineSoftmax(), stream, [0], window=0, progress=False)


def test_result_saves_json_and_png(tmp_path: Path) -> None:
    result = prequential(lambda s: OnlineSoftmax(), stream, [0, 1], warmup=20, window=50, progress=False)
    json_path, png_path = result.save(tmp_path / "out", "run")
    data = json.loads(json_path.read_text())
    assert data["metrics"]["final_window"]["per_seed"] == result.metrics["final_window"].per_seed
    assert data["config"]["warmup"] == 20 and "lifelong" in data["versions"]
    assert len(data["timings"]["seconds_per_seed"]) == 2
    assert png_path.stat().st_size > 10_000 and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = Result.load_json(json_path)
    assert back.metrics["aulc"].mean == pytest.approx(result.metrics["aulc"].mean)
    assert back.curves["learner"].per_seed == result.curves["learner"].per_seed
