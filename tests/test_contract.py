"""The learner contract (:mod:`lifelong.testing`) run against every learner in the package, check by check.

Every concrete :class:`~lifelong.learners.Learner` subclass defined in ``lifelong`` has an entry in
:data:`ENTRIES` — how to make it cheaply and the stream it learns from — and
:func:`test_every_learner_in_the_package_has_an_entry` fails when a new one has none, so no learner skips
the contract. Flags in an entry say what its class documents (e.g. reads that count acts).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import lifelong
import lifelong.testing
from lifelong.agents.harness import HarnessSearch
from lifelong.errors import InvalidInput
from lifelong.learners import (
    ELLA,
    CoVisitation,
    EmbeddingSoftmax,
    EpsilonGreedy,
    ExampleBank,
    ExpertMixture,
    Hedge,
    ImplicitFactorization,
    Learner,
    Lessons,
    LinUCB,
    Memory,
    OnlineSoftmax,
    PerTenant,
    Popularity,
    Prototypes,
    RankFusion,
    StreamingFactorization,
)
from lifelong.learners.context.gate import SuggestionGate
from lifelong.learners.skills.effects import EffectLessons
from lifelong.learners.skills.library import SkillLibrary
from lifelong.models import HashingEmbedder
from lifelong.testing import (
    CHECKS,
    Steps,
    bandit_stream,
    check_learner,
    correction_stream,
    episode_stream,
    expert_stream,
    gate_stream,
    rating_stream,
    sample_stream,
    task_stream,
    text_stream,
)

EMBED = HashingEmbedder()


@dataclass(frozen=True)
class Entry:
    """One learner under the contract: its class, a factory, its stream and what its class documents."""

    id: str
    cls: type[Learner]
    factory: Callable[[], Learner]
    steps: Steps = text_stream
    options: dict[str, Any] = field(default_factory=dict)
    marks: tuple[Any, ...] = ()


def river_learner() -> Learner:
    from river import feature_extraction, naive_bayes

    from lifelong.interop.river import RiverLearner

    return RiverLearner(feature_extraction.BagOfWords() | naive_bayes.MultinomialNB(), allow_pickle=True)


def policy_gradient() -> Learner:
    """A tiny randomly initialised Gemma 3 (2 layers, byte tokenizer), updated every 2 samples."""
    from lifelong.learners.weights.policy_gradient import PolicyGradient
    from lifelong.models.trainable import TrainableModel

    return PolicyGradient(TrainableModel.tiny(seed=0, threads=1), update_every=2, lr=1e-2, temperature=1.0)


def consolidation() -> Learner:
    """The same tiny model; consolidated inline (no idle time), gated every 2 pairs, fast weights per
    user, and the policy-gradient term on."""
    from lifelong.learners.weights.consolidation import Consolidation
    from lifelong.models.trainable import TrainableModel

    return Consolidation(
        TrainableModel.tiny(seed=0, threads=1),
        sleep_time=False,
        update_every=2,
        batch=2,
        lr=1e-2,
        temperature=1.0,
        policy_weight=0.5,
        user_rank=2,
        user_update_every=2,
    )


def _consolidation_class() -> type[Learner]:
    from lifelong.learners.weights.consolidation import Consolidation

    return Consolidation


def _river_class() -> type[Learner]:
    from lifelong.interop.river import RiverLearner

    return RiverLearner


def _policy_class() -> type[Learner]:
    from lifelong.learners.weights.policy_gradient import PolicyGradient

    return PolicyGradient


NEEDS_TORCH = (
    pytest.mark.slow,  # builds a (tiny) transformers model per learner and takes gradient steps
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None or importlib.util.find_spec("peft") is None,
        reason="PolicyGradient needs torch and peft",
    ),
)

ENTRIES: list[Entry] = [
    # token space: context learners and the suggestion gate
    Entry("ExampleBank", ExampleBank, lambda: ExampleBank(EMBED)),
    Entry("Lessons", Lessons, lambda: Lessons(EMBED)),
    Entry("Memory", Memory, lambda: Memory(EMBED)),
    Entry("SuggestionGate", SuggestionGate, lambda: SuggestionGate(min_right=3, warmup=4), gate_stream),
    # experts and combiners
    Entry("OnlineSoftmax", OnlineSoftmax, lambda: OnlineSoftmax(n_features=2**12)),
    Entry("Prototypes", Prototypes, lambda: Prototypes(EMBED)),
    Entry("EmbeddingSoftmax", EmbeddingSoftmax, lambda: EmbeddingSoftmax(EMBED, replay=2, memory=8)),
    Entry("ExpertMixture", ExpertMixture, ExpertMixture, expert_stream),
    Entry("Hedge", Hedge, Hedge, expert_stream),
    # recommenders and exploration
    Entry(
        "StreamingFactorization", StreamingFactorization, lambda: StreamingFactorization(dim=4), rating_stream
    ),
    Entry(
        "ImplicitFactorization",
        ImplicitFactorization,
        lambda: ImplicitFactorization(dim=4, negatives=3),
        rating_stream,
    ),
    Entry("CoVisitation", CoVisitation, CoVisitation, rating_stream),
    Entry("Popularity", Popularity, Popularity, rating_stream),
    Entry(
        "RankFusion",
        RankFusion,
        lambda: RankFusion({"mf": ImplicitFactorization(dim=4, negatives=3), "cov": CoVisitation()}),
        rating_stream,
    ),
    # documented: predict() is an act; it counts acts to seed the next exploration draw
    Entry(
        "EpsilonGreedy",
        EpsilonGreedy,
        lambda: EpsilonGreedy(0.2, model=StreamingFactorization(dim=4)),
        bandit_stream,
        {"pure_reads": False},
    ),
    Entry(
        "LinUCB",
        LinUCB,
        lambda: LinUCB(0.5, model=StreamingFactorization(dim=4)),
        bandit_stream,
        {"pure_reads": False},
    ),
    # multi-task
    Entry("ELLA", ELLA, lambda: ELLA(k=2), task_stream),
    # wrappers and interop
    Entry("PerTenant-OnlineSoftmax", PerTenant, lambda: PerTenant(lambda: OnlineSoftmax(n_features=2**12))),
    Entry(
        "PerTenant-StreamingFactorization",
        PerTenant,
        lambda: PerTenant(lambda: StreamingFactorization(dim=4)),
        rating_stream,
    ),
    Entry("RiverLearner", _river_class(), river_learner),
    # skills: the library of verified programs and the effect lessons of the episodic agent
    Entry("SkillLibrary", SkillLibrary, lambda: SkillLibrary(EMBED), episode_stream),
    Entry("EffectLessons", EffectLessons, EffectLessons, episode_stream),
    # the agent's harness: documented that forget_user keeps the counts (only the requests go)
    Entry(
        "HarnessSearch",
        HarnessSearch,
        lambda: HarnessSearch(every=4, replay=3),
        options={"forget_state": False},
    ),
    # weight space. Documented: optimizer moments and pending samples are not state, so a restored
    # policy does not learn on exactly as the original.
    Entry(
        "PolicyGradient",
        _policy_class(),
        policy_gradient,
        sample_stream,
        {"resumes": False, "n": 12},
        NEEDS_TORCH,
    ),
    # Sleep-time consolidation, inline here so that learn() itself changes the state; optimizer moments
    # and queued pairs are not state (resumes=False).
    Entry(
        "Consolidation",
        _consolidation_class(),
        consolidation,
        correction_stream,
        {"resumes": False, "n": 12},
        NEEDS_TORCH,
    ),
]


def _cases() -> Iterator[Any]:
    for entry in ENTRIES:
        for check in CHECKS:
            yield pytest.param(entry, check, id=f"{entry.id}-{check}", marks=entry.marks)


@pytest.mark.parametrize(("entry", "check"), list(_cases()))
def test_contract(entry: Entry, check: str) -> None:
    check_learner(entry.factory, entry.steps, checks=[check], **entry.options)


@pytest.mark.parametrize("entry", [pytest.param(e, id=e.id, marks=e.marks) for e in ENTRIES])
def test_each_entry_makes_its_class(entry: Entry) -> None:
    assert type(entry.factory()) is entry.cls


def concrete_learners() -> set[type[Learner]]:
    """Every concrete Learner subclass defined (as a module attribute) in a lifelong module."""
    for module in pkgutil.walk_packages(lifelong.__path__, "lifelong."):
        importlib.import_module(module.name)

    def below(cls: type[Learner]) -> Iterator[type[Learner]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return {
        cls
        for cls in below(Learner)
        if cls.__module__.startswith("lifelong.")
        and getattr(sys.modules[cls.__module__], cls.__qualname__, None) is cls  # not made in a doctest
        and not inspect.isabstract(cls)
    }


def test_every_learner_in_the_package_has_an_entry() -> None:
    missing = sorted(cls.__qualname__ for cls in concrete_learners() - {entry.cls for entry in ENTRIES})
    assert not missing, f"learners without a contract entry in tests/test_contract.py: {missing}"


def test_the_checker_rejects_what_breaks_the_contract() -> None:
    class Forgetful(OnlineSoftmax):
        """Claims to have learned, and keeps nothing."""

        def _learn(self, step: Any) -> bool:
            return step.correction is not None

    broken = (
        r"Forgetful fails version_counts_changes: step \d+: learn\(\) returned True but the state did not"
    )
    with pytest.raises(AssertionError, match=broken):
        check_learner(Forgetful, checks=["version_counts_changes"])
    with pytest.raises(InvalidInput, match="unknown check"):
        check_learner(OnlineSoftmax, checks=["no_such_check"])


def test_the_module_examples_run() -> None:
    failures, tried = doctest.testmod(lifelong.testing, optionflags=doctest.ELLIPSIS)
    assert tried and not failures
