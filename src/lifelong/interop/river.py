"""Use a `river <https://riverml.xyz>`_ estimator as a ``lifelong`` learner.

river's ``learn_one(x, y)`` / ``predict_one(x)`` map onto :meth:`Learner.learn` / ``predict``; the label
``y`` comes from the step's feedback:

- ``target="label"`` (classifiers): the correction, else the action if it was accepted;
- ``target="rating"`` / ``"reward"`` (regressors): the rating or reward value.

>>> from river import feature_extraction, naive_bayes
>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> nb = RiverLearner(feature_extraction.BagOfWords() | naive_bayes.MultinomialNB())
>>> i = Interaction(Scope(), "my card was stolen")
>>> nb.learn(Step(i, (Feedback.correction(i.id, "card_lost"),)))
True
>>> nb.predict("stolen card")
'card_lost'

The state is the pickled estimator (river's own persistence format, and the only one it has).
Unpickling runs code, so a river learner refuses to load a state unless it was made with
``allow_pickle=True`` — an explicit opt-in for that learner — and the version store has already checked
the snapshot against the digest recorded at commit. Opt in only for stores that no one else can write.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any, Literal

from lifelong.errors import InvalidInput
from lifelong.experience.records import JSON, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.utils.validation import check_choice

try:
    import river  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('RiverLearner needs river: pip install "lifelong[interop]"') from exc

Target = Literal["label", "rating", "reward"]


def default_features(observation: JSON) -> Any:
    """Text and dicts go to river as they are; a list of numbers becomes ``{index: value}``."""
    if isinstance(observation, str | dict):
        return observation
    if isinstance(observation, list):
        return dict(enumerate(observation))
    if isinstance(observation, int | float) and not isinstance(observation, bool):
        return {0: observation}
    raise InvalidInput(
        f"cannot turn a {type(observation).__name__} into river features; pass features=",
        field="observation",
    )


class RiverLearner(Predictor):
    """A river estimator (classifier or regressor, or a pipeline ending in one) behind the contract."""

    def __init__(
        self,
        estimator: Any,
        *,
        target: Target = "label",
        features: Callable[[JSON], Any] = default_features,
        name: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        check_choice(target, "target", ("label", "rating", "reward"))
        if not hasattr(estimator, "learn_one") or not hasattr(estimator, "predict_one"):
            raise InvalidInput("needs a river estimator with learn_one/predict_one", field="estimator")
        self.name = name or f"river.{type(estimator).__name__}"
        super().__init__()
        self.estimator = copy.deepcopy(estimator)
        self.target = target
        self.features = features
        self._seen = 0
        self.allow_pickle = allow_pickle

    def config(self) -> dict[str, JSON]:
        # A river estimator is an object, not JSON; its repr (one line) is its configuration.
        return {"estimator": repr(self.estimator).replace("\n", " "), **super().config()}

    def predict(self, observation: JSON, scope: Scope | None = None) -> JSON:
        self.check_scope(scope)
        if self._seen == 0 and self.target == "label":
            return None  # river classifiers answer None or raise before they saw a class
        prediction = self.estimator.predict_one(self.features(observation))
        return prediction.item() if hasattr(prediction, "item") else prediction

    def _label(self, step: Step) -> JSON:
        if self.target == "label":
            if step.correction is not None:
                return step.correction
            return step.interaction.action if step.accepted else None
        return step.rating if self.target == "rating" else step.reward

    def _learn(self, step: Step) -> bool:
        y = self._label(step)
        if y is None:
            return False
        if isinstance(y, str):
            # A label of its own, as a replay from the log gives: the estimator keeps labels as dict
            # keys, and pickle writes a label shared by several steps once — other bytes, another digest.
            y = "".join(("", y))
        self.estimator.learn_one(self.features(step.interaction.observation), y)
        self._seen += 1
        self.provenance.record("model", step)
        return True

    def _get_state(self) -> dict[str, Any]:
        return {
            # Pickled as restored (an unpickled estimator no longer shares strings with its classes),
            # so a learner and its restored copy have the same state bytes.
            "estimator": pickle.dumps(pickle.loads(pickle.dumps(self.estimator))),
            "seen": self._seen,
            "target": self.target,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        if not self.allow_pickle:
            raise InvalidInput(
                "restoring a river estimator unpickles it, which can run code; make this learner with "
                "RiverLearner(..., allow_pickle=True) if its snapshots come from a store only you can write",
                field="allow_pickle",
            )
        self.estimator = pickle.loads(state["estimator"])
        self._seen = int(state["seen"])
        self.target = state["target"]
