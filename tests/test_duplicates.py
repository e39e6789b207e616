"""Duplicate-aware metrics against brute force and constructed cases where standard R@1 must fail."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rsretrieval.evaluation.duplicates import (
    dedup_mask,
    duplicate_counts,
    multi_positive_lists,
    multi_positive_positives,
    multi_positive_ranks,
    recall_ceiling,
)
from rsretrieval.evaluation.metrics import Positives, rank_queries, recall_at_k

# three images; "a farm" describes images 0 and 1, image 0 has it twice (once with different spacing/case)
TEXTS = ["A farm .", "a  farm", "a farm", "a river", "a port", "a port."]
GOLD = np.array([0, 0, 1, 1, 2, 2])


def text_ranker(texts: list[str], n_images: int, seed: int = 0) -> np.ndarray:
    """Scores of a ranker that sees only the (normalised) text: equal texts give equal rows."""
    from rsretrieval.evaluation.duplicates import text_groups

    groups = text_groups(texts)
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(groups.max() + 1, n_images))
    return table[groups]


def test_dedup_and_multi_positive_lists() -> None:
    assert dedup_mask(TEXTS, GOLD).tolist() == [True, False, True, True, True, False]
    lists = multi_positive_lists(TEXTS, GOLD)
    assert lists == [[0, 1], [0, 1], [1, 0], [1], [2], [2]]
    c = duplicate_counts(TEXTS, GOLD)
    assert c == {"queries": 6, "distinct_texts": 3, "dedup_queries": 4, "cross_image_texts": 1,
                 "queries_with_other_positives": 3}


def test_duplicates_cap_standard_r1_but_not_multi_positive() -> None:
    """A perfect text ranker for 'a farm' can put only one of its two images first."""
    scores = np.full((6, 3), -1.0)
    scores[[0, 1, 2], 0] = 1.0  # 'a farm' -> image 0 first, image 1 second
    scores[[0, 1, 2], 1] = 0.5
    scores[3, 1] = 1.0
    scores[[4, 5], 2] = 1.0
    t = torch.tensor(scores)
    std = rank_queries(lambda s, e: t[s:e], Positives.from_gold(GOLD, 3), top_k=3)
    assert recall_at_k(std.ranks, [1])[1] == pytest.approx(100 * 5 / 6)  # query 2 (gold image 1) misses
    mp = multi_positive_ranks(std.ranks, std.topk_idx, std.topk_scores, multi_positive_lists(TEXTS, GOLD))
    assert recall_at_k(mp, [1])[1] == 100.0
    assert recall_ceiling(TEXTS, GOLD, [1])[1] == pytest.approx(100 * 5 / 6)


@pytest.mark.parametrize("seed", range(5))
def test_multi_positive_ranks_from_topk_match_full_rescoring(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_img, n_q = 12, 40
    texts = [f"text {rng.integers(0, 15)}" for _ in range(n_q)]
    gold = rng.integers(0, n_img, size=n_q)
    scores = torch.tensor(rng.normal(size=(n_q, n_img)))
    std = rank_queries(lambda s, e: scores[s:e], Positives.from_gold(gold, n_img), top_k=5)
    full = rank_queries(lambda s, e: scores[s:e], multi_positive_positives(texts, gold, n_img), top_k=5)
    mp = multi_positive_ranks(std.ranks, std.topk_idx, std.topk_scores, multi_positive_lists(texts, gold))
    assert (mp <= std.ranks).all()
    for k in (1, 2, 3, 5):  # exact for every K <= the saved top-k
        assert recall_at_k(mp, [k]) == recall_at_k(full.ranks, [k])


@pytest.mark.parametrize("seed", range(8))
def test_grouped_multi_positive_ranks_equal_the_list_version(seed: int) -> None:
    """The vectorised version (positives as text group + gold image, O(Q x k) memory) gives the ranks of
    the per-query loop over positive lists, ties in the saved top-k included."""
    from rsretrieval.evaluation.duplicates import multi_positive_ranks_grouped, text_groups

    rng = np.random.default_rng(seed)
    n_img, n_q = 15, 60
    texts = [f"text {rng.integers(0, 8)}" for _ in range(n_q)]
    gold = rng.integers(0, n_img, size=n_q)
    scores = torch.tensor(np.round(rng.normal(size=(n_q, n_img)), 1))  # rounded: many exact ties
    std = rank_queries(lambda s, e: scores[s:e], Positives.from_gold(gold, n_img), top_k=4)
    want = multi_positive_ranks(std.ranks, std.topk_idx, std.topk_scores, multi_positive_lists(texts, gold))
    got = multi_positive_ranks_grouped(std.ranks, std.topk_idx, std.topk_scores, text_groups(texts), gold)
    np.testing.assert_array_equal(got, want)
    assert (got < np.asarray(std.ranks)).any()  # the shortcut changes some ranks


def brute_force_ceiling(texts: list[str], gold: np.ndarray, n_images: int, k: int) -> float:
    """Max standard R@K over every text-only ranker: each distinct text gets its own image order."""
    from rsretrieval.evaluation.duplicates import text_groups

    groups = text_groups(texts)
    hits = 0
    for g in set(groups.tolist()):
        g_gold = gold[groups == g]
        hits += max(int(np.isin(g_gold, perm[:k]).sum()) for perm in itertools.permutations(range(n_images)))
    return 100.0 * hits / len(texts)


@pytest.mark.parametrize("seed", range(4))
def test_ceiling_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_img = 5
    texts = [f"t{rng.integers(0, 4)}" for _ in range(18)]
    gold = rng.integers(0, n_img, size=18)
    ceiling = recall_ceiling(texts, gold, [1, 2, 3])
    for k in (1, 2, 3):
        assert ceiling[k] == pytest.approx(brute_force_ceiling(texts, gold, n_img, k))
    # no text-only ranker beats it (random ones here), and the best one reaches it
    for s in range(20):
        sc = torch.tensor(text_ranker(texts, n_img, s))
        r = rank_queries(lambda a, b: sc[a:b], Positives.from_gold(gold, n_img), top_k=3).ranks
        assert recall_at_k(r, [1])[1] <= ceiling[1] + 1e-9


def test_ucm_fixture_duplicates_are_within_image() -> None:
    """The committed UCM test sample repeats 5 captions of the same image: dedup drops them, the ceiling
    stays 100 % (only a text shared by two images caps R@1)."""
    from pathlib import Path

    from rsretrieval.data.karpathy import read_karpathy

    ucm = Path(__file__).parent / "data" / "ucm"
    ds = read_karpathy(ucm / "dataset.json", ucm)
    ids = ds.images["image_id"].to_pylist()
    gold = np.array([ids.index(i) for i in ds.captions["image_id"].to_pylist()])
    texts = ds.captions["text"].to_pylist()
    counts = duplicate_counts(texts, gold)
    assert counts["queries"] == 105 and counts["dedup_queries"] == 100 and counts["cross_image_texts"] == 0
    assert recall_ceiling(texts, gold)[1] == 100.0


def test_trust_columns_from_per_query_files(tmp_path) -> None:
    """add_trust_columns reads each cell's per-query Parquet: CIs, duplicate-aware values, p vs V2V."""
    import pyarrow.parquet as pq

    from rsretrieval.config import EvalConfig
    from rsretrieval.evaluation.metrics import RankResult
    from rsretrieval.evaluation.retrieval import per_query_table
    from rsretrieval.pipelines.benchmark.cells import per_query_name
    from rsretrieval.pipelines.benchmark.trust import add_trust_columns

    rng = np.random.default_rng(0)
    n_img, n_q = 30, 200
    texts = [f"text {rng.integers(0, 60)}" for _ in range(n_q)]
    gold = rng.integers(0, n_img, size=n_q)
    image_ids = [f"i{j}" for j in range(n_img)]
    cap_ids = [f"c{q}" for q in range(n_q)]
    base = rng.normal(size=(n_q, n_img))
    rows = []
    for mode, boost in (("v2v", 0.0), ("s2v", 3.0)):
        s = base.copy()
        s[np.arange(n_q), gold] += boost
        t = torch.tensor(s)
        r = rank_queries(lambda a, b: t[a:b], Positives.from_gold(gold, n_img), top_k=10)
        keys = {"dataset": "d", "variant": "original", "backbone": "bb", "mode": mode, "crops": "-", "graphs": "-",
                "similarity": "cosine", "training": "none"}
        pq.write_table(per_query_table(cap_ids, gold, image_ids, RankResult(r.ranks, r.topk_idx, r.topk_scores), keys),
                       tmp_path / f"{per_query_name(keys)}.parquet")
        rec = recall_at_k(r.ranks, [1, 5, 10])
        rows.append({**keys, "R@1": rec[1], "mR": sum(rec.values()) / 3})
    notes = add_trust_columns(rows, tmp_path, {"d": dict(zip(cap_ids, texts))}, EvalConfig(bootstrap_resamples=500))
    v2v, s2v = rows
    assert v2v["mR_ci_low"] <= v2v["mR"] <= v2v["mR_ci_high"] and "p_vs_v2v" not in v2v
    assert s2v["p_vs_v2v"] < 0.01
    assert v2v["ceiling_R@1"] == pytest.approx(recall_ceiling(texts, gold, [1])[1]) and v2v["ceiling_R@1"] < 100
    assert v2v["R@1"] <= v2v["mp_R@1"] and v2v["dedup_queries"] == dedup_mask(texts, gold).sum()
    assert len(notes) == 2
