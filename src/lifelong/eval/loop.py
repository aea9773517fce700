"""The one loop every protocol drives: observe → predict → judge → log → learn.

:func:`run_stream` is test-then-train (Dawid 1984, "prequential"): the learner acts on an observation
before it sees that observation's feedback, so every reward it earns is an honest out-of-sample score.
With an :class:`~lifelong.experience.ExperienceLog`, each interaction and its feedback are appended in
one transaction *before* the learner learns from them (DESIGN principle 1, the log is the truth), with
strictly increasing times, so ``log.replay()`` hands a fresh learner the very same steps in the very
same order and rebuilds the same state.

>>> from lifelong.envs.intent_stream import IntentStream
>>> from lifelong.learners import OnlineSoftmax
>>> env = IntentStream(["card stolen", "top up failed"] * 10, ["card", "top_up"] * 10)
>>> trace = run_stream(OnlineSoftmax(), env, seed=0)
>>> trace.steps, sum(trace.rewards[:5]), sum(trace.rewards[-5:])
(20, 2.0, 5.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from lifelong.envs.base import Env, Probe, StepResult, feedback_from
from lifelong.errors import InvalidInput
from lifelong.experience import ExperienceLog, Interaction, Scope, Step
from lifelong.learners.base import Learner
from lifelong.utils.validation import check_scalar
from lifelong.utils.validation import check_seeds as check_seeds  # re-exported: the protocols use it

#: Builds the learner (or its control) for a seed.
MakeLearner = Callable[[int], Learner]
#: Builds the environment for a seed.
MakeEnv = Callable[[int], Env[Any, Any]]


@dataclass
class Trace:
    """What one run of the loop produced: per-step rewards (and best rewards), probe checkpoints."""

    rewards: list[float] = field(default_factory=list)
    best_rewards: list[float | None] = field(default_factory=list)
    checkpoints: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def has_best(self) -> bool:
        """True when the environment reported ``info["best_reward"]`` on every step."""
        return bool(self.best_rewards) and all(b is not None for b in self.best_rewards)


class _Clock:
    """Strictly increasing wall-clock times, shared by every run in the process.

    Interactions and feedback get times from here, so a log replayed in time order gives back the order
    things happened in, even across runs and seeds appended to the same log.
    """

    def __init__(self) -> None:
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            now = time.time()
            # The smallest step that still changes a float near `last` (spacing of float64 there).
            self._last = max(now, self._last + max(1e-6, math.ulp(self._last)))
            return self._last


clock = _Clock()


def run_stream(
    learner: Learner,
    env: Env[Any, Any],
    seed: int | None,
    *,
    max_steps: int | None = None,
    freeze_after: int | None = None,
    log: ExperienceLog | None = None,
    checkpoints: Sequence[int] = (),
    probe: Probe | None = None,
    restart: bool = True,
    bar: Any = None,
) -> Trace:
    """Predict → judge → log → learn until the stream ends, or for ``max_steps`` steps.

    Parameters
    ----------
    learner
        Anything with ``predict(observation, scope)`` and the :class:`Learner` contract.
    env
        Reset with ``seed`` first (the same seed gives the same order).
    max_steps
        Stop after this many steps. Without it the run ends with the first episode (or at the largest
        checkpoint).
    freeze_after
        Freeze the learner after its first ``freeze_after`` steps (the warm-up of a frozen control).
    log
        Every interaction and its feedback are appended here, in one transaction, before learning.
    checkpoints, probe
        Record ``probe(learner)`` just before step k for every k in ``checkpoints`` (k = 0: before any
        step). Without ``max_steps`` the run stops at the largest k; a k the run never reached is NaN.
    restart
        When an episode ends before the run's step limit, start the next one (``reset()`` without a
        seed: the environment's randomness continues). With ``restart=False`` the run ends with the
        episode.
    bar
        A tqdm bar to advance by one per step.
    """
    predict = _predict_of(learner)
    if freeze_after is not None and freeze_after < 0:
        raise InvalidInput(f"must be >= 0, got {freeze_after}", field="warmup")
    if max_steps is not None and max_steps < 0:
        raise InvalidInput(f"must be >= 0, got {max_steps}", field="max_steps")
    if checkpoints and probe is None:
        raise InvalidInput("checkpoints need a probe", field="probe")
    wanted = sorted({int(k) for k in checkpoints})
    limit = max_steps if max_steps is not None else (wanted[-1] if wanted else None)
    trace = Trace()
    started = time.perf_counter()
    observation, info = env.reset(seed=seed)
    scope = _scope(info, env.scope)
    t = 0
    while limit is None or t < limit:
        if freeze_after is not None and t >= freeze_after:
            learner.frozen = True
        if probe is not None and t in wanted:
            trace.checkpoints[t] = float(probe(learner))
        observation, reward, terminated, truncated, info = _step(
            learner, predict, env, observation, scope, log
        )
        trace.rewards.append(float(reward))
        best = info.get("best_reward")
        trace.best_rewards.append(None if best is None else float(best))
        scope = _scope(info, scope)
        t += 1
        if bar is not None:
            bar.update(1)
        if terminated or truncated:
            if limit is None or t >= limit or not restart:
                break
            observation, info = env.reset()
            scope = _scope(info, scope)
    if probe is not None:
        for k in wanted:
            if k not in trace.checkpoints:  # k == t: the end of the run; k > t: never reached
                trace.checkpoints[k] = float(probe(learner)) if k == t else math.nan
    trace.seconds = time.perf_counter() - started
    return trace


def _step(
    learner: Learner,
    predict: Callable[[Any, Scope], Any],
    env: Env[Any, Any],
    observation: Any,
    scope: Scope,
    log: ExperienceLog | None,
) -> StepResult:
    """One interaction: act, let the environment judge, log it with its feedback, then learn from it."""
    interaction = Interaction(
        scope,
        observation,
        predict(observation, scope),
        time=clock(),
        versions={learner.name: learner.version},  # the state that produced the action
    )
    result = env.step(interaction.action)
    _, reward, _, _, info = result
    feedback = feedback_from(interaction.id, reward, info, time=clock())
    if log is not None:
        log.append_many([interaction, *feedback])  # the log first (one transaction) ...
    learner.learn(Step(interaction, feedback))  # ... then learn
    return result


def build_learner(make_learner: MakeLearner, seed: int) -> Learner:
    """``make_learner(seed)``, checked to be a :class:`Learner` that can ``predict``."""
    learner = make_learner(seed)
    _predict_of(learner)
    return learner


def _predict_of(learner: Any) -> Callable[[Any, Scope], Any]:
    predict: Callable[[Any, Scope], Any] | None = getattr(learner, "predict", None)
    if not callable(predict) or not isinstance(learner, Learner):
        raise InvalidInput(
            f"must build a Learner with predict(observation, scope), got {type(learner).__name__}",
            field="make_learner",
        )
    return predict


def _scope(info: dict[str, Any], default: Scope) -> Scope:
    scope = info.get("scope", default)
    if not isinstance(scope, Scope):
        raise InvalidInput(f"must be a Scope, got {type(scope).__name__}", field="info['scope']")
    return scope


# -- helpers the protocols share ----------------------------------------------------------------------
def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "step") -> Any:
    """A tqdm bar on stderr; ``enabled=False`` turns it off, and it stays off when stderr is no TTY."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False)


def stream_length(env: Env[Any, Any], max_steps: int | None) -> int | None:
    """How many steps a run will take, when known (for the progress bar)."""
    if max_steps is not None:
        return max_steps
    return len(env) if hasattr(env, "__len__") else None


def check_int(value: Any, field: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or :class:`InvalidInput` naming ``field``."""
    return int(check_scalar(value, field, int, min_val=minimum))
