"""Protocol ``new-game``: put an agent in a game it has never seen and measure how it improves.

A stream of episodes in fresh worlds (seeded), what the agent learned carried from one to the next. Per
episode: the achievements unlocked (which and how many), the environment reward, the steps (and the steps
spent verifying skills in fresh worlds), language-model calls and tokens. Over the run:

- the **Crafter score** (Hafner 2022, §3.2): the geometric mean of the per-achievement success rates
  (each the share of episodes in which it was unlocked, in %), ``S = exp(mean_i ln(1 + s_i)) − 1``;
- the **slope** of achievements per episode, with a bootstrap CI (:func:`lifelong.eval.metrics.slope_ci`);
- the **tech-tree milestones** (Voyager's Table 1): episodes and environment steps to the first wood
  pickaxe, stone pickaxe, iron pickaxe and diamond.

Every variant plays the same world seeds: the learning agent, its **frozen** control (same primitives,
proposer and curriculum, nothing kept between episodes), a **random** agent, and the ablations. Then
**transfer**: new worlds, the learned state frozen, each achievement posed as a task — solved with the
library vs with an empty one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lifelong.envs.crafter import ACHIEVEMENTS, ACTIONS, MILESTONES, CrafterText
from lifelong.errors import InvalidInput
from lifelong.eval.metrics import mean_std, slope_ci
from lifelong.eval.result import Curve, Result
from lifelong.experience.log import ExperienceLog


def crafter_score(success_rates: Sequence[float]) -> float:
    """Crafter's score (in %) from per-achievement success rates in % (Hafner 2022, eq. 1).

    >>> round(crafter_score([100.0] * 22), 1), crafter_score([0.0] * 22)
    (100.0, 0.0)
    """
    rates = np.asarray(success_rates, dtype=np.float64)
    if rates.ndim != 1 or not len(rates) or (rates < 0).any() or (rates > 100).any():
        raise InvalidInput(
            "success rates are percentages in [0, 100], one per achievement", field="success_rates"
        )
    return float(math.exp(float(np.mean(np.log1p(rates)))) - 1.0)


def success_rates(
    unlocked_per_episode: Sequence[Sequence[str]], achievements: Sequence[str] = ACHIEVEMENTS
) -> dict[str, float]:
    """Per achievement, the share (%) of episodes that unlocked it."""
    n = max(1, len(unlocked_per_episode))
    return {a: 100.0 * sum(a in set(u) for u in unlocked_per_episode) / n for a in achievements}


def milestones(episodes: Sequence[dict[str, Any]]) -> dict[str, dict[str, int | None]]:
    """Episodes and environment steps (verification included) until each tech-tree milestone first."""
    found: dict[str, dict[str, int | None]] = {m: {"episode": None, "env_steps": None} for m in MILESTONES}
    spent = 0
    for i, episode in enumerate(episodes):
        for milestone, achievement in MILESTONES.items():
            if found[milestone]["episode"] is None and achievement in episode["unlocked"]:
                at = int(episode.get("unlocked_at", {}).get(achievement, episode["steps"]))
                found[milestone] = {"episode": i + 1, "env_steps": spent + at}
        spent += int(episode["steps"]) + int(episode.get("gate_steps", 0))
    return found


class RandomAgent:
    """Uniformly random actions: the floor of the scoreboard (Crafter's random agent, 1.6%)."""

    def play(self, seed: int, *, episode: int, steps: int = 10_000) -> Any:
        env = CrafterText(length=steps)
        env.reset(seed=seed)
        rng = np.random.default_rng([seed, episode, 7])
        reward = 0.0
        while not env.over:
            _, r, _, _, _ = env.step(ACTIONS[int(rng.integers(len(ACTIONS)))])
            reward += r
        return _Report(episode, seed, list(env.unlocked), reward, env.steps)


class _Report:
    def __init__(self, episode: int, seed: int, unlocked: list[str], reward: float, steps: int) -> None:
        self.data = {
            "episode": episode,
            "seed": seed,
            "unlocked": unlocked,
            "achievements": len(unlocked),
            "reward": reward,
            "steps": steps,
            "gate_steps": 0,
            "llm_calls": 0,
            "tokens": 0,
        }

    def to_dict(self) -> dict[str, Any]:
        return self.data


#: A world seed for (run seed, episode): each run seed is its own stream of fresh worlds.
def world_seed(seed: int, episode: int) -> int:
    return 10_000 * (seed + 1) + episode


def transfer_seed(seed: int, task: int) -> int:
    return 500_000 + 10_000 * (seed + 1) + task


def new_game(
    make_agent: Callable[[str, int], Any],
    variants: Sequence[str],
    *,
    seeds: Sequence[int],
    episodes: int,
    steps: int,
    transfer: Sequence[str] = (),
    transfer_steps: int = 500,
    episodes_of: dict[str, int] | None = None,
    seeds_of: dict[str, Sequence[int]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Run the protocol (module docstring). ``make_agent(variant, seed)`` builds a fresh agent (``"random"``
    is built here); ``transfer`` names the variants whose final state is posed every achievement in new
    worlds, against ``"empty"`` (the same agent with nothing learned). ``episodes_of`` / ``seeds_of`` give
    a variant fewer episodes or seeds (a slow language-model proposer)."""
    if episodes < 1 or steps < 1 or not seeds or not variants:
        raise InvalidInput("new-game needs seeds, variants, episodes >= 1 and steps >= 1", field="episodes")
    result = Result(
        "new-game",
        "new-game",
        list(seeds),
        config={"episodes": episodes, "steps": steps, "transfer_steps": transfer_steps},
    )
    runs: dict[str, list[list[dict[str, Any]]]] = {}
    transfer_rates: dict[str, list[float]] = {}
    transfer_solved: dict[str, list[list[str]]] = {}
    timings: dict[str, float] = {}
    for variant in variants:
        n_episodes = (episodes_of or {}).get(variant, episodes)
        runs[variant] = []
        started = time.perf_counter()
        for seed in (seeds_of or {}).get(variant, seeds):
            agent = RandomAgent() if variant == "random" else make_agent(variant, seed)
            played = []
            for ep in range(n_episodes):
                played.append(agent.play(world_seed(seed, ep), episode=ep, steps=steps).to_dict())
                if progress is not None:
                    last = played[-1]
                    progress(
                        f"{variant} seed {seed} episode {ep + 1}/{n_episodes}: {last['achievements']} "
                        f"achievements in {last['steps']} steps"
                    )
            runs[variant].append(played)
            if variant in transfer:
                for name, solver in (("empty", make_agent(variant, seed)), (variant, agent)):
                    solved = []
                    for j, task in enumerate(ACHIEVEMENTS):
                        trial = _frozen_copy(solver)
                        if trial.solve(
                            task, transfer_seed(seed, j), steps=transfer_steps, session=f"transfer-{j}"
                        ):
                            solved.append(task)
                    key = f"transfer.{name}" if name == "empty" else f"transfer.{variant}"
                    transfer_rates.setdefault(key, []).append(len(solved) / len(ACHIEVEMENTS))
                    transfer_solved.setdefault(key, []).append(solved)
        timings[variant] = time.perf_counter() - started

    summary: dict[str, Any] = {}
    for variant, per_seed in runs.items():
        counts = [[float(e["achievements"]) for e in played] for played in per_seed]
        scores = [
            crafter_score(list(success_rates([e["unlocked"] for e in played]).values()))
            for played in per_seed
        ]
        slopes = (
            [slope_ci(np.arange(1, len(c) + 1), c, seed=i) for i, c in enumerate(counts)]
            if len(counts[0]) > 2
            else []
        )
        quarter = max(1, len(counts[0]) // 4)
        last_quarter = [float(np.mean(c[-quarter:])) for c in counts]
        result.add_metric(f"{variant}.crafter_score", scores)
        result.add_metric(f"{variant}.achievements_last_quarter", last_quarter)
        result.add_metric(
            f"{variant}.steps_per_episode", [float(np.mean([e["steps"] for e in p])) for p in per_seed]
        )
        result.add_metric(
            f"{variant}.llm_calls", [float(sum(e.get("llm_calls", 0) for e in p)) for p in per_seed]
        )
        if slopes:
            result.add_metric(f"{variant}.slope", [s.slope for s in slopes])
        result.curves[f"{variant}.achievements"] = Curve(
            [float(i + 1) for i in range(len(counts[0]))],
            counts,
            kind="achievements",
            xlabel="episode",
            ylabel="achievements per episode",
        )
        mean_curve = [float(v) for v in np.mean(np.asarray(counts), axis=0)]
        pooled = slope_ci(np.arange(1, len(mean_curve) + 1), mean_curve) if len(mean_curve) > 2 else None
        rates_all = success_rates([e["unlocked"] for played in per_seed for e in played])
        summary[variant] = {
            "crafter_score": mean_std(scores)[0],
            "crafter_score_std": mean_std(scores)[1],
            "achievements_per_episode": mean_curve,
            "slope": None if pooled is None else {"slope": pooled.slope, "lo": pooled.lo, "hi": pooled.hi},
            "milestones": [milestones(played) for played in per_seed],
            "success_rates": rates_all,
            "episodes": per_seed,
        }
    for key, rates in transfer_rates.items():
        result.add_metric(key, rates)
        summary.setdefault("transfer", {})[key] = {"success": mean_std(rates), "solved": transfer_solved[key]}
    result.extra["variants"] = summary
    result.timings = {f"{k}_s": v for k, v in timings.items()}
    return result


def _frozen_copy(agent: Any) -> Any:
    """The agent with copies of its learned state and a log of its own (what a transfer task changes is
    thrown away)."""
    trial = copy.copy(agent)
    library = agent.make_library()
    library.load_state_dict(agent.library.state_dict())
    trial.library = library
    lessons = type(agent.lessons)()
    lessons.load_state_dict(agent.lessons.state_dict())
    trial.lessons = lessons
    trial.log = ExperienceLog(":memory:")  # the transfer test's own record: the agent's log stays its story
    return trial
