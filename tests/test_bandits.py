"""Exploration policies on the simulated user population."""

from __future__ import annotations

import numpy as np
import pytest

from lifelong.envs.recsys import SimulatedUsers
from lifelong.errors import InvalidInput
from lifelong.eval import prequential
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.learners.recsys.bandits import EpsilonGreedy, LinUCB
from lifelong.state import digest


def population(seed: int) -> SimulatedUsers:
    return SimulatedUsers(n_users=30, n_items=40, horizon=2500, seed=0)


@pytest.mark.parametrize("make", [lambda s: EpsilonGreedy(0.1, seed=s), lambda s: LinUCB(1.0, seed=s)])
def test_policies_beat_their_frozen_control_with_sublinear_regret(make) -> None:  # type: ignore[no-untyped-def]
    result = prequential(make, population, [0, 1], warmup=200, window=250, progress=False)
    assert result.metrics["delta.final_window"].mean > 0.1
    assert result.metrics["regret"].mean < 0.8 * result.metrics["frozen.regret"].mean
    regret = np.asarray(result.curves["learner regret"].mean)
    x = np.asarray(result.curves["learner regret"].x)
    half = len(x) // 2
    early = (regret[half] - regret[0]) / (x[half] - x[0])
    late = (regret[-1] - regret[half]) / (x[-1] - x[half])
    assert late < 0.7 * early  # regret per step shrinks: sub-linear growth


def test_state_round_trip_and_bad_input() -> None:
    policy = LinUCB(0.5)
    for n in range(30):
        obs = {"user": f"u{n % 4}", "items": 5}
        i = Interaction(Scope(user=f"u{n % 4}"), obs, policy.predict(obs))
        policy.learn(Step(i, (Feedback.reward(i.id, float(n % 2)),)))
    copy = LinUCB()
    copy.load_state_dict(policy.state_dict())
    assert digest(copy.state_dict()) == digest(policy.state_dict())
    obs = {"user": "u1", "items": 5}
    assert copy.predict(obs) == policy.predict(obs)
    with pytest.raises(InvalidInput):
        EpsilonGreedy(epsilon=2)
    with pytest.raises(InvalidInput):
        LinUCB(alpha=-1)
    with pytest.raises(InvalidInput):
        policy.predict({"user": "u1"})
