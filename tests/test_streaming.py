"""Streaming pieces of the two-stage path: ordered stores from the embedding stage's Parquet shards,
the store-backed V2V shortlist, store-backed pair scorers, V2V ranks from the shortlist, and
per-query files written in blocks. Each is checked against the in-memory computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from rsretrieval.evaluation.metrics import Positives, RankResult, rank_queries
from rsretrieval.matching.late_interaction import PackedVectors
from rsretrieval.search.rerank import LateInteractionPairs, rerank
from rsretrieval.search.store import StoreSetPairs, StoreWriter, ordered_store_from_embeddings
from rsretrieval.search.topk import exact_topk, store_topk


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _write_embeddings(folder: Path, ids: list[str], vectors: np.ndarray, seed: int = 0, files: int = 3) -> None:
    """An embeddings folder as the Ray stage writes it: rows shuffled over several files and row groups."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    for f, part in enumerate(np.array_split(order, files)):
        flat = pa.array(vectors[part].reshape(-1))
        t = pa.table({"owner_id": pa.array([ids[i] for i in part], pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
        pq.write_table(t, folder / f"part-{f}.parquet", row_group_size=7)
    (folder / "_SUCCESS").write_text("{}")


def test_ordered_store_follows_the_table_order_not_the_writers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = [f"img{i:03d}" for i in range(50)]
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    _write_embeddings(tmp_path / "emb", ids, vecs)
    wanted = [ids[i] for i in rng.permutation(50)]  # any order the dataset table has
    store = ordered_store_from_embeddings(tmp_path / "emb", tmp_path / "emb" / "_store", pa.array(wanted), block=16)
    expected = vecs[[ids.index(w) for w in wanted]]
    np.testing.assert_array_equal(store.sets(np.arange(50)).vectors.numpy(), expected)
    np.testing.assert_array_equal(store.lookup(wanted[10:13]), [10, 11, 12])
    assert len(store.vectors) == 4  # shards: 50 owners in blocks of 16
    assert not list(tmp_path.glob("emb/_store.tmp-*")) and not (tmp_path / "emb" / "_store" / "unordered.npy").exists()
    # Parquet readers skip the store folder (leading underscore): the embeddings still read as before
    from rsretrieval.pipelines.stages.embed import read_embeddings

    np.testing.assert_array_equal(read_embeddings(tmp_path / "emb", ids[:5]), vecs[:5])


def test_ordered_store_of_scene_sets_groups_by_owner_and_scene_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    owners = ["a", "b", "c", "d"]
    sizes = {"a": 3, "b": 1, "c": 4, "d": 2}
    rows = [(o, s) for o in owners for s in range(sizes[o])]
    vecs = rng.normal(size=(len(rows), 6)).astype(np.float32)
    _write_embeddings(tmp_path / "crops", [f"{o}#{s}" for o, s in rows], vecs, files=2)
    shuffled = rng.permutation(len(rows))
    scenes = pa.table({"image_id": [rows[i][0] for i in shuffled] + ["zz"],  # "zz": not an owner, ignored
                       "scene_idx": [rows[i][1] for i in shuffled] + [0]})
    order = ["c", "a", "d", "b"]
    store = ordered_store_from_embeddings(tmp_path / "crops", tmp_path / "s", order, scenes, "image_id", block=3)
    got = store.sets(np.arange(4))
    assert got.sizes.tolist() == [4, 3, 2, 1]
    for i, o in enumerate(order):
        np.testing.assert_array_equal(got.item(i).numpy(), vecs[[rows.index((o, s)) for s in range(sizes[o])]])
    with pytest.raises(KeyError, match="'e' has no scenes"):
        ordered_store_from_embeddings(tmp_path / "crops", tmp_path / "s2", order + ["e"], scenes, "image_id")
    short = scenes.filter(pc.not_equal(scenes["image_id"], "zz"))
    short = pa.concat_tables([short, pa.table({"image_id": ["b"], "scene_idx": [7]})])  # a scene never embedded
    with pytest.raises(KeyError, match="b#7"):
        ordered_store_from_embeddings(tmp_path / "crops", tmp_path / "s3", order, short, "image_id")
    assert not (tmp_path / "s3").exists() and not list(tmp_path.glob("s3.tmp-*"))  # nothing half-written


def _store(folder: Path, vectors: np.ndarray, sizes: np.ndarray | None = None, shard: int = 40):
    sizes = np.ones(len(vectors), np.int64) if sizes is None else sizes
    w, off = StoreWriter(folder, vectors.shape[1]), np.concatenate([[0], np.cumsum(sizes)])
    for a in range(0, len(sizes), shard):
        b = min(len(sizes), a + shard)
        w.add([f"{folder.name}{i}" for i in range(a, b)], vectors[off[a] : off[b]], sizes[a:b])
    return w.close()


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_store_shortlist_equals_the_in_memory_top_k(tmp_path: Path, backend: str) -> None:
    if backend == "faiss":
        pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    q, d = rng.normal(size=(70, 16)).astype(np.float32), rng.normal(size=(130, 16)).astype(np.float32) * 3
    qs, ds = _store(tmp_path / "q", q), _store(tmp_path / "d", d)
    items = rng.permutation(70)[:50]
    top = store_topk(qs, items, ds, 12, tmp_path / "short", query_block=16, doc_block=32, backend=backend)
    ref = exact_topk(_unit(q[items]), _unit(d), 12)
    assert isinstance(top.indices, np.memmap) and top.indices.shape == (50, 12)
    np.testing.assert_array_equal(top.indices, ref.indices)
    np.testing.assert_allclose(top.scores, ref.scores, atol=1e-5)


def test_v2v_ranks_from_the_shortlist_equal_the_full_matrix_inside_it() -> None:
    rng = np.random.default_rng(3)
    q, d = _unit(rng.normal(size=(60, 8))), _unit(rng.normal(size=(40, 8)))
    gold = rng.integers(0, 40, 60)
    full = rank_queries(lambda s, e: torch.as_tensor(q[s:e] @ d.T), Positives.from_gold(gold, 40), 16, 10)
    for k in (40, 15):
        res = rerank(exact_topk(q, d, k), None, gold, 10, query_block=7)
        np.testing.assert_array_equal(res.ranks, np.where(full.ranks <= k, full.ranks, k + 1))
    np.testing.assert_array_equal(rerank(exact_topk(q, d, 40), None, gold, 10).topk_idx, full.topk_idx)


def test_store_set_pairs_score_like_the_in_memory_pair_scorer(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    q_sizes, d_sizes = rng.integers(1, 5, 30), rng.integers(1, 7, 25)
    qv, dv = rng.normal(size=(q_sizes.sum(), 8)), rng.normal(size=(d_sizes.sum(), 8))
    qs, ds = _store(tmp_path / "q", qv.astype(np.float32), q_sizes, 9), _store(tmp_path / "d", dv.astype(np.float32), d_sizes, 7)
    q_items = rng.permutation(30)[:20]  # the variant's queries: a subset of the store, in any order
    qi, di = rng.integers(0, 20, 500), rng.integers(0, 25, 500)
    ours = StoreSetPairs(qs, q_items, ds, lambda a, b, *_: LateInteractionPairs(a, b), batch=64)(qi, di)
    q_all = qs.sets(q_items)
    ref = LateInteractionPairs(q_all, PackedVectors(torch.as_tensor(dv, dtype=torch.float32),
                                                     np.concatenate([[0], np.cumsum(d_sizes)])))(qi, di)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_per_query_file_in_blocks_equals_the_naive_table(tmp_path: Path) -> None:
    from rsretrieval.evaluation.retrieval import per_query_table, write_per_query

    rng = np.random.default_rng(5)
    image_ids = [f"i{j}" for j in range(30)]
    query_ids = [f"c{j}" for j in range(23)]
    gold = rng.integers(0, 30, 23)
    ranks = RankResult(rng.integers(1, 30, 23), rng.integers(0, 30, (23, 4)), rng.random((23, 4)).astype(np.float32))
    cell = {"dataset": "d", "mode": "v2v"}
    write_per_query(tmp_path / "pq.parquet", pa.chunked_array([query_ids[:10], query_ids[10:]]), gold,
                    pa.array(image_ids), ranks, cell, block=5)
    got = pq.read_table(tmp_path / "pq.parquet")
    assert pq.ParquetFile(tmp_path / "pq.parquet").num_row_groups == 5
    assert got.equals(per_query_table(query_ids, gold, image_ids, ranks, cell))
    naive = [{"dataset": "d", "mode": "v2v", "query_id": query_ids[i], "gold_image_id": image_ids[gold[i]],
              "rank": int(ranks.ranks[i]), "topk_image_ids": [image_ids[j] for j in ranks.topk_idx[i]],
              "topk_scores": [float(np.float32(s)) for s in ranks.topk_scores[i]]} for i in range(23)]
    assert got.to_pylist() == naive


def test_embedding_store_is_built_once_and_keyed_by_order(tmp_path: Path) -> None:
    from rsretrieval.pipelines.stages.stores import embedding_store

    ids = [f"x{i}" for i in range(20)]
    vecs = np.random.default_rng(6).normal(size=(20, 4)).astype(np.float32)
    _write_embeddings(tmp_path / "emb", ids, vecs)
    a = embedding_store(tmp_path / "emb", pa.array(ids))
    stamp = (a.folder / "meta.json").stat().st_mtime_ns
    again = embedding_store(tmp_path / "emb", ids)  # a list or an Arrow array: the same order key
    assert again.folder == a.folder and (again.folder / "meta.json").stat().st_mtime_ns == stamp
    other = embedding_store(tmp_path / "emb", ids[::-1])
    assert other.folder != a.folder
    np.testing.assert_array_equal(other.sets(np.arange(20)).vectors.numpy(), vecs[::-1])


def test_embedding_key_hashes_columns_in_chunks_with_the_same_bytes() -> None:
    import hashlib
    import json

    from rsretrieval.pipelines.stages.embed import hash_json_list

    table = pa.table({"s": ["a", "é\"x", None, "z"] * 5, "f": [0.1, 2.0, -3.5, 1e-9] * 5})
    for col in ("s", "f"):
        for chunk in (1, 3, 100):
            h = hashlib.sha256()
            hash_json_list(h, table[col], chunk)
            assert h.hexdigest() == hashlib.sha256(json.dumps(table[col].to_pylist()).encode()).hexdigest()
    empty = hashlib.sha256()
    hash_json_list(empty, pa.chunked_array([], pa.string()))
    assert empty.hexdigest() == hashlib.sha256(b"[]").hexdigest()


@pytest.mark.parametrize("similarity", ["hungarian", "gmn"])
@pytest.mark.parametrize("with_cosine", [False, True])
def test_stored_graph_pair_scorers_equal_the_in_memory_ones(tmp_path: Path, similarity: str, with_cosine: bool) -> None:
    """G2G / VG2VG on node stores (the two-stage path) against the in-memory pair scorers."""
    from rsretrieval.config import GMNConfig, HungarianConfig
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.hungarian import HungarianScorer
    from rsretrieval.pipelines.benchmark.two_stage import graph_pair_scorer, node_store
    from rsretrieval.search.rerank import CosinePairs, GMNPairs, HungarianPairs, MixedPairs

    rng = np.random.default_rng(7)

    def graphs(n: int) -> list[np.ndarray]:
        return [_unit(rng.normal(size=(int(rng.integers(1, 6)), 12))) for _ in range(n)]

    qg, dg = graphs(17), graphs(23)
    packed = PackedVectors.from_lists
    q_store = node_store(packed, qg, tmp_path / "q", block=5)
    d_store = node_store(packed, dg, tmp_path / "d", block=4)
    cv, iv = _unit(rng.normal(size=(17, 8))), _unit(rng.normal(size=(23, 8)))
    cosine = CosinePairs(cv, iv) if with_cosine else None
    hung = HungarianScorer(HungarianConfig(workers=1))
    gmn = GraphMatchingNetwork(GMNConfig(use_global=with_cosine), seed=0).eval()
    qi, di = rng.integers(0, 17, 300), rng.integers(0, 23, 300)
    ours = graph_pair_scorer(similarity, q_store, d_store, hung, gmn, cosine, 0.5, batch=37)(qi, di)
    if similarity == "hungarian":
        ref: Any = HungarianPairs(hung, packed(qg), packed(dg))
        ref = MixedPairs(cosine, ref, 0.5) if cosine is not None else ref
    else:
        ref = GMNPairs(gmn, packed(qg), packed(dg), cosine)
    np.testing.assert_allclose(ours, ref(qi, di), atol=1e-5)
