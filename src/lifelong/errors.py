"""One error hierarchy for the whole package.

Every error a user can cause or fix is a :class:`LifelongError`; the CLI prints its message on one line
and exits non-zero without a traceback. Anything else is a bug in ``lifelong`` and keeps its traceback.
"""

from __future__ import annotations


class LifelongError(Exception):
    """Base class of every error that ``lifelong`` raises on purpose."""


class InvalidInput(LifelongError, ValueError):
    """A value given to ``lifelong`` is wrong; ``field`` names which one.

    >>> str(InvalidInput("must be finite, got nan", field="value"))
    'value: must be finite, got nan'
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(LifelongError, LookupError):
    """Something asked for by id or name does not exist (an interaction, a version, a file)."""


class Conflict(LifelongError):
    """A write contradicts what is already stored (e.g. a known id with different content)."""


class BackendUnavailable(LifelongError, ConnectionError):
    """A storage or model backend cannot be reached; says which URL and what to start."""

    def __init__(self, url: str, hint: str) -> None:
        self.url = url
        self.hint = hint
        super().__init__(f"cannot reach {url}: {hint}")


class ModelError(LifelongError):
    """A model backend answered, but not with something usable."""
