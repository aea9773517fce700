"""Online policy gradient on a LoRA adapter, from accept/reject feedback (Cursor Tab-style RL).

The policy is the :class:`~lifelong.models.trainable.TrainableModel` sampling at temperature τ: for a
code-completion request it writes the rest of the line, or stays silent — the **abstain** action
(the model's abstain head decides, or the first token ends the line), which earns 0 instead of the
reject penalty. Every answered
request is logged with the sampled token ids, their log-probabilities under the policy that sampled
them (the *behaviour* policy) and that policy's adapter version; the feedback's reward makes it a
:class:`Sample`.

Every ``update_every`` feedbacks (or ``update_seconds`` of feedback time) the learner updates the
adapter on the samples gathered since the last update:

- **Advantage: a running baseline**, A = R − b, with b an exponential moving average of past rewards
  (REINFORCE with a baseline, Williams 1992, §4). Group baselines (GRPO, Shao et al. 2024, eq. 3;
  RLOO, Ahmadian et al. 2024) need several *rewarded* samples of the same prompt; online, a developer
  sees one suggestion per request and judges that one, so there is one reward per prompt and the
  baseline has to come from other prompts. The baseline is updated after each update, from the
  rewards it learned from, so a sample is never compared with itself.
- **Objective: the clipped surrogate per element** of the action — the suggest/abstain decision and
  each token (PPO, Schulman et al. 2017, eq. 7):
  L = −mean_t min(ρ_t A, clip(ρ_t, 1−ε, 1+ε) A), ρ_t = π_θ(a_t|s_t) / π_old(a_t|s_t). For samples
  produced by the current adapter (on-policy) ρ = 1 and the gradient is the plain REINFORCE one; for
  samples from an older adapter (the update lagged behind the traffic: off-policy) ρ corrects for the
  change and the clip bounds how far one stale sample can move the policy. Samples more than
  ``max_staleness`` versions old are dropped, not corrected: importance weights from far-away
  policies have a variance no clip makes useful.
- **Guards** (:mod:`lifelong.learners.weights.guards`) add their penalties: KL to the base, replay, EWC.
- **Gate.** The update produces a *candidate*; with a :class:`Probe` (held-out requests and held-out
  text) it is promoted — served from the next request, stored as a new version — only if its expected
  reward on the probe has not fallen by more than ``tolerance`` and the held-out perplexity stays
  within ``max_ppl_ratio`` of the base; otherwise the previous adapter (and optimizer state) is
  restored at once, so a gated-out adapter never answers a request. :meth:`PolicyGradient.rollback`
  returns to any stored version later.

Each interaction is learned from once (its first feedback with a reward or an accept/reject); samples
decoded greedily (temperature 0) are not samples of the policy and are skipped.

The learner's ``version`` counts promotions (and rollbacks, which promote a copy of an earlier
adapter); ``history`` lists every update attempt with its probe numbers; ``provenance`` links each
promoted version (item ``adapter:vN``) to the interactions it learned from. A gradient cannot be taken
back: forgetting a user from the weights means rebuilding the adapter from the remaining log
(``learn_many(log.replay())`` into a fresh learner), which the logged samples make possible.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, NotFound
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Learner
from lifelong.learners.weights.guards import Guard
from lifelong.learners.weights.samples import SAMPLE, Sample, sample_metadata
from lifelong.models.trainable import SUGGEST, TrainableModel
from lifelong.utils.validation import check_scalar

__all__ = ["SAMPLE", "PolicyGradient", "Probe", "ProbeResult", "Sample", "Update", "sample_metadata"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    reward: float  # expected reward per probe request under the policy
    ppl_ratio: float  # held-out perplexity, adapted / base: the worst of the kinds of text
    seconds: float
    ppl_ratios: dict[str, float] = field(default_factory=dict)  # per kind of text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Probe:
    """Held-out requests and texts a candidate adapter must pass before it is served.

    ``requests`` are (prompt, right line) pairs the learner never trains on. The probe reward is the
    policy's *expected* reward on them, computed from its probabilities rather than by sampling, so it
    has no sampling noise: P(accept) is the probability of deciding to suggest and then generating the
    right line and its newline, P(abstain) that of the abstain head saying so or of a first token that
    ends the line, and
    E[R] = r_accept·P(accept) + r_reject·(1 − P(accept) − P(abstain)). (Other spellings of the right
    line — another tokenisation, other whitespace — count as rejected: a slight underestimate.)
    ``texts`` are held-out texts for the retention check — a list, or kinds of text by name (e.g.
    ``{"prose": [...], "code": [...]}``): each kind is checked on its own, so one kind getting better
    cannot hide another getting worse.
    """

    def __init__(
        self,
        requests: Sequence[tuple[str, str]],
        texts: Sequence[str] | Mapping[str, Sequence[str]],
        *,
        accept_reward: float = 0.75,
        reject_reward: float = -0.25,
        tolerance: float = 0.005,
        max_ppl_ratio: float = 1.05,
        max_text_tokens: int = 128,
    ) -> None:
        if not requests:
            raise InvalidInput("a probe needs held-out requests", field="requests")
        kinds = (
            {k: list(v) for k, v in texts.items()} if isinstance(texts, Mapping) else {"text": list(texts)}
        )
        if not kinds or not all(kinds.values()):
            raise InvalidInput("a probe needs held-out texts for the retention check", field="texts")
        self.requests = list(requests)
        self.texts = kinds
        self.accept_reward = accept_reward
        self.reject_reward = reject_reward
        self.tolerance = tolerance
        self.max_ppl_ratio = max_ppl_ratio
        self.max_text_tokens = max_text_tokens
        self._base_ppl: dict[str, float] = {}

    def expected_reward(self, model: TrainableModel, temperature: float) -> float:
        import torch

        newline = torch.tensor(model.newline_ids())
        head = model.abstain_head is not None
        total = 0.0
        with model.computing(), torch.no_grad():
            for prompt, right in self.requests:
                right_ids = model.tokenizer.encode(right + "\n")
                actions = [SUGGEST, *right_ids] if head else right_ids
                scored = model.score(model.encode_prompt(prompt), actions, temperature)
                p_accept = float(scored.logprobs.sum().exp())  # P(suggest) · P(the right tokens)
                p_suggest = float(scored.logprobs[0].exp()) if head else 1.0
                p_newline = float(scored.token_log_softmax[0, newline].exp().sum()) if len(newline) else 0.0
                p_abstain = (1.0 - p_suggest) + p_suggest * p_newline
                p_reject = max(0.0, 1.0 - p_accept - p_abstain)
                total += self.accept_reward * p_accept + self.reject_reward * p_reject
        return total / len(self.requests)

    def evaluate(self, model: TrainableModel, temperature: float) -> ProbeResult:
        start = time.perf_counter()
        reward = self.expected_reward(model, temperature)
        ratios = self.ppl_ratios(model)
        return ProbeResult(reward, max(ratios.values()), time.perf_counter() - start, ratios)

    def ppl_ratios(self, model: TrainableModel) -> dict[str, float]:
        """Held-out perplexity with the weights now in ``model`` over the base's, per kind of text (the
        base's measured once)."""
        if not self._base_ppl:
            with model.base():
                self._base_ppl = {
                    kind: model.perplexity(texts, max_tokens=self.max_text_tokens)
                    for kind, texts in self.texts.items()
                }
        return {
            kind: model.perplexity(texts, max_tokens=self.max_text_tokens) / self._base_ppl[kind]
            for kind, texts in self.texts.items()
        }

    def passes(self, candidate: ProbeResult, incumbent: ProbeResult, floor: float | None = None) -> bool:
        """No fall of more than ``tolerance`` from the served version, nor from ``floor`` (the base's
        reward: small permitted falls cannot add up), and retention within ``max_ppl_ratio``."""
        reference = incumbent.reward if floor is None else max(incumbent.reward, floor)
        return candidate.reward >= reference - self.tolerance and candidate.ppl_ratio <= self.max_ppl_ratio


@dataclass(frozen=True, slots=True)
class Update:
    """One update attempt."""

    number: int
    promoted: bool
    version: int  # the version served after the attempt
    seen: int  # samples received so far (this update's included)
    samples: int
    tokens: int  # tokens the update's forward passes read (samples, KL reference, replay, probe not counted)
    dropped_stale: int
    clipped_fraction: float
    loss: float
    baseline: float
    seconds: float
    probe: dict[str, float] | None

    def to_dict(self) -> dict[str, JSON]:
        return {k: v for k, v in asdict(self).items()}


class PolicyGradient(Learner):
    """See the module docstring.

    ``lr`` is the learning rate of the LoRA matrices, ``head_lr`` that of the abstain head (default: the
    same). They differ on purpose: Adam moves each parameter by about its learning rate per step however
    small the gradient, so a few rejected suggestions move the whole adapter — the language model — as
    far as many would, while the head is a 641-parameter decision that should move fast.

    >>> from lifelong.models.trainable import SUGGEST, TrainableModel
    >>> policy = PolicyGradient(TrainableModel.tiny(), update_every=4)
    >>> policy.version, policy.updates
    (0, 0)
    """

    name = "policy"

    def __init__(
        self,
        model: TrainableModel,
        *,
        lr: float = 1e-3,
        head_lr: float | None = None,
        temperature: float = 0.7,
        clip: float | None = 0.2,
        max_staleness: int = 2,
        update_every: int | None = 8,
        update_seconds: float | None = None,
        baseline_decay: float = 0.9,
        epochs: int = 1,
        max_grad_norm: float = 1.0,
        guards: Sequence[Guard] = (),
        probe: Probe | None = None,
        adapter_dir: str | Path | None = None,
        keep_versions: int = 32,
        accept_reward: float = 0.75,
        reject_reward: float = -0.25,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if update_every is None and update_seconds is None:
            raise InvalidInput("give update_every (feedbacks) or update_seconds", field="update_every")
        check_scalar(update_every, "update_every", int, min_val=1, allow_none=True)
        # > 0: a policy gradient needs a stochastic policy.
        check_scalar(temperature, "temperature", float, min_val=0, include_boundaries="neither")
        check_scalar(clip, "clip", float, min_val=0, max_val=1, include_boundaries="neither", allow_none=True)
        check_scalar(max_staleness, "max_staleness", int, min_val=0)
        check_scalar(keep_versions, "keep_versions", int, min_val=1)
        import torch

        self.model = model
        self.lr = lr
        self.temperature = temperature
        self.clip = clip
        self.max_staleness = max_staleness
        self.update_every = update_every
        self.update_seconds = update_seconds
        self.baseline_decay = baseline_decay
        self.epochs = epochs
        self.max_grad_norm = max_grad_norm
        self.guards = list(guards)
        self.probe = probe
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        self.keep_versions = keep_versions
        self.accept_reward, self.reject_reward = accept_reward, reject_reward
        self.head_lr = lr if head_lr is None else head_lr
        groups = [{"params": model.lora_parameters(), "lr": lr}]
        if model.head_parameters():
            groups.append({"params": model.head_parameters(), "lr": self.head_lr})
        self.optimizer = torch.optim.Adam(groups)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.baseline = 0.0
        self.pending: list[Sample] = []
        self._pending_steps: dict[str, Step] = {}  # for provenance: the interactions of the pending samples
        self.history: list[Update] = []
        self.adapters: dict[int, dict[str, np.ndarray]] = {0: model.adapter_weights()}
        self._incumbent: ProbeResult | None = None
        self._last_update_time: float | None = None
        self._prepared = False
        self._seen = 0
        #: Interactions already learned from (feedback may come twice) → their user, so that forgetting a
        #: user drops their ids too.
        self._learned: dict[str, str | None] = {}
        self._floor: float | None = None  # the base adapter's probe reward: no promotion falls below it
        model.adapter_version = 0

    @property
    def updates(self) -> int:
        return len(self.history)

    # ------------------------------------------------------------------ learning

    def _learn(self, step: Step) -> bool:
        sample = self._sample(step)
        if sample is None:
            return False
        self.pending.append(sample)
        self._pending_steps[sample.interaction_id] = step
        self._seen += 1
        now = max(fb.time for fb in step.feedback)
        if self._last_update_time is None:
            self._last_update_time = now
        due = (self.update_every is not None and len(self.pending) >= self.update_every) or (
            self.update_seconds is not None and now - self._last_update_time >= self.update_seconds
        )
        if not due:
            return False
        self._last_update_time = now
        return self._update()  # Learner.learn counts the new version when it was promoted

    def _sample(self, step: Step) -> Sample | None:
        meta = step.interaction.metadata.get(SAMPLE)
        if not isinstance(meta, dict) or not meta.get("completion_ids"):
            return None  # not produced by a trainable policy: nothing to learn from
        if step.interaction.id in self._learned:
            return None  # one reward per action: later feedback on it (or a replay by feedback) is not new
        temperature = float(meta.get("temperature") or 0.0)
        if temperature <= 0:
            return None  # greedy decoding is not a sample of the policy: no policy gradient from it
        ids, logprobs = list(meta["completion_ids"]), list(meta.get("logprobs") or [])
        if len(ids) != len(logprobs):
            raise InvalidInput(
                f"{step.interaction.id}: {len(ids)} action ids, {len(logprobs)} log-probabilities",
                field="metadata.sample",
            )
        reward = step.reward
        if reward is None:
            accepted = step.accepted
            if accepted is None:
                return None
            reward = self.accept_reward if accepted else self.reject_reward
        version = meta.get("version")
        self._learned[step.interaction.id] = step.interaction.scope.user
        return Sample(
            step.interaction.id,
            tuple(self.model.encode_prompt(str(meta["prompt"]))),
            tuple(int(i) for i in ids),
            tuple(float(x) for x in logprobs),
            int(version) if isinstance(version, int) else self.version,
            temperature,
            float(reward),
        )

    def _forget_samples(self, user: str) -> bool:
        """Drop what of ``user`` this learner keeps beside its adapter: their pending samples and steps,
        their ids among the interactions learned from, and their samples in a guard's replay memory.
        (The adapter keeps their updates until it is rebuilt from the log.) True if anything went."""
        ids = {i for i, u in self._learned.items() if u == user}
        ids |= {i for i, s in self._pending_steps.items() if s.interaction.scope.user == user}
        if not ids:
            return False
        for interaction_id in ids:
            self._learned.pop(interaction_id, None)
            self._pending_steps.pop(interaction_id, None)
        self.pending = [s for s in self.pending if s.interaction_id not in ids]
        for guard in self.guards:
            memory = getattr(guard, "memory", None)  # the replay guard's (sample, advantage) pairs
            if isinstance(memory, list):
                memory[:] = [m for m in memory if getattr(m[0], "interaction_id", None) not in ids]
        return True

    def update(self) -> bool:
        """Update the adapter on the pending samples now (whatever the cadence), gate the candidate,
        promote or roll back. Returns True when a new version was promoted."""
        if self.frozen:
            return False
        promoted = self._update()
        if promoted:
            self._version += 1
        return promoted

    def _update(self) -> bool:
        import torch

        start = time.perf_counter()
        batch, self.pending = self.pending, []
        steps, self._pending_steps = self._pending_steps, {}
        fresh = [s for s in batch if 0 <= self.version - s.version <= self.max_staleness]
        dropped = len(batch) - len(fresh)
        if not fresh:
            return False
        model = self.model
        self._prepare()
        saved_optimizer = copy.deepcopy(self.optimizer.state_dict())
        advantages = [s.reward - self.baseline for s in fresh]
        clipped = total_tokens = tokens = 0
        loss_value = 0.0
        with model.computing():
            for _ in range(self.epochs):
                self.optimizer.zero_grad(set_to_none=True)
                for sample, advantage in zip(fresh, advantages, strict=True):
                    scored = model.score(sample.prompt_ids, sample.completion_ids, sample.temperature)
                    loss, n_clipped = self._surrogate(sample, advantage, scored.logprobs)
                    for guard in self.guards:
                        if scored.token_log_softmax is not None:
                            penalty = guard.sample_penalty(model, sample, scored.token_log_softmax)
                            if penalty is not None:
                                loss = loss + penalty
                    (loss / len(fresh)).backward()
                    loss_value += float(loss) / len(fresh)
                    clipped += n_clipped
                    total_tokens += len(sample.completion_ids)
                    tokens += len(sample.prompt_ids) + sum(t >= 0 for t in sample.completion_ids)
                for guard in self.guards:
                    penalty = guard.update_penalty(model, self.rng, len(fresh))
                    if penalty is not None:
                        penalty.backward()
                        loss_value += float(penalty)
                torch.nn.utils.clip_grad_norm_(model.adapter_parameters(), self.max_grad_norm)
                self.optimizer.step()
        for sample, advantage in zip(fresh, advantages, strict=True):
            for guard in self.guards:
                guard.observe(sample, advantage)
        for sample in fresh:  # b ← β b + (1 − β) R, after the update: no sample is its own baseline
            self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * sample.reward
        probe = self.probe.evaluate(model, self.temperature) if self.probe is not None else None
        if probe is None or self.probe is None or self._incumbent is None:
            promoted = True  # ungated: every update is served
        else:
            promoted = self.probe.passes(probe, self._incumbent, self._floor)
        if promoted:
            self._promote(model.adapter_weights())
            for sample in fresh:  # provenance: the new version was learned from these interactions
                if sample.interaction_id in steps:
                    self.provenance.record(f"adapter:v{self.version + 1}", steps[sample.interaction_id])
            self._incumbent = probe
        else:  # roll back before anything is served with the candidate
            model.load_adapter_weights(self.adapters[self.version], self.version)
            self.optimizer.load_state_dict(saved_optimizer)
        self.history.append(
            Update(
                len(self.history) + 1,
                promoted,
                self.version + promoted,
                self._seen,
                len(fresh),
                tokens,
                dropped,
                clipped / max(1, total_tokens),
                loss_value / self.epochs,
                self.baseline,
                time.perf_counter() - start,
                probe.to_dict() if probe is not None else None,
            )
        )
        return promoted

    def _prepare(self) -> None:
        """Before an update: the guards prepared once, the served adapter measured on the probe (and
        the base's reward kept as the floor no promotion may fall below)."""
        if not self._prepared:
            for guard in self.guards:
                guard.prepare(self.model)
            self._prepared = True
        if self.probe is not None and self._incumbent is None:
            self._incumbent = self.probe.evaluate(self.model, self.temperature)
            if self._floor is None:
                self._floor = self._incumbent.reward

    def _surrogate(self, sample: Sample, advantage: float, new: Any) -> tuple[Any, int]:
        """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), averaged over the action's elements
        (the suggest/abstain decision and each token); ``new`` are their log-probabilities now."""
        import torch

        old = torch.tensor(sample.logprobs, dtype=new.dtype, device=new.device)
        ratio = torch.exp(new - old)
        unclipped = ratio * advantage
        if self.clip is None:
            return -unclipped.mean(), 0
        clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip) * advantage
        n_clipped = int((clipped.detach() != unclipped.detach()).sum())
        return -torch.minimum(unclipped, clipped).mean(), n_clipped

    def serve(self, scope: Scope | None) -> None:
        """Called before the model answers a request of ``scope`` (a learner with per-user weights puts
        that user's in); the policy gradient has none."""

    # ------------------------------------------------------------------ versions

    def _promote(self, weights: dict[str, np.ndarray]) -> None:
        """Store ``weights`` (already in the model) as the next version; the caller counts it."""
        version = self.version + 1
        self.adapters[version] = weights
        self.model.adapter_version = version
        for old in sorted(self.adapters)[: -self.keep_versions]:
            if old != 0:
                del self.adapters[old]
        if self.adapter_dir is not None:
            self.model.save_adapter(self.adapter_dir / f"v{version:04d}")

    def rollback(self, to: int | None = None) -> int:
        """Serve the adapter of version ``to`` (default: the one before the current) again, as a new
        version; returns the new version number."""
        target = self.version - 1 if to is None else to
        if target not in self.adapters:
            raise NotFound(
                f"no stored adapter of version {target} (kept: {sorted(self.adapters)}); "
                "raise keep_versions or load one saved under adapter_dir"
            )
        weights = {k: v.copy() for k, v in self.adapters[target].items()}
        self.model.load_adapter_weights(weights)
        self.optimizer.state.clear()  # the moments belong to the abandoned trajectory
        self._promote(weights)
        self._version += 1
        self._incumbent = None  # re-measured at the next update
        return self.version

    # ------------------------------------------------------------------ state

    def _get_state(self) -> dict[str, Any]:
        # The history without its wall-clock seconds: a timing is a measurement, not something learned,
        # and with it no replay of the log could rebuild the state (nor its digest) exactly.
        history = []
        for update in self.history:
            row = update.to_dict()
            del row["seconds"]
            if isinstance(row["probe"], dict):
                row["probe"] = {k: v for k, v in row["probe"].items() if k != "seconds"}
            history.append(row)
        return {"adapter": self.model.adapter_weights(), "baseline": self.baseline, "history": history}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.model.load_adapter_weights(state["adapter"])
        self.baseline = float(state["baseline"])
        self.history = [Update(**{"seconds": 0.0, **u}) for u in state.get("history", [])]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the adapter, baseline and history; stored versions other than the base and this
        one, optimizer moments, pending samples and guard state start afresh (they are not state)."""
        super().load_state_dict(state)
        self.adapters = {0: self.adapters[0], self.version: self.model.adapter_weights()}
        self.model.adapter_version = self.version
        self.optimizer.state.clear()
        self.pending, self._pending_steps = [], {}
        self._prepared = False
        self._incumbent = self._floor = None

    def config(self) -> dict[str, JSON]:
        # The probe holds held-out data, not settings: report only whether updates are gated on one.
        return {**super().config(), "gated": self.probe is not None}
