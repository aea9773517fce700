"""Helpers every layer may use: parameter checks, text features, array utilities.

- :mod:`~lifelong.utils.validation` — :func:`check_scalar` and friends, one message per bad parameter;
- :mod:`~lifelong.utils.params` — :func:`get_params`, hyper-parameters read from the constructor signature;
- :mod:`~lifelong.utils.text` — :func:`normalise`, :func:`text_of`, :class:`HashedText`;
- :mod:`~lifelong.utils.arrays` — :func:`top_k`, :func:`softmax`.

Nothing here imports from the rest of the package but :mod:`lifelong.errors`, so anything may import it.
"""
