"""Benchmarks: every ``lifelong bench`` suite, one module per family, and the stand-alone measurements.

- :mod:`~lifelong.bench.registry` — :data:`SUITES` (name → module:function) and :func:`run_suite`;
- :mod:`~lifelong.bench.intents` — ``intent-linear``, ``intent-continual``, ``intent-adaptation``;
- :mod:`~lifelong.bench.ella` — ``ella``, ``ella-synthetic``, ``ella-scale``;
- :mod:`~lifelong.bench.recsys` — ``recsys``;
- :mod:`~lifelong.bench.agents` — ``intent-stream``, ``code-completion`` (and
  :mod:`~lifelong.bench.recall`, recall latency of a filled example bank);
- :mod:`~lifelong.bench.weights` — ``weights``;
- stand-alone, ``python -m lifelong.bench.NAME --help``: ``log_throughput``, ``reliability``
  (with its ``crash_writer`` child process), ``replay_gate``, ``make_stdlib_intents``.
"""

from lifelong.bench.registry import SUITES, Suite, run_suite

__all__ = ["SUITES", "Suite", "run_suite"]
