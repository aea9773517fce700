"""Use a `gymnasium <https://gymnasium.farama.org>`_ environment as a ``lifelong`` :class:`Env`.

Our contract is gymnasium's, so the adapter passes ``reset``/``step`` through; it adds a scope, turns
NumPy observations into plain lists (they are logged as JSON) and turns NumPy actions into numbers.

>>> import gymnasium
>>> env = GymnasiumEnv(gymnasium.make("FrozenLake-v1", is_slippery=False))
>>> obs, info = env.reset(seed=0)
>>> obs
0
"""

from __future__ import annotations

from typing import Any

from lifelong.envs.base import Env, StepResult
from lifelong.experience.records import JSON, Scope, to_json_value

try:
    import gymnasium as gym
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('GymnasiumEnv needs gymnasium: pip install "lifelong[interop]"') from exc


class GymnasiumEnv(Env[JSON, Any]):
    """Wraps ``gym_env``; episodes follow each other until the protocol stops."""

    def __init__(self, gym_env: gym.Env[Any, Any], scope: Scope | None = None) -> None:
        self.env = gym_env
        spec = getattr(gym_env, "spec", None)
        self.scope = scope or Scope(tenant=f"gymnasium.{spec.id if spec else type(gym_env).__name__}")

    def reset(self, *, seed: int | None = None) -> tuple[JSON, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed)
        return to_json_value(observation, "observation"), {**info, "scope": self.scope}

    def step(self, action: Any) -> StepResult:
        if hasattr(action, "item"):
            action = action.item()
        observation, reward, terminated, truncated, info = self.env.step(action)
        return (
            to_json_value(observation, "observation"),
            float(reward),
            bool(terminated),
            bool(truncated),
            {**info, "scope": self.scope},
        )

    def close(self) -> None:
        self.env.close()
