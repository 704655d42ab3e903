"""The measures of mobility and inequality, as plain functions of arrays: the Gini
coefficient, percentile ranks, the rank-rank slope and the row shares of a transition
matrix. They import nothing of the simulation, so the engine (the yearly Gini of the
time series) and the audit (credsim.generations.audit) share them."""

from __future__ import annotations

import numpy as np


def gini(x: np.ndarray) -> float | None:
    """Gini coefficient of non-negative values (shifted to start at 0 if any is negative,
    since scores and savings can be negative): sum_i (2i - n - 1) x_(i) / (n sum x) over
    the sorted values x_(1) <= ... <= x_(n); None for no values."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    if len(x) == 0:
        return None
    if x[0] < 0:
        x = x - x[0]
    total = x.sum()
    if total <= 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def percentile_ranks(x: np.ndarray) -> np.ndarray:
    """Each value's percentile rank in (0, 1]: the share of values at or below it, ties
    given the mean of their ranks (Chetty et al. 2014 rank within the sample: rank / n,
    with the mid-rank for ties)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(1, n + 1)
    # Ties: every member of a run of equal values takes the mean of the run's ranks.
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], n]
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks / n


def rank_rank_slope(child: np.ndarray, parents: np.ndarray,
                    cohort: np.ndarray | None = None) -> float | None:
    """The OLS slope of the children's percentile rank on their parents' percentile rank
    (Chetty, Hendren, Kline and Saez 2014): each child ranked among the children of the
    same `cohort` (birth year), each parent value among those of the same cohort's
    children, the pairs then pooled; all in one cohort if `cohort` is None. None with
    fewer than two pairs or when the parents' ranks do not vary."""
    child, parents = np.asarray(child, np.float64), np.asarray(parents, np.float64)
    cohort = np.zeros(len(child)) if cohort is None else np.asarray(cohort)
    keep = np.isfinite(child) & np.isfinite(parents)
    child, parents, cohort = child[keep], parents[keep], cohort[keep]
    if len(child) < 2:
        return None
    rc, rp = np.empty(len(child)), np.empty(len(child))
    for k in np.unique(cohort):
        mine = cohort == k
        rc[mine], rp[mine] = percentile_ranks(child[mine]), percentile_ranks(parents[mine])
    var = float(np.var(rp))
    if var <= 0:
        return None
    return float(np.mean((rc - rc.mean()) * (rp - rp.mean())) / var)


def row_shares(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The transition matrix of the pairs (rows[i], cols[i]), codes 0..n-1: (row shares,
    each row summing to 1 where it has any pair, NaN where it has none; the count of
    pairs in each row)."""
    counts = np.zeros((n_rows, n_cols))
    np.add.at(counts, (np.asarray(rows, np.int64), np.asarray(cols, np.int64)), 1.0)
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = counts / totals[:, None]
    return shares, totals
