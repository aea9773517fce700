"""Experience: what happened (interactions), what was said about it (feedback), and the durable log."""

from lifelong.experience.log import AppendReport, ExperienceLog, ForgetReport, LogStats
from lifelong.experience.records import (
    Feedback,
    FeedbackKind,
    Interaction,
    Scope,
    Step,
    feedback_of,
    new_id,
)

__all__ = [
    "AppendReport",
    "ExperienceLog",
    "Feedback",
    "FeedbackKind",
    "ForgetReport",
    "Interaction",
    "LogStats",
    "Scope",
    "Step",
    "feedback_of",
    "new_id",
]
