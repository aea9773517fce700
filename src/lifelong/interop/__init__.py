"""Adapters that let peers and standard environments plug into the harness.

- :class:`~lifelong.interop.river.RiverLearner` — any river estimator as a ``lifelong`` learner;
- :class:`~lifelong.interop.gymnasium.GymnasiumEnv` — any gymnasium environment as an ``Env``.

Both need the ``interop`` extra (``pip install "lifelong[interop]"``); importing them without it raises
:class:`ImportError` naming the extra.
"""
