"""Versioned learned state: snapshots, diffs, gated promotion, rollback and provenance."""

from lifelong.state.codec import decode, digest, encode
from lifelong.state.diff import Change, StateDiff, diff_states
from lifelong.state.store import Derived, Gate, GateResult, Promotion, VersionInfo, VersionStore

__all__ = [
    "Change",
    "Derived",
    "Gate",
    "GateResult",
    "Promotion",
    "StateDiff",
    "VersionInfo",
    "VersionStore",
    "decode",
    "diff_states",
    "digest",
    "encode",
]
