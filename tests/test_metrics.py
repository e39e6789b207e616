"""Chunked ranking and recall against a naive full-matrix reference (open_clip style)."""

import numpy as np
import pytest
import torch

from rsretrieval.evaluation.metrics import (
    Positives,
    mean_recall,
    mean_recall_6,
    rank_queries,
    recall_at_k,
)
from rsretrieval.matching.cosine import CosineScorer


def naive_ranks(scores: np.ndarray, positives: list[list[int]]) -> np.ndarray:
    """Sort every row; rank = position of the first positive, ties against the query."""
    ranks = []
    for q, row in enumerate(scores):
        pos = set(positives[q])
        # sort by score descending, positives after negatives at equal score
        order = sorted(range(len(row)), key=lambda d: (-row[d], d in pos))
        ranks.append(next(i for i, d in enumerate(order) if d in pos) + 1)
    return np.array(ranks)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_t2i_matches_naive(chunk: int) -> None:
    rng = np.random.default_rng(0)
    images, caps_per_image, dim = 40, 5, 16
    img = rng.normal(size=(images, dim)).astype(np.float32)
    gold = np.repeat(np.arange(images), caps_per_image)
    txt = img[gold] + 1.5 * rng.normal(size=(len(gold), dim)).astype(np.float32)
    scorer = CosineScorer(txt, img)
    res = rank_queries(scorer, Positives.from_gold(gold, images), chunk_size=chunk, top_k=10)
    full = scorer(0, len(gold)).numpy()
    expected = naive_ranks(full, [[g] for g in gold])
    np.testing.assert_array_equal(res.ranks, expected)
    np.testing.assert_array_equal(res.topk_idx[:, 0], full.argmax(1))
    r = recall_at_k(res.ranks)
    assert r[1] == pytest.approx(100 * np.mean(expected == 1))
    assert 0 < r[1] < r[5] < r[10] < 100  # the test data is neither trivial nor hopeless


def test_i2t_multi_positive_matches_naive() -> None:
    rng = np.random.default_rng(1)
    images, cpi, dim = 30, 5, 8
    img = rng.normal(size=(images, dim)).astype(np.float32)
    gold = np.repeat(np.arange(images), cpi)
    txt = img[gold] + rng.normal(size=(len(gold), dim)).astype(np.float32)
    lists = [list(np.flatnonzero(gold == i)) for i in range(images)]
    scorer = CosineScorer(img, txt)
    res = rank_queries(scorer, Positives.from_lists(lists, len(gold)), chunk_size=4)
    np.testing.assert_array_equal(res.ranks, naive_ranks(scorer(0, images).numpy(), lists))


def test_ties_are_broken_against_the_query() -> None:
    def constant(start: int, end: int) -> torch.Tensor:
        return torch.zeros(end - start, 10)

    res = rank_queries(constant, Positives.from_gold(np.arange(10), 10))
    assert (res.ranks == 10).all()
    assert recall_at_k(res.ranks)[5] == 0.0


def test_float_noise_is_a_tie_and_the_rerank_agrees() -> None:
    """Two computations of one score differ in the last bits: within TIE_RTOL it is a tie (against the
    query) on the full-matrix path and on the rerank path alike; a real margin still wins."""
    from rsretrieval.search.rerank import rerank
    from rsretrieval.search.topk import TopK

    gold_score = np.float32(3.0)
    row = np.array([gold_score, np.nextafter(gold_score, np.float32(0)), 3.0 - 1e-3, 3.0 + 1e-3], np.float32)
    res = rank_queries(lambda a, b: torch.from_numpy(row[None]), Positives.from_gold(np.array([0]), 4))
    assert res.ranks[0] == 3  # the 1-ulp lower score ties; 3.001 beats; 2.999 does not
    shortlist = TopK(np.arange(4)[None], row[None])
    assert rerank(shortlist, lambda qi, di: row[di], np.array([0])).ranks[0] == 3


def test_mean_recall_definitions() -> None:
    t2i = {1: 10.0, 5: 40.0, 10: 70.0}
    i2t = {1: 20.0, 5: 50.0, 10: 80.0}
    assert mean_recall(t2i) == pytest.approx(40.0)
    assert mean_recall_6(t2i, i2t) == pytest.approx(45.0)


def test_wrong_block_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        rank_queries(lambda s, e: torch.zeros(e - s, 3), Positives.from_gold([0, 1], 4))


def test_query_without_positive_is_an_error() -> None:
    with pytest.raises(ValueError, match="query 1 has no positive"):
        Positives.from_lists([[0], []], 3)
