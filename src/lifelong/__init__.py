"""lifelong: make AI agents and models learn online from every interaction, and measure it."""

from lifelong.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    LifelongError,
    ModelError,
    NotFound,
)
from lifelong.experience import ExperienceLog, Feedback, FeedbackKind, Interaction, Scope, Step

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "Conflict",
    "ExperienceLog",
    "Feedback",
    "FeedbackKind",
    "Interaction",
    "InvalidInput",
    "LifelongError",
    "ModelError",
    "NotFound",
    "Scope",
    "Step",
    "__version__",
]
