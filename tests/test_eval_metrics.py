"""lifelong.eval.metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifelong.errors import InvalidInput
from lifelong.eval import (
    aulc,
    continual_scores,
    first_last_gap,
    mean_std,
    ols_slope,
    regret_curve,
    rolling,
    slope_ci,
    windowed,
)


def field_of(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str | None:
    return excinfo.value.field


# -- windowed / rolling ----------------------------------------------------------------------------------
def test_windowed_ends_and_centres() -> None:
    scores = [1, 0, 0, 0, 1, 1, 1, 1, 1]  # windows of 3: [1,0,0] [0,1,1] [1,1,1]
    x, y = windowed(scores, 3)
    assert x.tolist() == [3.0, 6.0, 9.0]
    assert y == pytest.approx([1 / 3, 2 / 3, 1.0])
    x, y = windowed(scores, 3, at="centre")
    assert x.tolist() == [2.0, 5.0, 8.0]  # mean step number (1-based) of each window
    assert y == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_windowed_partial_last_window() -> None:
    x, y = windowed([1, 1, 0, 0, 1, 1, 1], 2)  # last window [1] holds 1 >= 2 // 2 steps: kept
    assert x.tolist() == [2, 4, 6, 7] and y.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert windowed([1, 1, 0, 0, 1, 1, 1], 2, at="centre")[0].tolist() == [1.5, 3.5, 5.5, 7.0]
    x, y = windowed([1, 1, 0, 0, 1], 4)  # last window [1] holds 1 < 4 // 2 steps: dropped
    assert x.tolist() == [4] and y.tolist() == [0.5]
    x, y = windowed([0.25, 0.75], 10)  # a single short window is all there is: kept
    assert x.tolist() == [2] and y.tolist() == [0.5]


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_windowed_rejects_bad_windows(window: object) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        windowed([1.0, 2.0], window)  # type: ignore[arg-type]
    assert field_of(excinfo) == "window"


def test_windowed_rejects_bad_input() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        windowed(np.ones((1, 2)), 1)
    assert field_of(excinfo) == "scores"
    with pytest.raises(InvalidInput) as excinfo:
        windowed([1.0], 1, at="middle")  # type: ignore[arg-type]
    assert field_of(excinfo) == "at"


def test_rolling_is_a_trailing_mean() -> None:
    assert rolling([1, 0, 1, 1], 2).tolist() == [1.0, 0.5, 0.5, 1.0]
    assert rolling([3, 1, 2], 10).tolist() == [3.0, 2.0, 2.0]  # shorter at the start
    with pytest.raises(InvalidInput):
        rolling([1.0], 0)


# -- slope -----------------------------------------------------------------------------------------------
def test_slope_of_known_lines() -> None:
    x = np.arange(20, dtype=float)
    assert ols_slope(x, 3 * x + 2) == pytest.approx(3.0)
    assert ols_slope(x, -0.5 * x) == pytest.approx(-0.5)
    assert ols_slope(x, np.full(20, 7.0)) == 0.0
    assert ols_slope([1, 1, 1], [1, 2, 3]) == 0.0  # x does not vary: no slope
    # by hand: x̄ = 1, ȳ = 2, Σ dx·dy = (-1)(-2) + 0·1 + 1·1 = 3, Σ dx² = 2 → 1.5
    assert ols_slope([0, 1, 2], [0, 3, 3]) == pytest.approx(1.5)
    with pytest.raises(InvalidInput) as excinfo:
        ols_slope([1, 2], [1, 2, 3])
    assert field_of(excinfo) == "y"


def test_slope_ci_of_an_exact_line_is_the_slope() -> None:
    x = np.arange(10, dtype=float)
    s = slope_ci(x, 2 * x + 1)
    assert s.slope == pytest.approx(2.0) and s.lo == pytest.approx(2.0) and s.hi == pytest.approx(2.0)


def test_slope_ci_covers_the_true_slope_at_about_its_level() -> None:
    rng = np.random.default_rng(7)
    x = np.arange(40, dtype=float)
    covered, trials = 0, 200
    for trial in range(trials):
        y = 0.25 * x + rng.normal(0, 2.0, size=40)
        s = slope_ci(x, y, n_boot=400, level=0.9, seed=trial)
        assert s.lo <= s.slope <= s.hi
        covered += s.lo <= 0.25 <= s.hi
    # Nominal 90 % (the pairs bootstrap gives about 88 % at n = 40); too narrow or too wide fails.
    assert 0.82 <= covered / trials <= 0.96


def test_slope_ci_is_seeded_and_nested_by_level() -> None:
    rng = np.random.default_rng(3)
    x = np.arange(30, dtype=float)
    y = 0.1 * x + rng.normal(0, 1, size=30)
    assert slope_ci(x, y, seed=5) == slope_ci(x, y, seed=5)
    wide, narrow = slope_ci(x, y, level=0.99, seed=1), slope_ci(x, y, level=0.5, seed=1)
    assert wide.lo < narrow.lo < narrow.hi < wide.hi
    flat = slope_ci(x, rng.normal(0, 1, size=30))
    assert flat.lo < 0 < flat.hi and not flat.significant
    assert slope_ci(x, 0.5 * x + rng.normal(0, 0.5, size=30)).significant


def test_slope_ci_rejects_bad_arguments() -> None:
    for kwargs, field in [({"level": 1.0}, "level"), ({"level": 0}, "level"), ({"n_boot": 0}, "n_boot")]:
        with pytest.raises(InvalidInput) as excinfo:
            slope_ci([0, 1, 2], [0, 1, 2], **kwargs)  # type: ignore[arg-type]
        assert field_of(excinfo) == field


# -- area, gap, spread -----------------------------------------------------------------------------------
def test_aulc_by_hand() -> None:
    assert aulc([0, 10, 20], [0.5, 0.5, 0.5]) == pytest.approx(0.5)  # a constant curve: its level
    assert aulc([0, 1], [0.0, 1.0]) == pytest.approx(0.5)
    # uneven x: trapezoids (0 + 1)/2·1 + (1 + 1)/2·2 = 2.5 over a range of 3
    assert aulc([0, 1, 3], [0, 1, 1]) == pytest.approx(2.5 / 3)
    assert aulc([5], [0.3]) == pytest.approx(0.3)
    assert aulc([0, 1, 2], [0, 1, 1]) > aulc([0, 1, 2], [0, 0, 1])  # improving sooner scores higher
    with pytest.raises(InvalidInput) as excinfo:
        aulc([2, 1, 0], [0, 0, 0])
    assert field_of(excinfo) == "x"
    with pytest.raises(InvalidInput):
        aulc([], [])


def test_aulc_lies_in_the_range_of_the_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.uniform(0.2, 0.7, size=15)
        assert 0.2 <= aulc(np.cumsum(rng.uniform(1, 5, size=15)), y) <= 0.7


def test_first_last_gap_and_mean_std() -> None:
    assert first_last_gap([0.2, 0.5, 0.9]) == pytest.approx(0.7)
    assert first_last_gap([0.9, 0.1]) == pytest.approx(-0.8)
    with pytest.raises(InvalidInput):
        first_last_gap([])
    mean, std = mean_std([1.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(math.sqrt(2))  # sample std (ddof = 1)
    assert mean_std([4.0]) == (4.0, 0.0)
    with pytest.raises(InvalidInput) as excinfo:
        mean_std([])
    assert field_of(excinfo) == "values"


def test_cumulative_regret_by_hand() -> None:
    assert regret_curve([1, 0, 0.5, 1], [1, 1, 1, 1]).tolist() == [0.0, 1.0, 1.5, 1.5]
    assert regret_curve([0.2, 0.2], [0.5, 0.2]).tolist() == pytest.approx([0.3, 0.3])
    with pytest.raises(InvalidInput) as excinfo:
        regret_curve([1, 0], [1])
    assert field_of(excinfo) == "best_rewards"


# -- continual-learning matrix ---------------------------------------------------------------------------
def test_acc_bwt_fwt_on_a_hand_written_matrix() -> None:
    r = np.array(
        [
            [0.9, 0.3, 0.2],
            [0.6, 0.8, 0.4],
            [0.5, 0.7, 0.9],
        ]
    )
    b = np.array([0.1, 0.2, 0.3])
    s = continual_scores(r, b)
    assert s.acc == pytest.approx(0.7)  # (0.5 + 0.7 + 0.9) / 3
    assert s.bwt == pytest.approx(-0.25)  # ((0.5 - 0.9) + (0.7 - 0.8)) / 2
    assert s.fwt == pytest.approx(0.1)  # ((0.3 - 0.2) + (0.4 - 0.3)) / 2


def test_no_forgetting_and_no_transfer() -> None:
    r = np.array([[0.8, 0.5], [0.8, 0.9]])
    s = continual_scores(r, [0.5, 0.5])
    assert s.bwt == 0.0 and s.fwt == 0.0 and s.acc == pytest.approx(0.85)
    one = continual_scores([[0.7]], [0.1])
    assert one.acc == pytest.approx(0.7) and (one.bwt, one.fwt) == (0.0, 0.0)


def test_continual_scores_reject_bad_shapes() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        continual_scores(np.ones((2, 3)), [0, 0])
    assert field_of(excinfo) == "R"
    with pytest.raises(InvalidInput) as excinfo:
        continual_scores(np.ones((2, 2)), [0, 0, 0])
    assert field_of(excinfo) == "b"


@pytest.mark.parametrize("module", ["metrics", "loop", "result"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(f"lifelong.eval.{module}"))
    assert tried > 0 and failures == 0
