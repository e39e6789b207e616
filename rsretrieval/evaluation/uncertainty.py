"""How sure is a number? Bootstrap confidence intervals over queries and paired tests between methods.

All functions work on per-query ranks (the ``rank`` column of a cell's per-query Parquet), so they
need no rescoring. A query's contribution to mR is the mean over K in (1, 5, 10) of 100 * [rank <= K],
and mR is the mean of those contributions; R@K is the mean of 100 * [rank <= K].

* :func:`bootstrap_ci`: percentile bootstrap over queries (resampled with replacement) for every R@K
  and mR, vectorised with numpy in blocks of resamples (memory bounded for any query count).
* :func:`paired_permutation_test` / :func:`paired_bootstrap_test`: does method A beat the baseline on
  *the same queries*? One-sided p-values for mR (or one R@K). The permutation test flips the sign of
  each query's difference at random (exchangeability under H0: A and B are equally good); the bootstrap
  resamples queries and counts how often the difference is <= 0.
* :func:`significant_summary`: the thesis' "% above baseline" and "mean % gain" counting only wins
  with p < alpha: a non-significant gain counts as no gain, a loss still counts as a loss.

No correction for multiple comparisons is applied: with many cells, expect about alpha of the
non-significant ones to look significant by chance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

BLOCK_ELEMENTS = 4_000_000  # resamples x queries drawn at once (32 MB of int64 indices)


def hit_matrix(ranks: np.ndarray, ks: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Per-query metric contributions (percent) and their names: 'R@K' for each K, plus 'mR' when
    ks holds 1, 5 and 10. Shapes: ranks (Q,) -> (Q, len(names))."""
    ranks = np.asarray(ranks)
    cols = [100.0 * (ranks <= k) for k in ks]
    names = [f"R@{k}" for k in ks]
    if {1, 5, 10} <= set(ks):
        cols.append(100.0 * np.mean([ranks <= k for k in (1, 5, 10)], axis=0))
        names.append("mR")
    return np.stack(cols, axis=1).astype(np.float64) if len(ranks) else np.zeros((0, len(names))), names


def query_scores(ranks: np.ndarray, ks: Sequence[int], metric: str = "mR") -> np.ndarray:
    """One metric's per-query contribution (its mean over queries is the metric). Shape (Q,)."""
    hits, names = hit_matrix(ranks, ks)
    if metric not in names:
        raise KeyError(f"metric {metric!r} not computable from ks={list(ks)} (available: {names})")
    return hits[:, names.index(metric)]


def _resample_blocks(n: int, n_resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Index arrays of shape (b, n), b resamples at a time, until n_resamples are drawn."""
    block = max(1, BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, block):
        yield rng.integers(0, n, size=(min(block, n_resamples - start), n))


def bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the rows of ``values``.

    Shapes: values (Q,) or (Q, M) -> (n_resamples,) or (n_resamples, M)."""
    rng = np.random.default_rng(seed)
    out = [values[idx].mean(axis=1) for idx in _resample_blocks(len(values), n_resamples, rng)]
    return np.concatenate(out, axis=0)


def bootstrap_ci(ranks: np.ndarray, ks: Sequence[int], n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of every R@K (and mR) over queries: metric -> (low, high), in percent."""
    hits, names = hit_matrix(ranks, ks)
    if len(hits) == 0 or n_resamples < 1:
        return {n: (float("nan"), float("nan")) for n in names}
    boot = bootstrap_means(hits, n_resamples, seed)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return {n: (float(lo[i]), float(hi[i])) for i, n in enumerate(names)}


def _paired_diff(a_ranks: np.ndarray, b_ranks: np.ndarray, ks: Sequence[int], metric: str) -> np.ndarray:
    a_ranks, b_ranks = np.asarray(a_ranks), np.asarray(b_ranks)
    if a_ranks.shape != b_ranks.shape:
        raise ValueError(f"paired test needs the same queries: {a_ranks.shape} vs {b_ranks.shape} ranks")
    return query_scores(a_ranks, ks, metric) - query_scores(b_ranks, ks, metric)


def paired_permutation_test(a_ranks: np.ndarray, b_ranks: np.ndarray, ks: Sequence[int], n_resamples: int = 1000,
                            seed: int = 0, metric: str = "mR") -> float:
    """One-sided p-value of "A beats B" on the same queries (sign-flip permutation test of the mean
    per-query difference); identical rankers give p = 1. The +1 in numerator and denominator keeps the
    p-value valid (never 0) for a finite number of permutations."""
    d = _paired_diff(a_ranks, b_ranks, ks, metric)
    if len(d) == 0:
        return float("nan")
    observed = d.mean()
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_ELEMENTS // len(d))
    count = 0
    for start in range(0, n_resamples, block):
        signs = rng.integers(0, 2, size=(min(block, n_resamples - start), len(d)), dtype=np.int8) * 2 - 1
        count += int(((signs * d).mean(axis=1) >= observed - 1e-12).sum())
    return (1 + count) / (1 + n_resamples)


def paired_bootstrap_test(a_ranks: np.ndarray, b_ranks: np.ndarray, ks: Sequence[int], n_resamples: int = 1000,
                          seed: int = 0, metric: str = "mR", confidence: float = 0.95) -> dict[str, float]:
    """Paired bootstrap of A - B over the same queries: one-sided p-value (share of resamples where A does
    not beat B, +1 corrected) and the CI of the difference in metric points."""
    d = _paired_diff(a_ranks, b_ranks, ks, metric)
    if len(d) == 0:
        return {"p": float("nan"), "diff": float("nan"), "low": float("nan"), "high": float("nan")}
    boot = bootstrap_means(d, n_resamples, seed)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return {"p": float((1 + (boot <= 0).sum()) / (1 + n_resamples)), "diff": float(d.mean()),
            "low": float(lo), "high": float(hi)}


def paired_test(a_ranks: np.ndarray, b_ranks: np.ndarray, ks: Sequence[int], method: str = "permutation",
                n_resamples: int = 1000, seed: int = 0, metric: str = "mR") -> float:
    """The one-sided p-value of "A beats B" with the configured test ('permutation' or 'bootstrap')."""
    if method == "permutation":
        return paired_permutation_test(a_ranks, b_ranks, ks, n_resamples, seed, metric)
    if method == "bootstrap":
        return paired_bootstrap_test(a_ranks, b_ranks, ks, n_resamples, seed, metric)["p"]
    raise ValueError(f"unknown paired test {method!r}: use 'permutation' or 'bootstrap'")


def significant_summary(method: np.ndarray, baseline: np.ndarray, p: np.ndarray, alpha: float = 0.05
                        ) -> tuple[float, float]:
    """(% of rows where the method beats the baseline with p < alpha, mean gain in points where a
    non-significant gain counts as 0 and a loss stays a loss). Rows with a missing value are skipped."""
    method, baseline, p = (np.asarray(x, dtype=np.float64) for x in (method, baseline, p))
    ok = ~(np.isnan(method) | np.isnan(baseline) | np.isnan(p))
    if not ok.any():
        return float("nan"), float("nan")
    gain = method[ok] - baseline[ok]
    win = (gain > 0) & (p[ok] < alpha)
    return float(100.0 * win.mean()), float(np.where(win, gain, np.minimum(gain, 0.0)).mean())
