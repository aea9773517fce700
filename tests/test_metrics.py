"""Learning metrics against values worked out by hand."""

from __future__ import annotations

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


def test_windowed_means_and_partial_last_window() -> None:
    x, y = windowed([1, 1, 0, 0, 1, 1, 1], 2)
    assert x.tolist() == [2, 4, 6, 7] and y.tolist() == [1.0, 0.0, 1.0, 1.0]
    x, y = windowed([1, 1, 0, 0, 1], 4)  # a last window of 1 < 4/2 is dropped
    assert x.tolist() == [4] and y.tolist() == [0.5]
    with pytest.raises(InvalidInput):
        windowed([1.0], 0)


def test_rolling_mean() -> None:
    assert rolling([1, 0, 1, 1], 2).tolist() == [1.0, 0.5, 0.5, 1.0]


def test_slope_of_a_line_and_its_interval() -> None:
    x = np.arange(50, dtype=float)
    assert ols_slope(x, 3 * x + 2) == pytest.approx(3.0)
    assert ols_slope([1, 1, 1], [1, 2, 3]) == 0.0
    rng = np.random.default_rng(1)
    y = 0.5 * x + rng.normal(0, 2, size=50)
    s = slope_ci(x, y, seed=0)
    assert s.lo < 0.5 < s.hi and s.lo < s.slope < s.hi and s.significant
    flat = slope_ci(x, rng.normal(0, 1, size=50))
    assert flat.lo < 0 < flat.hi and not flat.significant


def test_aulc_and_gap() -> None:
    assert aulc([0, 10, 20], [0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert aulc([0, 1], [0.0, 1.0]) == pytest.approx(0.5)
    # improving sooner gives a larger area for the same end points
    assert aulc([0, 1, 2], [0, 1, 1]) > aulc([0, 1, 2], [0, 0, 1])
    assert first_last_gap([0.2, 0.5, 0.9]) == pytest.approx(0.7)


def test_mean_std_uses_sample_std() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
    assert mean_std([4.0]) == (4.0, 0.0)


def test_regret() -> None:
    assert regret_curve([1, 0, 1, 0], [1, 1, 1, 1]).tolist() == [0, 1, 1, 2]
    with pytest.raises(InvalidInput):
        regret_curve([1, 0], [1])


def test_continual_scores_by_hand() -> None:
    r = np.array([[0.9, 0.3, 0.2], [0.6, 0.8, 0.4], [0.5, 0.7, 0.9]])
    b = np.array([0.1, 0.2, 0.3])
    s = continual_scores(r, b)
    assert s.acc == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert s.bwt == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert s.fwt == pytest.approx(((0.3 - 0.2) + (0.4 - 0.3)) / 2)
    with pytest.raises(InvalidInput):
        continual_scores(np.ones((2, 3)), [0, 0])
