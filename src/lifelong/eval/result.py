"""What a protocol returns: curves and metrics over seeds, with the config, versions and timings.

A :class:`Result` saves as a JSON file (finite numbers only: NaN and infinities become null, and come
back as NaN) and a PNG plot (:mod:`lifelong.eval.plots`).

>>> r = Result("demo", "prequential", seeds=[0, 1])
>>> r.add_metric("final_window", [0.8, 0.9])
>>> r.curves["learner"] = Curve([100.0, 200.0], [[0.5, 0.8], [0.6, 0.9]])
>>> r.to_dict()["curves"]["learner"]["mean"]
[0.55, 0.8500000000000001]
>>> print(r.summary())
demo (prequential, 2 seed(s))
  final_window  0.85 ± 0.071
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lifelong.errors import InvalidInput, NotFound
from lifelong.eval.metrics import mean_std
from lifelong.eval.plots import plot_result
from lifelong.files import atomic_open


@dataclass
class Curve:
    """One named curve measured on every seed: ``per_seed[s][i]`` is the value at ``x[i]``."""

    x: list[float]
    per_seed: list[list[float]]
    kind: str = "score"  # curves of one kind share a panel of the plot: score, regret, perf_by_k, ...
    xlabel: str = "interactions"
    ylabel: str = "score"

    def __post_init__(self) -> None:
        if not self.per_seed:
            raise InvalidInput("a curve needs the values of at least one seed", field="per_seed")
        for row in self.per_seed:
            if len(row) != len(self.x):
                raise InvalidInput(f"{len(row)} values for {len(self.x)} x points", field="per_seed")

    @property
    def mean(self) -> np.ndarray:
        return np.asarray(np.asarray(self.per_seed, dtype=np.float64).mean(axis=0))

    @property
    def std(self) -> np.ndarray:
        values = np.asarray(self.per_seed, dtype=np.float64)
        return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "per_seed": self.per_seed,
            "kind": self.kind,
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        return cls(
            _floats(data["x"]),
            [_floats(r) for r in data["per_seed"]],
            data.get("kind", "score"),
            data.get("xlabel", "interactions"),
            data.get("ylabel", "score"),
        )


@dataclass
class Stat:
    """One metric measured on every seed."""

    per_seed: list[float]

    @property
    def mean(self) -> float:
        return mean_std(self.per_seed)[0]

    @property
    def std(self) -> float:
        return mean_std(self.per_seed)[1]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "per_seed": self.per_seed}

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}"


@dataclass
class Result:
    """The outcome of one protocol run over several seeds."""

    name: str
    protocol: str
    seeds: list[int]
    config: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    metrics: dict[str, Stat] = field(default_factory=dict)
    matrices: dict[str, list[list[float]]] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=lambda: environment_versions())
    created: float = field(default_factory=time.time)
    #: Suite-specific top-level JSON fields (e.g. ``speedup_vs_gomtl``); they never replace the ones above.
    extra: dict[str, Any] = field(default_factory=dict)

    def add_metric(self, name: str, per_seed: list[float]) -> None:
        self.metrics[name] = Stat([float(v) for v in per_seed])

    def metric_mean(self, name: str) -> float | None:
        stat = self.metrics.get(name)
        return None if stat is None else stat.mean

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _finite(
            {
                "name": self.name,
                "protocol": self.protocol,
                "seeds": self.seeds,
                "config": self.config,
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "curves": {k: v.to_dict() for k, v in self.curves.items()},
                "matrices": self.matrices,
                "timings": self.timings,
                "versions": self.versions,
                "created": self.created,
            }
        )
        for key, value in _finite(self.extra).items():
            data.setdefault(key, value)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(
            name=data["name"],
            protocol=data["protocol"],
            seeds=list(data["seeds"]),
            config=dict(data.get("config", {})),
            curves={k: Curve.from_dict(v) for k, v in data.get("curves", {}).items()},
            metrics={k: Stat(_floats(v["per_seed"])) for k, v in data.get("metrics", {}).items()},
            matrices={k: [_floats(row) for row in m] for k, m in data.get("matrices", {}).items()},
            timings=dict(data.get("timings", {})),
            versions=dict(data.get("versions", {})),
            created=float(data.get("created", 0.0)),
            extra={k: v for k, v in data.items() if k not in _FIELDS},
        )

    def save_json(self, path: str | Path) -> Path:
        """Write the JSON atomically: to a temporary file beside ``path``, synced, then renamed into place."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        with atomic_open(path) as out:
            out.write(text)
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> Result:
        """Read a result written by :meth:`save_json` (nulls come back as NaN)."""
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"no result file {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{path} is not a result file ({exc!r})", field="path") from None

    def save(self, directory: str | Path, stem: str) -> tuple[Path, Path]:
        """Write ``<directory>/<stem>.json`` and ``<directory>/<stem>.png``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path = self.save_json(directory / f"{stem}.json")
        png_path = plot_result(self, directory / f"{stem}.png")
        return json_path, png_path

    def summary(self) -> str:
        """A few lines for the terminal: every metric as mean ± std over the seeds."""
        lines = [f"{self.name} ({self.protocol}, {len(self.seeds)} seed(s))"]
        width = max((len(k) for k in self.metrics), default=0)
        lines += [f"  {name:<{width}}  {stat}" for name, stat in self.metrics.items()]
        return "\n".join(lines)


_FIELDS = {
    "name",
    "protocol",
    "seeds",
    "config",
    "metrics",
    "curves",
    "matrices",
    "timings",
    "versions",
    "created",
}


def merge_results(base: Result, other: Result, prefix: str) -> Result:
    """Add ``other``'s curves and metrics to ``base`` under ``prefix`` (e.g. a peer run on the same data)."""
    for key, curve in other.curves.items():
        base.curves[f"{prefix}" if key == "learner" else f"{prefix}.{key}"] = curve
    for key, stat in other.metrics.items():
        base.metrics[f"{prefix}.{key}"] = stat
    base.timings[prefix] = other.timings
    base.config[prefix] = other.config
    return base


def environment_versions() -> dict[str, Any]:
    """lifelong, Python, NumPy and platform versions, and the git commit when run from a checkout."""
    return dict(_environment_versions())


@lru_cache(maxsize=1)
def _environment_versions() -> dict[str, Any]:
    from lifelong import __version__

    versions: dict[str, Any] = {
        "lifelong": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    versions.update(_git_state())
    return versions


def _git_state() -> dict[str, Any]:
    """The commit of the checkout this package runs from, and whether it has local changes.

    Empty when git is missing or the package is not a tracked file of a checkout (e.g. installed into
    site-packages inside some other repository).
    """
    here = Path(__file__).resolve()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, cwd=here.parent, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", here.name) is None:
        return {}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    state: dict[str, Any] = {} if commit is None else {"git_commit": commit}
    if status is not None:
        state["git_dirty"] = bool(status)
    return state


def _finite(value: Any) -> Any:
    """Plain JSON data: NaN/inf → None, NumPy values → numbers and lists, other objects → their str."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # e.g. a Path or an enum in a config


def _floats(values: list[Any]) -> list[float]:
    """Numbers read back from JSON, null → NaN."""
    return [math.nan if v is None else float(v) for v in values]
