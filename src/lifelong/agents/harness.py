"""A harness that learns: the agent's prompt configuration, searched from its own log and versioned.

How many recalled examples, lessons and memory items go into the prompt, whether a label task's output
is narrowed to the labels its evidence points at, how many lines of the current file are shown — these
choices change what the frozen model answers, and the best ones differ by model, task and data (on
BANKING77 with a 270M model, lessons and memory lines in the prompt *hurt*). :class:`HarnessSearch`
learns them from usage, in the spirit of meta-harness loops that optimise an agent's harness from its
usage data:

1. **Candidates.** The current :class:`HarnessConfig` and its neighbours (one setting changed each).
2. **Replay scoring, in the background.** Every ``every`` answered requests a round starts: the last
   ``replay`` logged requests whose right answer is known (corrections, accepts) are replayed through
   the model under every candidate, recalling only what had been learned *before* each request (no
   answer leaks into its own replay). The work is spread over the live stream — :meth:`tick` spends at
   most ``budget`` model calls after each feedback — so serving is never stopped for a batch.
3. **Gated promotion.** When every candidate is scored on the same requests, the best one is promoted
   if it beats the current configuration by ``margin`` (committed and promoted in the
   :class:`~lifelong.state.VersionStore` behind a gate that checks exactly that).
4. **Watched on the live stream, rolled back on regression.** For the next ``watch`` live requests the
   previous configuration is run in the shadow (one extra call each) on the same requests; if the
   promoted one did worse on them it is rolled back (in the store too).

What is scored is the model's own answer under each configuration (exact match, or characters of the
right line for suggestions), not the agent's final action: the agent's experts (the classifier, the
class means) have already learned from the replayed requests' answers and would leak them.

Every round records its candidates' scores, the decision and its cost in model calls
(:attr:`HarnessSearch.rounds`). The search's state is versioned like any learner's; unlike the other
learners it is not rebuilt from the log alone (its evidence is model calls on replays), so it is restored
from its snapshots.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from lifelong.experience.records import JSON, Interaction, Scope, Step
from lifelong.learners.base import Learner
from lifelong.learners.context.base import right_answer
from lifelong.learners.context.gate import same_answer
from lifelong.state.store import GateResult
from lifelong.utils.validation import check_scalar

if TYPE_CHECKING:
    from lifelong.state.store import VersionStore


class Answers(Protocol):
    """What the search needs of an agent: the model's answer to a logged request under a config."""

    def model_answer(self, interaction: Interaction, config: HarnessConfig) -> JSON: ...


@dataclass(frozen=True, slots=True)
class HarnessConfig:
    """How the agent builds its prompt. ``context_lines=None`` keeps the task's own default."""

    examples: int = 6
    lessons: int = 2
    memory: int = 2
    narrow: bool = False
    context_lines: int | None = None

    def __post_init__(self) -> None:
        for name in ("examples", "lessons", "memory"):
            check_scalar(getattr(self, name), name, int, min_val=0)
        check_scalar(self.context_lines, "context_lines", int, min_val=1, allow_none=True)

    def to_dict(self) -> dict[str, JSON]:
        return dict(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HarnessConfig:
        known = {
            k: data[k] for k in ("examples", "lessons", "memory", "narrow", "context_lines") if k in data
        }
        return cls(**known)

    def key(self) -> str:
        parts = [f"ex{self.examples}", f"le{self.lessons}", f"me{self.memory}"]
        if self.narrow:
            parts.append("narrow")
        if self.context_lines is not None:
            parts.append(f"lines{self.context_lines}")
        return "-".join(parts)

    def neighbours(self, *, label_task: bool) -> list[HarnessConfig]:
        """Configurations one setting away: more or fewer examples, lessons or memory on/off, and the
        layout switch of the task (narrowed labels, or a shorter/longer file context)."""
        out = [
            replace(self, examples=max(1, self.examples // 2)),
            replace(self, examples=self.examples + max(2, self.examples // 2)),
            replace(self, lessons=0 if self.lessons else 2),
            replace(self, memory=0 if self.memory else 2),
        ]
        if label_task:
            out.append(replace(self, narrow=not self.narrow))
        else:
            lines = self.context_lines or 24
            out += [replace(self, context_lines=max(8, lines // 2)), replace(self, context_lines=lines * 2)]
        seen = {self.key()}
        unique = []
        for config in out:
            if config.key() not in seen:
                seen.add(config.key())
                unique.append(config)
        return unique


def exact_match(answer: JSON, truth: JSON) -> float:
    """1 for the right answer (up to whitespace), else 0."""
    return float(answer is not None and same_answer(answer, truth))


def chars_if_right(answer: JSON, truth: JSON) -> float:
    """The characters of the right line when ``answer`` is it (what an accepted suggestion saves)."""
    return float(len(str(truth).strip())) if exact_match(answer, truth) else 0.0


@dataclass
class _Request:
    """A logged request with a known right answer, as the search replays it."""

    id: str
    observation: JSON
    scope: list[str | None]
    time: float
    truth: JSON
    live: float | None = None  # the current configuration's score on it, as served (watch phase)

    def interaction(self) -> Interaction:
        tenant, user, session = self.scope
        return Interaction(
            Scope(str(tenant), user=user, session=session), self.observation, id=self.id, time=self.time
        )


class HarnessSearch(Learner):
    """Background search over :class:`HarnessConfig`; see the module docstring."""

    name = "HarnessSearch"
    erases_in_place = True  # forget_user drops the user's kept requests; the rest is counts

    def __init__(
        self,
        default: HarnessConfig | None = None,
        *,
        candidates: Sequence[HarnessConfig] | None = None,
        label_task: bool = True,
        every: int = 150,
        replay: int = 40,
        budget: int = 2,
        watch: int = 60,
        margin: float = 0.02,
        objective: Callable[[JSON, JSON], float] = exact_match,
        store: VersionStore | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("every", every), ("replay", replay), ("budget", budget), ("watch", watch)):
            check_scalar(value, name, int, min_val=1)
        check_scalar(margin, "margin", float, min_val=0)
        self.current = default or HarnessConfig()
        self.default = self.current
        self.fixed_candidates = list(candidates) if candidates is not None else None
        self.label_task = label_task
        self.every = every
        self.replay = replay
        self.budget = budget
        self.watch = watch
        self.margin = margin
        self.objective = objective
        self.store = store
        self.phase = "idle"
        self.answered = 0
        self.next_round = every
        self.calls = 0  # model calls spent on replays and shadows, all rounds
        self.rounds: list[dict[str, Any]] = []
        self._pool: deque[_Request] = deque(maxlen=replay)
        self._candidates: list[HarnessConfig] = []
        self._queue: list[tuple[int, int]] = []
        self._replayed: list[_Request] = []
        self._scores: list[list[float]] = []
        self._previous: HarnessConfig | None = None
        self._watched: list[_Request] = []
        self._paired: list[tuple[float, float]] = []

    # ------------------------------------------------------------------ learning from the live stream

    def _learn(self, step: Step) -> bool:
        truth = right_answer(step) if step.corrected or step.accepted else None
        if truth is None:
            return False
        i = step.interaction
        request = _Request(
            i.id, i.observation, [i.scope.tenant, i.scope.user, i.scope.session], i.time, truth
        )
        self._pool.append(request)
        self.provenance.record("pool", step)  # the request is kept (and replayed) until it ages out
        self.answered += 1
        if self.phase == "watch":
            model_answer = i.metadata.get(MODEL_ANSWER)
            request.live = self.objective(model_answer, truth)
            self._watched.append(request)
        elif self.phase == "idle" and self.answered >= self.next_round and len(self._pool) >= self.replay:
            self._start_round()
        return True

    def _start_round(self) -> None:
        base = self.current
        others = self.fixed_candidates or base.neighbours(label_task=self.label_task)
        self._candidates = [base, *(c for c in others if c.key() != base.key())]
        self._replayed = list(self._pool)
        self._queue = [(c, r) for r in range(len(self._replayed)) for c in range(len(self._candidates))]
        self._scores = [[] for _ in self._candidates]
        self.phase = "search"
        self.rounds.append(
            {
                "started_after": self.answered,
                "incumbent": base.key(),
                "candidates": [c.key() for c in self._candidates],
                "calls": 0,
            }
        )

    # ------------------------------------------------------------------ background work

    def tick(self, agent: Answers) -> int:
        """Spend at most ``budget`` model calls on the search; returns the calls made."""
        if self.frozen:
            return 0
        made = 0
        while made < self.budget:
            if self.phase == "search" and self._queue:
                c, r = self._queue.pop(0)
                request = self._replayed[r]
                answer = agent.model_answer(request.interaction(), self._candidates[c])
                self._scores[c].append(self.objective(answer, request.truth))
            elif self.phase == "watch" and self._watched:
                request = self._watched.pop(0)
                assert self._previous is not None and request.live is not None
                answer = agent.model_answer(request.interaction(), self._previous)
                self._paired.append((request.live, self.objective(answer, request.truth)))
            else:
                break
            made += 1
            self.calls += 1
            self.rounds[-1]["calls"] += 1
        if self.phase == "search" and not self._queue:
            self._decide()
        elif self.phase == "watch" and len(self._paired) >= self.watch:
            self._verdict()
        if made:
            self._version += 1
        return made

    def _decide(self) -> None:
        means = [sum(s) / max(1, len(s)) for s in self._scores]
        best = max(range(len(means)), key=lambda n: (means[n], -n))  # ties: the incumbent (index 0)
        record = self.rounds[-1]
        record["scores"] = {c.key(): round(m, 4) for c, m in zip(self._candidates, means, strict=True)}
        record["replayed"] = len(self._replayed)
        promoted = best != 0 and means[best] >= means[0] + self.margin
        record["promoted"] = self._candidates[best].key() if promoted else None
        self._queue, self._replayed = [], []
        if promoted:
            if self.store is not None and self.store.promoted(self.name) is None:
                # the incumbent becomes a version of its own first, so a rollback has one to return to
                first = self.store.commit(self, message=f"incumbent {self.current.key()}")
                self.store.promote(self.name, first.version)
            self._previous, self.current = self.current, self._candidates[best]
            self._commit(
                f"promote {self.current.key()} (replay {means[best]:.3f} vs {means[0]:.3f})",
                means[best],
                means[0],
            )
            self._watched, self._paired = [], []
            self.phase = "watch"
        else:
            self._finish()

    def _verdict(self) -> None:
        new = sum(a for a, _ in self._paired) / len(self._paired)
        old = sum(b for _, b in self._paired) / len(self._paired)
        record = self.rounds[-1]
        record["watch"] = {
            "requests": len(self._paired),
            "promoted": round(new, 4),
            "previous": round(old, 4),
        }
        if new < old:
            assert self._previous is not None
            record["rolled_back"] = True
            self.current = self._previous
            if self.store is not None:
                self.store.rollback(self.name)
        else:
            record["rolled_back"] = False
        self._previous, self._watched, self._paired = None, [], []
        self._finish()

    def _finish(self) -> None:
        self.phase = "idle"
        self.next_round = self.answered + self.every

    def _commit(self, message: str, candidate: float, incumbent: float) -> None:
        if self.store is None:
            return
        version = self.store.commit(
            self, message=message, metrics={"replay": candidate, "incumbent": incumbent}
        )

        def beats_incumbent(state: dict[str, Any], current: dict[str, Any] | None) -> GateResult:
            passed = candidate >= incumbent + self.margin
            return GateResult(
                passed, {"replay": candidate, "incumbent": incumbent}, "replay score vs incumbent"
            )

        self.store.promote(self.name, version.version, gate=beats_incumbent)

    def forget_user(self, user: str, tenant: str = "default") -> bool:
        """Drop every kept request of ``user`` in ``tenant`` (the pool, a round's replays, the watch
        queue)."""

        def keep(requests: Sequence[_Request]) -> list[_Request]:
            return [r for r in requests if (r.scope[0], r.scope[1]) != (tenant, user)]

        before = len(self._pool) + len(self._replayed) + len(self._watched)
        self._pool = deque(keep(self._pool), maxlen=self.replay)
        if self.phase == "search" and len(keep(self._replayed)) != len(self._replayed):
            self._queue, self._replayed, self._scores = [], [], []
            self.rounds[-1]["aborted"] = "a replayed user was forgotten"
            self._finish()
        self._watched = keep(self._watched)
        return before != len(self._pool) + len(self._replayed) + len(self._watched)

    # ------------------------------------------------------------------ state

    def _get_state(self) -> dict[str, Any]:
        return {
            "config": self.current.to_dict(),
            "previous": None if self._previous is None else self._previous.to_dict(),
            "phase": self.phase,
            "answered": self.answered,
            "next_round": self.next_round,
            "calls": self.calls,
            "rounds": copy.deepcopy(self.rounds),
            "pool": [asdict(r) for r in self._pool],
            "candidates": [c.to_dict() for c in self._candidates],
            "queue": [list(q) for q in self._queue],
            "replayed": [asdict(r) for r in self._replayed],
            "scores": [list(s) for s in self._scores],
            "watched": [asdict(r) for r in self._watched],
            "paired": [list(p) for p in self._paired],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.current = HarnessConfig.from_dict(state["config"])
        previous = state.get("previous")
        self._previous = None if previous is None else HarnessConfig.from_dict(previous)
        self.phase = str(state["phase"])
        self.answered = int(state["answered"])
        self.next_round = int(state["next_round"])
        self.calls = int(state["calls"])
        self.rounds = [dict(r) for r in state["rounds"]]
        self._pool = deque((_Request(**r) for r in state["pool"]), maxlen=self.replay)
        self._candidates = [HarnessConfig.from_dict(c) for c in state["candidates"]]
        self._queue = [(int(c), int(r)) for c, r in state["queue"]]
        self._replayed = [_Request(**r) for r in state["replayed"]]
        self._scores = [[float(x) for x in s] for s in state["scores"]]
        self._watched = [_Request(**r) for r in state["watched"]]
        self._paired = [(float(a), float(b)) for a, b in state["paired"]]


#: Key of the interaction metadata holding the model's own answer (before lessons, experts and gate).
MODEL_ANSWER = "model_answer"
