"""General text for forgetting guards and retention checks, found on any machine with Python.

- :func:`prose_texts` — English prose: the paragraphs of the Python language reference that ship with
  every Python as ``pydoc_data.topics`` (the text ``help("assert")`` prints), without their code blocks.
- :func:`code_texts` — chunks of standard-library source files.

Both are cut into chunks of about ``chars`` characters and dealt into two disjoint ``split``s by chunk
index: ``"replay"`` (text a guard may train on) and ``"probe"`` (held-out text, only ever measured), so
a retention number is never measured on text the learner saw.

>>> probe, replay = prose_texts("probe", limit=4), prose_texts("replay", limit=4)
>>> len(probe), set(probe) & set(replay)
(4, set())
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lifelong.envs.code_completion import stdlib_files
from lifelong.utils.validation import check_choice

__all__ = ["code_texts", "prose_texts"]

SPLITS = ("replay", "probe")


def prose_texts(split: str, *, limit: int | None = None, chars: int = 600) -> list[str]:
    """Prose chunks of the Python language reference (``pydoc_data.topics``) in ``split``."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            lines = block.strip("\n").splitlines()
            prose = bool(lines) and not any(
                line.startswith((" ", "\t")) or set(line.strip()) <= set("*=-") for line in lines
            )
            if prose and len(block) > 120:
                paragraphs.append(" ".join(line.strip() for line in lines))
    return _deal(_chunks(paragraphs, chars, " "), split, limit)


def code_texts(
    modules: Sequence[str], split: str, *, limit: int | None = None, chars: int = 600
) -> list[str]:
    """Chunks of the source of standard-library ``modules`` (packages or single modules) in ``split``."""
    sources = [path.read_text(encoding="utf-8", errors="replace") for path in stdlib_files(modules)]
    blocks = [block for source in sources for block in source.split("\n\n") if block.strip()]
    return _deal(_chunks(blocks, chars, "\n\n"), split, limit)


def _chunks(blocks: Iterable[str], chars: int, joiner: str) -> list[str]:
    """Consecutive blocks joined until a chunk reaches ``chars`` characters."""
    chunks, current = [], ""
    for block in blocks:
        current = f"{current}{joiner}{block}" if current else block
        if len(current) >= chars:
            chunks.append(current[: 2 * chars])
            current = ""
    return chunks


def _deal(chunks: list[str], split: str, limit: int | None) -> list[str]:
    check_choice(split, "split", SPLITS)
    mine = chunks[SPLITS.index(split) :: 2]
    return mine[:limit] if limit is not None else mine
