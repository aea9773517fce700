"""The learner contract as checks: run them against any learner — every one in ``lifelong``, and yours.

:func:`check_learner` takes a *factory* (``factory()`` returns a fresh learner; two fresh learners must be
equal) and a *stream builder* (``steps(scope, n, seed)`` returns ``n`` steps of one tenant that the
learner understands), and runs every check of :data:`CHECKS` — as scikit-learn's ``check_estimator``
and river's ``check_estimator`` do for their estimators. Each check raises :class:`AssertionError`
naming the learner and the check:

- ``fresh_learners_are_equal`` — the factory builds equal learners (version 0, not frozen, one digest)
  that declare their ``tenancy`` and ``erases_in_place``;
- ``learn_refuses_non_steps`` — ``learn`` raises :class:`~lifelong.errors.InvalidInput` on anything but
  a :class:`~lifelong.experience.Step`, and changes nothing;
- ``frozen_learns_nothing`` — a frozen learner's ``learn`` returns False and leaves the version, the
  state digest and the provenance as they were;
- ``version_counts_changes`` — ``learn`` returns True exactly when the state digest changed, and the
  version grows by one per True and never otherwise;
- ``state_round_trip`` — ``state_dict`` → :func:`~lifelong.state.codec.encode` →
  :func:`~lifelong.state.codec.decode` → ``load_state_dict`` into a fresh learner gives the same digest,
  version and reads; the state handed out is detached (mutating it leaves the learner as it was, and
  learning on leaves it as it was), so is the state given to ``load_state_dict``, and the restored
  learner learns on exactly as the original does (``resumes=False`` where the class documents state
  it does not snapshot);
- ``replay_equals_incremental`` — the stream appended to an :class:`~lifelong.experience.ExperienceLog`
  and replayed into a fresh learner rebuilds the same digest and version;
- ``provenance_recorded`` — every link names an interaction already learned, with its tenant and user,
  and every step that changed the state links its own interaction (``provenance=False`` only for a
  learner documented to keep nothing derived from interactions);
- ``tenants_kept_apart`` — ``per_tenant``: what one tenant taught changes no read of another;
  ``single``: once bound, steps and scoped reads of another tenant raise
  :class:`~lifelong.learners.TenantMismatch` and change nothing;
- ``forget_user_erases`` — (learners with ``forget_user``) forgetting a user of another tenant changes
  nothing; forgetting user U leaves none of U's interaction ids nor U's id in the state; with
  ``erases_in_place`` the reads (and, unless ``forget_state=False``, the state) are those of a learner
  that never saw U (the stream must keep users apart: an item two users taught goes with either);
- ``redact_state_erases`` — a state that ``redact_state`` can redact holds nothing of U, still loads,
  and (with ``erases_in_place``) equals the state after ``forget_user``;
- ``learn_one_logs_then_learns`` — :meth:`~lifelong.learners.Learner.learn_one` appends the interaction
  and its feedback to the learner's log, and a replay of that log rebuilds the learner;
- ``reads_change_nothing`` — reads leave the state as it was (``pure_reads=False`` where the class
  documents reads that count, such as a bandit's act counter).

*Reads* are whichever of ``predict``, ``scores``, ``rank``, ``propose`` and ``recall`` the learner has,
asked on probe observations (``steps(scope, 8, seed + 1)``) in each probe's scope; a read that raises a
:class:`~lifelong.errors.LifelongError` counts as that outcome. Stream builders for the kinds of
observations in the package: :func:`text_stream` (the default), :func:`rating_stream`,
:func:`bandit_stream`, :func:`task_stream`, :func:`gate_stream`, :func:`expert_stream` and
:func:`sample_stream`. They are deterministic: the same arguments give the same steps, ids included.

A learner of your own passes the contract like this:

>>> from lifelong.learners import Learner
>>> class Tally(Learner):
...     "Counts the right answers it was told, per label."
...     def __init__(self):
...         super().__init__()
...         self.counts = {}
...     def _learn(self, step):
...         if step.correction is None:
...             return False
...         label = str(step.correction)
...         self.counts[label] = self.counts.get(label, 0) + 1
...         self.provenance.record(f"label:{label}", step)
...         return True
...     def _get_state(self):
...         return {"counts": dict(self.counts)}
...     def _set_state(self, state):
...         self.counts = {str(k): int(v) for k, v in state["counts"].items()}
>>> len(check_learner(Tally)) == len(CHECKS)
True

and a learner that hands out its own dict instead of a copy does not:

>>> class Leaky(Tally):
...     def _get_state(self):
...         return {"counts": self.counts}
>>> check_learner(Leaky, checks=["state_round_trip"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: Leaky fails state_round_trip: mutating what state_dict() returned changed the learner ...

In a test suite, :func:`yield_checks` makes each check a test of its own, as scikit-learn's
``parametrize_with_checks`` does::

    @pytest.mark.parametrize(("name", "run"), list(yield_checks(Tally)))
    def test_contract(name, run):
        run()

``tests/test_contract.py`` runs the contract so against every learner in the package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, LifelongError
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Feedback, FeedbackKind, Interaction, Scope, Step
from lifelong.learners.base import Learner, TenantMismatch
from lifelong.learners.context.gate import GATE, Evidence
from lifelong.learners.context.gate import candidates as gate_candidates
from lifelong.learners.experts.mixture import EXPERTS, ExpertMixture
from lifelong.learners.weights.samples import SAMPLE
from lifelong.models.trainable import ABSTAIN, SUGGEST
from lifelong.state.codec import decode, digest, encode

__all__ = [
    "CHECKS",
    "Steps",
    "Subject",
    "bandit_stream",
    "check_learner",
    "correction_stream",
    "expert_stream",
    "gate_stream",
    "rating_stream",
    "reads",
    "sample_stream",
    "task_stream",
    "text_stream",
    "yield_checks",
]

#: ``steps(scope, n, seed)``: ``n`` steps of ``scope``'s tenant (of ``scope.user`` if it names one).
Steps = Callable[[Scope, int, int], list[Step]]

#: The tenants the checks use.
TENANT, OTHER = "tenant-a", "tenant-b"

#: Interaction times of the streams start here (seconds), 10 s apart; feedback follows 1 s later.
T0 = 1_700_000_000.0

#: Probe observations per read.
PROBES = 8


# ------------------------------------------------------------------------------------ stream builders


def _users(scope: Scope, default: Sequence[str] = ("ada", "bob", "cy")) -> list[str]:
    return [scope.user] if scope.user is not None else list(default)


def _interaction(
    kind: str,
    scope: Scope,
    seed: int,
    t: int,
    user: str | None,
    observation: JSON,
    action: JSON = None,
    metadata: Mapping[str, JSON] | None = None,
) -> Interaction:
    """The ``t``-th interaction of a stream: its id and time follow from the arguments alone."""
    key = f"{kind}|{scope.tenant}|{scope.user}|{seed}|{t}"
    return Interaction(
        Scope(scope.tenant, user=user),
        observation,
        action,
        id=hashlib.sha256(key.encode()).hexdigest()[:32],
        time=T0 + 100_000.0 * (seed % 10_000) + 10.0 * t,
        metadata=dict(metadata or {}),
    )


def _step(interaction: Interaction, *feedback: Callable[..., Feedback]) -> Step:
    """``interaction`` with one feedback per maker (called with its id and a time 1 s later)."""
    time = interaction.time + 1.0
    return Step(interaction, tuple(make(interaction.id, time=time) for make in feedback))


def _correction(value: JSON) -> Callable[..., Feedback]:
    return lambda id_, **kw: Feedback.correction(id_, value, **kw)


def _reward(value: float) -> Callable[..., Feedback]:
    return lambda id_, **kw: Feedback.reward(id_, value, **kw)


def _rating(value: float) -> Callable[..., Feedback]:
    return lambda id_, **kw: Feedback.rating(id_, value, **kw)


def _outcome(value: JSON) -> Callable[..., Feedback]:
    return lambda id_, **kw: Feedback.outcome(id_, value, **kw)


INTENTS: dict[str, tuple[str, ...]] = {
    "card_lost": ("card", "stolen", "lost", "missing"),
    "top_up": ("top", "up", "failed", "money"),
    "change_pin": ("pin", "blocked", "code", "change"),
}

FACTS: dict[str, tuple[str, ...]] = {
    "city": ("lives in Paris", "lives in Berlin", "lives in Lagos"),
    "drink": ("prefers green tea", "prefers black coffee"),
}


def text_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Text requests with labels: corrections, accepts, rejects, a correction of a repeated request,
    facts to remember (outcome ``{"remember": ...}``) and rewards that teach nothing, in a fixed cycle.

    Each user's requests carry their own words, so no two users ever send the same text.
    """
    rng = random.Random(seed)
    users, labels = _users(scope), list(INTENTS)
    asked: dict[str, list[str]] = {}
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        label = rng.choice(labels)
        wrong = rng.choice([other for other in labels if other != label])
        a, b = rng.sample(INTENTS[label], 2)
        text = f"{user} {a} {b} {user}{t % 5}"
        kind = t % 8
        if kind == 7 and asked.get(user):
            text = rng.choice(asked[user])  # the same request again, now with another right answer
        asked.setdefault(user, []).append(text)

        def make(observation: JSON, action: JSON = None, t: int = t, user: str = user) -> Interaction:
            return _interaction("text", scope, seed, t, user, observation, action)

        if kind in (0, 7):
            steps.append(_step(make(text, wrong), _correction(label)))
        elif kind == 1:
            steps.append(_step(make(text, label), Feedback.accept))
        elif kind in (2, 3):
            key = rng.choice(list(FACTS))
            fact = {"remember": {"text": f"{user} {rng.choice(FACTS[key])}", "key": key}}
            if kind == 2:  # a label, and a fact to remember
                steps.append(_step(make(text), _correction(label), _outcome(fact)))
            else:
                steps.append(_step(make(f"{user} tells about {key}"), _outcome(fact)))
        elif kind == 4:
            steps.append(_step(make(text, wrong), Feedback.reject))
        elif kind == 5:
            steps.append(_step(make(text, wrong), Feedback.reject, _correction(label)))
        else:
            steps.append(_step(make(text), _reward(0.0)))  # nothing any learner can use
    return steps


def rating_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """``{"user", "item"}`` events: star ratings (1–5), clicks accepted or rejected, and outcomes that
    carry no signal; users have tastes (a user likes the items of their parity)."""
    rng = random.Random(seed)
    users = _users(scope, ("u0", "u1", "u2", "u3"))
    steps = []
    for t in range(n):
        user = users[t % len(users)] if t % 3 else rng.choice(users)
        n_user = int(hashlib.sha256(user.encode()).hexdigest(), 16) % 2
        item = f"i{rng.randrange(8)}"
        likes = int(item[1:]) % 2 == n_user
        i = _interaction("rating", scope, seed, t, user, {"user": user, "item": item})
        kind = t % 6
        if kind in (0, 1, 2, 3):
            stars = float(min(5, max(1, (4 if likes else 2) + rng.choice((-1, 0, 0, 1)))))
            steps.append(_step(i, _rating(stars)))
        elif kind == 4:
            steps.append(_step(i, Feedback.accept if likes else Feedback.reject))
        else:
            steps.append(_step(i, _outcome("seen")))  # no rating, reward or verdict
    return steps


def bandit_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """``{"user", "items": 5}`` requests answered with an item index and rewarded 1 (clicked) or 0."""
    rng = random.Random(seed)
    users = _users(scope, ("u0", "u1", "u2"))
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        item = rng.randrange(5)
        i = _interaction("bandit", scope, seed, t, user, {"user": user, "items": 5}, item)
        clicked = float(rng.random() < (0.8 if item == len(user) % 5 else 0.2))
        steps.append(
            _step(i, _reward(clicked) if t % 5 else (Feedback.accept if clicked else Feedback.reject))
        )
    return steps


def task_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Multi-task batches: ``{"task": t, "X": rows}`` (3 features) with 0/1 labels as the correction,
    tasks coming back with more data, single rows ``{"task": t, "x": row}`` and batches without labels."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(12345).normal(size=(3, 2))
    users = _users(scope, ("lab",))
    steps = []
    for t in range(n):
        task = t % 4
        theta = basis @ np.array([1.0, -1.0]) if task % 2 else basis @ np.array([0.5, 1.0])
        rows = rng.normal(size=(1 if t % 5 == 4 else 6, 3))
        labels = (rows @ theta + 0.3 * rng.normal(size=len(rows)) > 0).astype(int).tolist()
        user = users[t % len(users)]
        if t % 5 == 4:
            i = _interaction("task", scope, seed, t, user, {"task": task, "x": rows[0].round(6).tolist()})
            steps.append(_step(i, _correction(labels[0])))
        elif t % 7 == 6:
            i = _interaction("task", scope, seed, t, user, {"task": task, "X": rows.round(6).tolist()})
            steps.append(_step(i, _reward(1.0)))  # no labels: nothing to fit
        else:
            i = _interaction("task", scope, seed, t, user, {"task": task, "X": rows.round(6).tolist()})
            steps.append(_step(i, _correction(labels)))
    return steps


def gate_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Requests with the gate's candidates in ``metadata["gate"]`` (the plain answer, the model's and
    the nearest example's, with features), answered by the right line or an accept/reject."""
    rng = random.Random(seed)
    users = _users(scope)
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        truth = f"line {rng.randrange(4)}"
        model = truth if rng.random() < 0.6 else f"line {rng.randrange(4, 8)}"
        example = truth if rng.random() < 0.8 else "line 9"
        evidence = Evidence(similarity=round(rng.random(), 4), example_answer=example)
        logprobs = [round(rng.uniform(-2, 0), 4)]
        options = gate_candidates(
            evidence,
            model=(model, logprobs),
            plain=(model if t % 2 else f"line {rng.randrange(8)}", logprobs),
        )
        candidates: list[JSON] = [{"action": a, "features": dict(f)} for a, f in options]
        i = _interaction("gate", scope, seed, t, user, f"{user} code {t}", model, {GATE: candidates})
        if t % 4 == 3:
            steps.append(_step(i, Feedback.accept if model == truth else Feedback.reject))
        else:
            steps.append(_step(i, _correction(truth)))
    return steps


def expert_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Requests with the experts' proposals and the candidates' features in ``metadata["experts"]``
    (as an :class:`~lifelong.agents.Agent` logs them), corrected; sometimes no expert has the answer,
    sometimes there is no right answer to learn from."""
    rng = random.Random(seed)
    users = _users(scope)
    mixture = ExpertMixture()
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        truth = f"label{rng.randrange(5)}"
        right, wrong = (truth, round(rng.uniform(0.5, 1.0), 4)), (f"label{rng.randrange(5, 9)}", 0.4)
        proposals: dict[str, list[tuple[JSON, float]]] = {
            "knn": [right if rng.random() < 0.7 else wrong],
            "llm": [right if rng.random() < 0.5 else wrong, ("label9", 0.1)],
        }
        if t % 6 == 5:
            proposals = {"knn": [wrong], "llm": [wrong]}  # the right answer is not among the candidates
        candidates = mixture.candidates(proposals)
        metadata = {
            EXPERTS: {
                "proposals": {name: [[a, s] for a, s in rows] for name, rows in proposals.items()},
                "candidates": [{"action": a, "features": f} for a, f in candidates],
            }
        }
        i = _interaction("experts", scope, seed, t, user, f"{user} asks {t}", candidates[0][0], metadata)
        steps.append(_step(i, _reward(0.0) if t % 7 == 6 else _correction(truth)))
    return steps


def sample_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Code-completion requests with the policy's sampled action in ``metadata["sample"]`` (token ids
    of a byte tokenizer: a suggested line, or an abstention) and a reward; a few greedy (temperature 0)
    samples and requests without a sample, which a policy gradient must skip."""
    rng = random.Random(seed)
    users = _users(scope, ("dev",))
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        prompt = f"x{t % 3} = "
        if t % 4 == 3:
            ids, logprobs = [ABSTAIN], [round(math.log(0.1), 6)]
        else:
            line = rng.choice(("1", "y", "[]"))
            ids = [SUGGEST, *(b + 3 for b in line.encode())]
            logprobs = [round(math.log(0.9), 6), *([-5.5] * len(line))]
        temperature = 0.0 if t % 9 == 8 else 1.0
        sample: JSON = {
            "prompt": prompt,
            "completion_ids": ids,
            "logprobs": logprobs,
            "temperature": temperature,
        }
        metadata = {} if t % 11 == 10 else {SAMPLE: sample}
        i = _interaction("sample", scope, seed, t, user, {"prompt": prompt}, None, metadata)
        steps.append(_step(i, _reward(0.75 if rng.random() < 0.5 else -0.25)))
    return steps


def correction_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Code-completion requests as an agent with a trainable policy logs them (prompt and sampled
    action in ``metadata["sample"]``, byte-tokenizer ids) for two developers with their own spellings
    of the same lines: the developer accepts a right suggestion, rejects a wrong one and types the
    line they wanted (a correction), or leaves it (reward 0, no line); a few requests have no prompt
    logged."""
    rng = random.Random(seed)
    users = _users(scope, ("dev", "ana"))
    steps = []
    for t in range(n):
        user = users[t % len(users)]
        prompt = f"x{t % 3} = "
        right = ("1", "[]", "None")[t % 3] if user != "ana" else ("1.0", "list()", "None")[t % 3]
        line = right if rng.random() < 0.3 else rng.choice(("0", "y", "{}"))
        ids = [SUGGEST, *(b + 3 for b in line.encode()), 2]
        sample: JSON = {
            "prompt": prompt,
            "completion_ids": ids,
            "logprobs": [round(math.log(0.9), 6), *([-2.5] * (len(line) + 1))],
            "temperature": 1.0,
        }
        metadata = {} if t % 7 == 6 else {SAMPLE: sample}
        i = _interaction("correction", scope, seed, t, user, {"prompt": prompt}, line, metadata)
        if t % 5 == 4:
            steps.append(_step(i, _reward(0.0)))  # silence: no right line to learn
        elif line == right:
            steps.append(_step(i, Feedback.accept, _reward(0.75)))
        else:
            steps.append(_step(i, Feedback.reject, _reward(-0.25), _correction(right)))
    return steps


SKILL_TASKS = ("collect_wood", "place_table", "eat_cow")


def episode_stream(scope: Scope, n: int, seed: int) -> list[Step]:
    """Skill-agent attempts (:mod:`lifelong.agents.skills`): programs written for tasks with the critic's
    verdict and the run's effect events as outcome feedback, verifications of new skills in fresh worlds
    (``metadata["gate"]``) and re-runs of stored ones, in a fixed cycle."""
    rng = random.Random(seed)
    users = _users(scope, ("agent",))
    steps: list[Step] = []
    for t in range(n):
        user = users[t % len(users)]
        task = SKILL_TASKS[(t // 4) % len(SKILL_TASKS)]
        kind = t % 4
        code = f"def {task}():\n    act('do')\n    return {t // 12 % 2 == 0}\n"
        target = rng.choice(("tree", "grass", "cow"))
        events = [
            {
                "action": "do",
                "target": target,
                "changes": {"wood": 1} if kind == 0 else {},
                "made": "grass" if kind == 0 else None,
                "unlocked": [task] if kind == 0 else [],
                "missing": {} if kind == 0 else {"items": {"wood": 1 + t % 2}},
                "n": 1 + t % 3,
            }
        ]
        action: JSON = {
            "skill": task,
            "task": task,
            "code": code,
            "description": f"do facing {target}",
            "source": "synthesised",
        }
        metadata: dict[str, JSON] = {}
        if kind == 2 and steps:  # verify the skill two attempts back made (its item id is derived)
            made = steps[-2].interaction
            metadata = {"gate": f"{made.id}/SkillLibrary/0"}
        elif kind == 3 and steps:
            action = {**action, "source": "library", "item": f"{steps[-3].interaction.id}/SkillLibrary/0"}
        success = kind in (0, 2) or (kind == 3 and rng.random() < 0.5)
        i = _interaction("episode", scope, seed, t, user, {"query": task, "task": task}, action, metadata)
        verdict = {
            "success": success,
            "error": None if success else "the task did not happen",
            "events": events,
        }
        steps.append(_step(i, _outcome(verdict), _reward(1.0 if success else 0.0)))
    return steps


# ------------------------------------------------------------------------------------ reads


def _plain(value: Any) -> Any:
    """A read's answer as comparable data (NaN compares equal to NaN)."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return "nan" if math.isnan(value) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _close(a: Any, b: Any, rel: float = 1e-6) -> bool:
    """``a == b``, floats to a relative ``rel``."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    return bool(a == b)


def _outcome_of(call: Callable[[], Any]) -> Any:
    try:
        return _plain(call())
    except LifelongError as exc:
        return ["raised", type(exc).__name__, str(exc)]


def _read_calls(learner: Learner, observation: JSON, scope: Scope) -> list[tuple[str, Callable[[], Any]]]:
    """The reads a learner has, asked for ``observation`` in ``scope``."""
    has = {name: getattr(learner, name, None) for name in ("predict", "scores", "rank", "propose", "recall")}
    recommendation = isinstance(observation, dict) and "user" in observation and "item" in observation
    user = str(observation["user"]) if recommendation else ""
    calls: list[tuple[str, Callable[[], Any]]] = []
    if callable(predict := has["predict"]):
        calls.append(("predict", lambda: predict(observation, scope)))
    if callable(scores := has["scores"]):
        if recommendation:
            calls.append(("scores", lambda: scores(user, scope=scope)))
        else:
            calls.append(("scores", lambda: scores(observation, scope=scope)))
    if recommendation and callable(rank := has["rank"]):
        calls.append(("rank", lambda: rank(user, 5, scope=scope)))
    if not recommendation and callable(propose := has["propose"]):
        calls.append(("propose", lambda: propose(observation, scope, 3)))
    query = observation if isinstance(observation, str) else None
    if isinstance(observation, dict) and isinstance(observation.get("query"), str):
        query = observation["query"]
    if query is not None and callable(recall := has["recall"]):
        calls.append(("recall", lambda: recall(query, scope)))
    return calls


def reads(learner: Learner, probes: Sequence[Step]) -> list[tuple[str, Any]]:
    """What ``learner`` answers to each probe's observation in the probe's scope, read by read."""
    return [
        (name, _outcome_of(call))
        for probe in probes
        for name, call in _read_calls(learner, probe.interaction.observation, probe.interaction.scope)
    ]


# ------------------------------------------------------------------------------------ the subject


@dataclass
class Subject:
    """A learner under test: how to make it, what it learns from, and what its class documents."""

    factory: Callable[[], Learner]
    steps: Steps = text_stream
    #: Steps per stream.
    n: int = 40
    seed: int = 0
    #: False only for a learner documented to keep nothing derived from interactions.
    provenance: bool = True
    #: False where the class documents reads that change its state (e.g. an act counter).
    pure_reads: bool = True
    #: False where the class documents state it does not snapshot (e.g. optimizer moments): a restored
    #: learner then learns on differently from the original.
    resumes: bool = True
    #: False where ``forget_user`` documents that it keeps counts: only reads are compared.
    forget_state: bool = True
    name: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.name = type(self.make()).__name__

    def make(self) -> Learner:
        learner = self.factory()
        if not isinstance(learner, Learner):
            raise AssertionError(f"factory() must return a Learner, got {type(learner).__name__}")
        return learner

    def stream(self, tenant: str = TENANT, seed: int | None = None, n: int | None = None) -> list[Step]:
        steps = self.steps(Scope(tenant), self.n if n is None else n, self.seed if seed is None else seed)
        if not steps or not all(isinstance(s, Step) for s in steps):
            raise AssertionError(f"steps({tenant!r}, ...) must return a non-empty list of Step")
        return steps

    def probes(self, tenant: str = TENANT) -> list[Step]:
        return self.stream(tenant, self.seed + 1, PROBES)

    def learned(self, steps: Sequence[Step]) -> Learner:
        learner = self.make()
        for step in steps:
            learner.learn(step)
        return learner


def _expect(condition: object, message: str) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``condition`` (kept under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def _digest(learner: Learner) -> str:
    return digest(learner.state_dict())


def _inner_digest(learner: Learner) -> str:
    """The digest of what was learned, without the version counter."""
    return digest({k: v for k, v in learner.state_dict().items() if k != "version"})


def _learned_digest(learner: Learner) -> str:
    """The digest of what was learned, without the version counter and the tenant binding."""
    return digest(learner.state_dict()["state"])


def _mutate(node: Any) -> None:
    """Change every dict, list and writable array in a state tree, in place."""
    if isinstance(node, dict):
        for value in list(node.values()):
            _mutate(value)
        node["__mutated__"] = 1
    elif isinstance(node, list):
        for value in node:
            _mutate(value)
        node.append("__mutated__")
    elif isinstance(node, np.ndarray) and node.flags.writeable and node.size:
        node[...] = 1 if node.dtype == bool else 7


def _strings(node: Any) -> Iterator[str]:
    """Every string in a state tree: keys and leaves."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _changing(subject: Subject, steps: Sequence[Step]) -> Learner:
    """A fresh learner that learned ``steps``, which must teach it something."""
    learner = subject.learned(steps)
    _expect(
        learner.version > 0,
        f"the stream taught it nothing (version still 0 after {len(steps)} steps): give check_learner "
        "a stream of observations it understands",
    )
    return learner


# ------------------------------------------------------------------------------------ the checks


def check_fresh_learners_are_equal(subject: Subject) -> None:
    a, b = subject.make(), subject.make()
    _expect(a is not b, "factory() returned the same object twice; it must build a fresh learner")
    _expect(a.version == 0 and not a.frozen, f"a fresh learner has version {a.version}, frozen={a.frozen}")
    _expect(
        a.tenancy in ("per_tenant", "single"), f"tenancy must be 'per_tenant' or 'single', not {a.tenancy!r}"
    )
    _expect(isinstance(a.erases_in_place, bool), "erases_in_place must be a bool")
    _expect(isinstance(a.name, str) and a.name, "a learner needs a non-empty name")
    state = a.state_dict()
    _expect(state.get("learner") == type(a).__name__, f"state_dict()['learner'] is {state.get('learner')!r}")
    _expect(_digest(a) == _digest(b), "two fresh learners differ: seed everything the factory builds")


def check_learn_refuses_non_steps(subject: Subject) -> None:
    learner = subject.make()
    step = subject.stream()[0]
    before = _digest(learner)
    for bad in (None, "a request", step.to_dict(), step.interaction, list(step.feedback)):
        try:
            learner.learn(bad)  # type: ignore[arg-type]
        except InvalidInput:
            continue
        raise AssertionError(f"learn({type(bad).__name__}) did not raise InvalidInput")
    _expect(learner.version == 0 and _digest(learner) == before, "a refused input changed the learner")


def check_frozen_learns_nothing(subject: Subject) -> None:
    steps = subject.stream()
    half = len(steps) // 2
    learner = subject.learned(steps[:half])
    learner.provenance.drain()
    frozen = learner.freeze()
    _expect(frozen is learner and learner.frozen, "freeze() must set frozen and return the learner")
    version, before = learner.version, _digest(learner)
    for step in steps[half:]:
        _expect(
            learner.learn(step) is False,
            f"a frozen learner's learn() returned True (step {step.interaction.id})",
        )
    _expect(
        learner.version == version, f"a frozen learner's version moved from {version} to {learner.version}"
    )
    _expect(_digest(learner) == before, "a frozen learner's state changed")
    _expect(not learner.provenance.drain(), "a frozen learner recorded provenance")


def check_version_counts_changes(subject: Subject) -> None:
    learner = subject.make()
    changes = 0
    for n, step in enumerate(subject.stream()):
        version, before = learner.version, _learned_digest(learner)
        changed = learner.learn(step)
        _expect(isinstance(changed, bool), f"learn() returned {changed!r}, not a bool")
        _expect(
            learner.version == version + changed,
            f"step {n}: learn() returned {changed} but the version went from {version} to {learner.version}",
        )
        moved = _learned_digest(learner) != before
        _expect(
            moved == changed,
            f"step {n}: learn() returned {changed} but the state {'changed' if moved else 'did not change'}",
        )
        changes += changed
    _expect(
        changes, "the stream taught it nothing: give check_learner a stream of observations it understands"
    )


def check_state_round_trip(subject: Subject) -> None:
    steps = subject.stream()
    half = len(steps) // 2
    a = _changing(subject, steps[:half])
    state = a.state_dict()
    before = digest(state)
    _expect(_digest(a) == before, "two state_dict() calls in a row differ")
    try:
        blob = encode(state)
    except InvalidInput as exc:
        raise AssertionError(f"lifelong.state.codec cannot store the state: {exc}") from None
    restored = decode(blob)
    _expect(digest(restored) == before, "the state changed through encode/decode")
    b = subject.make()
    b.load_state_dict(restored)
    _expect(_digest(b) == before, "a fresh learner loaded with the state has another state_dict()")
    _expect(b.version == a.version, f"version {b.version} after load_state_dict, {a.version} before")
    # state_dict() hands out a copy: mutating it does not reach the learner ...
    _mutate(state)
    _expect(
        _digest(a) == before,
        "mutating what state_dict() returned changed the learner (return copies, not the live objects)",
    )
    probes = subject.probes()
    _expect(reads(b, probes) == reads(a, probes), "the restored learner reads differently")
    # ... and learning on does not reach a state handed out earlier, nor a state loaded into a learner.
    handed, loaded = a.state_dict(), restored
    handed_digest = digest(handed)
    for step in steps[half:]:
        a.learn(step)
        b.learn(step)
    _expect(digest(handed) == handed_digest, "learning changed a state_dict() handed out before")
    _expect(
        digest(loaded) == before, "learning changed the state given to load_state_dict() (copy it on load)"
    )
    if subject.resumes:
        _expect(_digest(b) == _digest(a), "the restored learner learned on differently from the original")


def check_replay_equals_incremental(subject: Subject) -> None:
    steps = subject.stream()
    online = _changing(subject, steps)
    log = ExperienceLog(":memory:")
    for step in steps:
        log.append_many([step.interaction, *step.feedback])
    rebuilt = subject.make()
    rebuilt.learn_many(log.replay())
    _expect(
        rebuilt.version == online.version, f"replay gave version {rebuilt.version}, online {online.version}"
    )
    _expect(_digest(rebuilt) == _digest(online), "replaying the log did not rebuild the learned state")


def check_provenance_recorded(subject: Subject) -> None:
    learner = subject.make()
    seen: dict[str, Scope] = {}
    links = 0
    for n, step in enumerate(subject.stream()):
        seen[step.interaction.id] = step.interaction.scope
        changed = learner.learn(step)
        drained = learner.provenance.drain()
        for link in drained:
            scope = seen.get(link.interaction_id)
            if scope is None:
                raise AssertionError(f"link {link} names an interaction it has not learned")
            _expect((link.tenant, link.user) == (scope.tenant, scope.user), f"link {link} has another scope")
        if changed and subject.provenance:
            _expect(
                step.interaction.id in {link.interaction_id for link in drained},
                f"step {n} changed the state but recorded no provenance link to its interaction "
                "(an erasure would miss what it taught)",
            )
        links += len(drained)
    if not subject.provenance:
        _expect(links == 0, "provenance=False, yet it recorded links")


def check_tenants_kept_apart(subject: Subject) -> None:
    mine, theirs = subject.stream(TENANT), subject.stream(OTHER, subject.seed + 2)
    probes = subject.probes(OTHER)
    if subject.make().tenancy == "per_tenant":
        both = subject.make()
        for a, b in zip(mine, theirs, strict=False):
            both.learn(a)
            both.learn(b)
        only = subject.learned(theirs)
        _expect(
            reads(both, probes) == reads(only, probes),
            f"what {TENANT!r} taught changed the reads of {OTHER!r}",
        )
        return
    bound = _changing(subject, mine)
    _expect(bound.tenant == TENANT, f"a single-tenant learner bound to {bound.tenant!r}, not {TENANT!r}")
    before = _digest(bound)
    for step in theirs[:3]:
        try:
            bound.learn(step)
        except TenantMismatch:
            continue
        raise AssertionError(f"a learner bound to {TENANT!r} learned a step of {OTHER!r}")
    _expect(_digest(bound) == before, "a refused step of another tenant changed the state")
    for name, outcome in reads(bound, probes):
        _expect(
            isinstance(outcome, list) and outcome[:2] == ["raised", "TenantMismatch"],
            f"{name}() answered a request of {OTHER!r}: {outcome!r}",
        )


def _forgotten(subject: Subject) -> tuple[list[Step], str, set[str]]:
    """The stream, the user to forget (the one with the most steps) and their interaction ids."""
    steps = subject.stream()
    counts: dict[str, int] = {}
    for step in steps:
        if step.interaction.scope.user is not None:
            counts[step.interaction.scope.user] = counts.get(step.interaction.scope.user, 0) + 1
    _expect(counts, "no step of the stream names a user: forget_user cannot be checked")
    user = max(counts, key=lambda u: counts[u])
    return steps, user, {s.interaction.id for s in steps if s.interaction.scope.user == user}


def _holds(state: dict[str, Any], user: str, ids: set[str]) -> list[str]:
    """The strings of ``state`` that are ``user`` or hold one of ``ids``."""
    return [s for s in _strings(state) if s == user or any(i in s for i in ids)]


def check_forget_user_erases(subject: Subject) -> None:
    learner = subject.make()
    forget = getattr(learner, "forget_user", None)
    if not callable(forget):
        return
    steps, user, ids = _forgotten(subject)
    for step in steps:
        learner.learn(step)
    held = _holds(learner.state_dict(), user, ids)
    before = _digest(learner)
    _expect(
        forget(user, OTHER) is False,
        f"forget_user({user!r}, {OTHER!r}) returned True for a tenant never seen",
    )
    _expect(_digest(learner) == before, "forgetting a user of another tenant changed the state")
    dropped = forget(user, TENANT)
    _expect(isinstance(dropped, bool), f"forget_user() returned {dropped!r}, not a bool")
    if held:
        _expect(dropped, f"forget_user({user!r}) returned False, yet the state held {held[:3]}")
    left = _holds(learner.state_dict(), user, ids)
    _expect(not left, f"after forget_user({user!r}) the state still holds {left[:3]}")
    if learner.erases_in_place:
        never = subject.learned([s for s in steps if s.interaction.id not in ids])
        probes = subject.probes()
        # Floats to 1e-6: a removal moves what is left (e.g. index rows), and where a row sits changes the
        # last bits of a matrix product.
        _expect(
            _close(reads(learner, probes), reads(never, probes)),
            f"after forget_user({user!r}) it reads differently from a learner that never saw them",
        )
        if subject.forget_state:
            _expect(
                _inner_digest(learner) == _inner_digest(never),
                f"after forget_user({user!r}) the state differs from a learner that never saw them",
            )


def check_redact_state_erases(subject: Subject) -> None:
    steps, user, ids = _forgotten(subject)
    learner = subject.learned(steps)
    state = learner.state_dict()
    redacted = type(learner).redact_state(state, ids, Scope(TENANT, user=user))
    if redacted is None:
        return  # the class cannot separate what a user taught: its snapshots are erased instead
    _expect(digest(state) == _digest(learner), "redact_state() changed the state it was given")
    left = _holds(redacted, user, ids)
    _expect(not left, f"the redacted state still holds {left[:3]}")
    fresh = subject.make()
    fresh.load_state_dict(redacted)
    forget = getattr(learner, "forget_user", None)
    if callable(forget) and learner.erases_in_place:
        forget(user, TENANT)
        _expect(
            _inner_digest(fresh) == _inner_digest(learner),
            "the redacted state differs from the state after forget_user()",
        )


def _feedback_keywords(step: Step) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    for fb in step.feedback:
        if fb.kind in (FeedbackKind.ACCEPT, FeedbackKind.REJECT):
            kw["accept"] = fb.kind is FeedbackKind.ACCEPT
        else:
            kw[fb.kind.value] = fb.value
    return kw


def check_learn_one_logs_then_learns(subject: Subject) -> None:
    learner = subject.make()
    taught = []
    for step in subject.stream()[:8]:
        i = step.interaction
        made = learner.learn_one(i.observation, action=i.action, scope=i.scope, **_feedback_keywords(step))
        _expect(isinstance(made, Step), f"learn_one() returned {type(made).__name__}, not the Step")
        taught.append(made)
        log = learner.log
        if log is None:
            raise AssertionError("learn_one() without a log= did not make the learner's log")
        logged = log.get(made.interaction.id)
        _expect(
            logged.interaction.to_dict() == made.interaction.to_dict(), "the log holds another interaction"
        )
        _expect(
            sorted(fb.id for fb in logged.feedback) == sorted(fb.id for fb in made.feedback),
            "the log does not hold the step's feedback",
        )
    log = learner.log
    if log is None or len(log) != len(taught):
        raise AssertionError("the log does not hold every step")
    rebuilt = subject.make()
    rebuilt.learn_many(log.replay())
    _expect(_digest(rebuilt) == _digest(learner), "replaying learn_one()'s log did not rebuild the learner")
    elsewhere = ExperienceLog(":memory:")
    other = subject.make()
    i = taught[0].interaction
    other.learn_one(
        i.observation, action=i.action, scope=i.scope, log=elsewhere, **_feedback_keywords(taught[0])
    )
    _expect(other.log is None and len(elsewhere) == 1, "learn_one(log=...) did not write to the log given")


def check_reads_change_nothing(subject: Subject) -> None:
    if not subject.pure_reads:
        return  # documented: its reads count (e.g. the acts that seed a bandit's exploration)
    learner = subject.learned(subject.stream())
    version, before = learner.version, _digest(learner)
    reads(learner, subject.probes())
    reads(learner, subject.probes(OTHER))
    _expect(learner.version == version and _digest(learner) == before, "a read changed the learned state")


#: Every check of the contract, by name, in the order :func:`check_learner` runs them.
CHECKS: dict[str, Callable[[Subject], None]] = {
    "fresh_learners_are_equal": check_fresh_learners_are_equal,
    "learn_refuses_non_steps": check_learn_refuses_non_steps,
    "frozen_learns_nothing": check_frozen_learns_nothing,
    "version_counts_changes": check_version_counts_changes,
    "state_round_trip": check_state_round_trip,
    "replay_equals_incremental": check_replay_equals_incremental,
    "provenance_recorded": check_provenance_recorded,
    "tenants_kept_apart": check_tenants_kept_apart,
    "forget_user_erases": check_forget_user_erases,
    "redact_state_erases": check_redact_state_erases,
    "learn_one_logs_then_learns": check_learn_one_logs_then_learns,
    "reads_change_nothing": check_reads_change_nothing,
}


def yield_checks(
    factory: Callable[[], Learner],
    steps: Steps | None = None,
    *,
    checks: Sequence[str] | None = None,
    **options: Any,
) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, run)`` for each check (all of :data:`CHECKS`, or those named): ``run()`` raises
    :class:`AssertionError` ``"<Learner> fails <check>: <what>"``. ``options`` are :class:`Subject`'s
    (``n``, ``seed``, ``provenance``, ``pure_reads``, ``resumes``, ``forget_state``)."""
    unknown = sorted(set(checks or ()) - set(CHECKS))
    if unknown:
        raise InvalidInput(
            f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}", field="checks"
        )
    subject = Subject(factory, steps or text_stream, **options)
    for name in checks or list(CHECKS):

        def run(name: str = name) -> None:
            try:
                CHECKS[name](subject)
            except AssertionError as exc:
                raise AssertionError(f"{subject.name} fails {name}: {exc}") from None

        yield name, run


def check_learner(
    factory: Callable[[], Learner],
    steps: Steps | None = None,
    *,
    checks: Sequence[str] | None = None,
    **options: Any,
) -> list[str]:
    """Run the contract's checks on the learners ``factory()`` makes, learning from ``steps`` (default:
    :func:`text_stream`); returns the names of the checks passed, raises :class:`AssertionError` at the
    first that fails. See the module docstring for the checks and :func:`yield_checks` for ``options``."""
    passed = []
    for name, run in yield_checks(factory, steps, checks=checks, **options):
        run()
        passed.append(name)
    return passed
