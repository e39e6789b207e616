"""Two-stage retrieval: bounded-memory exact top-k, pair scorers against the full-matrix scorers,
and the rerank's ranks against a naive restriction of the full matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsretrieval.evaluation.metrics import Positives, rank_queries
from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors
from rsretrieval.search.rerank import CosinePairs, GMNPairs, HungarianPairs, LateInteractionPairs, MixedPairs, rerank
from rsretrieval.search.topk import TopK, exact_topk, faiss_topk, shortlist_recall


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _sets(rng: np.random.Generator, n: int, dim: int, max_size: int) -> PackedVectors:
    return PackedVectors.from_lists([rng.normal(size=(rng.integers(1, max_size + 1), dim)).astype(np.float32)
                                     for _ in range(n)])


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    docs = _unit(rng.normal(size=(300, 16)))
    docs[10] = docs[3]  # exact duplicates: ties must break the same way whatever the blocks
    docs[250] = docs[3]
    queries = _unit(rng.normal(size=(70, 16)))
    return queries, docs


def test_exact_topk_matches_a_full_sort_for_any_blocking(data) -> None:
    queries, docs = data
    scores = torch.as_tensor(queries) @ torch.as_tensor(docs).T
    # reference: stable sort by descending score (ties -> lower index), like a full-matrix argsort
    want = np.argsort(-scores.numpy(), axis=1, kind="stable")[:, :12]
    for qb, db in [(4096, 65536), (7, 33), (70, 1), (1, 300)]:
        got = exact_topk(queries, docs, 12, query_block=qb, doc_block=db)
        np.testing.assert_array_equal(got.indices, want)
        np.testing.assert_allclose(got.scores, np.take_along_axis(scores.numpy(), want, 1), atol=1e-6)
    shards = [(0, docs[:100]), (100, docs[100:170]), (170, docs[170:])]  # e.g. Parquet shards read one by one
    np.testing.assert_array_equal(exact_topk(queries, iter(shards), 12, doc_block=64).indices, want)
    assert exact_topk(queries, docs[:5], 12).indices.shape == (70, 5)  # k > N: all documents


def test_faiss_topk_agrees_with_exact(data) -> None:
    pytest.importorskip("faiss", reason="faiss not installed (pip install 'rsretrieval[faiss]')")
    queries, docs = data
    exact, fast = exact_topk(queries, docs, 10), faiss_topk(queries, docs, 10)
    np.testing.assert_allclose(fast.scores, exact.scores, atol=1e-5)
    assert (fast.indices == exact.indices).mean() > 0.97  # identical except the order inside exact ties


def test_shortlist_recall() -> None:
    top = TopK(np.array([[1, 2], [3, 4], [0, 5]]), np.zeros((3, 2)))
    assert shortlist_recall(top, np.array([2, 9, 0])) == pytest.approx(200 / 3)


@pytest.mark.parametrize("aggregation", ["max-mean", "mean-mean"])
def test_late_interaction_pairs_equal_the_matrix(aggregation: str) -> None:
    rng = np.random.default_rng(1)
    q, d = _sets(rng, 25, 12, 6), _sets(rng, 40, 12, 9)
    full = LateInteractionScorer(q, d, aggregation)(0, 25).numpy()
    qi, di = rng.integers(0, 25, 500), rng.integers(0, 40, 500)
    np.testing.assert_allclose(LateInteractionPairs(q, d, aggregation, batch=64)(qi, di), full[qi, di], atol=1e-5)


def test_graph_pair_scorers_equal_the_matrix() -> None:
    from rsretrieval.config import GMNConfig, HungarianConfig
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.hungarian import HungarianScorer

    rng = np.random.default_rng(2)
    q, d = _sets(rng, 12, 8, 5), _sets(rng, 30, 8, 7)
    qi, di = rng.integers(0, 12, 200), rng.integers(0, 30, 200)
    hung = HungarianScorer(HungarianConfig(workers=1))
    np.testing.assert_allclose(HungarianPairs(hung, q, d)(qi, di), hung.score(q, d)[qi, di], atol=1e-5)
    gmn = GraphMatchingNetwork(GMNConfig(use_global=False), seed=0).eval()
    np.testing.assert_allclose(GMNPairs(gmn, q, d, batch=37)(qi, di), gmn.score_matrix(q, d).numpy()[qi, di], atol=1e-4)
    cos = rng.uniform(-1, 1, (12, 30)).astype(np.float32)
    vg = GraphMatchingNetwork(GMNConfig(use_global=True), seed=0).eval()
    pairs = GMNPairs(vg, q, d, cosine=lambda a, b: cos[a, b])
    np.testing.assert_allclose(pairs(qi, di), vg.score_matrix(q, d, torch.as_tensor(cos)).numpy()[qi, di], atol=1e-4)
    mixed = MixedPairs(lambda a, b: cos[a, b], HungarianPairs(hung, q, d), 0.3)
    np.testing.assert_allclose(mixed(qi, di), 0.7 * cos[qi, di] + 0.3 * hung.score(q, d)[qi, di], atol=1e-5)


def test_rerank_with_all_documents_is_the_full_matrix(data) -> None:
    """k = N: the same ranks as the full-matrix path, duplicates and ties included."""
    queries, docs = data
    gold = np.arange(70) * 4 % 300
    gold[:5] = 3  # gold with exact-duplicate twins (3, 10, 250): ties count against the query
    full = rank_queries(lambda s, e: torch.as_tensor(queries[s:e]) @ torch.as_tensor(docs).T,
                        Positives.from_gold(gold, 300), 32, 10)
    shortlist = exact_topk(queries, docs, 300)
    got = rerank(shortlist, CosinePairs(queries, docs), gold, 10, query_block=16)
    np.testing.assert_array_equal(got.ranks, full.ranks)
    assert (got.ranks[:5] >= 3).all()


def test_rerank_ranks_the_gold_inside_its_shortlist() -> None:
    """Naive reference: restrict the full late-interaction matrix to each query's shortlist columns."""
    rng = np.random.default_rng(3)
    q, d = _sets(rng, 50, 10, 4), _sets(rng, 120, 10, 6)
    global_q, global_d = _unit(q.means().numpy()), _unit(d.means().numpy())
    gold = rng.integers(0, 120, 50)
    k = 20
    shortlist = exact_topk(global_q, global_d, k)
    got = rerank(shortlist, LateInteractionPairs(q, d), gold, 5, query_block=7)
    full = LateInteractionScorer(q, d)(0, 50).numpy()
    for i in range(50):
        cand = shortlist.indices[i]
        if gold[i] not in cand:
            assert got.ranks[i] == k + 1
            continue
        s = full[i, cand]
        g = s[list(cand).index(gold[i])]
        assert got.ranks[i] == 1 + int(((s >= g) & (cand != gold[i])).sum())
        assert list(got.topk_idx[i]) == list(cand[np.argsort(-s, kind="stable")[:5]])
    assert 0 < shortlist_recall(shortlist, gold) < 100


def test_vector_store_round_trip_lookup_and_store_pairs(tmp_path) -> None:
    from rsretrieval.search.store import StorePairs, StoreWriter, VectorStore

    rng = np.random.default_rng(4)
    docs = _sets(rng, 90, 8, 5)
    ids = [f"img-{i}" for i in range(90)]
    w = StoreWriter(tmp_path / "store", 8, "test")
    for a, b in [(0, 40), (40, 41), (41, 90)]:  # uneven shards, one of a single item
        w.add(ids[a:b], docs.vectors[docs.offsets[a] : docs.offsets[b]].numpy(), docs.sizes[a:b].numpy())
    store = w.close()
    assert len(VectorStore(tmp_path / "store")) == 90
    np.testing.assert_array_equal(store.lookup(["img-77", "img-0", "img-40"]), [77, 0, 40])
    with pytest.raises(KeyError, match="'nope' is not in the store"):
        store.lookup(["img-1", "nope"])
    pick = np.array([41, 3, 3, 89, 40, 0])
    got = store.sets(pick)
    for j, i in enumerate(pick):
        np.testing.assert_array_equal(got.item(j).numpy(), docs.item(int(i)).numpy())
    q = _sets(rng, 10, 8, 3)
    qi, di = rng.integers(0, 10, 300), rng.integers(0, 90, 300)
    pairs = StorePairs(store, lambda sub, _: LateInteractionPairs(q, sub), batch=50)
    np.testing.assert_allclose(pairs(qi, di), LateInteractionPairs(q, docs)(qi, di), atol=1e-6)
    with pytest.raises(ValueError, match="every item needs >= 1 vector"):
        w.add(["x"], np.zeros((2, 8), np.float32), np.array([1]))


def test_bench_scale_runs_and_reports_ratios(tmp_path, capsys) -> None:
    from rayjobs.bench_scale import main

    df = main(["--sizes", "1500", "3000", "--queries", "40", "--k", "20", "--data-dir", str(tmp_path), "--out",
               str(tmp_path / "scale.csv")])
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "3,000 vs 1,500 images: ms/query x" in out and "full matrix + sort takes" in out
    for n, g in df.groupby("images"):
        s = g.set_index("stage")
        ceiling = s.loc["v2v shortlist (exact, blocked)", "shortlist_recall"]
        assert (g["R@10"].dropna() <= ceiling + 1e-9).all()  # no rerank beats its shortlist
        streamed = s.loc["v2v shortlist (queries and images from stores, result memory-mapped)"]
        assert streamed["same_candidate_sets"] and streamed["max_score_diff"] < 1e-5
        assert streamed["R@1"] == s.loc["v2v shortlist (exact, blocked)", "R@1"]
        assert s.loc["ordered store from embedding Parquet (2 passes)", "seconds"] > 0
        assert s.loc["v2v full matrix + sort (CLIP_benchmark style)", "R@1"] == s.loc["v2v shortlist (exact, blocked)", "R@1"]
        assert (g["peak_anon_mb"] > 0).all()
    assert (tmp_path / "scale.csv").exists()


def test_store_from_embedding_parquet(tmp_path) -> None:
    import pyarrow.parquet as pq

    from rsretrieval.pipelines.stages.embed import vectors_table, read_embeddings
    from rsretrieval.search.store import store_from_embeddings

    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(250, 6)).astype(np.float32)
    ids = [f"i{k}" for k in range(250)]
    (tmp_path / "emb").mkdir()
    pq.write_table(vectors_table(ids[:100], vecs[:100]), tmp_path / "emb" / "a.parquet", row_group_size=30)
    pq.write_table(vectors_table(ids[100:], vecs[100:]), tmp_path / "emb" / "b.parquet", row_group_size=64)
    store = store_from_embeddings(tmp_path / "emb", tmp_path / "store")
    want = ["i7", "i249", "i100"]
    got = store.sets(store.lookup(want)).vectors.numpy()
    np.testing.assert_array_equal(got, read_embeddings(tmp_path / "emb", want))
    top = exact_topk(vecs[:3], store.shard_blocks(), 5)
    np.testing.assert_array_equal(top.indices, exact_topk(vecs[:3], vecs, 5).indices)
