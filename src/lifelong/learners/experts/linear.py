"""Online multinomial logistic regression on hashed text features.

The simplest serious weight-space learner: one softmax layer over hashed word and character n-grams,
updated after every piece of feedback with AdaGrad (Duchi, Hazan & Singer, JMLR 2011, eq. for the
diagonal update ``w -= lr * g / sqrt(sum g^2)``), which suits sparse text features because rare
features keep a large step size. Labels need not be known in advance: a new right answer adds a class.

What it learns from a step:

- a correction (or an accept of its own answer) names the right class → cross-entropy step towards it;
- a reject with no correction says only "not this class" → a step on ``-log(1 - p(action))``.

>>> from lifelong.experience import Feedback, Interaction, Scope, Step
>>> model = OnlineSoftmax()
>>> i = Interaction(Scope(), observation="my card was stolen")
>>> model.learn(Step(i, (Feedback.correction(i.id, "card_lost"),)))
True
>>> model.predict("someone stole my card")
'card_lost'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lifelong.experience.records import JSON, FeedbackKind, Scope, Step
from lifelong.learners.base import Predictor
from lifelong.utils.arrays import softmax
from lifelong.utils.text import HashedText, text_of
from lifelong.utils.validation import check_scalar


class OnlineSoftmax(Predictor):
    """Multinomial logistic regression over hashed text, one AdaGrad step per feedback.

    Parameters
    ----------
    learning_rate
        AdaGrad base step size.
    n_features
        Size of the hashed feature space (a power of two).
    """

    def __init__(self, learning_rate: float = 0.5, n_features: int = 2**15) -> None:
        super().__init__()
        check_scalar(learning_rate, "learning_rate", float, min_val=0, include_boundaries="neither")
        self.learning_rate = float(learning_rate)
        self.featurize = HashedText(n_features)
        self.classes: list[str] = []
        self._class_index: dict[str, int] = {}
        self._weights = np.zeros((n_features, 0), dtype=np.float32)
        self._grad_sq = np.zeros((n_features, 0), dtype=np.float32)
        self._bias = np.zeros(0)
        self._bias_grad_sq = np.zeros(0)

    @property
    def n_features(self) -> int:
        """Size of the hashed feature space (what ``config()`` reports; a loaded state may change it)."""
        return self.featurize.n_features

    # -- prediction ---------------------------------------------------------------------------------
    def _logits(self, index: np.ndarray, value: np.ndarray) -> np.ndarray:
        n = len(self.classes)
        return value @ self._weights[index, :n] + self._bias[:n]

    def predict_proba(self, observation: JSON) -> dict[str, float]:
        if not self.classes:
            return {}
        index, value = self.featurize(text_of(observation))
        return dict(zip(self.classes, softmax(self._logits(index, value)).tolist(), strict=True))

    def scores(self, observation: JSON, scope: Scope | None = None) -> dict[str, float]:
        """Every class's probability (an expert's score table)."""
        self.check_scope(scope)
        return self.predict_proba(observation)

    def propose(self, observation: JSON, scope: Scope | None = None, k: int = 3) -> list[tuple[JSON, float]]:
        """The ``k`` most probable classes with their probabilities (an expert's proposal)."""
        self.check_scope(scope)
        ranked = sorted(self.predict_proba(observation).items(), key=lambda kv: -kv[1])
        return [(label, float(p)) for label, p in ranked[:k]]

    def predict(self, observation: JSON, scope: Scope | None = None) -> str | None:
        """The most probable class, or None (abstain) before any class is known."""
        self.check_scope(scope)
        text = text_of(observation)
        if not self.classes:
            return None
        index, value = self.featurize(text)
        return self.classes[int(np.argmax(self._logits(index, value)))]

    # -- learning -----------------------------------------------------------------------------------
    def _learn(self, step: Step) -> bool:
        action = step.interaction.action
        target = step.correction
        if target is None and step.accepted and action is not None:
            target = action
        rejected = step.accepted is False or step.last(FeedbackKind.REJECT) is not None
        if target is None and not (rejected and isinstance(action, str) and action in self._class_index):
            return False  # nothing this learner can use (e.g. a bare reward)
        index, value = self.featurize(text_of(step.interaction.observation))
        known = len(self.classes)
        if target is not None:
            column = self._add_class(str(target))
            p = softmax(self._logits(index, value))
            grad = p
            grad[column] -= 1.0  # d(-log p_y)/dz = p - onehot(y)
        else:
            p = softmax(self._logits(index, value))
            grad = _reject_gradient(p, self._class_index[str(action)])
        if len(self.classes) == known and not grad.any():
            return False  # nothing moves (the only class known, confirmed or rejected)
        self._adagrad(index, value, grad)
        self.provenance.record("weights", step)
        return True

    def _adagrad(self, index: np.ndarray, value: np.ndarray, grad: np.ndarray) -> None:
        n = len(self.classes)
        g = np.outer(value, grad).astype(np.float32)  # gradient on the active rows only
        self._grad_sq[index, :n] += g * g
        self._weights[index, :n] -= self.learning_rate * g / np.sqrt(self._grad_sq[index, :n] + 1e-8)
        self._bias_grad_sq[:n] += grad * grad
        self._bias[:n] -= self.learning_rate * grad / np.sqrt(self._bias_grad_sq[:n] + 1e-8)

    def _add_class(self, label: str) -> int:
        column = self._class_index.get(label)
        if column is not None:
            return column
        column = len(self.classes)
        if column >= self._weights.shape[1]:  # grow capacity by doubling: amortised O(1) per class
            capacity = max(8, 2 * self._weights.shape[1])
            self._weights = _grow(self._weights, capacity)
            self._grad_sq = _grow(self._grad_sq, capacity)
            self._bias = _grow(self._bias[None, :], capacity)[0]
            self._bias_grad_sq = _grow(self._bias_grad_sq[None, :], capacity)[0]
        self.classes.append(label)
        self._class_index[label] = column
        return column

    # -- state --------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        n = len(self.classes)
        return {
            "config": self.config(),
            "classes": list(self.classes),
            "weights": self._weights[:, :n].copy(),
            "grad_sq": self._grad_sq[:, :n].copy(),
            "bias": self._bias[:n].copy(),
            "bias_grad_sq": self._bias_grad_sq[:n].copy(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        config = state["config"]
        self.learning_rate = float(config["learning_rate"])
        self.featurize = HashedText(int(config["n_features"]))
        self.classes = [str(c) for c in state["classes"]]
        self._class_index = {c: i for i, c in enumerate(self.classes)}
        self._weights = np.array(state["weights"], dtype=np.float32)
        self._grad_sq = np.array(state["grad_sq"], dtype=np.float32)
        self._bias = np.array(state["bias"], dtype=np.float64)
        self._bias_grad_sq = np.array(state["bias_grad_sq"], dtype=np.float64)


def _reject_gradient(p: np.ndarray, a: int) -> np.ndarray:
    """Gradient of ``-log(1 - p_a)`` with respect to the logits: ``p_a (onehot(a) - p) / (1 - p_a)``."""
    p_a = min(float(p[a]), 1.0 - 1e-6)
    onehot = np.zeros_like(p)
    onehot[a] = 1.0
    return np.asarray(p_a * (onehot - p) / (1.0 - p_a))


def _grow(matrix: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((matrix.shape[0], capacity), dtype=matrix.dtype)
    grown[:, : matrix.shape[1]] = matrix
    return grown
