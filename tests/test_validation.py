"""Parameter validation (check_scalar and friends) and config() read from the constructor signature."""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

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
    SuggestionGate,
)
from lifelong.learners.skills.effects import EffectLessons
from lifelong.learners.skills.library import SkillLibrary
from lifelong.models import HashingEmbedder
from lifelong.utils.params import get_params, parameter_names
from lifelong.utils.validation import check_choice, check_power_of_two, check_scalar, check_seeds


def reason(make: Callable[[], object], field: str) -> str:
    with pytest.raises(InvalidInput) as info:
        make()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    return info.value.reason


# -- check_scalar ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"min_val": 1}, "must be >= 1, got 0"),
        (0.0, {"min_val": 0, "include_boundaries": "neither"}, "must be > 0, got 0.0"),
        (-1, {"min_val": 0, "include_boundaries": "neither"}, "must be > 0, got -1"),
        (2, {"max_val": 1}, "must be <= 1, got 2"),
        (1, {"max_val": 1, "include_boundaries": "neither"}, "must be < 1, got 1"),
        (1.0, {"min_val": 0, "max_val": 1, "include_boundaries": "left"}, "must be in [0, 1), got 1.0"),
        (0.0, {"min_val": 0, "max_val": 1, "include_boundaries": "right"}, "must be in (0, 1], got 0.0"),
        (1.5, {"min_val": 0, "max_val": 1}, "must be in [0, 1], got 1.5"),
        (math.nan, {"min_val": 0}, "must be >= 0, got nan"),
        (math.inf, {"min_val": 0, "max_val": math.inf, "include_boundaries": "left"}, "must be in [0, inf)"),
        (1.0, {"min_val": 0, "max_val": 1, "include_boundaries": "neither", "allow_none": True}, "or None"),
    ],
)
def test_check_scalar_bounds_name_the_parameter(value: float, kwargs: dict[str, Any], message: str) -> None:
    assert message in reason(lambda: check_scalar(value, "lr", float, **kwargs), "lr")


def test_check_scalar_accepts_values_within_bounds_and_returns_them_as_given() -> None:
    assert check_scalar(0, "a", int, min_val=0) == 0
    assert check_scalar(1.0, "a", float, min_val=0, max_val=1) == 1.0
    assert check_scalar(0.5, "a", float, min_val=0, max_val=1, include_boundaries="neither") == 0.5
    assert check_scalar(math.inf, "ttl", float, min_val=0, include_boundaries="neither") == math.inf
    three = check_scalar(3, "lr", float, min_val=0)  # an int where a float is asked: kept an int
    assert three == 3 and type(three) is int
    assert check_scalar(np.int64(4), "k", int, min_val=1) == 4
    assert check_scalar(np.float32(0.5), "lr", float) == 0.5
    assert check_scalar(None, "budget", int, min_val=1, allow_none=True) is None
    assert check_scalar("x", "name", str) == "x"


def test_check_scalar_types_bools_and_none() -> None:
    assert reason(lambda: check_scalar("3", "k", int), "k") == "must be an int, got str"
    assert reason(lambda: check_scalar(2.0, "k", int, min_val=1), "k") == "must be an int, got float"
    assert reason(lambda: check_scalar(True, "k", int), "k") == "must be an int, got bool"
    assert reason(lambda: check_scalar(False, "lr", float), "lr") == "must be a number, got bool"
    assert (
        reason(lambda: check_scalar(None, "lr", float, min_val=0), "lr") == "must be a number, got NoneType"
    )
    assert (
        reason(lambda: check_scalar("a", "k", int, allow_none=True), "k") == "must be an int or None, got str"
    )
    assert reason(lambda: check_scalar(1, "name", str), "name") == "must be a str, got int"
    assert check_scalar(True, "flag", bool) is True


def test_check_scalar_refuses_a_boundary_that_is_not_given() -> None:
    with pytest.raises(ValueError, match="not given"):
        check_scalar(1, "k", int, min_val=0, include_boundaries="right")
    with pytest.raises(ValueError, match="not given"):
        check_scalar(1, "k", int, max_val=2, include_boundaries="left")


def test_the_siblings() -> None:
    assert check_choice("keep", "objective", ("keep", "reward")) == "keep"
    assert reason(lambda: check_choice("x", "objective", ("keep", "reward")), "objective") == (
        "must be one of 'keep', 'reward', got 'x'"
    )
    assert reason(lambda: check_choice(["keep"], "objective", ("keep",)), "objective").startswith("must be")
    assert check_power_of_two(64, "n_features", min_val=16) == 64
    for bad in (8, 48, 0):
        assert "power of two >= 16" in reason(
            lambda b=bad: check_power_of_two(b, "n_features", min_val=16), "n_features"
        )
    assert check_seeds(range(3)) == [0, 1, 2] and check_seeds(np.arange(2)) == [0, 1]
    for bad_seeds in (3, [], [0, 0], [0, 1.5], [True], "01", {0, 1}):
        reason(lambda s=bad_seeds: check_seeds(s, field="orders"), "orders")


def test_eval_loop_keeps_its_names() -> None:
    from lifelong.eval.loop import check_int
    from lifelong.eval.loop import check_seeds as loop_check_seeds

    assert loop_check_seeds is check_seeds
    assert check_int(np.int64(3), "window", 1) == 3 and type(check_int(np.int64(3), "window", 1)) is int
    assert reason(lambda: check_int(0, "window", 1), "window") == "must be >= 1, got 0"
    assert reason(lambda: check_int(True, "window", 1), "window") == "must be an int, got bool"


def test_factorization_blames_the_field_that_is_wrong() -> None:
    assert reason(lambda: StreamingFactorization(reg=-0.1), "reg") == "must be >= 0, got -0.1"
    assert reason(lambda: StreamingFactorization(init_scale=-1), "init_scale") == "must be >= 0, got -1"
    assert reason(lambda: StreamingFactorization(learning_rate=0), "learning_rate") == "must be > 0, got 0"
    reason(lambda: ImplicitFactorization(reg=-1.0), "reg")
    reason(lambda: ImplicitFactorization(window=-1), "window")
    reason(lambda: ImplicitFactorization(negatives=0), "negatives")
    reason(lambda: CoVisitation(context=0), "context")
    reason(lambda: CoVisitation(alpha=2.0), "alpha")
    reason(lambda: SuggestionGate(min_right=0), "min_right")
    reason(lambda: EmbeddingSoftmax(HashingEmbedder(64), memory=0), "memory")


# -- get_params ---------------------------------------------------------------------------------------


class Named:
    name = "thing"


class Base:
    def __init__(self, k: int = 4, *, half_life: float = 1.0, extra: Any = None) -> None:
        self.k, self.half_life, self.extra = k, half_life, extra


class Child(Base):
    def __init__(self, lr: float = 0.1, *, key: Callable[[str], int] = len, k: int = 2, **rest: Any) -> None:
        super().__init__(k=k, **rest)
        self.lr, self.key = lr, key


class Grandchild(Child):
    def __init__(self, shape: tuple[int, ...] = (2, 3), **rest: Any) -> None:
        super().__init__(**rest)
        self.shape = shape
        self.hidden = "not a parameter"


class Closed(Base):
    def __init__(self, lr: float = 0.1) -> None:  # no **kwargs: Base's parameters are not passed up
        super().__init__()
        self.lr = lr


def test_get_params_walks_the_mro_through_kwargs_passthrough() -> None:
    assert parameter_names(Grandchild) == ("shape", "lr", "key", "k", "half_life", "extra")
    assert parameter_names(Closed) == ("lr",)
    made = Grandchild(lr=0.5, half_life=math.inf, extra={"a": [1, Named()]})
    assert get_params(made) == {
        "shape": [2, 3],
        "lr": 0.5,
        "k": 2,
        "half_life": math.inf,
        "extra": {"a": [1, "thing"]},  # key (a callable) is left out
    }
    assert get_params(Closed()) == {"lr": 0.1}


def test_get_params_nests_objects_with_a_config_and_names_named_ones() -> None:
    assert get_params(Base(extra=HashingEmbedder(64))) == {"k": 4, "half_life": 1.0, "extra": "hashing-64"}
    assert get_params(Base(extra=Popularity(half_life=10.0)))["extra"] == {
        "name": "Popularity",
        "half_life": 10.0,
        "threshold": 4.0,
    }
    assert get_params(Base(extra=np.zeros(2))) == {"k": 4, "half_life": 1.0}  # arrays are not settings
    assert get_params(Base(k=np.int64(3)))["k"] == 3
    bandit = EpsilonGreedy(epsilon=0.2)
    assert bandit.config()["model"]["name"] == "StreamingFactorization"
    assert repr(bandit).startswith("EpsilonGreedy(epsilon=0.2, model={")


# -- every learner's config() is its constructor parameters ------------------------------------------


def _river() -> Learner:
    from river import linear_model

    from lifelong.interop.river import RiverLearner

    return RiverLearner(linear_model.LogisticRegression())


EMBEDDER = HashingEmbedder(64)

#: How to make each shipped learner cheaply (PolicyGradient needs a torch model: tested apart below).
FACTORIES: dict[str, Callable[[], Learner]] = {
    "CoVisitation": lambda: CoVisitation(window=3, ttl=60.0),
    "ELLA": lambda: ELLA(k=3, loss="squared"),
    "EmbeddingSoftmax": lambda: EmbeddingSoftmax(EMBEDDER, lr=0.2),
    "EpsilonGreedy": lambda: EpsilonGreedy(epsilon=0.3),
    "ExampleBank": lambda: ExampleBank(EMBEDDER, k=5),
    "ExpertMixture": lambda: ExpertMixture(per_expert=2),
    "HarnessSearch": lambda: HarnessSearch(every=20),
    "Hedge": Hedge,
    "ImplicitFactorization": lambda: ImplicitFactorization(dim=4),
    "Lessons": lambda: Lessons(EMBEDDER, drop_after=3, w_recency=0.1),
    "LinUCB": lambda: LinUCB(alpha=0.5),
    "Memory": lambda: Memory(EMBEDDER, budget=10, half_life=60.0),
    "OnlineSoftmax": lambda: OnlineSoftmax(n_features=1024),
    "PerTenant": lambda: PerTenant(Popularity),
    "Popularity": lambda: Popularity(half_life=3600.0),
    "Prototypes": lambda: Prototypes(EMBEDDER),
    "RankFusion": lambda: RankFusion(
        {"mf": ImplicitFactorization(dim=4), "pop": Popularity()}, weights={"mf": 2}
    ),
    "RiverLearner": _river,
    "StreamingFactorization": lambda: StreamingFactorization(dim=4),
    "SuggestionGate": lambda: SuggestionGate(objective="reward"),
    "SkillLibrary": lambda: SkillLibrary(EMBEDDER, k=3, gate_fails=3),
    "EffectLessons": EffectLessons,
}

#: Parameters that hold a callable or an object with neither a name nor a config(): left out.
LEFT_OUT = {
    "HarnessSearch": {"default", "candidates", "objective"},
    "Memory": {"extract"},
    "RiverLearner": {"features"},
}

#: Learners that override config() on purpose (see the comment in each): PerTenant takes a factory.
OVERRIDES = {"PerTenant"}

#: Learner classes that are never constructed themselves.
ABSTRACT = {"ContextLearner", "Predictor", "ScoringExpert", "_ItemPolicy"}


def test_every_shipped_learner_has_a_factory_here() -> None:
    for module in (
        "learners",
        "agents.harness",
        "interop.river",
        "learners.weights.policy_gradient",
        "learners.weights.consolidation",
    ):
        importlib.import_module(f"lifelong.{module}")
    shipped = {  # classes of the package, not the ones its doctests define
        n
        for n, c in Learner.registry.items()
        if c.__module__.startswith("lifelong.")
        and getattr(sys.modules[c.__module__], c.__qualname__, None) is c
    }
    missing = shipped - set(FACTORIES) - ABSTRACT - {"PolicyGradient", "Consolidation"}
    assert not missing, f"add a factory for {sorted(missing)} to FACTORIES"


@pytest.mark.parametrize("name", sorted(set(FACTORIES) - OVERRIDES))
def test_config_keys_are_the_json_valued_constructor_parameters(name: str) -> None:
    learner = FACTORIES[name]()
    config = learner.config()
    assert set(config) == set(parameter_names(type(learner))) - LEFT_OUT.get(name, set())
    for key, value in config.items():  # read back from the attribute of the same name
        attribute = getattr(learner, key)
        if attribute is None or isinstance(attribute, bool | int | float | str):
            assert value == attribute, key
    assert repr(learner) == f"{name}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


def test_factory_arguments_show_in_config() -> None:
    memory = FACTORIES["Memory"]().config()
    assert memory["budget"] == 10 and memory["half_life"] == 60.0 and memory["embedder"] == "hashing-64"
    assert FACTORIES["Lessons"]().config()["w_recency"] == 0.1  # passed up through **recall
    assert FACTORIES["CoVisitation"]().config()["ttl"] == 60.0
    assert FACTORIES["OnlineSoftmax"]().config()["n_features"] == 1024
    fusion = FACTORIES["RankFusion"]().config()
    assert fusion["weights"] == {"mf": 2.0, "pop": 1.0} and fusion["members"]["mf"]["dim"] == 4
    assert FACTORIES["ELLA"]().config()["loss"] == "squared"


def test_per_tenant_reports_the_learner_it_makes() -> None:
    config = FACTORIES["PerTenant"]().config()
    assert config == {"learner": "Popularity(half_life=inf, threshold=4.0)", "tenants": 0}


def test_guards_report_their_settings_not_their_texts() -> None:
    from lifelong.learners.weights.guards import EWC, KLPenalty, Replay

    assert KLPenalty(0.3).config() == {"weight": 0.3}
    assert Replay(["some text"], fraction=0.5).config() == {
        "fraction": 0.5,
        "capacity": 256,
        "text_chunks": 1,
        "text_weight": 0.5,
        "max_tokens": 128,
    }
    assert EWC(["a", "b"], weight=5.0, chunks=1).config() == {"weight": 5.0, "chunks": 1}
    reason(lambda: KLPenalty(-1.0), "weight")
    reason(lambda: Replay(["t"], fraction=1.5), "fraction")


@pytest.mark.slow
def test_policy_gradient_config_is_its_parameters_and_whether_it_is_gated() -> None:
    pytest.importorskip("peft")
    from lifelong.learners.weights.guards import KLPenalty
    from lifelong.learners.weights.policy_gradient import PolicyGradient
    from lifelong.models.trainable import TrainableModel

    policy = PolicyGradient(TrainableModel.tiny(), update_every=4, guards=[KLPenalty(0.2)], lr=2e-3)
    config = policy.config()
    assert set(config) == set(parameter_names(PolicyGradient)) | {"gated"}
    assert config["gated"] is False and config["probe"] is None and config["lr"] == 2e-3
    assert config["head_lr"] == 2e-3 and config["guards"] == [{"name": "kl", "weight": 0.2}]
    assert config["model"]["name"] == "tiny-gemma3"
    reason(lambda: PolicyGradient(policy.model, clip=1.0), "clip")
    reason(lambda: PolicyGradient(policy.model, update_every=0), "update_every")
