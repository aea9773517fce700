"""Agents: a model plus context learners (see :mod:`lifelong.agents.agent`)."""

from lifelong.agents.agent import Agent, Context, Response, Task
from lifelong.agents.tasks import CodeCompletionTask, LabelTask

__all__ = ["Agent", "CodeCompletionTask", "Context", "LabelTask", "Response", "Task"]
