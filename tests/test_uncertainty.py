"""Bootstrap CIs and paired tests against naive loops and cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from rsretrieval.evaluation import uncertainty
from rsretrieval.evaluation.metrics import mean_recall, recall_at_k
from rsretrieval.evaluation.uncertainty import (
    bootstrap_ci,
    bootstrap_means,
    hit_matrix,
    paired_bootstrap_test,
    paired_permutation_test,
    paired_test,
    significant_summary,
)

KS = [1, 5, 10]


def ranks(n: int, seed: int, scale: float = 8.0) -> np.ndarray:
    return 1 + np.random.default_rng(seed).geometric(1 / scale, size=n) - 1


def test_hit_matrix_means_are_the_metrics() -> None:
    r = ranks(500, 0)
    hits, names = hit_matrix(r, KS)
    rec = recall_at_k(r, KS)
    assert names == ["R@1", "R@5", "R@10", "mR"]
    assert hits.mean(axis=0) == pytest.approx([rec[1], rec[5], rec[10], mean_recall(rec)])


def test_bootstrap_means_match_a_naive_loop_and_blocks_do_not_matter(monkeypatch) -> None:
    values = np.random.default_rng(1).normal(size=(300, 2))
    fast = bootstrap_means(values, 50, seed=3)
    rng = np.random.default_rng(3)
    naive = np.stack([values[rng.integers(0, 300, size=300)].mean(axis=0) for _ in range(50)])
    assert fast == pytest.approx(naive)
    monkeypatch.setattr(uncertainty, "BLOCK_ELEMENTS", 300 * 7)  # 7 resamples per block
    assert bootstrap_means(values, 50, seed=3) == pytest.approx(naive)


def test_ci_contains_point_estimate_and_narrows_with_more_queries() -> None:
    widths = []
    for n in (100, 1600):
        r = ranks(n, 2)
        ci = bootstrap_ci(r, KS, n_resamples=1000, seed=0)
        rec = recall_at_k(r, KS)
        point = {**{f"R@{k}": rec[k] for k in KS}, "mR": mean_recall(rec)}
        for name, (lo, hi) in ci.items():
            assert lo <= point[name] <= hi, (name, lo, point[name], hi)
        widths.append(ci["mR"][1] - ci["mR"][0])
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(16) = 1/4
    assert bootstrap_ci(ranks(100, 2), KS, seed=5) == bootstrap_ci(ranks(100, 2), KS, seed=5)  # seeded


def test_ci_coverage_is_about_nominal() -> None:
    """Draw many query sets from one known ranker: ~95 % of their CIs hold the true R@5."""
    p5 = 1 - (1 - 1 / 8.0) ** 5  # P(geometric rank <= 5)
    covered = 0
    for s in range(200):
        lo, hi = bootstrap_ci(ranks(400, 100 + s), [5], n_resamples=400, seed=s)["R@5"]
        covered += lo <= 100 * p5 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_permutation_test_separates_better_from_identical() -> None:
    base = ranks(300, 4, scale=20)
    better = np.maximum(1, base // 4)  # every query ranked at least as well, most much better
    assert paired_permutation_test(better, base, KS, 1000, seed=0) < 0.01
    assert paired_permutation_test(base, base, KS, 1000, seed=0) == 1.0
    assert paired_permutation_test(base, better, KS, 1000, seed=0) > 0.9  # A is worse: one-sided
    other = ranks(300, 5, scale=20)  # as good as base, different queries hit
    assert paired_permutation_test(other, base, KS, 1000, seed=0) > 0.05 or \
        paired_permutation_test(base, other, KS, 1000, seed=0) > 0.05


def test_permutation_test_matches_naive_enumeration() -> None:
    """Small n: the exact sign-flip distribution versus the sampled one."""
    import itertools

    a, b = np.array([1, 3, 12, 1, 7, 2]), np.array([4, 3, 15, 2, 1, 11])
    d = uncertainty.query_scores(a, KS) - uncertainty.query_scores(b, KS)
    exact = np.mean([np.mean(np.array(s) * d) >= d.mean() - 1e-12 for s in itertools.product([-1, 1], repeat=6)])
    assert paired_permutation_test(a, b, KS, 20000, seed=0) == pytest.approx(exact, abs=0.02)


def test_paired_bootstrap_and_dispatch() -> None:
    base = ranks(300, 6, scale=20)
    better = np.maximum(1, base // 4)
    res = paired_bootstrap_test(better, base, KS, 1000, seed=0)
    assert res["p"] < 0.01 and res["low"] > 0 and res["low"] <= res["diff"] <= res["high"]
    assert paired_test(better, base, KS, "bootstrap", 1000, 0) == res["p"]
    with pytest.raises(ValueError, match="same queries"):
        paired_permutation_test(base, base[:-1], KS)
    with pytest.raises(ValueError, match="unknown paired test"):
        paired_test(base, base, KS, "t-test")


def test_significant_summary() -> None:
    method = np.array([50.0, 40.0, 30.0, 20.0])
    base = np.array([45.0, 38.0, 35.0, 20.0])
    p = np.array([0.01, 0.20, 0.99, 1.0])
    above, gain = significant_summary(method, base, p, alpha=0.05)
    assert above == 25.0  # only the first row is a significant win (the thesis' rule says 50 %)
    assert gain == pytest.approx((5.0 + 0.0 - 5.0 + 0.0) / 4)


def test_thesis_tables_gain_significant_rows_and_cis() -> None:
    import pandas as pd

    from rsretrieval.evaluation.thesis_tables import SIGNIFICANT_ROWS, mode_table, summary_metrics, tables_markdown

    rows = []
    for bb, (v2v, s2v, p) in {"A": (40.0, 45.0, 0.01), "B": (50.0, 52.0, 0.30), "C": (60.0, 58.0, 0.90)}.items():
        for mode, mr, pv in (("v2v", v2v, float("nan")), ("s2v", s2v, p)):
            rows.append({"dataset": "d", "variant": "original", "backbone": bb, "mode": mode, "crops": "-",
                         "graphs": "-", "similarity": "x", "training": "none", "mR": mr, "R@1": mr / 2, "R@5": mr, "R@10": 1.5 * mr, "p_vs_v2v": pv,
                         "mR_ci_low": mr - 2, "mR_ci_high": mr + 2})
    t = mode_table(pd.DataFrame(rows), "original").set_index("dataset")
    assert t.loc["% above baseline", "S2V"] == pytest.approx(200 / 3)  # the thesis' rule: 2 of 3 rows
    assert t.loc[SIGNIFICANT_ROWS[0], "S2V"] == pytest.approx(100 / 3)  # only backbone A is significant
    assert t.loc[SIGNIFICANT_ROWS[1], "S2V"] == pytest.approx((5 + 0 - 2) / 3)
    assert summary_metrics(pd.DataFrame(rows))["tables/original/S2V/above_baseline_significant_pct"] == \
        pytest.approx(100 / 3)
    md = tables_markdown(pd.DataFrame(rows))
    assert "45.0 [43.0, 47.0]" in md and "% above baseline (significant)" in md
    without_p = pd.DataFrame(rows).drop(columns=["p_vs_v2v", "mR_ci_low", "mR_ci_high"])
    assert len(mode_table(without_p, "original")) == 3 + 2  # old tables unchanged
