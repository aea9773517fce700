"""Models (text generators) and embedders; see :mod:`lifelong.models.base` for the contracts."""

from lifelong.models.base import CachedEmbedder, Completion, Embedder, HashingEmbedder, Model
from lifelong.models.embedders import MiniLM
from lifelong.models.llama_cpp import LlamaCpp, default_gguf
from lifelong.models.openai_compat import OpenAICompatible

__all__ = [
    "CachedEmbedder",
    "Completion",
    "Embedder",
    "HashingEmbedder",
    "LlamaCpp",
    "MiniLM",
    "Model",
    "OpenAICompatible",
    "default_gguf",
]
