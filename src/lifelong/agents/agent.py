"""The agent: a frozen model plus context learners, learning from every piece of feedback.

:meth:`Agent.act` recalls from the learners (lessons, example bank, memory), lets the :class:`Task` build
a prompt from the recalls within the token budget, calls the model, applies the lessons to the answer,
logs the interaction — with the ids of the items it recalled and the versions of the learners — and
returns a :class:`Response` carrying the interaction id. :meth:`Agent.feedback` appends the feedback to
the log *first* (the log is the truth), then every learner learns from the step before the call
returns, so the very next ``act`` already benefits.

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
from typing import TYPE_CHECKING, Protocol, cast

from lifelong.agents.harness import HarnessConfig, HarnessSearch
from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.log import ExperienceLog
from lifelong.experience.records import JSON, Interaction, Scope, Step, feedback_of
from lifelong.learners.base import Learner
from lifelong.learners.context.base import MODEL_ANSWER, RECALLED, ContextLearner, Recalled, query_text
from lifelong.learners.context.examples import ExampleBank
from lifelong.learners.context.gate import GATE, SuggestionGate, same_answer
from lifelong.learners.context.lessons import Lessons
from lifelong.learners.context.memory import Memory
from lifelong.learners.experts.mixture import EXPERTS, NEAR_DUPLICATE, Expert, ExpertMixture, Proposal
from lifelong.learners.tenancy import tenant_part
from lifelong.learners.weights.policy_gradient import SAMPLE, sample_metadata
from lifelong.models.base import Completion, Model
from lifelong.models.trainable import SUGGEST
from lifelong.utils.text import normalise
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

    def prompt(self, observation: JSON, context: Context) -> str: ...

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
    """A model plus learners; see the module docstring."""

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
        token_budget: int = 1024,
        pending: int = 10_000,
    ) -> None:
        if model is None and examples is None:
            raise InvalidInput("the kNN baseline (model=None) needs an example bank", field="examples")
        if policy is not None and policy.model is not model:
            raise InvalidInput(
                "a policy learner trains the agent's own model: pass policy.model", field="policy"
            )
        check_scalar(token_budget, "token_budget", int, min_val=16)
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
        self.combiner = combiner
        self.harness = harness if isinstance(harness, HarnessSearch) else None
        self._config = harness if isinstance(harness, HarnessConfig) else None
        self.vote_k = vote_k
        self.plain = plain
        self.token_budget = token_budget
        self._pending: OrderedDict[str, Interaction] = OrderedDict()
        self._pending_limit = pending

    @property
    def learners(self) -> dict[str, ContextLearner]:
        found = {"examples": self.examples, "lessons": self.lessons, "memory": self.memory}
        return {name: learner for name, learner in found.items() if learner is not None}

    @property
    def all_learners(self) -> dict[str, Learner]:
        """The context learners, the gate, the policy, the experts, the combiner and the harness search:
        everything that learns from feedback."""
        found: dict[str, Learner] = dict(self.learners)
        if self.gate is not None:
            found["gate"] = self.gate
        if self.policy is not None:
            found["policy"] = self.policy
        for expert in self.experts:
            if isinstance(expert, Learner):
                found[expert.name] = expert
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

    # ------------------------------------------------------------------ acting

    def recall(
        self,
        observation: JSON,
        scope: Scope,
        now: float | None = None,
        *,
        config: HarnessConfig | None = None,
        before: float | None = None,
    ) -> Context:
        """What each learner recalls for ``observation``, as many items as ``config`` says; with
        ``before``, only what had been learned before that time."""
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

    def act(self, observation: JSON, scope: Scope | None = None, *, now: float | None = None) -> Response:
        """Answer ``observation`` for ``scope``; the response's id is the logged interaction's id."""
        scope = scope or Scope()
        start = time.perf_counter()
        stamp = time.time() if now is None else now
        decision = self.decide(observation, scope, now=stamp)
        context, completion = decision.context, decision.completion
        recalled = {
            learner.name: [r.id for r in getattr(context, name)] for name, learner in self.learners.items()
        }
        interaction = Interaction(
            scope,
            observation,
            decision.action,
            time=stamp,
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
            },
        )
        self.log.append(interaction)
        self._remember(interaction)
        return Response(
            interaction.id,
            decision.action,
            completion.prompt_tokens,
            completion.completion_tokens,
            decision.model_calls,
            time.perf_counter() - start,
            sum(len(ids) for ids in recalled.values()),
        )

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
        """Recall, consult the experts, call the model, and choose — changing and logging nothing.

        ``answer_only`` stops after the model's own answer (what a harness replay scores); it consults
        no other expert, since they have learned the replayed request's answer (so a narrowed label
        task is narrowed to the recalled examples' labels only).
        """
        context = self.recall(observation, scope, now=now, config=config, before=before)
        proposals: dict[str, Proposal] = {}
        request: dict[str, float] = {}
        tables: dict[str, dict[str, float]] = {}
        if self.combiner is not None and not answer_only:
            proposals, request, tables = self._proposals(observation, scope, context)
            context.hints = [a for rows in proposals.values() for a, _ in rows]
        completion = Completion("", 0, 0)
        sample: dict[str, JSON] | None = None
        choices: Sequence[str] | None = None
        if self.model is None:
            proposed = self._vote(context)
        else:
            prompt = self._fit(observation, context)  # may drop recalls: choices are read after it
            choices = self.task.choices(observation, context)
            temperature = self.policy.temperature if self.policy is not None else 0.0
            if self.policy is not None:
                self.policy.serve(scope)  # per-user fast weights, where the policy has them
            completion = self.model.complete(
                prompt,
                max_tokens=self.task.max_tokens,
                stop=self.task.stop,
                choices=choices,
                temperature=temperature,
            )
            proposed = self.task.parse(completion.text, observation)
            if self.policy is not None:
                sample = sample_metadata(prompt, completion, temperature)
        calls = 0 if self.model is None else 1
        if answer_only:
            return Decision(proposed, proposed, context, completion, calls)
        plain: tuple[JSON, Sequence[float]] | None = None
        if self.plain and self.model is not None and choices is None:
            bare = not (context.examples or context.lessons or context.memory)
            if bare and context.config.context_lines is None:  # the prompt was the control's already
                plain = (proposed, generated_logprobs(completion))
            else:
                plain = self._plain(observation)
                calls += 1
        action = self._amend(proposed, context)
        experts: dict[str, JSON] | None = None
        if self.combiner is not None:
            lp = list(generated_logprobs(completion))
            first: dict[str, Proposal] = {}
            if proposed is not None and self.model is not None:
                first["llm"] = [(proposed, math.exp(sum(lp) / len(lp)) if lp else 1.0)]
            if action != proposed and action is not None:
                first["lessons"] = [(action, 1.0)]
            proposals = {**first, **proposals}
            combiner = tenant_part(self.combiner, scope)
            candidates = combiner.candidates(proposals, request, tables)  # type: ignore[attr-defined]
            action, _ = combiner.choose(candidates)  # type: ignore[attr-defined]
            experts = {
                "proposals": {name: [[a, round(p, 6)] for a, p in rows] for name, rows in proposals.items()},
                "candidates": [{"action": a, "features": f} for a, f in candidates],
            }
        gate: list[dict[str, JSON]] = []
        if self.gate is not None and self.model is not None:
            options = gate_candidates(
                observation,
                action,
                action != proposed,
                generated_logprobs(completion),
                context,
                vote=choices is not None,
                plain=plain,
            )
            action, _ = tenant_part(self.gate, scope).choose(options)  # type: ignore[attr-defined]
            gate = [{"action": a, "features": f} for a, f in options]
        if sample is not None and action != proposed:
            # Only the policy's own action earns its reward: a suggestion the lessons or the gate
            # replaced (or silenced, or served over the policy's silence) has none to learn from.
            sample = None
        return Decision(action, proposed, context, completion, calls, gate, experts, sample, plain)

    def _plain(self, observation: JSON) -> tuple[JSON, Sequence[float]]:
        """The model's answer to the same request with nothing learned — the default layout, no
        recalls: exactly what the frozen control is asked."""
        assert self.model is not None
        bare = Context()
        alone = self.model.complete(
            self.task.prompt(observation, bare), max_tokens=self.task.max_tokens, stop=self.task.stop
        )
        return self.task.parse(alone.text, observation), generated_logprobs(alone)

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

    def _proposals(
        self, observation: JSON, scope: Scope, context: Context
    ) -> tuple[dict[str, Proposal], dict[str, float], dict[str, dict[str, float]]]:
        """The non-model experts' proposals (the vote, the nearest example, each expert learner),
        request features (how similar the nearest past input is) and the full score tables of the
        experts that have one."""
        proposals: dict[str, Proposal] = {}
        request: dict[str, float] = {}
        tables: dict[str, dict[str, float]] = {}
        if context.neighbours:
            proposals["knn"] = vote_shares(context.neighbours)[:3]
            nearest = context.neighbours[0]
            proposals["nearest"] = [(nearest.item.payload["output"], max(0.0, nearest.similarity))]
            request["nearest.duplicate"] = float(nearest.similarity >= NEAR_DUPLICATE)
        for expert in self.experts:
            rows = expert.propose(observation, scope, 3)
            if rows:
                proposals[expert.name] = rows
            table = getattr(expert, "scores", None)
            if callable(table) and rows:
                tables[expert.name] = table(observation, scope)
        return proposals, request, tables

    def _amend(self, action: JSON, context: Context) -> JSON:
        """What the lessons say instead of ``action`` (``action`` itself when none ruled it out)."""
        if self.lessons is None or action is None:
            return action
        return self.lessons.amend(action, context.lessons)

    def _fit(self, observation: JSON, context: Context) -> str:
        """The task's prompt, dropping the weakest recalls until it fits the token budget."""
        assert self.model is not None
        while True:
            prompt = self.task.prompt(observation, context)
            if self.model.count_tokens(prompt) <= self.token_budget or not context.drop_weakest():
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
        for learner in self.all_learners.values():
            learner.learn(step)
        if self.harness is not None:
            self.harness.tick(self)  # a bounded slice of the background search, never a batch
        return step


def gate_candidates(
    observation: JSON,
    answer: JSON,
    amended: bool,
    token_logprobs: Sequence[float],
    context: Context,
    *,
    vote: bool = False,
    plain: tuple[JSON, Sequence[float]] | None = None,
) -> list[tuple[JSON, dict[str, float]]]:
    """The candidates a :class:`SuggestionGate` chooses from, with their features.

    ``plain`` is the model's answer to the prompt without any recalled context (and its token
    log-probabilities): a second model expert, offered when it differs from the others.

    The model's answer (with its token log-probabilities) and, when it differs, the answer of the
    nearest past example — or, with ``vote`` (label tasks), the similarity-weighted vote of the recalled
    examples and its share of the votes; each with the nearest example's similarity, whether the two
    agree, and whether the text already appears in the observation's context (code being repeated).
    """
    neighbours = context.neighbours or context.examples
    nearest = neighbours[0] if neighbours else None
    example_answer = nearest.item.payload.get("output") if nearest is not None else None
    extra: dict[str, float] = {}
    if vote and neighbours:
        example_answer, share = weighted_vote(neighbours)
        extra = {"vote_share": share}
    similarity = nearest.similarity if nearest is not None else 0.0
    seen = _context_lines(observation)
    options: list[tuple[JSON, dict[str, float]]] = []
    if answer is not None:
        lp = list(token_logprobs) or [0.0]
        options.append(
            (
                answer,
                {
                    "model": 1.0,
                    "logprob_mean": sum(lp) / len(lp),
                    "p_mean": math.exp(sum(lp) / len(lp)),  # geometric mean of the token probabilities
                    "logprob_min": min(lp),
                    "tokens": len(token_logprobs) / 10.0,
                    "example_similarity": similarity,
                    "agrees_with_example": float(
                        example_answer is not None and same_answer(answer, example_answer)
                    ),
                    "in_context": float(normalise(str(answer)) in seen),
                    "amended_by_lesson": float(amended),
                    **(
                        {"agrees_with_plain": 1.0}
                        if plain is not None and plain[0] is not None and same_answer(answer, plain[0])
                        else {}
                    ),
                    "length": min(len(str(answer)), 80) / 40.0,
                    **extra,
                },
            )
        )
    if (
        plain is not None
        and plain[0] is not None
        and not (answer is not None and same_answer(answer, plain[0]))
    ):
        lp = list(plain[1]) or [0.0]
        options.append(
            (
                plain[0],
                {
                    "plain": 1.0,
                    "logprob_mean": sum(lp) / len(lp),
                    "p_mean": math.exp(sum(lp) / len(lp)),
                    "logprob_min": min(lp),
                    "tokens": len(plain[1]) / 10.0,
                    "example_similarity": similarity,
                    "agrees_with_example": float(
                        example_answer is not None and same_answer(plain[0], example_answer)
                    ),
                    "in_context": float(normalise(str(plain[0])) in seen),
                    "length": min(len(str(plain[0])), 80) / 40.0,
                },
            )
        )
    taken = [a for a, _ in options]
    if example_answer is not None and not any(same_answer(a, example_answer) for a in taken):
        options.append(
            (
                example_answer,
                {
                    "example": 1.0,
                    "example_similarity": similarity,
                    "example_usefulness": nearest.item.usefulness if nearest is not None else 0.5,
                    "in_context": float(normalise(str(example_answer)) in seen),
                    "length": min(len(str(example_answer)), 80) / 40.0,
                    **extra,
                },
            )
        )
    return options


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
