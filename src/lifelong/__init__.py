"""lifelong: make AI agents and models learn online from every interaction, and measure it.

The handful of names most programs need are here::

    from lifelong import Agent, LabelTask, Memory, ExampleBank, ExperienceLog, Scope

- experience: :class:`ExperienceLog`, :class:`Interaction`, :class:`Feedback`, :class:`Scope`, :class:`Step`;
- learners: :class:`Memory` (``add``/``search``), :class:`ExampleBank`, :class:`Lessons`,
  :class:`OnlineSoftmax`, :class:`PerTenant`; every learner has ``learn_one`` (log, then learn);
- the agent: :class:`Agent` with a :class:`LabelTask` or :class:`CodeCompletionTask`, and its models
  :class:`LlamaCpp` (embedded Gemma 3 270M), :class:`OpenAICompatible`, :class:`MiniLM`;
- learned state: :class:`VersionStore`; erasure: :func:`forget`.

Everything else lives in the subpackages (:mod:`lifelong.learners`, :mod:`lifelong.eval`, ...).
"""

from typing import TYPE_CHECKING, Any

from lifelong.errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    LifelongError,
    ModelError,
    NotFound,
)

#: Where each name of the small API is defined. They are imported on first use (PEP 562), so
#: ``import lifelong.errors`` — the CLI, a child process — does not load the learners and numba.
_LAZY = {
    "Agent": "lifelong.agents.agent",
    "CodeCompletionTask": "lifelong.agents.tasks",
    "LabelTask": "lifelong.agents.tasks",
    "ExperienceLog": "lifelong.experience.log",
    "Feedback": "lifelong.experience.records",
    "FeedbackKind": "lifelong.experience.records",
    "Interaction": "lifelong.experience.records",
    "Scope": "lifelong.experience.records",
    "Step": "lifelong.experience.records",
    "ExampleBank": "lifelong.learners.context.examples",
    "Lessons": "lifelong.learners.context.lessons",
    "Memory": "lifelong.learners.context.memory",
    "OnlineSoftmax": "lifelong.learners.experts.linear",
    "PerTenant": "lifelong.learners.tenancy",
    "LlamaCpp": "lifelong.models.llama_cpp",
    "MiniLM": "lifelong.models.embedders",
    "OpenAICompatible": "lifelong.models.openai_compat",
    "VersionStore": "lifelong.state.store",
    "forget": "lifelong.state.erasure",
}

if TYPE_CHECKING:
    from lifelong.agents.agent import Agent
    from lifelong.agents.tasks import CodeCompletionTask, LabelTask
    from lifelong.experience.log import ExperienceLog
    from lifelong.experience.records import Feedback, FeedbackKind, Interaction, Scope, Step
    from lifelong.learners.context.examples import ExampleBank
    from lifelong.learners.context.lessons import Lessons
    from lifelong.learners.context.memory import Memory
    from lifelong.learners.experts.linear import OnlineSoftmax
    from lifelong.learners.tenancy import PerTenant
    from lifelong.models.embedders import MiniLM
    from lifelong.models.llama_cpp import LlamaCpp
    from lifelong.models.openai_compat import OpenAICompatible
    from lifelong.state.erasure import forget
    from lifelong.state.store import VersionStore


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lifelong' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "Agent",
    "BackendUnavailable",
    "CodeCompletionTask",
    "Conflict",
    "ExampleBank",
    "ExperienceLog",
    "Feedback",
    "FeedbackKind",
    "Interaction",
    "InvalidInput",
    "LabelTask",
    "Lessons",
    "LifelongError",
    "LlamaCpp",
    "Memory",
    "MiniLM",
    "ModelError",
    "NotFound",
    "OnlineSoftmax",
    "OpenAICompatible",
    "PerTenant",
    "Scope",
    "Step",
    "VersionStore",
    "__version__",
    "forget",
]
