"""Intervals for a results table: over seeds (Student's t) and over questions (bootstrap), and
paired differences against a baseline.

* ``mean_interval(x)``: x̄ ± t_{n-1, 1-α/2} · s / √n, with s the sample standard deviation
  (n - 1 in the denominator); n = 1 gives no interval.
* ``bootstrap_interval(C)``: C is seeds × questions (each cell a question's fraction correct in
  that seed's run); the statistic is the grand mean, and the interval the percentile interval of
  that mean over ``resamples`` draws of the questions with replacement (the same draw for every
  seed, since all seeds answer the same questions).
* ``paired_difference(a, b)``: per seed d_s = a_s − b_s, then ``mean_interval(d)``: pairing by seed
  removes what the seed does to both (data order, initial sampling).
* ``paired_bootstrap(A, B)``: the bootstrap of mean(A) − mean(B) with the same question draw for both.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None      # None: not enough data for an interval
    high: float | None
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and Student-t interval of ``values`` (see module docstring)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, None, None, int(x.size))
    half = t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


def _as_matrix(cells: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(cells, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError("expected seeds x questions (at least one question)")
    return matrix


def _draws(n_questions: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_questions, size=(resamples, n_questions))


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(stats, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def bootstrap_interval(cells: Sequence[Sequence[float]], level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> Interval:
    """Grand mean of seeds × questions and its bootstrap interval over questions."""
    matrix = _as_matrix(cells)
    draws = _draws(matrix.shape[1], resamples, seed)
    stats = matrix[:, draws].mean(axis=(0, 2))           # (resamples,)
    return Interval(float(matrix.mean()), *_percentiles(stats, level), matrix.shape[1])


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of a_s − b_s over paired seeds, with its t interval."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in number: {len(a)} and {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b)], level)


def paired_bootstrap(a_cells: Sequence[Sequence[float]], b_cells: Sequence[Sequence[float]], level: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> Interval:
    """mean(A) − mean(B) over the same questions, bootstrap over questions (one draw for both)."""
    a, b = _as_matrix(a_cells), _as_matrix(b_cells)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two variants answered different numbers of questions: {a.shape[1]} and {b.shape[1]}")
    draws = _draws(a.shape[1], resamples, seed)
    stats = a[:, draws].mean(axis=(0, 2)) - b[:, draws].mean(axis=(0, 2))
    return Interval(float(a.mean() - b.mean()), *_percentiles(stats, level), a.shape[1])
