"""The experiment report's arithmetic against hand-computed cases: t intervals over seeds,
bootstrap intervals over questions, paired differences."""
from __future__ import annotations

import math

import pytest

from harness.experiment.stats import (bootstrap_interval, mean_interval, paired_bootstrap, paired_difference,
                                      t_quantile)


def test_t_quantiles_match_the_table():
    # Student's t, two-sided 95%: 12.706 (1 dof), 4.303 (2), 2.776 (4), 1.960 in the limit.
    assert t_quantile(0.95, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.95, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.95, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.95, 10**6) == pytest.approx(1.9600, abs=1e-3)


def test_mean_interval_by_hand():
    # 0.60, 0.70, 0.80: mean 0.70, s = 0.10, half-width 4.3027 * 0.10 / sqrt(3) = 0.24841.
    interval = mean_interval([0.6, 0.7, 0.8])
    assert interval.mean == pytest.approx(0.7)
    assert interval.low == pytest.approx(0.7 - 0.248414, abs=1e-6)
    assert interval.high == pytest.approx(0.7 + 0.248414, abs=1e-6)
    assert interval.n == 3


def test_one_seed_has_no_interval_and_none_is_an_error():
    assert mean_interval([0.5]).low is None and mean_interval([0.5]).mean == 0.5
    with pytest.raises(ValueError):
        mean_interval([])


def test_paired_difference_by_hand():
    # Differences 0.05, 0.10, 0.15: mean 0.10, s = 0.05, half-width 4.3027 * 0.05 / sqrt(3) = 0.124207.
    interval = paired_difference([0.75, 0.80, 0.95], [0.70, 0.70, 0.80])
    assert interval.mean == pytest.approx(0.10)
    assert interval.high - interval.mean == pytest.approx(0.124207, abs=1e-6)
    with pytest.raises(ValueError):
        paired_difference([0.1, 0.2], [0.1])


def test_pairing_removes_a_shared_seed_effect():
    # Seeds move both variants together: unpaired the intervals overlap, paired the gain is clear.
    a, b = [0.50, 0.70, 0.90], [0.45, 0.65, 0.85]
    assert mean_interval(a).low < mean_interval(b).high
    assert paired_difference(a, b).low == pytest.approx(0.05) == paired_difference(a, b).high


def test_bootstrap_of_two_questions_by_enumeration():
    # One seed, questions scoring 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities
    # 1/4, 1/2, 1/4, so the 95% percentile interval is [0, 1] and the mean 0.5.
    interval = bootstrap_interval([[0.0, 1.0]], resamples=4000, seed=1)
    assert (interval.mean, interval.low, interval.high, interval.n) == (0.5, 0.0, 1.0, 2)


def test_bootstrap_of_a_constant_is_degenerate_and_shrinks_with_questions():
    assert bootstrap_interval([[0.3] * 5, [0.3] * 5]).low == pytest.approx(0.3)
    few = bootstrap_interval([[0.0, 1.0] * 5])
    many = bootstrap_interval([[0.0, 1.0] * 200])
    assert few.mean == many.mean == 0.5
    # Binomial-like: the width falls as 1/sqrt(questions) (10 -> 400: about 6x narrower).
    ratio = (few.high - few.low) / (many.high - many.low)
    assert 4.5 < ratio < 8.0
    # And it is close to the normal approximation 2 * 1.96 * sqrt(0.25 / 400) = 0.098.
    assert many.high - many.low == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 400), rel=0.15)


def test_paired_bootstrap():
    same = [[0.0, 1.0, 0.5, 0.25]]
    assert paired_bootstrap(same, same).low == 0.0 == paired_bootstrap(same, same).high
    better = [[1.0, 1.0, 0.5, 0.25]]  # one question gained: +0.25 in the mean
    interval = paired_bootstrap(better, same, resamples=4000)
    assert interval.mean == pytest.approx(0.25) and interval.low >= 0.0 and interval.high <= 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([[1.0]], [[1.0, 0.0]])
