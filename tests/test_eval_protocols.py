"""lifelong.eval protocols on small synthetic intent streams: learning must show against the control."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lifelong.envs.base import Env, StepResult
from lifelong.envs.intent_stream import IntentStream, accuracy_probe
from lifelong.errors import InvalidInput
from lifelong.eval import (
    Curve,
    Result,
    adaptation_gap,
    cold_start,
    continual_matrix,
    continual_scores,
    cumulative_regret,
    prequential,
)
from lifelong.experience import ExperienceLog, Scope, Step
from lifelong.learners import Learner, OnlineSoftmax

WORDS = {
    "card_lost": ["stolen", "lost", "missing", "thief"],
    "top_up": ["topup", "recharge", "funds", "deposit"],
    "pin": ["pin", "code", "blocked", "locked"],
    "refund": ["refund", "return", "merchant", "back"],
    "fx": ["exchange", "currency", "rate", "euro"],
    "atm": ["atm", "cash", "machine", "withdraw"],
}
THREE = ["card_lost", "top_up", "pin"]


def make_data(labels: list[str], n: int, seed: int) -> tuple[list[str], list[str]]:
    """n queries: two words typical of a random label among filler words every label shares."""
    rng = np.random.default_rng(seed)
    texts, truth = [], []
    for _ in range(n):
        label = labels[int(rng.integers(len(labels)))]
        words = [*rng.choice(WORDS[label], size=2).tolist(), "please", "help", "with", "my", "account"]
        texts.append(" ".join(rng.permutation(words).tolist()))
        truth.append(label)
    return texts, truth


TEXTS, TRUTH = make_data(THREE, 240, seed=0)


def stream(seed: int) -> IntentStream:
    return IntentStream(TEXTS, TRUTH, scope=Scope(tenant="t", user="u", session=f"s{seed}"))


class Recording(OnlineSoftmax):
    """OnlineSoftmax that records, at every prediction, what it saw and its version and frozen flag."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int, bool]] = []

    def predict(self, observation: Any, scope: Scope | None = None) -> str | None:
        self.seen.append((str(observation), self.version, self.frozen))
        return super().predict(observation, scope)


def field_of(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str | None:
    return excinfo.value.field


# -- prequential -----------------------------------------------------------------------------------------
def test_prequential_learner_beats_its_frozen_control() -> None:
    built: list[Recording] = []

    def make(seed: int) -> Learner:
        built.append(Recording())
        return built[-1]

    warmup = 8
    result = prequential(make, stream, [0, 1, 2], warmup=warmup, window=40, progress=False)
    learners, controls = built[0::2], built[1::2]  # per seed: the learner, then its control

    assert len(result.curves["learner"].per_seed) == 3 and len(result.curves["learner"].x) == 6
    assert np.asarray(result.curves["frozen"].per_seed).shape == (3, 6)
    assert result.metrics["final_window"].mean > 0.9
    assert result.metrics["frozen.final_window"].mean < 0.75
    assert result.metrics["delta.final_window"].mean > 0.25  # learning shows, by a margin
    assert result.metrics["delta.aulc"].mean > 0.15
    assert min(result.metrics["delta.mean_reward"].per_seed) > 0.1  # on every seed, not just on average
    assert result.metrics["slope_per_1k"].mean > result.metrics["frozen.slope_per_1k"].mean

    for learner, control in zip(learners, controls, strict=True):
        assert [obs for obs, _, _ in control.seen] == [obs for obs, _, _ in learner.seen]  # same order
        versions = [version for _, version, _ in control.seen]
        assert 0 < versions[warmup] <= warmup  # learned during the warm-up ...
        assert set(versions[warmup:]) == {versions[warmup]}  # ... and never again
        assert all(frozen for _, _, frozen in control.seen[warmup + 1 :])
        # Every correction changed it, except those that came while it knew one class (a zero gradient).
        assert not learner.frozen and len(TEXTS) - 3 <= learner.version <= len(TEXTS)
    orders = {tuple(obs for obs, _, _ in learner.seen) for learner in learners}
    assert len(orders) == 3  # each seed is its own order


def test_prequential_summary_metrics_are_consistent() -> None:
    result = prequential(lambda s: OnlineSoftmax(), stream, [0, 1], warmup=5, window=40, progress=False)
    for metric in ("final_window", "aulc", "first_last_gap", "slope_per_1k", "mean_reward", "regret"):
        ours, theirs = result.metrics[metric].per_seed, result.metrics[f"frozen.{metric}"].per_seed
        assert result.metrics[f"delta.{metric}"].per_seed == pytest.approx(
            [a - b for a, b in zip(ours, theirs, strict=True)]
        )
    for s, row in enumerate(result.curves["learner"].per_seed):
        assert result.metrics["final_window"].per_seed[s] == row[-1]
        assert result.metrics["first_last_gap"].per_seed[s] == pytest.approx(row[-1] - row[0])
        lo, hi = result.metrics["slope_lo_per_1k"].per_seed[s], result.metrics["slope_hi_per_1k"].per_seed[s]
        assert lo <= result.metrics["slope_per_1k"].per_seed[s] <= hi
    stat = result.metrics["aulc"]
    assert stat.mean == pytest.approx(np.mean(stat.per_seed))
    assert stat.std == pytest.approx(np.std(stat.per_seed, ddof=1))
    assert result.config["warmup"] == 5 and result.config["window"] == 40
    assert result.config["learner"].startswith("OnlineSoftmax(")
    assert len(result.timings["seconds_per_seed"]) == 2 and min(result.timings["steps_per_second"]) > 0


def test_cumulative_regret_is_smaller_for_the_learner() -> None:
    result = cumulative_regret(lambda s: OnlineSoftmax(), stream, [0, 1], warmup=5, window=40, progress=False)
    assert result.protocol == "regret"
    curve = result.curves["learner regret"]
    assert curve.x[-1] == len(TEXTS) and np.all(np.diff(curve.mean) >= 0)  # regret never decreases
    # regret of a 0/1 reward with best reward 1 = number of mistakes
    mistakes = [len(TEXTS) * (1 - m) for m in result.metrics["mean_reward"].per_seed]
    assert result.metrics["regret"].per_seed == pytest.approx(mistakes)
    assert result.metrics["regret"].mean < 0.5 * result.metrics["frozen.regret"].mean


class NoBest(Env[int, int]):
    """Five steps of reward 1 and no best reward in the info."""

    def reset(self, *, seed: int | None = None) -> tuple[int, dict[str, Any]]:
        self.t = 0
        return 0, {}

    def step(self, action: int) -> StepResult:
        self.t += 1
        return 0, 1.0, self.t >= 5, False, {}


class Zero(OnlineSoftmax):
    def predict(self, observation: Any, scope: Scope | None = None) -> Any:
        return 0


def test_regret_needs_best_reward() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        cumulative_regret(lambda s: Zero(), lambda s: NoBest(), [0], window=2, progress=False)
    assert field_of(excinfo) == "make_env"


def test_max_steps_restarts_episodes() -> None:
    result = prequential(lambda s: Zero(), lambda s: NoBest(), [0], window=4, max_steps=12, progress=False)
    assert result.config["steps_per_seed"] == [12]  # 5 + 5 + 2 steps over three episodes
    assert result.curves["learner"].x == [4.0, 8.0, 12.0]


# -- the log is the truth --------------------------------------------------------------------------------
def test_every_step_is_logged_and_replay_rebuilds_the_same_state(tmp_path: Path) -> None:
    log = ExperienceLog(f"sqlite:///{tmp_path / 'log.db'}")
    learners: dict[int, Learner] = {}

    def make(seed: int) -> Learner:
        learner = OnlineSoftmax()
        learners.setdefault(seed, learner)  # the first built for a seed is the learner, then its control
        return learner

    prequential(make, stream, [0, 1], warmup=10, window=40, log=log, progress=False)
    n = len(TEXTS)
    stats = log.stats()
    assert stats.interactions == 2 * n  # the learner's steps only: the controls are not logged
    assert stats.feedback == 4 * n and stats.feedback_by_kind == {"correction": 2 * n, "reward": 2 * n}

    for seed in (0, 1):
        steps = list(log.replay(stream(seed).scope))
        assert len(steps) == n
        times = [s.interaction.time for s in steps]
        assert all(a < b for a, b in itertools.pairwise(times))  # strictly increasing
        versions = [s.interaction.versions["OnlineSoftmax"] for s in steps]  # the state that acted
        assert versions[0] == 0 and all(0 <= b - a <= 1 for a, b in itertools.pairwise(versions))
        rebuilt = OnlineSoftmax()
        rebuilt.learn_many(steps)
        expected, got = learners[seed].state_dict(), rebuilt.state_dict()
        assert got["version"] == expected["version"] >= n - 3
        assert got["state"]["classes"] == expected["state"]["classes"]
        for key in ("weights", "grad_sq", "bias", "bias_grad_sq"):
            assert np.array_equal(got["state"][key], expected["state"][key]), key
    log.close()


class ChecksTheLog(OnlineSoftmax):
    """Fails if asked to learn from a step the log does not hold yet."""

    def __init__(self, log: ExperienceLog) -> None:
        super().__init__()
        self.log = log
        self.checked = 0

    def _learn(self, step: Step) -> bool:
        logged = self.log.get(step.interaction.id)
        assert {fb.id for fb in logged.feedback} == {fb.id for fb in step.feedback}
        self.checked += 1
        return super()._learn(step)


def test_the_log_is_written_before_the_learner_learns(tmp_path: Path) -> None:
    log = ExperienceLog(tmp_path / "log.db")
    learner = ChecksTheLog(log)
    short = IntentStream(TEXTS[:30], TRUTH[:30])
    prequential(lambda s: learner, lambda s: short, [0], warmup=None, window=10, log=log, progress=False)
    assert learner.checked == 30
    log.close()


# -- adaptation gap and cold start -----------------------------------------------------------------------
HELD_OUT = make_data(THREE, 60, seed=99)


def test_adaptation_gap_is_zero_at_zero_and_grows_for_the_learner_only() -> None:
    def task(seed: int) -> tuple[IntentStream, Any]:
        return stream(seed), accuracy_probe(*HELD_OUT)

    ks = (0, 5, 20, 60)
    result = adaptation_gap(lambda s: OnlineSoftmax(), task, [0, 1], ks=ks, progress=False)
    for k in ks:
        perf, perf0 = result.metrics[f"perf@{k}"].per_seed, result.metrics["perf@0"].per_seed
        gaps = [p - q for p, q in zip(perf, perf0, strict=True)]
        assert result.metrics[f"gap@{k}"].per_seed == pytest.approx(gaps)
    assert result.metrics["gap@0"].per_seed == [0.0, 0.0]  # G(0) = 0 by definition
    assert result.metrics["gap@20"].mean > 0.3 and result.metrics["gap@60"].mean > 0.6
    assert result.metrics["gap@60"].mean >= result.metrics["gap@5"].mean
    assert result.metrics["frozen.gap@60"].per_seed == [0.0, 0.0]  # the control does not adapt
    assert result.metrics["delta.gap@60"].mean == pytest.approx(result.metrics["gap@60"].mean)
    assert result.curves["learner"].x == [0.0, 5.0, 20.0, 60.0]
    assert result.curves["learner"].kind == "perf_by_k"
    assert result.curves["learner G(k)"].per_seed[0][0] == 0.0
    assert result.config["ks"] == [0, 5, 20, 60]


def test_adaptation_gap_of_a_pretrained_learner_with_a_shared_probe() -> None:
    """The learner knows two intents already; the new user's stream brings a third one as well."""
    texts, truth = make_data(THREE[:2], 80, seed=5)

    def pretrained(seed: int) -> Learner:
        learner = OnlineSoftmax()
        env = IntentStream(texts, truth)
        prequential(lambda s: learner, lambda s: env, [seed], warmup=None, progress=False)
        return learner

    probe = accuracy_probe(*HELD_OUT)
    unseen = make_data(THREE, 40, seed=6)
    result = adaptation_gap(
        pretrained, lambda s: IntentStream(*unseen), [0], ks=(0, 10, 40), probe=probe, progress=False
    )
    before = result.metrics["perf@0"].mean
    assert 0.4 < before < 0.9  # knows two of three intents, never names the third
    assert result.metrics["gap@40"].mean > 0.15
    assert result.metrics["frozen.perf@40"].mean == pytest.approx(before)


def users(seed: int) -> list[tuple[IntentStream, Any]]:
    out = []
    for user in range(4):
        texts, truth = make_data(THREE, 25 + 5 * user, seed=100 * seed + user)
        stream_ = IntentStream(texts, truth, scope=Scope(tenant="t", user=f"user{user}"))
        out.append((stream_, accuracy_probe(*make_data(THREE, 30, seed=1000 + user))))
    return out


def test_cold_start_averages_perf_over_new_users() -> None:
    result = cold_start(lambda s: OnlineSoftmax(), users, [0, 1], ks=(0, 1, 2, 5, 10, 20), progress=False)
    perf = result.curves["learner"].mean
    assert perf[0] == 0.0  # an untrained learner abstains: nothing right before any interaction
    assert perf[-1] > 0.8 and perf[-1] >= perf[3]
    assert result.metrics["gap@0"].mean == 0.0 and result.metrics["gap@20"].mean > 0.8
    assert result.metrics["frozen.perf@20"].mean == 0.0
    assert result.config["users_per_seed"] == 4


def test_cold_start_leaves_out_users_whose_stream_ended() -> None:
    def short_users(seed: int) -> list[tuple[IntentStream, Any]]:
        out = []
        for n in (3, 50):  # the first user has only 3 interactions
            texts, truth = make_data(THREE, n, seed=n)
            out.append((IntentStream(texts, truth), accuracy_probe(*HELD_OUT)))
        return out

    result = cold_start(lambda s: OnlineSoftmax(), short_users, [0], ks=(0, 3, 40, 60), progress=False)
    at40 = result.metrics["perf@40"].mean
    assert at40 > 0.8  # the second user alone, not dragged to NaN or towards 0 by the first
    assert math.isnan(result.metrics["perf@60"].mean)  # nobody reached 60 interactions


# -- continual matrix ------------------------------------------------------------------------------------
def continual_tasks() -> list[tuple[Any, Any]]:
    groups = [["card_lost", "top_up"], ["pin", "refund"], ["fx", "atm"]]
    tasks = []
    for g, labels in enumerate(groups):
        texts, truth = make_data(labels, 60, seed=g)
        probe = accuracy_probe(*make_data(labels, 30, seed=50 + g))
        tasks.append((lambda seed, t=texts, y=truth: IntentStream(t, y), probe))
    return tasks


def test_continual_matrix_shapes_and_metrics_follow_from_r() -> None:
    result = continual_matrix(lambda s: OnlineSoftmax(), continual_tasks(), [0, 1, 2], progress=False)
    by_task = np.asarray(result.matrices["R (task index, mean over orders)"])
    assert by_task.shape == (3, 3)
    assert np.asarray(result.matrices["R (learned order, mean over orders)"]).shape == (3, 3)
    assert result.config["b"] == [0.0, 0.0, 0.0]  # untrained: abstains everywhere
    orders = result.config["task_orders"]
    assert orders == [np.random.default_rng(seed).permutation(3).tolist() for seed in (0, 1, 2)]
    per_task = []
    for s, (r, b, order) in enumerate(
        zip(result.config["R_per_order"], result.config["b_per_order"], orders, strict=True)
    ):
        r = np.asarray(r)
        assert r.shape == (3, 3) and sorted(order) == [0, 1, 2]
        scores = continual_scores(r, b)
        assert result.metrics["acc"].per_seed[s] == pytest.approx(scores.acc)
        assert result.metrics["bwt"].per_seed[s] == pytest.approx(scores.bwt)
        assert result.metrics["fwt"].per_seed[s] == pytest.approx(scores.fwt)
        assert all(r[i, i] > 0.9 for i in range(3))  # each task learned when its turn came
        task_indexed = np.empty((3, 3))
        task_indexed[np.ix_(order, order)] = r  # R[a, j] = score on task j after learning task a
        per_task.append(task_indexed)
    assert by_task == pytest.approx(np.mean(per_task, axis=0))
    assert result.metrics["fwt"].mean == 0.0  # disjoint intents: nothing transfers forward
    assert result.metrics["acc"].mean > result.metrics["frozen.acc"].mean + 0.3


def test_continual_matrix_rejects_bad_arguments() -> None:
    tasks = continual_tasks()
    with pytest.raises(InvalidInput) as excinfo:
        continual_matrix(lambda s: OnlineSoftmax(), tasks[:1], [0], progress=False)
    assert field_of(excinfo) == "tasks"
    with pytest.raises(InvalidInput) as excinfo:
        continual_matrix(lambda s: OnlineSoftmax(), tasks, [], progress=False)
    assert field_of(excinfo) == "orders"


# -- arguments -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"seeds": 3}, "seeds"),
        ({"window": 0}, "window"),
        ({"warmup": -1}, "warmup"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_prequential_names_the_bad_argument(kwargs: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"seeds": [0], "window": 10, **kwargs}
    with pytest.raises(InvalidInput) as excinfo:
        prequential(lambda s: OnlineSoftmax(), stream, progress=False, **arguments)
    assert field_of(excinfo) == field


def test_protocols_reject_what_is_not_a_learner_or_a_task() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        prequential(lambda s: object(), stream, [0], progress=False)  # type: ignore[arg-type,return-value]
    assert field_of(excinfo) == "make_learner"
    with pytest.raises(InvalidInput) as excinfo:
        adaptation_gap(lambda s: OnlineSoftmax(), stream, [0], progress=False)  # no probe anywhere
    assert field_of(excinfo) == "make_task"
    with pytest.raises(InvalidInput) as excinfo:
        adaptation_gap(lambda s: OnlineSoftmax(), stream, [0], ks=(-1, 2), probe=lambda m: 0.0)
    assert field_of(excinfo) == "ks"


# -- results ---------------------------------------------------------------------------------------------
def _finite_only(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"non-finite number {constant} in the JSON")

    return json.loads(text, parse_constant=refuse)


def test_result_saves_json_and_png_and_loads_back(tmp_path: Path) -> None:
    result = prequential(lambda s: OnlineSoftmax(), stream, [0, 1], warmup=20, window=40, progress=False)
    result.curves["peer"] = Curve(result.curves["learner"].x, [[0.5] * 6, [math.nan] * 6])
    result.add_metric("broken", [math.nan, 1.0])
    json_path, png_path = result.save(tmp_path / "out", "run")
    assert (json_path.name, png_path.name) == ("run.json", "run.png")
    data = _finite_only(json_path.read_text())
    assert data["metrics"]["broken"] == {"mean": None, "std": None, "per_seed": [None, 1.0]}
    assert data["curves"]["peer"]["per_seed"][1] == [None] * 6
    assert set(data["curves"]["learner"]) >= {"x", "mean", "std", "per_seed"}
    assert data["config"]["warmup"] == 20 and data["seeds"] == [0, 1]
    assert {"lifelong", "python", "numpy", "platform"} <= set(data["versions"])
    assert len(data["timings"]["seconds_per_seed"]) == 2 and data["created"] > 0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 10_000
    assert not list((tmp_path / "out").glob(".*.tmp"))  # the atomic write left no temporary file

    back = Result.load_json(json_path)
    assert back.metrics["aulc"].per_seed == result.metrics["aulc"].per_seed
    assert back.curves["learner"].per_seed == result.curves["learner"].per_seed
    assert math.isnan(back.metrics["broken"].per_seed[0]) and math.isnan(back.curves["peer"].per_seed[1][0])
    assert back.extra["slope_ci_per_1k"]["learner"]["lo"] == pytest.approx(
        result.extra["slope_ci_per_1k"]["learner"]["lo"]
    )


def test_by_k_and_matrix_results_plot(tmp_path: Path) -> None:
    gap = cold_start(lambda s: OnlineSoftmax(), users, [0], ks=(0, 2, 10), progress=False)
    _, png = gap.save(tmp_path, "cold")
    assert png.stat().st_size > 10_000
    continual = continual_matrix(lambda s: OnlineSoftmax(), continual_tasks()[:2], [0], progress=False)
    json_path, png = continual.save(tmp_path, "continual")
    assert png.stat().st_size > 10_000
    assert len(_finite_only(json_path.read_text())["matrices"]) == 2
    with pytest.raises(InvalidInput):
        Result("empty", "none", [0]).save(tmp_path, "empty")
