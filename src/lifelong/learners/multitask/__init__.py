"""Lifelong multi-task learning: ELLA and the batch baselines it is measured against.

- :mod:`~lifelong.learners.multitask.ella` — :class:`ELLA` (Ruvolo & Eaton, ICML 2013), a shared sparse
  basis learned one task at a time;
- :mod:`~lifelong.learners.multitask.single_task` — the per-task fit (Newton / ridge) ELLA starts from;
- :mod:`~lifelong.learners.multitask.baselines` — :class:`SingleTask`, :class:`Pooled`, :class:`GOMTL`
  (Kumar & Daumé, ICML 2012), the batch learners the benchmark compares with;
- :mod:`~lifelong.learners.multitask.data` — :class:`MultiTaskData` and its loaders.
"""

from lifelong.learners.multitask.baselines import GOMTL, Pooled, SingleTask
from lifelong.learners.multitask.data import MultiTaskData, load_landmine, synthetic_tasks
from lifelong.learners.multitask.ella import ELLA

__all__ = ["ELLA", "GOMTL", "MultiTaskData", "Pooled", "SingleTask", "load_landmine", "synthetic_tasks"]
