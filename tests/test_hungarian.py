"""Hungarian G2G scoring: brute-force optimum, batched scorer == per-pair reference, shortcuts exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rsretrieval.config import HungarianConfig
from rsretrieval.matching.hungarian import HungarianScorer, hungarian_pair
from rsretrieval.matching.late_interaction import PackedVectors


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(eq: np.ndarray, ed: np.ndarray, normalise: str) -> float:
    """Best one-to-one assignment of min(Nq, Nd) pairs by enumerating every injection."""
    s = _unit(eq.astype(np.float64)) @ _unit(ed.astype(np.float64)).T
    if len(s) > s.shape[1]:
        s = s.T  # enumerate injections of the smaller side into the larger
    best = max(sum(s[i, p] for i, p in enumerate(perm)) for perm in itertools.permutations(range(s.shape[1]), len(s)))
    return best / (min(len(eq), len(ed)) if normalise == "matched" else len(eq))


def _graphs(rng: np.random.Generator, sizes: list[int], dim: int) -> list[np.ndarray]:
    return [rng.standard_normal((n, dim)).astype(np.float32) for n in sizes]


def _scorer(normalise: str = "matched", workers: int = 1, **kw) -> HungarianScorer:
    return HungarianScorer(HungarianConfig(normalise=normalise, workers=workers), **kw)


@pytest.mark.parametrize("normalise", ["matched", "query"])
@pytest.mark.parametrize("greedy", [None, True, False])
def test_matches_brute_force_on_tiny_graphs(normalise: str, greedy: bool | None) -> None:
    rng = np.random.default_rng(0)
    qs = _graphs(rng, [n for n in range(1, 6) for _ in range(3)], 4)  # dim 4: plenty of negative cosines
    ds = _graphs(rng, [n for n in range(1, 6) for _ in range(3)], 4)
    want = np.array([[_brute(q, d, normalise) for d in ds] for q in qs])
    ref = np.array([[hungarian_pair(q, d, normalise) for d in ds] for q in qs])
    got = _scorer(normalise, greedy=greedy).score(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds))
    assert (want < 0).any()  # negative similarities are exercised
    np.testing.assert_allclose(ref, want, atol=1e-9)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("normalise", ["matched", "query"])
@pytest.mark.parametrize("min1,greedy", [(True, None), (True, True), (False, False), (False, True)])
def test_shortlist_path_matches_brute_force(normalise: str, min1: bool, greedy: bool | None) -> None:
    """A shortlist of few documents per query takes the per-pair path (S from views of the rows): with every
    shortcut setting it gives the brute-force optimum of every pair."""
    rng = np.random.default_rng(7)
    qs = _graphs(rng, [n for n in range(1, 7) for _ in range(4)], 4)
    ds = _graphs(rng, [n for n in range(1, 7) for _ in range(6)], 4)
    pairs = np.stack([np.repeat(np.arange(len(qs)), 8),
                      np.concatenate([rng.choice(len(ds), 8, replace=False) for _ in qs])], 1)  # 8 of 36 docs each
    want = np.array([_brute(qs[a], ds[b], normalise) for a, b in pairs])
    scorer = _scorer(normalise, min1=min1, greedy=greedy)
    got = scorer.score(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds), shortlist=pairs)
    np.testing.assert_allclose(got, want, atol=1e-5)
    stats = scorer.last_stats
    assert stats["pairs_min1"] + stats["pairs_greedy"] + stats["pairs_lsa"] == len(pairs)
    # auto (None): graphs this small never pay for the distinct-argmax check pair by pair
    assert (stats["pairs_min1"] > 0) == min1 and (stats["pairs_greedy"] > 0) == bool(greedy)


def test_shortlist_auto_shortcut_on_pairs_where_it_pays() -> None:
    """Pair by pair, auto mode tries the distinct-argmax check only where the assignment it may skip costs
    more than the check (large, lopsided pairs), and the scores stay those of the reference."""
    rng = np.random.default_rng(5)
    qs = _graphs(rng, [3, 25, 25, 4], 64)
    ds = _graphs(rng, [6, 400, 400, 5], 64)
    pairs = np.array([[0, 0], [1, 1], [2, 2], [1, 2], [3, 3]])
    scorer = _scorer()
    got = scorer.score(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds), shortlist=pairs)
    np.testing.assert_allclose(got, [hungarian_pair(qs[a], ds[b]) for a, b in pairs], atol=1e-5)
    stats = scorer.last_stats
    assert stats["pairs_greedy"] + stats["pairs_lsa"] == 5
    assert stats["pairs_greedy"] >= 1  # 25 x 400: distinct argmaxes are likely (and then optimal)
    assert stats["pairs_lsa"] >= 2  # 3 x 6 and 4 x 5: the check is not tried


def test_shortlist_with_ties_matches_the_per_pair_reference() -> None:
    """Many queries with repeated node vectors and exact copies, so argmaxes tie: a shortcut taken on tied
    maxima must still reach the optimum; every score equals the per-pair float64 reference."""
    rng = np.random.default_rng(3)
    base = _graphs(rng, [3] * 40, 8)
    qs = [np.concatenate([g, g[:1]]) if i % 3 == 0 else g for i, g in  # a node repeated: ties
          enumerate(_graphs(rng, rng.integers(1, 9, 320).tolist(), 8))]
    ds = [np.concatenate([base[i % 40], g]) for i, g in enumerate(_graphs(rng, rng.integers(1, 12, 200).tolist(), 8))]
    ds += [q.copy() for q in qs[:40]]  # exact copies of queries: several equal maxima per row
    pairs = np.stack([np.repeat(np.arange(len(qs)), 10),
                      np.concatenate([rng.choice(len(ds), 10, replace=False) for _ in qs])], 1)
    pairs[np.arange(40) * 10, 1] = np.arange(200, 240)  # query i < 40 meets its own copy
    want = np.array([hungarian_pair(qs[a], ds[b]) for a, b in pairs])
    scorer = _scorer(greedy=True)  # the shortcut on every pair (auto mode skips it on graphs this small)
    got = scorer.score(PackedVectors.from_lists(qs), PackedVectors.from_lists(ds), shortlist=pairs)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert scorer.last_stats["pairs_greedy"] > 0 and scorer.last_stats["pairs_lsa"] > 0


def _random_case(seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray], PackedVectors, PackedVectors]:
    rng = np.random.default_rng(seed)
    qs = _graphs(rng, rng.integers(1, 12, 37).tolist(), 16)
    ds = _graphs(rng, rng.integers(1, 15, 29).tolist(), 16)
    return qs, ds, PackedVectors.from_lists(qs), PackedVectors.from_lists(ds)


@pytest.mark.parametrize("normalise", ["matched", "query"])
def test_full_matrix_equals_per_pair_loop_in_process(normalise: str) -> None:
    qs, ds, qp, dp = _random_case()
    want = np.array([[hungarian_pair(q, d, normalise) for d in ds] for q in qs])
    scorer = _scorer(normalise, block_bytes=4096)  # tiny blocks: many tasks, split size runs
    got = scorer.score(qp, dp)
    assert got.shape == (37, 29) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    stats = scorer.last_stats
    assert stats["pairs_min1"] + stats["pairs_greedy"] + stats["pairs_lsa"] == 37 * 29


def test_process_pool_matches_in_process_full_and_shortlist() -> None:
    qs, ds, qp, dp = _random_case(2)
    want = np.array([[hungarian_pair(q, d) for d in ds] for q in qs])
    pooled = _scorer(workers=2, block_bytes=4096, pairs_per_task=50, pool_min_pairs=0)
    np.testing.assert_allclose(pooled.score(qp, dp), want, atol=1e-5)
    pairs = np.random.default_rng(3).integers(0, [37, 29], (300, 2))
    np.testing.assert_allclose(pooled.score(qp, dp, shortlist=pairs), want[pairs[:, 0], pairs[:, 1]], atol=1e-5)
    assert pooled.last_stats["workers"] == 2


def test_small_problems_stay_in_process() -> None:
    """Below pool_min_pairs the spawn pool (seconds to start) is not worth it: same scores, no pool."""
    _, _, qp, dp = _random_case(2)
    scorer = _scorer(workers=2)
    got = scorer.score(qp, dp)
    assert scorer.last_stats["workers"] == 1
    np.testing.assert_allclose(got, _scorer(workers=1).score(qp, dp), atol=1e-7)


def test_shortlist_equals_full_matrix_entries() -> None:
    _, _, qp, dp = _random_case(4)
    scorer = _scorer(pairs_per_task=40)
    full = scorer.score(qp, dp)
    rng = np.random.default_rng(5)
    few = rng.integers(0, [37, 29], (200, 2))  # few documents per query: gathered subsets
    many = np.stack([np.zeros(29, np.int64), rng.permutation(29)], 1)  # one query, all documents: no gather
    pairs = np.concatenate([few, few[:10], many])  # duplicates too, in any order
    got = scorer.score(qp, dp, shortlist=pairs)
    assert got.shape == (len(pairs),)
    np.testing.assert_allclose(got, full[pairs[:, 0], pairs[:, 1]], atol=1e-6)  # other GEMM shapes: fp32 rounding
    assert scorer.score(qp, dp, shortlist=np.zeros((0, 2), np.int64)).shape == (0,)
    with pytest.raises(ValueError, match="out of range"):
        scorer.score(qp, dp, shortlist=[[0, 29]])


@pytest.mark.parametrize("normalise", ["matched", "query"])
def test_min_size_one_is_exact_max(normalise: str) -> None:
    rng = np.random.default_rng(6)
    single, multi = _graphs(rng, [1] * 5, 8), _graphs(rng, [1, 3, 4, 7], 8)
    for qs, ds in ((single, multi), (multi, single)):
        qp, dp = PackedVectors.from_lists(qs), PackedVectors.from_lists(ds)
        scorer = _scorer(normalise)
        got = scorer.score(qp, dp)
        want = np.array([[(_unit(q) @ _unit(d).T).max() / (1 if normalise == "matched" else len(q)) for d in ds]
                         for q in qs])
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert scorer.last_stats["pairs_min1"] == got.size and scorer.last_stats["pairs_lsa"] == 0
        np.testing.assert_allclose(_scorer(normalise, min1=False).score(qp, dp), got, atol=1e-6)


def test_hand_made_graphs() -> None:
    e = np.eye(4, dtype=np.float32)
    query = e[:3]  # three distinct nodes
    docs = [e[[2, 0, 1]],  # the same graph, nodes permuted
            e[:2],  # one query node missing
            np.concatenate([e[:3], e[3:] + e[:1]])]  # an extra node
    qp, dp = PackedVectors.from_lists([query]), PackedVectors.from_lists(docs)
    matched, per_query = _scorer("matched").score(qp, dp)[0], _scorer("query").score(qp, dp)[0]
    np.testing.assert_allclose(matched, [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(per_query, [1.0, 2 / 3, 1.0], atol=1e-6)
    assert per_query[1] < matched[1]
    assert hungarian_pair(query, docs[1], "query") == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        hungarian_pair(query, docs[1], "mean")


def test_dimension_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="dim"):
        _scorer().score(PackedVectors.from_lists([np.ones((2, 4))]), PackedVectors.from_lists([np.ones((2, 5))]))


def test_bench_reports_ratios_and_correctness() -> None:
    from rayjobs.bench_hungarian import main

    out = main(["--queries", "30", "--images", "20", "--q-nodes", "4", "--d-nodes", "6", "--dim", "16",
                "--workers", "1", "--loop-pairs", "100", "--check-pairs", "50", "--shortcut-queries", "5"])
    assert out["per_pair_loop"]["extrapolated"] is True
    assert out["ours_workers_1"]["speedup_vs_loop"] > 0 and out["ours_workers_1"]["pairs_per_s"] > 0
    assert out["correctness"]["max_abs_diff_vs_reference"] < 1e-5
    assert out["correctness"]["max_abs_diff_shortlist_vs_matrix"] < 1e-6
    assert out["shortcuts"]["min1_single_node_queries"]["fraction_pairs_shortcut"] == 1.0
    rerank = out["shortlist_rerank"]["k10"]
    assert rerank["pairs"] == 300 and rerank["speedup_vs_loop"] > 0 and rerank["max_abs_diff_vs_loop"] < 1e-5
    assert "k100" not in out["shortlist_rerank"]  # more candidates than images
