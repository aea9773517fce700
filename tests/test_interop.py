"""Peers and standard environments plug in: river estimators as learners, gymnasium envs as Envs."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from river import feature_extraction, linear_model, naive_bayes, preprocessing

from lifelong.envs.base import feedback_from
from lifelong.errors import InvalidInput
from lifelong.experience import Feedback, Interaction, Scope, Step
from lifelong.experience.records import JSON
from lifelong.interop.gymnasium import GymnasiumEnv
from lifelong.interop.river import RiverLearner
from lifelong.learners import Predictor


class TabularBandit(Predictor):
    """Per-observation running mean reward of each action, greedy with optimistic start (test helper)."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.values: dict[str, list[float]] = {}
        self.counts: dict[str, list[int]] = {}

    def predict(self, observation: JSON, scope: Scope | None = None) -> int:
        values = self.values.get(str(observation), [1.0] * self.n_actions)
        return int(np.argmax(values))

    def _learn(self, step: Step) -> bool:
        reward = step.reward
        if reward is None:
            return False
        key, action = str(step.interaction.observation), int(step.interaction.action)
        values = self.values.setdefault(key, [1.0] * self.n_actions)
        counts = self.counts.setdefault(key, [0] * self.n_actions)
        counts[action] += 1
        values[action] += (reward - values[action]) / counts[action]
        return True

    def _get_state(self) -> dict[str, Any]:
        return {"values": self.values, "counts": self.counts}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.values, self.counts = state["values"], state["counts"]


def run_episodes(env: GymnasiumEnv, learner: Predictor, episodes: int, seed: int) -> list[float]:
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = learner.predict(obs)
            interaction = Interaction(env.scope, obs, action)
            obs, reward, terminated, truncated, info = env.step(action)
            learner.learn(Step(interaction, feedback_from(interaction.id, reward, info)))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def test_gymnasium_env_round_trip_and_learning() -> None:
    env = GymnasiumEnv(gymnasium.make("Blackjack-v1"))
    assert env.scope.tenant == "gymnasium.Blackjack-v1"
    learner = TabularBandit(n_actions=2)
    returns = run_episodes(env, learner, episodes=6000, seed=0)
    control = run_episodes(env, TabularBandit(n_actions=2).freeze(), episodes=6000, seed=0)
    # The frozen control always sticks (about -0.16 per hand); learning to hit on low sums beats it.
    assert np.mean(returns[-3000:]) > np.mean(control[-3000:]) + 0.03
    env.close()


def test_gymnasium_numpy_observations_become_json() -> None:
    env = GymnasiumEnv(gymnasium.make("CartPole-v1"))
    obs, info = env.reset(seed=1)
    assert isinstance(obs, list) and len(obs) == 4 and all(isinstance(x, float) for x in obs)
    obs2, reward, _terminated, _truncated, info = env.step(np.int64(1))
    assert isinstance(obs2, list) and reward == 1.0 and info["scope"] == env.scope
    Interaction(env.scope, obs2, 1)  # loggable as it is


def test_river_classifier_learns_from_corrections() -> None:
    learner = RiverLearner(feature_extraction.BagOfWords() | naive_bayes.MultinomialNB())
    assert learner.predict("card stolen") is None  # abstains before it saw a class
    data = [("my card was stolen", "card"), ("top up failed", "top_up"), ("card is lost", "card")]
    for text, label in data * 3:
        i = Interaction(Scope(), text, learner.predict(text))
        learner.learn(Step(i, (Feedback.correction(i.id, label),)))
    assert learner.predict("stolen card") == "card" and learner.predict("failed top up") == "top_up"
    copy = RiverLearner(naive_bayes.MultinomialNB(), allow_pickle=True)
    copy.load_state_dict(learner.state_dict())
    assert copy.predict("stolen card") == "card" and copy.version == learner.version


def test_river_regressor_learns_ratings() -> None:
    learner = RiverLearner(preprocessing.StandardScaler() | linear_model.LinearRegression(), target="rating")
    rng = np.random.default_rng(0)
    for _ in range(400):
        x = {"a": float(rng.normal())}
        rating = float(np.clip(3 + x["a"], 1, 5))
        i = Interaction(Scope(), x, None)
        learner.learn(Step(i, (Feedback.rating(i.id, rating),)))
    assert abs(learner.predict({"a": 1.0}) - 4.0) < 0.5  # type: ignore[operator]


def test_river_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        RiverLearner(object())
    with pytest.raises(InvalidInput):
        RiverLearner(naive_bayes.MultinomialNB(), target="clicks")  # type: ignore[arg-type]
