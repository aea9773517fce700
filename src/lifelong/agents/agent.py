"""The agent: a frozen model plus learners, and the one turn every host runs.

A turn is one pipeline, whoever hosts it — this :class:`Agent` with an in-process model, or the service
(:mod:`lifelong.serve`) with per-tenant agents and an asynchronous upstream:

1. **recall** — each context learner (lessons, example bank, memory) recalls for the observation;
2. **candidates from the experts** — the example vote, the nearest example and every expert learner
   propose answers (:meth:`Agent.begin`);
3. **render** — the :class:`Task` writes the prompt with the recalls, dropping the weakest until it
   fits the token budget; the model calls to make are returned as
   :class:`~lifelong.models.base.Call` objects — the one with the learned context and, when a candidate
   or the frozen shadow control needs it, the same request without any (``plain``);
4. **model call(s)** — made by the host: :meth:`Agent.act` runs them on its :class:`Model`, the service
   awaits them concurrently on its upstream;
5. **amend, combine, gate** — lessons replace an answer they rule out, the
   :class:`~lifelong.learners.experts.mixture.ExpertMixture` combines the proposals, the
   :class:`~lifelong.learners.context.gate.SuggestionGate` chooses among the candidates (or stays
   silent) (:meth:`Agent.finish`);
6. **log** — :meth:`Agent.record` writes the interaction with what was recalled, every proposal and
   candidate with its features, the plain answer and the learners' versions;
7. **learn from feedback** — :meth:`Agent.feedback` appends the feedback to the log *first* (the log is
   the truth), then every learner learns from the step (:meth:`Agent.learn`) before the call returns,
   so the very next ``act`` already benefits.

Steps 1–3 and 5–6 touch learner state and nothing else; the model calls in between are the host's.
That split (a "sans-I/O" pipeline) is what lets one implementation serve a synchronous library call
and an asynchronous service without writing any step twice.

With ``model=None`` the agent is the pure embedding-kNN baseline: it answers with a similarity-weighted
vote of its nearest examples and never calls a model.

>>> from lifelong.agents.tasks import LabelTask
>>> from lifelong.experience import ExperienceLog, Scope
>>> from lifelong.learners import ExampleBank
>>> from lifelong.models import HashingEmbedder
>>> agent = Agent(None, LabelTask(["card_arrival", "lost_card"]), ExperienceLog(":memory:"),
...               examples=ExampleBank(HashingEmbedder()))
>>> first = agent.act("my card has not arrived yet", Scope(user="ada"))
>>> first.action is None  # nothing learned yet: the kNN baseline abstains
True
>>> _ = agent.feedback(first.id, correction="card_arrival")
>>> agent.act("my card has still not arrived", Scope(user="ada")).action
'card_arrival'
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from lifelong.agents.harness import HarnessConfig, HarnessSearch
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Interaction, Scope, Step, feedback_of
from lifelong.learners.base import Learner
from lifelong.learners.context.base import MODEL_ANSWER, RECALLED, ContextLearner, Recalled, query_text
from lifelong.learners.context.examples import ExampleBank
from lifelong.learners.context.gate import GATE, Evidence, SuggestionGate
from lifelong.learners.context.gate import candidates as gate_candidates
from lifelong.learners.context.lessons import Lessons
from lifelong.learners.context.memory import Memory
from lifelong.learners.experts.mixture import EXPERTS, NEAR_DUPLICATE, Expert, ExpertMixture, Proposal
from lifelong.learners.tenancy import tenant_part
from lifelong.learners.weights.policy_gradient import SAMPLE, sample_metadata
from lifelong.models.base import Call, Completion, Message, Model, generate
from lifelong.models.trainable import SUGGEST
from lifelong.utils.text import normalise, novelty
from lifelong.utils.validation import check_scalar

if TYPE_CHECKING:
    from lifelong.learners.weights.policy_gradient import PolicyGradient
    from lifelong.state.erasure import ErasureReport
    from lifelong.state.store import VersionStore


@dataclass
class Context:
    """What the learners recalled for one observation, best first within each kind.

    ``examples``, ``lessons`` and ``memory`` go into the prompt; ``neighbours`` are the nearest
    examples the similarity vote counts (not shown to the model); ``hints`` are the answers the other
    experts propose (a narrowed label task lets the model choose among them); ``config`` is the
    harness configuration in force.
    """

    examples: list[Recalled] = field(default_factory=list)
    lessons: list[Recalled] = field(default_factory=list)
    memory: list[Recalled] = field(default_factory=list)
    neighbours: list[Recalled] = field(default_factory=list)
    hints: list[JSON] = field(default_factory=list)
    config: HarnessConfig = field(default_factory=HarnessConfig)

    def drop_weakest(self) -> bool:
        """Remove the lowest-scored recalled item (to fit a token budget); False when nothing is left."""
        pools = [p for p in (self.memory, self.examples, self.lessons) if p]
        if not pools:
            return False
        weakest = min(pools, key=lambda p: p[-1].score)
        weakest.pop()
        return True


class Task(Protocol):
    """How one kind of job is put to a base model and read back."""

    name: str
    max_tokens: int
    stop: Sequence[str]

    def prompt(self, observation: JSON, context: Context) -> str | tuple[Message, ...]:
        """The prompt with the recalled context: a text to continue, or chat messages."""
        ...

    def choices(self, observation: JSON, context: Context) -> Sequence[str] | None:
        """The only answers allowed (constrained decoding), or None for free text."""
        ...

    def parse(self, text: str, observation: JSON) -> JSON:
        """The action the model's text stands for; None means abstain."""
        ...


#: Key of the interaction metadata holding the model's answer without recalled context (``plain=True``).
PLAIN_ANSWER = "plain_answer"


@dataclass
class Decision:
    """Everything :meth:`Agent.act` worked out for one observation, before it is logged."""

    action: JSON
    model_answer: JSON  # the model's own answer (the vote without a model), before lessons/experts/gate
    context: Context
    completion: Completion
    model_calls: int = 0
    gate: list[dict[str, JSON]] = field(default_factory=list)
    experts: dict[str, JSON] | None = None
    sample: dict[str, JSON] | None = None
    plain: tuple[JSON, Sequence[float]] | None = None  # the model's answer without recalled context


@dataclass(frozen=True)
class Limits:
    """What a request itself asks of the model (free-text requests to the service: the client's
    ``max_tokens``, ``temperature``, ``stop`` and pass-through fields); None keeps the task's own."""

    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


#: The model calls of a turn: with the learned context, and the same request without any.
CONTEXT, PLAIN = "context", "plain"


@dataclass
class Turn:
    """A request between :meth:`Agent.begin` and :meth:`Agent.finish`: what was recalled and proposed,
    and the model calls the host is to make (by purpose: :data:`CONTEXT`, :data:`PLAIN`)."""

    observation: JSON
    scope: Scope
    time: float
    context: Context
    calls: dict[str, Call] = field(default_factory=dict)
    proposals: dict[str, Proposal] = field(default_factory=dict)
    request: dict[str, float] = field(default_factory=dict)
    tables: dict[str, dict[str, float]] = field(default_factory=dict)
    choices: Sequence[str] | None = None
    answer_only: bool = False
    plain_is_context: bool = False  # the request carried no learned context: its answer is the plain one
    streamable: bool = False  # nothing can amend, combine or gate the model's answer: stream it as it comes


@dataclass(frozen=True, slots=True)
class Response:
    """What :meth:`Agent.act` returns."""

    id: str  # the interaction id to send feedback to
    action: JSON  # None: the agent abstained
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    seconds: float = 0.0
    recalled: int = 0


class Agent:
    """A model plus learners; see the module docstring.

    ``token_budget`` bounds the whole prompt (in the model's tokens) and ``context_budget`` the tokens
    the recalled context adds to the request (the service's setting: the client's own messages are not
    cut); either may be None. ``plain`` makes the model's answer without any recalled context a
    candidate of the gate (a second call per request when something was recalled).
    """

    def __init__(
        self,
        model: Model | None,
        task: Task,
        log: ExperienceLog,
        *,
        examples: ExampleBank | None = None,
        lessons: Lessons | None = None,
        memory: Memory | None = None,
        gate: SuggestionGate | None = None,
        policy: PolicyGradient | None = None,
        experts: Sequence[Expert] = (),
        combiner: ExpertMixture | None = None,
        harness: HarnessSearch | HarnessConfig | None = None,
        vote_k: int = 6,
        plain: bool = False,
        token_budget: int | None = 1024,
        context_budget: int | None = None,
        pending: int = 10_000,
    ) -> None:
        if model is None and examples is None:
            raise InvalidInput("the kNN baseline (model=None) needs an example bank", field="examples")
        if policy is not None and policy.model is not model:
            raise InvalidInput(
                "a policy learner trains the agent's own model: pass policy.model", field="policy"
            )
        check_scalar(token_budget, "token_budget", int, min_val=16, allow_none=True)
        check_scalar(context_budget, "context_budget", int, min_val=0, allow_none=True)
        check_scalar(vote_k, "vote_k", int, min_val=1)
        names = [e.name for e in experts]
        if len(set(names)) != len(names) or set(names) & {"llm", "knn", "nearest", "lessons"}:
            raise InvalidInput(
                f"expert names must be unique and not llm/knn/nearest/lessons: {names}", field="experts"
            )
        self.model = model
        self.task = task
        self.log = log
        self.examples = examples
        self.lessons = lessons
        self.memory = memory
        self.gate = gate
        self.policy = policy
        self.experts = list(experts)
        self.expert_names = names  # what proposals are logged under, whatever a store calls the learners
        self.combiner = combiner
        self.harness = harness if isinstance(harness, HarnessSearch) else None
        self._config = harness if isinstance(harness, HarnessConfig) else None
        self.vote_k = vote_k
        self.plain = plain
        self.token_budget = token_budget
        self.context_budget = context_budget
        self._pending: OrderedDict[str, Interaction] = OrderedDict()
        self._pending_limit = pending

    @property
    def learners(self) -> dict[str, ContextLearner]:
        found = {"examples": self.examples, "lessons": self.lessons, "memory": self.memory}
        return {name: learner for name, learner in found.items() if learner is not None}

    @property
    def all_learners(self) -> dict[str, Learner]:
        """The context learners, the gate, the policy, the experts, the combiner and the harness search:
        everything that learns from feedback, by the name the agent knows it by."""
        found: dict[str, Learner] = dict(self.learners)
        if self.gate is not None:
            found["gate"] = self.gate
        if self.policy is not None:
            found["policy"] = self.policy
        for name, expert in zip(self.expert_names, self.experts, strict=True):
            if isinstance(expert, Learner):
                found[name] = expert
        if self.combiner is not None:
            found["combiner"] = self.combiner
        if self.harness is not None:
            found["harness"] = self.harness
        return found

    @property
    def config(self) -> HarnessConfig:
        """The harness configuration in force: the search's current one, the one given, or the
        learners' own recall sizes."""
        if self.harness is not None:
            return self.harness.current
        if self._config is not None:
            return self._config
        return HarnessConfig(
            examples=self.examples.k if self.examples is not None else 0,
            lessons=self.lessons.k if self.lessons is not None else 0,
            memory=self.memory.k if self.memory is not None else 0,
        )

    def freeze(self) -> Agent:
        """Act with what is learned so far and learn nothing more (the frozen control)."""
        for learner in self.all_learners.values():
            learner.freeze()
        return self

    def forget_user(
        self,
        user: str,
        tenant: str = "default",
        *,
        store: VersionStore | None = None,
        rebuild_with: Mapping[str, Callable[[], Learner]] | None = None,
    ) -> ErasureReport:
        """Erase ``user`` of ``tenant`` (see :func:`lifelong.state.erasure.forget`): their interactions and
        feedback, every memory, example and lesson any of them contributed to, the logged requests the
        harness search keeps for replay, the embedder caches' copies of their texts, and — with a
        ``store`` — their provenance and every snapshot that holds them. Learners named in
        ``rebuild_with`` (the gate, the mixture, the experts: shared weights) are rebuilt from the
        remaining log and replace the agent's own; the others are reported as residual."""
        from lifelong.state.erasure import forget

        self._pending = OrderedDict(
            (k, v) for k, v in self._pending.items() if (v.scope.tenant, v.scope.user) != (tenant, user)
        )
        learners = dict(self.all_learners)
        report = forget(
            Scope(tenant, user=user), log=self.log, learners=learners, store=store, rebuild_with=rebuild_with
        )
        for name, rebuilt in report.rebuilt.items():
            self._replace(name, learners[name], rebuilt)
        for interaction_id in report.references_redacted:  # other users' requests, rewritten in the log
            if interaction_id in self._pending:
                self._pending[interaction_id] = self.log.get(interaction_id).interaction
        return report

    def _replace(self, name: str, old: Learner, new: Learner) -> None:
        """Put a rebuilt learner where ``old`` was."""
        for attribute in ("examples", "lessons", "memory", "gate", "policy", "combiner", "harness"):
            if getattr(self, attribute) is old:
                setattr(self, attribute, new)
        self.experts = [cast(Expert, new) if id(expert) == id(old) else expert for expert in self.experts]

    # ------------------------------------------------------------------ the turn

    def recall(
        self,
        observation: JSON,
        scope: Scope,
        now: float | None = None,
        *,
        config: HarnessConfig | None = None,
        before: float | None = None,
    ) -> Context:
        """Step 1: what each learner recalls for ``observation``, as many items as ``config`` says;
        with ``before``, only what had been learned before that time."""
        config = config or self.config
        query = query_text(observation)
        context = Context(config=config)
        for name, learner in self.learners.items():
            k = getattr(config, name)
            if name == "examples":
                found = learner.recall(query, scope, k=max(k, self.vote_k), now=now, before=before)
                context.neighbours = found[: self.vote_k]
                context.examples = found[:k]
            elif k > 0:
                setattr(context, name, learner.recall(query, scope, k=k, now=now, before=before))
        return context

    def begin(
        self,
        observation: JSON,
        scope: Scope,
        *,
        now: float,
        config: HarnessConfig | None = None,
        before: float | None = None,
        answer_only: bool = False,
        shadow: bool = False,
        limits: Limits | None = None,
    ) -> Turn:
        """Steps 1–3: recall, the experts' proposals, the prompt within the budgets, and the model calls
        to make — changing nothing.

        ``shadow`` asks for the plain call even where no candidate needs it (the frozen control's answer
        to the same request, for the service's learning curve). ``answer_only`` stops at the model's own
        answer (what a harness replay scores): it consults no other expert, since they have learned the
        replayed request's answer (so a narrowed label task is narrowed to the recalled examples' labels
        only).
        """
        context = self.recall(observation, scope, now=now, config=config, before=before)
        turn = Turn(observation, scope, now, context, answer_only=answer_only)
        if self.combiner is not None and not answer_only:
            turn.proposals, turn.request, turn.tables = self._proposals(observation, scope, context)
            context.hints = [a for rows in turn.proposals.values() for a, _ in rows]
        if self.model is None:
            return turn
        limits = limits or Limits()
        max_tokens = limits.max_tokens or self.task.max_tokens
        stop = tuple(self.task.stop if limits.stop is None else limits.stop)
        prompt = self._fit(observation, context)  # may drop recalls: choices are read after it
        turn.choices = self.task.choices(observation, context)
        temperature = self.policy.temperature if self.policy is not None else limits.temperature or 0.0
        turn.calls[CONTEXT] = Call(
            prompt,
            max_tokens,
            stop,
            temperature,
            None if turn.choices is None else tuple(turn.choices),
            limits.extra,
        )
        turn.streamable = self.gate is None and self.combiner is None and not context.lessons
        if answer_only or not (shadow or (self.plain and turn.choices is None)):
            return turn
        bare = not (context.examples or context.lessons or context.memory)
        if bare and context.config.context_lines is None:  # the prompt was the control's already
            turn.plain_is_context = True
        else:
            nothing = Context()
            choices = self.task.choices(observation, nothing)
            turn.calls[PLAIN] = Call(
                self.task.prompt(observation, nothing),
                max_tokens,
                stop,
                limits.temperature or 0.0,
                None if choices is None else tuple(choices),
                limits.extra,
            )
        return turn

    def finish(self, turn: Turn, outputs: Mapping[str, Completion]) -> Decision:
        """Steps 5: read the model's answers back, amend, combine and gate — changing nothing.
        ``outputs`` holds a completion for each of the turn's calls (a missing plain one — a failed
        shadow — only leaves that candidate out)."""
        observation, scope, context = turn.observation, turn.scope, turn.context
        completion = outputs.get(CONTEXT, Completion("", 0, 0))
        if self.model is None:
            proposed = self._vote(context)
        else:
            if CONTEXT not in outputs:
                raise InvalidInput(
                    "the turn's model call with the learned context has no answer", field="outputs"
                )
            proposed = self.task.parse(completion.text, observation)
        sample: dict[str, JSON] | None = None
        if self.policy is not None and CONTEXT in turn.calls:
            call = turn.calls[CONTEXT]
            assert isinstance(call.prompt, str)
            sample = sample_metadata(call.prompt, completion, call.temperature)
        calls = len(turn.calls)
        if turn.answer_only:
            return Decision(proposed, proposed, context, completion, calls)
        plain: tuple[JSON, Sequence[float]] | None = None
        if turn.plain_is_context:
            plain = (proposed, generated_logprobs(completion))
        elif PLAIN in outputs:
            plain = (self.task.parse(outputs[PLAIN].text, observation), generated_logprobs(outputs[PLAIN]))
        action = self._amend(proposed, context)
        experts: dict[str, JSON] | None = None
        direct: tuple[JSON, float] | None = None
        if self.combiner is not None:
            lp = list(generated_logprobs(completion))
            first: dict[str, Proposal] = {}
            if self.gate is None and proposed is not None and self.model is not None:
                # the model's answer is one of the mixture's experts (labels); with a gate the mixture
                # proposes a recalled answer beside the model's (free text)
                first["llm"] = [(proposed, math.exp(sum(lp) / len(lp)) if lp else 1.0)]
            if action != proposed and action is not None:
                first["lessons"] = [(action, 1.0)]
            proposals = {**first, **turn.proposals}
            combiner = tenant_part(self.combiner, scope)
            candidates = combiner.candidates(proposals, turn.request, turn.tables)  # type: ignore[attr-defined]
            chosen, p = combiner.choose(candidates)  # type: ignore[attr-defined]
            if self.gate is None:
                action = chosen
            else:
                direct = (chosen, p)
            experts = {
                "proposals": {name: [[a, round(p, 6)] for a, p in rows] for name, rows in proposals.items()},
                "candidates": [{"action": a, "features": f} for a, f in candidates],
            }
        gate: list[dict[str, JSON]] = []
        if self.gate is not None and self.model is not None:
            options = gate_candidates(
                self._evidence(
                    observation, context, vote=turn.choices is not None, direct=direct is not None
                ),
                model=(action, generated_logprobs(completion)),
                amended=action != proposed,
                plain=plain if self.plain else None,
                direct=direct,
            )
            action, _ = tenant_part(self.gate, scope).choose(options)  # type: ignore[attr-defined]
            gate = [{"action": a, "features": f} for a, f in options]
        if sample is not None and action != proposed:
            # Only the policy's own action earns its reward: a suggestion the lessons or the gate
            # replaced (or silenced, or served over the policy's silence) has none to learn from.
            sample = None
        return Decision(action, proposed, context, completion, calls, gate, experts, sample, plain)

    def record(
        self,
        turn: Turn,
        decision: Decision,
        *,
        id: str | None = None,
        metadata: Mapping[str, JSON] | None = None,
    ) -> Interaction:
        """Step 6: the interaction to log — what was recalled (item ids by learner), the gate's and the
        experts' candidates with their features, the model's own and the plain answer, the learners'
        versions and the tokens; ``metadata`` adds the host's own keys."""
        context, completion = decision.context, decision.completion
        recalled = {
            learner.name: [r.id for r in getattr(context, name)] for name, learner in self.learners.items()
        }
        return Interaction(
            turn.scope,
            turn.observation,
            decision.action,
            time=turn.time,
            versions={learner.name: learner.version for learner in self.all_learners.values()},
            metadata={
                RECALLED: recalled,
                GATE: decision.gate,
                MODEL_ANSWER: decision.model_answer,
                **({EXPERTS: decision.experts} if decision.experts is not None else {}),
                **({SAMPLE: decision.sample} if decision.sample is not None else {}),
                **({"harness": context.config.key()} if self.harness is not None else {}),
                **({PLAIN_ANSWER: decision.plain[0]} if decision.plain is not None else {}),
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
                **(metadata or {}),
            },
            **({"id": id} if id is not None else {}),
        )

    # ------------------------------------------------------------------ the synchronous host

    def act(self, observation: JSON, scope: Scope | None = None, *, now: float | None = None) -> Response:
        """Answer ``observation`` for ``scope``; the response's id is the logged interaction's id."""
        scope = scope or Scope()
        start = time.perf_counter()
        stamp = time.time() if now is None else now
        turn = self.begin(observation, scope, now=stamp)
        decision = self.finish(turn, self.run(turn))
        interaction = self.record(turn, decision)
        self.log.append(interaction)
        self._remember(interaction)
        return Response(
            interaction.id,
            decision.action,
            decision.completion.prompt_tokens,
            decision.completion.completion_tokens,
            decision.model_calls,
            time.perf_counter() - start,
            sum(len(ids) for ids in cast(dict[str, list[str]], interaction.metadata[RECALLED]).values()),
        )

    def run(self, turn: Turn) -> dict[str, Completion]:
        """Step 4 on this agent's own model, one call after the other."""
        if not turn.calls:
            return {}
        assert self.model is not None
        if self.policy is not None:
            self.policy.serve(turn.scope)  # per-user fast weights, where the policy has them
        return {purpose: generate(self.model, call) for purpose, call in turn.calls.items()}

    def decide(
        self,
        observation: JSON,
        scope: Scope,
        *,
        now: float,
        config: HarnessConfig | None = None,
        before: float | None = None,
        answer_only: bool = False,
    ) -> Decision:
        """Recall, consult the experts, call the model, and choose — changing and logging nothing."""
        turn = self.begin(observation, scope, now=now, config=config, before=before, answer_only=answer_only)
        return self.finish(turn, self.run(turn))

    def model_answer(self, interaction: Interaction, config: HarnessConfig) -> JSON:
        """The model's own answer to a logged request under ``config``, recalling only what had been
        learned before it (a harness replay: one model call, nothing logged or learned)."""
        return self.decide(
            interaction.observation,
            interaction.scope,
            now=interaction.time,
            config=config,
            before=interaction.time,
            answer_only=True,
        ).model_answer

    # ------------------------------------------------------------------ the steps' helpers

    def _proposals(
        self, observation: JSON, scope: Scope, context: Context
    ) -> tuple[dict[str, Proposal], dict[str, float], dict[str, dict[str, float]]]:
        """Step 2: the non-model experts' proposals (the vote, the nearest example, each expert
        learner), request features (how similar the nearest past input is) and the full score tables of
        the experts that have one."""
        proposals: dict[str, Proposal] = {}
        request: dict[str, float] = {}
        tables: dict[str, dict[str, float]] = {}
        if context.neighbours:
            proposals["knn"] = vote_shares(context.neighbours)[:3]
            nearest = context.neighbours[0]
            proposals["nearest"] = [(nearest.item.payload["output"], max(0.0, nearest.similarity))]
            request["nearest.duplicate"] = float(nearest.similarity >= NEAR_DUPLICATE)
        for name, expert in zip(self.expert_names, self.experts, strict=True):
            rows = expert.propose(observation, scope, 3)
            if rows:
                proposals[name] = rows
            table = getattr(expert, "scores", None)
            if callable(table) and rows:
                tables[name] = table(observation, scope)
        return proposals, request, tables

    def _evidence(self, observation: JSON, context: Context, *, vote: bool, direct: bool) -> Evidence:
        """What the gate judges the candidates against: the nearest example (or, for label tasks, the
        examples' vote), the lines already in the request and — beside a recalled answer — how much of
        the request is new to the nearest example's input."""
        neighbours = context.neighbours or context.examples
        nearest = neighbours[0] if neighbours else None
        if nearest is None:
            return Evidence(seen=frozenset(_context_lines(observation)))
        answer = nearest.item.payload.get("output")
        share: float | None = None
        if vote:
            answer, share = weighted_vote(neighbours)
        new_words: float | None = None
        if direct:
            new_words = novelty(query_text(observation), query_text(nearest.item.payload.get("input")))
        return Evidence(
            nearest.similarity,
            answer,
            nearest.item.usefulness,
            share,
            frozenset(_context_lines(observation)),
            new_words,
        )

    def _amend(self, action: JSON, context: Context) -> JSON:
        """What the lessons say instead of ``action`` (``action`` itself when none ruled it out)."""
        if self.lessons is None or action is None:
            return action
        return self.lessons.amend(action, context.lessons)

    def _fit(self, observation: JSON, context: Context) -> str | tuple[Message, ...]:
        """The task's prompt, dropping the weakest recalls until it fits the budgets."""
        assert self.model is not None
        limit = self.token_budget
        if self.context_budget is not None:
            bare = self.task.prompt(observation, Context(config=context.config))
            own = self.model.count_tokens(Call(bare).text()) + self.context_budget
            limit = own if limit is None else min(limit, own)
        while True:
            prompt = self.task.prompt(observation, context)
            if limit is None or self.model.count_tokens(Call(prompt).text()) <= limit:
                return prompt
            if not context.drop_weakest():
                return prompt

    def _vote(self, context: Context) -> JSON:
        return weighted_vote(context.neighbours)[0] if context.neighbours else None

    def _remember(self, interaction: Interaction) -> None:
        self._pending[interaction.id] = interaction
        while len(self._pending) > self._pending_limit:
            self._pending.popitem(last=False)

    # ------------------------------------------------------------------ learning

    def feedback(
        self,
        interaction_id: str,
        *,
        reward: float | None = None,
        accept: bool | None = None,
        correction: JSON = None,
        rating: float | None = None,
        outcome: JSON = None,
        now: float | None = None,
    ) -> Step:
        """Log feedback on an interaction, then learn from it at once; returns the step learned from."""
        interaction = self._pending.get(interaction_id)
        if interaction is None:
            try:
                interaction = self.log.get(interaction_id).interaction
            except NotFound:
                raise NotFound(f"no interaction {interaction_id!r} in {self.log.url}") from None
        feedback = feedback_of(
            interaction_id,
            reward=reward,
            accept=accept,
            correction=correction,
            rating=rating,
            outcome=outcome,
            time=now,
        )
        self.log.append_many(feedback)
        step = Step(interaction, tuple(feedback))
        self.learn(step)
        if self.harness is not None:
            self.harness.tick(self)  # a bounded slice of the background search, never a batch
        return step

    def learn(self, step: Step) -> None:
        """Step 7: every learner learns from a logged step (the service calls this as it reads the log)."""
        for learner in self.all_learners.values():
            learner.learn(step)


def generated_logprobs(completion: Completion) -> tuple[float, ...]:
    """The log-probabilities of the generated tokens only (without a trainable model's suggest decision)."""
    if completion.token_ids[:1] == (SUGGEST,):
        return completion.token_logprobs[1:]
    return completion.token_logprobs


def vote_shares(examples: Sequence[Recalled]) -> Proposal:
    """Each output of ``examples`` with its share of the total similarity, largest first."""
    votes: dict[str, tuple[float, JSON]] = {}
    for r in examples:
        output = r.item.payload["output"]
        weight, _ = votes.get(repr(output), (0.0, output))
        votes[repr(output)] = (weight + max(r.similarity, 0.0), output)
    total = sum(w for w, _ in votes.values()) or 1.0
    ranked = sorted(votes.values(), key=lambda v: -v[0])
    return [(output, weight / total) for weight, output in ranked]


def weighted_vote(examples: Sequence[Recalled]) -> tuple[JSON, float]:
    """The output with the largest total similarity among ``examples``, and its share of the total."""
    return vote_shares(examples)[0]


def _context_lines(observation: JSON) -> set[str]:
    if isinstance(observation, dict) and isinstance(observation.get("context"), str):
        return {normalise(line) for line in observation["context"].splitlines() if line.strip()}
    return set()
