"""Sleep-time consolidation: the adapter learns *what* the developer wanted, between requests.

The policy gradient (:mod:`~lifelong.learners.weights.policy_gradient`) learns from a reward *whether* a
suggestion is worth making; with base suggestions accepted ~5% of the time it learns to stay silent
(``docs/benchmarks.md``, "Weight space"). The log holds more than a reward: after a rejected or missing
suggestion the developer types the line they wanted — a correction — and an accepted suggestion is a
right line too. :class:`Consolidation` turns each into a supervised pair (prompt, right line) and fits
the LoRA adapter to it by maximum likelihood with teacher forcing,

    L_sup = −(1/|y|) Σ_t log π_θ(y_t | x, y_<t),

the language-modelling loss on the target tokens only (the right line and its newline), so the model
itself comes to know what the context had to show it.

**Sleep-time.** Learning a step only queues its pair (no gradient on the request's path); the gradient
steps run in :meth:`Consolidation.sleep`, which the host calls in idle time between requests with a
bounded budget (gradient steps and/or seconds per idle window) — the sleep-time compute of Lin et al.
2025 (Letta), applied to weights. :class:`SleepScheduler` calls it from a background thread whenever
no request has been in flight for a moment; a request then waits at most for the gradient step in
progress. The model serves the *promoted* adapter at all times: a slice loads the candidate, trains it,
keeps it aside and puts the served weights back before it lets go of the model.

**One gradient step** reads up to ``batch`` new pairs plus ⌈``replay`` × new⌉ earlier ones drawn from a
reservoir (experience replay against forgetting earlier corrections, Rolnick et al. 2019), the guards'
penalties (:mod:`~lifelong.learners.weights.guards`: KL to the base on the targets, general-text
replay), and, with ``policy_weight`` > 0, the clipped policy-gradient surrogate (PPO, Schulman et al.
2017, eq. 7) of the rewarded samples gathered since the last step — the reward teaches *when* (the
abstain head), supervision teaches *what*: L = L_sup + policy_weight · L_PG + guards.

**Gate.** After every ``update_every`` new pairs the candidate meets the :class:`Probe` (held-out
requests and texts): promoted — served from the next request, stored as a version, with provenance
from ``adapter:vN`` to the interactions whose pairs it trained on — or rolled back, with the optimizer,
to the served version.

**Fast and slow weights.** With ``user_rank``, every user also gets a small LoRA adapter of their own
(fast weights) over the shared one (slow weights): W = W₀ + (α/r)·B_s·A_s + (α_u/r_u)·B_u·A_u. A pair
trains the shared adapter (everyone's pairs) and its user's adapter (that user's pairs only, with the
shared adapter held fixed, so the user's adapter learns what that user does differently). :meth:`serve`
swaps the user's fast weights in before a request; a user never seen gets none (B_u = 0). A user's
adapter is promoted only if held-out perplexity stays within the probe's ``max_ppl_ratio``.

**Forgetting.** A user's fast weights go at once (:meth:`forget_user`); the shared adapter keeps their
updates until it is rebuilt from the remaining log — :func:`lifelong.forget` with ``rebuild_with``
replays the log into a fresh learner, and :meth:`learn_many` (a replay) consolidates all it was given.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.context.base import right_answer
from lifelong.learners.weights.guards import Guard
from lifelong.learners.weights.policy_gradient import PolicyGradient, Probe, Update
from lifelong.learners.weights.samples import SAMPLE, Sample
from lifelong.models.trainable import TrainableModel
from lifelong.utils.validation import check_scalar

__all__ = ["Consolidation", "Pair", "SleepReport", "SleepScheduler"]


@dataclass(frozen=True, slots=True)
class Pair:
    """One supervised example: the prompt, and the tokens of the line that was right there."""

    interaction_id: str
    user: str | None
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SleepReport:
    """What one idle window did."""

    steps: int  # gradient steps on the shared adapter
    user_steps: int  # gradient steps on users' adapters
    pairs: int  # new pairs consumed
    gated: int  # candidates that met the probe in this window
    promoted: int
    user_promoted: int  # users' fast weights kept (passed their retention check)
    seconds: float
    queued: int  # pairs still waiting

    def to_dict(self) -> dict[str, JSON]:
        return dict(asdict(self))


class Consolidation(PolicyGradient):
    """See the module docstring.

    ``prompt`` builds the prompt a pair is trained on from a logged observation (default: the prompt the
    request was served with, from the interaction's sample metadata). Give the *bare* prompt — without
    recalled examples — to distil what the example bank shows into the weights. ``max_prompt_tokens``
    keeps the last tokens of long prompts (the cost of a step grows with them).

    >>> from lifelong.models.trainable import TrainableModel
    >>> learner = Consolidation(TrainableModel.tiny(), update_every=4)
    >>> learner.version, learner.queued
    (0, 0)
    """

    name = "consolidation"

    def __init__(
        self,
        model: TrainableModel,
        *,
        lr: float = 5e-4,
        head_lr: float | None = 2e-3,
        temperature: float = 0.7,
        policy_weight: float = 0.0,
        batch: int = 4,
        update_every: int = 16,
        replay: float = 0.5,
        replay_capacity: int = 4096,
        max_prompt_tokens: int = 192,
        prompt: Callable[[JSON], str] | None = None,
        steps_per_sleep: int = 1,
        sleep_time: bool = True,
        user_rank: int | None = None,
        user_lr: float = 2e-3,
        user_update_every: int = 8,
        guards: Sequence[Guard] = (),
        probe: Probe | None = None,
        adapter_dir: str | Path | None = None,
        keep_versions: int = 32,
        max_grad_norm: float = 1.0,
        clip: float | None = 0.2,
        max_staleness: int = 2,
        accept_reward: float = 0.75,
        reject_reward: float = -0.25,
        seed: int = 0,
    ) -> None:
        check_scalar(policy_weight, "policy_weight", float, min_val=0)
        check_scalar(batch, "batch", int, min_val=1)
        check_scalar(replay, "replay", float, min_val=0, max_val=4)
        check_scalar(replay_capacity, "replay_capacity", int, min_val=1)
        check_scalar(max_prompt_tokens, "max_prompt_tokens", int, min_val=8)
        check_scalar(steps_per_sleep, "steps_per_sleep", int, min_val=1)
        check_scalar(user_update_every, "user_update_every", int, min_val=1)
        super().__init__(
            model,
            lr=lr,
            head_lr=head_lr,
            temperature=temperature,
            clip=clip,
            max_staleness=max_staleness,
            update_every=update_every,
            max_grad_norm=max_grad_norm,
            guards=guards,
            probe=probe,
            adapter_dir=adapter_dir,
            keep_versions=keep_versions,
            accept_reward=accept_reward,
            reject_reward=reject_reward,
            seed=seed,
        )
        import torch

        self.policy_weight = policy_weight
        self.batch = batch
        self.replay = replay
        self.replay_capacity = replay_capacity
        self.max_prompt_tokens = max_prompt_tokens
        self.prompt = prompt
        self.steps_per_sleep = steps_per_sleep
        self.sleep_time = sleep_time
        self.user_rank = user_rank
        self.user_lr = user_lr
        self.user_update_every = user_update_every
        #: Guards the queues and their steps: learn() may run on the host's thread while a scheduler's
        #: thread consolidates (the gradient steps themselves run outside it).
        self._lock = threading.RLock()
        self.queue: list[Pair] = []
        self.reservoir: list[Pair] = []
        self._reservoir_seen = 0
        self._candidate: dict[str, np.ndarray] | None = None
        self._candidate_pairs: dict[str, Step] = {}  # interactions the candidate trained on (provenance)
        self._since_gate = 0
        self._candidate_baseline: float | None = None
        self._last_loss = 0.0  # of the latest step: reported with the gate
        self._served_optimizer = copy.deepcopy(self.optimizer.state_dict())
        self._steps_by_id: dict[str, Step] = {}
        #: Per-user fast weights: the user adapter's matrices and their optimizer moments, by user.
        self.users: dict[str, dict[str, np.ndarray]] = {}
        self._user_moments: dict[str, list[dict[str, Any]]] = {}
        self._user_queue: dict[str, list[Pair]] = {}
        self._user_versions: dict[str, int] = {}
        #: A user's fast weights in training (and their moments), not served until they pass a check.
        self._user_candidates: dict[str, tuple[dict[str, np.ndarray], list[dict[str, Any]]]] = {}
        self._user_trained: dict[str, list[str]] = {}  # interactions in a user's candidate
        self._user_steps: dict[str, Step] = {}  # their steps, for provenance
        self._user_rejected = 0
        #: Seconds of each gradient step on a user's fast weights (swaps in and out included).
        self.user_step_seconds: list[float] = []
        self._serving_user: str | None = None
        self.sleep_seconds = 0.0
        self.sleeps: list[SleepReport] = []
        if user_rank is not None:
            if model.user_rank is None:
                model.add_user_adapter(rank=user_rank)
            self._user_optimizer = torch.optim.Adam(model.user_parameters(), lr=user_lr)

    @property
    def queued(self) -> int:
        """Pairs waiting for the next idle window."""
        with self._lock:
            return len(self.queue) + sum(len(q) for q in self._user_queue.values())

    # ------------------------------------------------------------------ learning: queue only

    def _learn(self, step: Step) -> bool:
        with self._lock:
            queued = self._enqueue(step)
        if not queued or self.sleep_time:
            return False  # nothing changes until an idle window consolidates it
        # No idle time: consolidate now — the shared queue, and this step's user's queue only, so that
        # whatever changes was learned from this step too.
        report = self._consolidate(None, None, count=False, user=step.interaction.scope.user)
        return bool(report.promoted or report.user_promoted)

    def _enqueue(self, step: Step) -> bool:
        if self.policy_weight > 0:
            sample = self._sample(step)
            if sample is not None:
                self.pending.append(sample)
                self._pending_steps[sample.interaction_id] = step
                self._seen += 1
        pair = self._pair(step)
        if pair is None:
            return False  # a sample alone waits for the next pair's step
        self.queue.append(pair)
        self._steps_by_id[pair.interaction_id] = step
        if self.user_rank is not None and pair.user is not None:
            self._user_queue.setdefault(pair.user, []).append(pair)
            self._user_steps[pair.interaction_id] = step
        return True

    def _pair(self, step: Step) -> Pair | None:
        right = right_answer(step)
        if not isinstance(right, str) or not right.strip():
            return None
        if self.prompt is not None:
            prompt = self.prompt(step.interaction.observation)
        else:
            meta = step.interaction.metadata.get(SAMPLE)
            if not isinstance(meta, dict) or not isinstance(meta.get("prompt"), str):
                return None  # no prompt to learn the line under
            prompt = str(meta["prompt"])
        prompt_ids = self.model.encode_prompt(prompt)[-self.max_prompt_tokens :]
        target = self.model.tokenizer.encode(right.strip() + "\n")
        if not target:
            return None
        return Pair(step.interaction.id, step.interaction.scope.user, tuple(prompt_ids), tuple(target))

    def learn_many(self, steps: Iterable[Step]) -> int:
        """Learn from steps in order — a replay of the log — and, in sleep-time mode, consolidate
        everything they gave (an offline rebuild has no request to yield to; inline, it is exactly the
        online run). Returns the number of new versions."""
        before = self.version
        for step in steps:
            self.learn(step)
        while (
            self.sleep_time and not self.frozen and (self.queued or (self.policy_weight > 0 and self.pending))
        ):
            report = self.sleep(steps=64)
            if not (report.steps or report.user_steps):
                break
        return self.version - before

    # ------------------------------------------------------------------ sleep-time

    def sleep(self, *, steps: int | None = None, seconds: float | None = None) -> SleepReport:
        """Consolidate in an idle window: up to ``steps`` gradient steps (default
        ``steps_per_sleep``) and/or until ``seconds`` have passed (checked between steps), gating a
        candidate each ``update_every`` new pairs. Returns what it did."""
        limit = self.steps_per_sleep if steps is None and seconds is None else steps
        return self._consolidate(limit, seconds, count=True)

    def _consolidate(
        self, limit: int | None, seconds: float | None, *, count: bool, user: str | None = None
    ) -> SleepReport:
        """The work of :meth:`sleep`. ``count``: add promotions to the version here (a sleep) rather
        than leave it to :meth:`Learner.learn` (inline consolidation, which then stops at one gate)."""
        start = time.perf_counter()
        done = user_done = pairs = gated = promoted = user_promoted = 0
        if self.frozen:
            return SleepReport(0, 0, 0, 0, 0, 0, 0.0, self.queued)
        served_user = self._serving_user
        bumped = False  # inline: the one new version Learner.learn will count has its adapter stored
        while (limit is None or done + user_done < limit) and (
            seconds is None or time.perf_counter() - start < seconds
        ):
            if self.queue or (self.policy_weight > 0 and self.pending):
                pairs += self._shared_step()
                done += 1
                if self._since_gate >= (self.update_every or 1):
                    gated += 1
                    won = self._gate()  # stores the new adapter as version + 1
                    promoted += won
                    if won and count:
                        self._version += 1
                    elif won:
                        break  # Learner.learn counts this one version
            elif self._user_queue and (count or user in self._user_queue):
                user_done += 1
                if self._user_step(None if count else user):  # inline: all its pairs in one step
                    user_promoted += 1
                    if count or not bumped:  # a new version, with the same shared adapter
                        self.adapters[self.version + 1] = self.adapters[self.version]
                        bumped = True
                    if count:
                        self._version += 1
                        self.model.adapter_version = self.version
            else:
                break
        if self.user_rank is not None:
            self.serve(Scope(user=served_user) if served_user else None)
        report = SleepReport(
            done, user_done, pairs, gated, promoted, user_promoted, time.perf_counter() - start, self.queued
        )
        self.sleep_seconds += report.seconds
        if done or user_done:
            self.sleeps.append(report)
        return report

    def _shared_step(self) -> int:
        """One gradient step on the candidate shared adapter; returns the new pairs it consumed."""
        import torch

        model = self.model
        with self._lock:
            new, self.queue = self.queue[: self.batch], self.queue[self.batch :]
            samples, self.pending = self.pending, []
            steps, self._pending_steps = self._pending_steps, {}
        old = self._replayed(len(new))
        fresh = [s for s in samples if 0 <= self.version - s.version <= self.max_staleness]
        self._prepare()
        served = self.adapters[self.version]
        if self._candidate is not None:
            model.load_adapter_weights(self._candidate)
        pairs = new + old
        # The shared adapter learns with no user's fast weights on.
        with model.shared_only(), model.computing():
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for pair in pairs:
                scored = model.score(pair.prompt_ids, pair.target_ids, 1.0)
                loss = -scored.logprobs.mean() / len(pairs)
                for guard in self.guards:
                    if scored.token_log_softmax is not None:
                        penalty = guard.sample_penalty(model, _as_sample(pair), scored.token_log_softmax)
                        if penalty is not None:
                            loss = loss + penalty / len(pairs)
                loss.backward()
                total += float(loss.detach())
            if fresh and self.policy_weight > 0:
                # The candidate's own running baseline: served (state) only if the candidate is.
                baseline = self.baseline if self._candidate_baseline is None else self._candidate_baseline
                advantages = [s.reward - baseline for s in fresh]
                for sample, advantage in zip(fresh, advantages, strict=True):
                    scored = model.score(sample.prompt_ids, sample.completion_ids, sample.temperature)
                    surrogate, _ = self._surrogate(sample, advantage, scored.logprobs)
                    (self.policy_weight * surrogate / len(fresh)).backward()
                for sample in fresh:
                    baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * sample.reward
                    if sample.interaction_id in steps:
                        self._candidate_pairs[sample.interaction_id] = steps[sample.interaction_id]
                self._candidate_baseline = baseline
            for guard in self.guards:
                penalty = guard.update_penalty(model, self.rng, len(pairs))
                if penalty is not None:
                    penalty.backward()
            torch.nn.utils.clip_grad_norm_(model.adapter_parameters(), self.max_grad_norm)
            self.optimizer.step()
            self._candidate = model.adapter_weights()
            model.load_adapter_weights(served)  # requests keep the served adapter until a promotion
        with self._lock:
            for pair in new:
                step = self._steps_by_id.pop(pair.interaction_id, None)
                if step is None:
                    continue  # its user was forgotten meanwhile
                self._remember(pair)
                self._candidate_pairs[pair.interaction_id] = step
        self._since_gate += len(new)
        self._last_loss = total
        return len(new)

    def _replayed(self, n_new: int) -> list[Pair]:
        n = min(len(self.reservoir), math.ceil(self.replay * max(n_new, 1)))
        if n <= 0:
            return []
        return [self.reservoir[int(i)] for i in self.rng.choice(len(self.reservoir), size=n, replace=False)]

    def _remember(self, pair: Pair) -> None:
        """Reservoir sampling (Vitter 1985, algorithm R): a uniform sample of every pair learned."""
        self._reservoir_seen += 1
        if len(self.reservoir) < self.replay_capacity:
            self.reservoir.append(pair)
            return
        j = int(self.rng.integers(self._reservoir_seen))
        if j < self.replay_capacity:
            self.reservoir[j] = pair

    def _gate(self) -> bool:
        """The candidate meets the probe: promoted, or dropped with its optimizer moments."""
        start = time.perf_counter()
        candidate, self._candidate = self._candidate, None
        trained, self._candidate_pairs = self._candidate_pairs, {}
        n_pairs, self._since_gate = self._since_gate, 0
        if candidate is None:
            return False
        model = self.model
        served = self.adapters[self.version]
        model.load_adapter_weights(candidate)
        probe = None
        if self.probe is not None and self._incumbent is not None:
            with model.shared_only():
                probe = self.probe.evaluate(model, self.temperature)
            promoted = self.probe.passes(probe, self._incumbent, self._floor)
        else:
            promoted = True
        baseline, self._candidate_baseline = self._candidate_baseline, None
        if promoted:
            if baseline is not None:
                self.baseline = baseline
            self._promote(candidate)  # stored as version + 1; the caller counts it
            for step in trained.values():
                self.provenance.record(f"adapter:v{self.version + 1}", step)
            self._incumbent = probe
            self._served_optimizer = copy.deepcopy(self.optimizer.state_dict())
        else:
            model.load_adapter_weights(served, self.version)
            self.optimizer.load_state_dict(copy.deepcopy(self._served_optimizer))
        self.history.append(
            Update(
                len(self.history) + 1,
                promoted,
                self.version + promoted,
                self._reservoir_seen,
                n_pairs,
                0,
                0,
                0.0,
                self._last_loss,
                self.baseline,
                time.perf_counter() - start,
                probe.to_dict() if probe is not None else None,
            )
        )
        return promoted

    def update(self) -> bool:
        """Consolidate everything queued now and gate the result (whatever the cadence)."""
        if self.frozen:
            return False
        before = self.version
        while self.queue or (self.policy_weight > 0 and self.pending):
            self._shared_step()
        if self._candidate is not None and self._gate():
            self._version += 1
        return self.version > before

    # ------------------------------------------------------------------ fast weights

    def _user_step(self, user: str | None = None) -> int:
        """One gradient step on the candidate fast weights of the user waiting longest (``batch`` of
        their pairs), or of ``user`` (all their queued pairs: inline consolidation), the shared
        adapter held fixed. Each ``user_update_every`` pairs of that user the candidate is checked —
        held-out perplexity within the probe's ``max_ppl_ratio`` of the base, each kind of text on its
        own (no check without a probe) — and becomes the user's served fast weights, or is dropped.
        Returns 1 when a user's served fast weights changed."""
        import torch

        started = time.perf_counter()
        with self._lock:
            take = self.batch if user is None else len(self._user_queue[user])
            user = next(iter(self._user_queue)) if user is None else user
            new = self._user_queue[user][:take]
            del self._user_queue[user][:take]
            if not self._user_queue[user]:
                del self._user_queue[user]
        model = self.model
        weights, moments = self._user_candidates.get(user) or (
            self.users.get(user),
            self._user_moments.get(user),
        )
        model.load_user_weights(weights)
        params = model.user_parameters()
        optimizer = self._user_optimizer
        optimizer.state.clear()
        for p, saved in zip(params, moments or (), strict=False):
            optimizer.state[p] = {k: v.clone() for k, v in saved.items()}
        with model.computing():
            optimizer.zero_grad(set_to_none=True)
            for pair in new:
                loss = -model.score(pair.prompt_ids, pair.target_ids, 1.0).logprobs.mean() / len(new)
                for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
                    p.grad = g if p.grad is None else p.grad + g
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            optimizer.step()
        candidate = model.user_weights()
        state: list[dict[str, Any]] = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in params]
        optimizer.state.clear()  # the user's moments live in ``state`` only (forgetting drops them)
        self.user_step_seconds.append(time.perf_counter() - started)
        with self._lock:
            if not any(pair.interaction_id in self._user_steps for pair in new):
                return 0  # the user was forgotten during the step: keep nothing of it
            trained = self._user_trained.setdefault(user, [])
            trained += [pair.interaction_id for pair in new]
            if len(trained) < self.user_update_every:
                self._user_candidates[user] = (candidate, state)
                return 0
            self._user_candidates.pop(user, None)
            del self._user_trained[user]
        if self.probe is not None and max(self.probe.ppl_ratios(model).values()) > self.probe.max_ppl_ratio:
            self._user_rejected += 1
            return 0
        with self._lock:
            steps = [self._user_steps.pop(i, None) for i in trained]
            if not any(steps):
                return 0  # the user was forgotten meanwhile
            self.users[user], self._user_moments[user] = candidate, state
            self._user_versions[user] = self._user_versions.get(user, 0) + 1
            for step in steps:
                if step is not None:
                    self.provenance.record(f"user-adapter:{user}:v{self._user_versions[user]}", step)
        return 1

    def serve(self, scope: Scope | None) -> None:
        """Put the fast weights of ``scope``'s user in (none for a user without any) before a request."""
        if self.user_rank is None:
            return
        user = scope.user if scope is not None else None
        self.model.load_user_weights(self.users.get(user) if user is not None else None)
        self._serving_user = user

    def user_bytes(self, user: str) -> int:
        """What one user's fast weights take (the matrices; their optimizer moments are twice that)."""
        return int(sum(a.nbytes for a in self.users.get(user, {}).values()))

    def forget_user(self, user: str, tenant: str | None = None) -> bool:
        """Drop everything of a user outside the shared adapter at once: fast weights (served and
        candidate), their moments and version count, queued, replayed and pending pairs and samples, and
        the ids of their interactions learned from. The shared adapter still holds what their pairs
        taught it until a rebuild from the log. Returns True if anything went (False for a ``tenant``
        this learner does not learn for)."""
        if tenant is not None and self.tenant is not None and tenant != self.tenant:
            return False
        with self._lock:
            return self._forget(user)

    def _forget(self, user: str) -> bool:
        """Everything of ``user`` outside the shared adapter: every per-user dict and queue here and in
        :class:`PolicyGradient` (pending samples, ids learned from, a guard's replay memory)."""
        found = user in self.users or user in self._user_queue or user in self._user_versions
        self.users.pop(user, None)
        self._user_moments.pop(user, None)
        self._user_queue.pop(user, None)
        self._user_versions.pop(user, None)
        self._user_candidates.pop(user, None)
        for interaction_id in self._user_trained.pop(user, []):
            self._user_steps.pop(interaction_id, None)
        before = len(self.queue) + len(self.reservoir)
        for held in (self._steps_by_id, self._user_steps, self._candidate_pairs):
            for interaction_id in [i for i, s in held.items() if s.interaction.scope.user == user]:
                del held[interaction_id]  # no later version records a link to them
        found |= self._forget_samples(user)
        self.queue = [p for p in self.queue if p.user != user]
        self.reservoir = [p for p in self.reservoir if p.user != user]
        if self._serving_user == user:
            self.serve(None)
        return found or len(self.queue) + len(self.reservoir) < before

    # ------------------------------------------------------------------ state

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        state["users"] = {u: {k: v.copy() for k, v in w.items()} for u, w in sorted(self.users.items())}
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self.users = {u: {k: np.array(v) for k, v in w.items()} for u, w in state.get("users", {}).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.queue, self.reservoir, self._candidate = [], [], None
        self._candidate_pairs, self._since_gate = {}, 0
        self._served_optimizer = copy.deepcopy(self.optimizer.state_dict())


def _as_sample(pair: Pair) -> Sample:
    """A pair as the guards read samples (a greedy target: temperature 1, no reward)."""
    return Sample(pair.interaction_id, pair.prompt_ids, pair.target_ids, (), 0, 1.0, 0.0)


class SleepScheduler:
    """Run :meth:`Consolidation.sleep` from a background thread whenever the host has been idle for
    ``idle_after`` seconds; the host wraps each request in :meth:`busy` (which also holds the model).

    >>> # scheduler = SleepScheduler(learner); with scheduler.busy(): agent.act(...)
    """

    def __init__(self, learner: Consolidation, *, idle_after: float = 0.05, poll: float = 0.01) -> None:
        check_scalar(idle_after, "idle_after", float, min_val=0)
        self.learner = learner
        self.idle_after = idle_after
        self.poll = poll
        self.lock = threading.Lock()  # whoever holds it uses the model
        self._last_busy = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.reports: list[SleepReport] = []

    def busy(self) -> _Busy:
        """A context manager around a request: the model is the request's while it is held."""
        return _Busy(self)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until nothing is queued and no slice runs (at most ``timeout`` s); True when drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.learner.queued:
                    return True
            if self.errors or self._thread is None:
                return False
            time.sleep(self.poll)
        return False

    def start(self) -> SleepScheduler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lifelong-sleep", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> SleepScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._last_busy < self.idle_after or not self.learner.queued:
                self._stop.wait(self.poll)
                continue
            with self.lock:
                try:
                    report = self.learner.sleep(steps=1)  # one slice: a request waits for one step at most
                except BaseException as exc:  # reported, never raised in the host's thread
                    self.errors.append(exc)
                    return
            if report.steps or report.user_steps:
                self.reports.append(report)


class _Busy:
    def __init__(self, scheduler: SleepScheduler) -> None:
        self.scheduler = scheduler

    def __enter__(self) -> None:
        self.scheduler.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.scheduler._last_busy = time.monotonic()
        self.scheduler.lock.release()
