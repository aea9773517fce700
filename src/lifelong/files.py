"""Files that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lifelong.errors import InvalidInput


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is synced to disk and renamed
    over ``path`` (atomic on POSIX), on an error it is removed and ``path`` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable_dir(path: str | Path, field: str) -> None:
    """:class:`InvalidInput` naming ``field`` unless the folder ``path`` exists or can be created and a
    file can be written in it; checked by doing both, then undone (it leaves nothing behind).

    For an output folder, before any work starts: a run must not end in a traceback after hours.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{path} is a file, not a folder", field=field)
    created: list[Path] = []  # the folders this check creates, deepest first
    existing = path
    while not existing.exists() and existing != existing.parent:
        created.append(existing)
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InvalidInput(f"cannot create the folder {path}: {existing} is a file", field=field)
    try:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInput(
                f"cannot create the folder {path} ({exc.strerror or exc})", field=field
            ) from None
        try:
            fd, probe = tempfile.mkstemp(dir=path, prefix=".lifelong-write-check-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise InvalidInput(
                f"cannot write in the folder {path} ({exc.strerror or exc})", field=field
            ) from None
    finally:
        for folder in created:
            with contextlib.suppress(OSError):  # not created after all (or not empty): left as it is
                folder.rmdir()
