"""Tenants as an attacker sees them: another tenant's ids, same user names in two tenants, shared learners.

Every learner either keys its state by tenant or refuses a second tenant; every read is confined to the
request's tenant; forgetting a user of one tenant never touches the same name in another.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lifelong.experience import ExperienceLog, Feedback, Interaction, Scope, Step
from lifelong.learners import (
    ELLA,
    CoVisitation,
    EpsilonGreedy,
    ExampleBank,
    ImplicitFactorization,
    Learner,
    Lessons,
    LinUCB,
    Memory,
    OnlineSoftmax,
    PerTenant,
    Popularity,
    StreamingFactorization,
    TenantMismatch,
)
from lifelong.learners.context.gate import SuggestionGate
from lifelong.learners.experts.mixture import ExpertMixture, Hedge
from lifelong.learners.experts.scoring import EmbeddingSoftmax, Prototypes
from lifelong.models import HashingEmbedder
from lifelong.state import digest

EMBED = HashingEmbedder()
A, B = Scope("acme", user="alice"), Scope("globex", user="alice")


def corrected(scope: Scope, text: str, label: str, t: float = 1.0) -> Step:
    i = Interaction(scope, text, None, time=t)
    return Step(i, (Feedback.correction(i.id, label, time=t + 0.5),))


def remember(scope: Scope, text: str, t: float = 1.0) -> Step:
    i = Interaction(scope, text, None, time=t)
    return Step(i, (Feedback.outcome(i.id, {"remember": text}, time=t + 0.5),))


def clicked(scope: Scope, item: str, t: float) -> Step:
    user = scope.user or "anon"
    i = Interaction(scope, {"user": user, "item": item}, None, time=t)
    return Step(i, (Feedback.reward(i.id, 1.0, time=t + 0.5),))


SINGLE: dict[str, Callable[[], Learner]] = {
    "OnlineSoftmax": OnlineSoftmax,
    "StreamingFactorization": lambda: StreamingFactorization(dim=4),
    "ImplicitFactorization": lambda: ImplicitFactorization(dim=4),
    "CoVisitation": CoVisitation,
    "Popularity": Popularity,
    "EpsilonGreedy": EpsilonGreedy,
    "LinUCB": LinUCB,
    "ELLA": lambda: ELLA(k=1),
    "SuggestionGate": SuggestionGate,
    "ExpertMixture": ExpertMixture,
    "Hedge": Hedge,
}


def first_step(name: str, scope: Scope) -> Step:
    if name in ("OnlineSoftmax", "SuggestionGate", "ExpertMixture", "Hedge"):
        return corrected(scope, "my card was stolen", "acme_secret_label")
    if name in ("EpsilonGreedy", "LinUCB"):
        i = Interaction(scope, {"user": "alice", "items": 3}, 1, time=1.0)
        return Step(i, (Feedback.reward(i.id, 1.0, time=1.5),))
    if name == "ELLA":
        i = Interaction(scope, {"task": 0, "X": [[1.0, 0.0], [0.0, 1.0]]}, None, time=1.0)
        return Step(i, (Feedback.correction(i.id, [1.0, 0.0], time=1.5),))
    return clicked(scope, "acme_secret_item", 1.0)


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_tenant_learners_refuse_a_second_tenant(name: str) -> None:
    learner = SINGLE[name]()
    assert learner.tenancy == "single"
    learner.learn(first_step(name, A))
    assert learner.tenant == "acme"
    with pytest.raises(TenantMismatch, match="globex"):
        learner.learn(first_step(name, B))
    with pytest.raises(TenantMismatch):
        learner.check_scope(B)
    # The binding survives a snapshot: a restored learner refuses the other tenant too.
    copy = SINGLE[name]()
    copy.load_state_dict(learner.state_dict())
    with pytest.raises(TenantMismatch):
        copy.learn(first_step(name, B))


def test_online_softmax_does_not_answer_another_tenant_with_its_secret_label() -> None:
    model = OnlineSoftmax()
    model.learn(corrected(A, "my card was stolen", "acme_secret_label"))
    assert model.predict("my card was stolen", A) == "acme_secret_label"
    for read in (model.predict, model.scores, model.propose):
        with pytest.raises(TenantMismatch):
            read("my card was stolen", B)


def test_recommenders_do_not_rank_another_tenants_items() -> None:
    for make in (lambda: StreamingFactorization(dim=4), lambda: ImplicitFactorization(dim=4), Popularity):
        model = make()
        for t in range(5):
            model.learn(clicked(A, "acme_secret_item", float(t)))
        with pytest.raises(TenantMismatch):
            model.rank("alice", 5, scope=B)
        assert "acme_secret_item" in model.rank("alice", 5, scope=A)


@pytest.mark.parametrize("name", ["OnlineSoftmax", "StreamingFactorization", "Popularity"])
def test_per_tenant_wrapper_keeps_tenants_apart(name: str) -> None:
    model = PerTenant(SINGLE[name])
    model.learn(first_step(name, A))
    model.learn(first_step(name, Scope("globex", user="bob")))
    assert sorted(model.tenants) == ["acme", "globex"]
    assert model.tenants["acme"].tenant == "acme" and model.tenants["globex"].tenant == "globex"
    copy = PerTenant(SINGLE[name])
    copy.load_state_dict(model.state_dict())
    assert digest(copy.state_dict()) == digest(model.state_dict())
    assert copy.tenants["globex"].tenant == "globex"


def test_per_tenant_softmax_answers_a_new_tenant_cold() -> None:
    model = PerTenant(OnlineSoftmax)
    model.learn(corrected(A, "my card was stolen", "acme_secret_label"))
    assert model.predict("my card was stolen", A) == "acme_secret_label"
    assert model.predict("my card was stolen", B) is None
    assert model.propose("my card was stolen", B) == []
    assert "globex" not in model.tenants  # a read creates nothing
    with pytest.raises(Exception, match="scope"):
        model.predict("my card was stolen")


@pytest.mark.parametrize(
    "make",
    [
        lambda: ExampleBank(EMBED),
        lambda: ExampleBank(EMBED, per_user=True),
        lambda: Memory(EMBED),
        lambda: Lessons(EMBED),
        lambda: Prototypes(EMBED),
        lambda: EmbeddingSoftmax(EMBED),
    ],
    ids=["examples-shared", "examples-per-user", "memory", "lessons", "prototypes", "embedding-softmax"],
)
def test_per_tenant_learners_never_recall_another_tenant(make: Callable[[], Learner]) -> None:
    learner = make()
    assert learner.tenancy == "per_tenant"
    for t in range(3):
        step = corrected(A, "remember: my card was stolen", "acme_secret_label", float(t))
        if isinstance(learner, Memory):
            step = remember(A, "my card was stolen on monday", float(t))
        if isinstance(learner, Lessons):
            i = Interaction(A, "my card was stolen", "wrong_label", time=float(t))
            step = Step(i, (Feedback.correction(i.id, "acme_secret_label", time=t + 0.5),))
        learner.learn(step)
    if hasattr(learner, "recall"):
        assert learner.recall("my card was stolen", A)
        assert learner.recall("my card was stolen", B) == []
        assert learner.recall("my card was stolen", Scope("globex")) == []
    else:
        assert learner.scores("my card was stolen", A)
        assert learner.scores("my card was stolen", B) == {}


def test_forgetting_alice_in_one_tenant_keeps_alice_in_another() -> None:
    bank, memory, lessons = ExampleBank(EMBED, per_user=True), Memory(EMBED), Lessons(EMBED)
    for scope in (A, B):
        bank.learn(corrected(scope, f"remember: I live in {scope.tenant} town", "ok"))
        memory.learn(remember(scope, f"I live in {scope.tenant} town"))
        i = Interaction(scope, f"where does {scope.tenant} ship", "nowhere", time=2.0)
        lessons.learn(Step(i, (Feedback.correction(i.id, f"{scope.tenant} ships", time=2.5),)))
    for learner in (bank, memory, lessons):
        assert learner.forget_user("alice", "acme")
        assert learner.active_items(A) == []
        assert learner.active_items(B), type(learner).__name__


def test_forgetting_in_a_single_tenant_learner_of_another_tenant_changes_nothing() -> None:
    model = StreamingFactorization(dim=4)
    for t in range(3):
        model.learn(clicked(A, "i1", float(t)))
    before = model.state_dict()
    assert not model.forget_user("alice", "globex")
    assert model.state_dict()["state"]["users"]["rows"] == before["state"]["users"]["rows"]
    assert model.forget_user("alice", "acme")


def test_agent_log_forget_of_one_tenant_leaves_the_other(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lifelong.state.erasure import forget

    log = ExperienceLog(tmp_path / "log.db")
    bank = ExampleBank(EMBED, per_user=True)
    for scope in (A, B):
        step = corrected(scope, f"the secret of {scope.tenant} is kept here", f"{scope.tenant}_label")
        log.append_many([step.interaction, *step.feedback])
        bank.learn(step)
    report = forget(A, log=log, learners={"examples": bank})
    assert report.interactions_deleted == 1 and report.clean, report.to_dict()
    assert log.stats(B).interactions == 1 and bank.active_items(B)
