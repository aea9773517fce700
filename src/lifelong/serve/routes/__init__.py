"""The service's routes, one router per resource: the proxy, feedback, memories, interactions, learners
(and their versions), the learning curve, apps, and operations."""

from lifelong.serve.routes import (
    apps,
    feedback,
    interactions,
    learners,
    learning,
    memories,
    operations,
    proxy,
)

ROUTERS = (
    proxy.router,
    feedback.router,
    apps.router,
    memories.router,
    interactions.router,
    learners.router,
    learning.router,
    operations.router,
)

__all__ = ["ROUTERS"]
