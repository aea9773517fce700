"""Learned state ↔ bytes, without pickle.

A state dict is a tree of JSON values (dicts with str keys, lists, str, numbers, bool, None), NumPy
arrays and ``bytes``. :func:`encode` stores the tree as JSON with arrays and bytes taken out into an
``.npz`` archive, so loading never executes code (``allow_pickle=False``). :func:`digest` is a content
hash that does not depend on compression or archive timestamps.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput

_TREE = "__tree__"


def _split(node: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if isinstance(node, np.ndarray):
        if node.dtype == object:
            raise InvalidInput("object arrays cannot be stored; use numeric arrays", field=path)
        key = f"a{len(arrays)}"
        arrays[key] = node
        return {"__array__": key}
    if isinstance(node, bytes | bytearray):
        key = f"a{len(arrays)}"
        arrays[key] = np.frombuffer(bytes(node), dtype=np.uint8)
        return {"__bytes__": key}
    if isinstance(node, dict):
        for k in node:
            if not isinstance(k, str):
                raise InvalidInput(f"state keys must be strings, got {k!r}", field=path)
        # Sorted, so the array numbering (and the digest) does not depend on insertion order.
        return {k: _split(node[k], arrays, f"{path}.{k}") for k in sorted(node)}
    if isinstance(node, list | tuple):
        return [_split(v, arrays, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, np.generic):
        return node.item()
    if node is None or isinstance(node, str | int | float | bool):
        return node
    raise InvalidInput(f"cannot store a {type(node).__name__} in a state dict", field=path)


def _join(node: Any, arrays: Any) -> Any:
    if isinstance(node, dict):
        if set(node) == {"__array__"}:
            return np.array(arrays[node["__array__"]])
        if set(node) == {"__bytes__"}:
            return np.asarray(arrays[node["__bytes__"]]).tobytes()
        return {k: _join(v, arrays) for k, v in node.items()}
    if isinstance(node, list):
        return [_join(v, arrays) for v in node]
    return node


def encode(state: dict[str, Any]) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays, "state")
    text = json.dumps(tree, sort_keys=True).encode("utf-8")
    buffer = io.BytesIO()
    members: dict[str, Any] = {_TREE: np.frombuffer(text, dtype=np.uint8), **arrays}
    np.savez_compressed(buffer, **members)
    return buffer.getvalue()


def decode(blob: bytes) -> dict[str, Any]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            tree = json.loads(archive[_TREE].tobytes().decode("utf-8"))
            arrays = {k: archive[k] for k in archive.files if k != _TREE}
    except (
        ValueError,
        OSError,
        KeyError,
        EOFError,
        TypeError,
        AttributeError,
        RecursionError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        # ValueError covers bad JSON and bad UTF-8; a truncated or swapped archive lands here too.
        raise InvalidInput(
            f"not a lifelong state snapshot ({type(exc).__name__}: {exc})", field="snapshot"
        ) from None
    try:
        result = _join(tree, arrays)
    except (KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            f"snapshot tree is malformed ({type(exc).__name__}: {exc})", field="snapshot"
        ) from None
    if not isinstance(result, dict):
        raise InvalidInput("snapshot does not hold a state dict", field="snapshot")
    return result


def digest(state: dict[str, Any]) -> str:
    """SHA-256 of the state's content (tree, array dtypes, shapes and bytes)."""
    arrays: dict[str, np.ndarray] = {}
    tree = _split(state, arrays, "state")
    h = hashlib.sha256(json.dumps(tree, sort_keys=True).encode("utf-8"))
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def flatten(state: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; arrays and lists are leaves."""
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for k, v in state.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: state}
