"""Weight-space online RL on a tiny randomly initialised Gemma 3 (byte tokenizer): the policy-gradient
update, abstaining, clipping and staleness, the gate, rollback, and the forgetting guards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lifelong.agents import Agent, CodeCompletionTask  # noqa: E402
from lifelong.envs.code_completion import CodeCompletion  # noqa: E402
from lifelong.envs.texts import prose_texts  # noqa: E402
from lifelong.errors import InvalidInput, ModelError, NotFound  # noqa: E402
from lifelong.eval.agents import run_agent  # noqa: E402
from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step  # noqa: E402
from lifelong.learners.weights.guards import EWC, KLPenalty, Replay, retention_ppl_ratio  # noqa: E402
from lifelong.learners.weights.policy_gradient import (  # noqa: E402
    SAMPLE,
    PolicyGradient,
    Probe,
    sample_metadata,
)
from lifelong.models.trainable import ABSTAIN, SUGGEST, TrainableModel  # noqa: E402

PROMPTS = ["def add(a, b):\n    ", "for i in range(10):\n    ", "class Point:\n    ", "if x is None:\n    "]
TEXTS = ["The quick brown fox jumps over the lazy dog. " * 3, "import os\nprint(os.getcwd())\n" * 3]


def policy_of(seed: int = 0, **kw: object) -> PolicyGradient:
    model = TrainableModel.tiny(seed=seed, threads=1)
    options: dict[str, object] = {"update_every": 4, "lr": 1e-2, "temperature": 1.0}
    options.update(kw)
    return PolicyGradient(model, **options)  # type: ignore[arg-type]


def step_of(
    policy: PolicyGradient, prompt: str, reward: float, completion_ids: tuple[int, ...] | None = None
) -> Step:
    """One logged-and-rewarded interaction, as an agent would produce it."""
    model = policy.model
    if completion_ids is None:
        completion = model.complete(prompt, max_tokens=6, stop=("\n",), temperature=policy.temperature)
    else:  # a fixed completion, with its log-probabilities under the current policy
        from lifelong.models.base import Completion

        with torch.no_grad():
            scored = model.score(model.encode_prompt(prompt), completion_ids, policy.temperature)
        logprobs = tuple(float(x) for x in scored.logprobs)
        text = "" if completion_ids[0] == ABSTAIN else "x"
        completion = Completion(text, 0, len(completion_ids), 0.0, logprobs, completion_ids, policy.version)
    interaction = Interaction(
        Scope(user="dev"),
        {"prompt": prompt},
        completion.text or None,
        versions={"policy": policy.version},
        metadata={SAMPLE: sample_metadata(prompt, completion, policy.temperature)},
    )
    return Step(interaction, (Feedback.reward(interaction.id, reward),))


def sequence_logprob(
    model: TrainableModel, prompt: str, ids: tuple[int, ...], temperature: float = 1.0
) -> float:
    with torch.no_grad():
        return float(model.score(model.encode_prompt(prompt), ids, temperature).logprobs.sum())


def p_abstain(model: TrainableModel, prompt: str, temperature: float = 1.0) -> float:
    """P(the head abstains) + P(it suggests) · P(the first token ends the line)."""
    ids = model.encode_prompt(prompt)
    with torch.no_grad():
        lp = model.completion_log_softmax(ids, [0], temperature)
    head = model.abstain_probability(ids)
    return head + (1 - head) * float(lp[0, model.newline_ids()].exp().sum())


def logits(model: TrainableModel, text: str = "def f(x):\n    return") -> torch.Tensor:
    with torch.no_grad():
        return model.network(input_ids=torch.tensor([model.encode_prompt(text)])).logits.clone()


# ---------------------------------------------------------------------- the model


@pytest.mark.parametrize("prior", [0.1, None])
def test_sampled_logprobs_match_the_scored_ones_and_adapter_starts_as_base(prior: float | None) -> None:
    model = TrainableModel.tiny(seed=3, threads=1, abstain_prior=prior)
    completions = [model.complete(PROMPTS[0], max_tokens=8, temperature=0.8) for _ in range(40)]
    if prior is not None:  # the head's prior: some abstentions, each a single ABSTAIN element
        assert {c.token_ids[0] for c in completions} == {ABSTAIN, SUGGEST}
    for completion in completions:
        with torch.no_grad():
            again = model.score(model.encode_prompt(PROMPTS[0]), completion.token_ids, 0.8).logprobs
        np.testing.assert_allclose(again.numpy(), completion.token_logprobs, atol=1e-4)
        if completion.token_ids[0] != ABSTAIN:  # no stop string: 8 tokens unless it ended the text
            assert completion.completion_tokens == 8 or completion.token_ids[-1] == model.tokenizer.eos_id
    assert retention_ppl_ratio(model, TEXTS) == pytest.approx(1.0, abs=1e-6)  # B = 0: adapter is a no-op


def test_generation_stops_after_the_stop_string_and_keeps_its_token() -> None:
    model = TrainableModel.tiny(seed=0, threads=1, abstain_prior=None)
    newline = model.tokenizer.encode("\n")[0]

    def favour_newline(module: object, inputs: object, output: torch.Tensor) -> torch.Tensor:
        output[..., newline] += 50.0  # the newline overwhelmingly likely: generation must stop on it
        return output

    model.network.base_model.model.lm_head.register_forward_hook(favour_newline)
    completion = model.complete(PROMPTS[1], max_tokens=8, stop=("\n",), temperature=1.0)
    assert completion.text == "" and completion.token_ids == (newline,)
    with pytest.raises(InvalidInput):
        model.complete("x", choices=["a", "b"])


# ---------------------------------------------------------------------- the update


def test_update_raises_rewarded_and_lowers_penalised_completions() -> None:
    policy = policy_of(update_every=2)
    good, bad = (SUGGEST, 40, 41, 42), (SUGGEST, 50, 51, 52)
    steps = [step_of(policy, PROMPTS[0], 1.0, good), step_of(policy, PROMPTS[1], -1.0, bad)]
    before = sequence_logprob(policy.model, PROMPTS[0], good), sequence_logprob(policy.model, PROMPTS[1], bad)
    assert not policy.learn(steps[0]) and policy.learn(steps[1])  # the second feedback triggers the update
    after = sequence_logprob(policy.model, PROMPTS[0], good), sequence_logprob(policy.model, PROMPTS[1], bad)
    assert after[0] > before[0] + 0.05
    assert after[1] < before[1] - 0.05
    assert policy.version == 1 and policy.updates == 1 and policy.model.adapter_version == 1


def test_with_only_negative_rewards_the_policy_learns_to_abstain() -> None:
    policy = policy_of(update_every=4, lr=1e-2)
    before = np.mean([p_abstain(policy.model, p) for p in PROMPTS])
    for t in range(120):
        prompt = PROMPTS[t % len(PROMPTS)]
        completion = policy.model.complete(prompt, max_tokens=3, stop=("\n",), temperature=1.0)
        step = step_of(policy, prompt, 0.0, completion.token_ids)
        reward = 0.0 if not completion.text.strip() else -0.25  # silent: 0; any suggestion is rejected
        policy.learn(Step(step.interaction, (Feedback.reward(step.interaction.id, reward),)))
    after = np.mean([p_abstain(policy.model, p) for p in PROMPTS])
    assert before < 0.15 and after > 0.7


def test_clipping_bounds_the_update_from_a_stale_sample() -> None:
    moved = {}
    for clip in (0.2, None):
        policy = policy_of(update_every=1, clip=clip)
        ids = (SUGGEST, 60, 61)
        step = step_of(policy, PROMPTS[2], 1.0, ids)
        meta = dict(step.interaction.metadata[SAMPLE])  # type: ignore[arg-type]
        meta["logprobs"] = [
            x - 1.0 for x in meta["logprobs"]
        ]  # sampled by a policy that liked it e times less
        interaction = Interaction(
            step.interaction.scope, step.interaction.observation, None, metadata={SAMPLE: meta}
        )
        before = policy.model.adapter_weights()
        policy.learn(Step(interaction, (Feedback.reward(interaction.id, 1.0),)))
        after = policy.model.adapter_weights()
        moved[clip] = max(float(np.abs(after[k] - before[k]).max()) for k in before)
    assert moved[0.2] == 0.0  # ratio e > 1 + ε with A > 0: the clipped objective has no gradient
    assert moved[None] > 0.0


def test_samples_beyond_the_staleness_limit_are_dropped() -> None:
    policy = policy_of(update_every=1, max_staleness=1)
    old = step_of(policy, PROMPTS[0], 1.0, (SUGGEST, 40, 41))  # produced by version 0
    for prompt in PROMPTS[1:3]:
        policy.learn(step_of(policy, prompt, 1.0, (SUGGEST, 42, 43)))
    assert policy.version == 2
    weights = policy.model.adapter_weights()
    assert not policy.learn(old)  # two versions old > max_staleness 1
    assert all(np.array_equal(weights[k], v) for k, v in policy.model.adapter_weights().items())


def test_update_cadence_by_feedback_time() -> None:
    policy = policy_of(update_every=None, update_seconds=60.0)
    for t, prompt in enumerate(PROMPTS):
        step = step_of(policy, prompt, 1.0, (SUGGEST, 40))
        fb = Feedback.reward(step.interaction.id, 1.0, time=1000.0 + 25 * t)
        policy.learn(Step(step.interaction, (fb,)))
    assert policy.updates == 1  # t = 0, 25, 50 wait; 75 s after the first feedback the update runs
    with pytest.raises(InvalidInput):
        PolicyGradient(policy.model, update_every=None, update_seconds=None)


# ---------------------------------------------------------------------- gate and versions


def test_a_gated_out_version_is_never_served() -> None:
    policy = policy_of(update_every=2)
    policy.probe = Probe([(PROMPTS[0], "return a + b")], TEXTS, max_ppl_ratio=0.5)  # nothing can pass
    served = logits(policy.model)
    for prompt in PROMPTS[:4]:
        policy.learn(step_of(policy, prompt, 1.0, (SUGGEST, 40, 41)))
    assert policy.updates == 2 and policy.version == 0
    assert not any(u.promoted for u in policy.history)
    assert torch.equal(logits(policy.model), served)
    assert policy.model.adapter_version == 0
    assert policy.optimizer.state_dict()["state"] == {}  # the rejected step's Adam moments are gone too


def test_a_passing_probe_promotes_and_records_its_numbers() -> None:
    policy = policy_of(update_every=2)
    policy.probe = Probe([(PROMPTS[0], "return a + b")], TEXTS, tolerance=1.0, max_ppl_ratio=10.0)
    for prompt in PROMPTS[:2]:
        policy.learn(step_of(policy, prompt, 1.0, (SUGGEST, 40, 41)))
    update = policy.history[-1]
    assert update.promoted and policy.version == 1
    assert update.probe is not None and update.probe["ppl_ratio"] != 1.0  # measured on the candidate


def test_rollback_restores_the_previous_adapter_outputs_exactly(tmp_path: Path) -> None:
    policy = policy_of(update_every=1, adapter_dir=tmp_path)
    policy.learn(step_of(policy, PROMPTS[0], 1.0, (SUGGEST, 40, 41)))
    first = logits(policy.model)
    policy.learn(step_of(policy, PROMPTS[1], -1.0, (SUGGEST, 42, 43)))
    assert not torch.equal(logits(policy.model), first)
    assert policy.rollback(to=1) == 3  # a rollback is a new version holding the old adapter
    assert torch.equal(logits(policy.model), first)
    assert (tmp_path / "v0001" / "adapter_model.safetensors").exists()
    with pytest.raises(NotFound):
        policy.rollback(to=99)


def test_state_dict_round_trip_restores_the_adapter() -> None:
    policy = policy_of(update_every=1)
    policy.learn(step_of(policy, PROMPTS[0], 1.0, (SUGGEST, 40, 41)))
    state, trained = policy.state_dict(), logits(policy.model)
    fresh = policy_of(update_every=1)
    for prompt in PROMPTS[:3]:  # a different history: versions 1-3 of another run
        fresh.learn(step_of(fresh, prompt, -1.0, (SUGGEST, 44, 45)))
    fresh.load_state_dict(state)
    assert torch.equal(logits(fresh.model), trained) and fresh.version == 1
    assert sorted(fresh.adapters) == [0, 1] and fresh.model.adapter_version == 1
    fresh.learn(step_of(fresh, PROMPTS[1], 1.0, (SUGGEST, 46)))  # goes on from the restored version
    assert fresh.version == 2 and fresh.rollback() == 3
    assert torch.equal(logits(fresh.model), trained)


# ---------------------------------------------------------------------- guards


def drift(model: TrainableModel) -> float:
    """Mean KL(adapted ‖ base) of the next-token distribution over held-out text."""
    with torch.no_grad():
        x = torch.tensor([model.encode_prompt(TEXTS[0] + TEXTS[1])])
        adapted = torch.log_softmax(model.network(input_ids=x).logits[0], -1)
        with model.base():
            base = torch.log_softmax(model.network(input_ids=x).logits[0], -1)
    return float((adapted.exp() * (adapted - base)).sum(-1).mean())


def test_the_kl_guard_reduces_drift_from_the_base() -> None:
    drifts = {}
    for name, guards in (("none", []), ("kl", [KLPenalty(weight=20.0)])):
        policy = policy_of(update_every=4, lr=3e-2, guards=guards)
        for t in range(32):  # the same completions and rewards for both, scored on-policy
            policy.learn(step_of(policy, PROMPTS[t % 4], (-1.0) ** t, (SUGGEST, 40 + t % 7, 50 + t % 5)))
        drifts[name] = drift(policy.model)
    assert drifts["kl"] < 0.7 * drifts["none"]


def test_replay_and_ewc_guards_run_inside_an_update() -> None:
    replay, ewc = Replay(TEXTS, fraction=0.5), EWC(TEXTS, weight=10.0)
    policy = policy_of(update_every=2, guards=[replay, ewc])
    for t in range(4):
        policy.learn(step_of(policy, PROMPTS[t], 1.0, (SUGGEST, 40, 41)))
    assert policy.version == 2 and len(replay.memory) > 0
    assert len(ewc.fisher) == len(policy.model.adapter_parameters())
    assert float(ewc.update_penalty(policy.model, np.random.default_rng(0), 1)) > 0  # the adapter moved
    assert float(replay.update_penalty(policy.model, np.random.default_rng(0), 4)) != 0
    with pytest.raises(InvalidInput):
        Replay([], text_chunks=1)


# ---------------------------------------------------------------------- in an agent


def test_agent_with_a_policy_logs_samples_that_replay_into_the_same_update(tmp_path: Path) -> None:
    env = CodeCompletion.from_stdlib(["json"], rate=0.5, limit=8, context_lines=6)
    log = ExperienceLog(":memory:")
    policy = policy_of(update_every=4)
    agent = Agent(policy.model, CodeCompletionTask(context_lines=6), log, policy=policy, token_budget=4096)
    agent.task.max_tokens = 6  # type: ignore[misc]
    trace = run_agent(agent, env, seed=0)
    assert len(trace) == 8 and policy.updates == 2
    steps = list(log.replay())
    assert all(SAMPLE in s.interaction.metadata for s in steps)
    replayed = policy_of(update_every=4)
    assert not torch.allclose(logits(replayed.model), logits(policy.model), atol=1e-4)
    replayed.learn_many(steps)
    np.testing.assert_allclose(logits(replayed.model), logits(policy.model), atol=1e-5)
    replayed.learn_many(steps)  # the same feedback again: each interaction is learned from once
    assert replayed.updates == 2
    with pytest.raises(InvalidInput):
        Agent(TrainableModel.tiny(threads=1), CodeCompletionTask(), log, policy=policy)


# ---------------------------------------------------------------------- the real model


def test_a_missing_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"config\.json"):
        TrainableModel.gemma(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gemma_from_the_packaged_gguf_samples_scores_and_probes() -> None:
    """Gemma 3 270M converted from its PyPI package's GGUF (~80 s the first time, then cached)."""
    model = TrainableModel.gemma()
    prompt = "import json\n\n\ndef load(path):\n    with open(path) as f:\n        "
    greedy = model.complete(prompt, max_tokens=12, stop=("\n",), temperature=0.0)
    assert greedy.text.strip() == "data = json.load(f)"  # the converted weights know Python
    sampled = model.complete(prompt, max_tokens=12, stop=("\n",), temperature=0.7)
    with torch.no_grad():
        again = model.score(model.encode_prompt(prompt), sampled.token_ids, 0.7).logprobs
    np.testing.assert_allclose(again.numpy(), sampled.token_logprobs, atol=2e-3)
    probe = Probe([(prompt, "data = json.load(f)")], prose_texts("probe", limit=1))
    result = probe.evaluate(model, 0.7)
    assert result.ppl_ratio == pytest.approx(1.0, abs=1e-6)  # B = 0: the adapter changes nothing yet
    assert 0.0 < result.reward < 0.75  # the right line is likely, but not certain


def test_each_promoted_version_links_to_the_interactions_it_learned_from() -> None:
    policy = policy_of(update_every=2)
    steps = [step_of(policy, PROMPTS[t], 1.0, (SUGGEST, 40, 41)) for t in range(2)]
    policy.learn_many(steps)
    links = policy.provenance.drain()
    assert {(link.item, link.interaction_id) for link in links} == {
        ("adapter:v1", s.interaction.id) for s in steps
    }
    assert {link.user for link in links} == {"dev"}


def test_a_suggestion_the_gate_replaced_earns_the_policy_nothing() -> None:
    from lifelong.learners.context.gate import SuggestionGate

    policy = PolicyGradient(TrainableModel.tiny(threads=1, abstain_prior=1e-4), update_every=100)
    log = ExperienceLog(":memory:")
    # above the best expected reward (0.75): always silent
    gate = SuggestionGate(objective="reward", threshold=0.99)
    agent = Agent(policy.model, CodeCompletionTask(), log, policy=policy, gate=gate)
    agent.task.max_tokens = 3
    silenced = agent.act({"path": "a.py", "context": "x = 1", "indent": "", "query": "x = 1"})
    assert silenced.action is None
    assert SAMPLE not in log.get(silenced.id).interaction.metadata  # the policy's action was not served


def test_logged_samples_are_checked() -> None:
    policy = policy_of(update_every=1)
    step = step_of(policy, PROMPTS[0], 1.0, (SUGGEST, 40))
    meta = dict(step.interaction.metadata[SAMPLE])  # type: ignore[arg-type]
    greedy = Interaction(Scope(), "q", "x", metadata={SAMPLE: {**meta, "temperature": 0.0}})
    assert not policy.learn(Step(greedy, (Feedback.reward(greedy.id, 1.0),))) and policy.updates == 0
    broken = Interaction(Scope(), "q", "x", metadata={SAMPLE: {**meta, "logprobs": [0.0]}})
    with pytest.raises(InvalidInput, match="log-probabilities"):
        policy.learn(Step(broken, (Feedback.reward(broken.id, 1.0),)))


def test_the_probe_checks_each_kind_of_text_on_its_own() -> None:
    policy = policy_of(update_every=1, head_lr=0.1)
    probe = Probe([(PROMPTS[0], "return a + b")], {"prose": TEXTS[:1], "code": TEXTS[1:]}, max_ppl_ratio=10.0)
    policy.probe = probe
    policy.learn(step_of(policy, PROMPTS[0], 1.0, (SUGGEST, 40, 41)))
    result = policy.history[-1].probe
    assert result is not None and set(result["ppl_ratios"]) == {"prose", "code"}
    assert result["ppl_ratio"] == max(result["ppl_ratios"].values())
    groups = policy.optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-2, 0.1]  # LoRA matrices, abstain head
