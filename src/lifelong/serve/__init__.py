"""The learning service (``lifelong serve``): an OpenAI-compatible proxy that learns from feedback.

- :mod:`~lifelong.serve.app` — the FastAPI app: proxy, feedback, memories, versions, metrics, dashboard;
- :mod:`~lifelong.serve.engine` — per-tenant learners kept in step with the log;
- :mod:`~lifelong.serve.follow` — reading the log's new feedback exactly once across workers;
- :mod:`~lifelong.serve.keys` — hashed API keys, one tenant each;
- :mod:`~lifelong.serve.upstream` — the model: any OpenAI-compatible server, or Gemma in-process;
- :mod:`~lifelong.serve.prompts`, :mod:`~lifelong.serve.schemas`, :mod:`~lifelong.serve.config`,
  :mod:`~lifelong.serve.metrics`, :mod:`~lifelong.serve.run`.

See ``docs/service.md``.
"""
