"""Exact top-k of query x document cosine scores with bounded memory (the V2V shortlist).

The full (Q, N) matrix of NWPU-Captions (157k x 31.5k) is 20 GB in fp32 and RS5M's is impossible;
:func:`exact_topk` streams the documents in blocks (an in-memory matrix or Parquet shards read one
at a time) and keeps a running (Q, k) top-k, so memory is O(query_block x doc_block + Q x k).
:func:`faiss_topk` does the same with a FAISS flat inner-product index when ``faiss`` is installed
(``pip install 'rsretrieval[faiss]'``): exact too, usually faster on CPU.

Ties: among equal scores the lower document index wins, as in a stable sort, so the shortlist of a
run does not depend on the block sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class TopK:
    """Per query: the indices (Q, k) of the best documents and their scores, best first."""

    indices: np.ndarray
    scores: np.ndarray


def _blocks(docs: np.ndarray | Iterable[tuple[int, np.ndarray]], doc_block: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first document index, block) pairs from a matrix or from (offset, shard) pairs."""
    if isinstance(docs, np.ndarray | torch.Tensor):
        for s in range(0, len(docs), doc_block):
            yield s, np.asarray(docs[s : s + doc_block])
        return
    for offset, shard in docs:
        for s in range(0, len(shard), doc_block):
            yield offset + s, np.asarray(shard[s : s + doc_block])


def _merge(best_s: torch.Tensor, best_i: torch.Tensor, s: torch.Tensor, i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of the union of two candidate sets, ties to the lower document index."""
    cat_s, cat_i = torch.cat([best_s, s], 1), torch.cat([best_i, i], 1)
    # lexicographic (score desc, index asc): sort by index first, then a stable sort by score
    by_index = torch.argsort(cat_i, dim=1, stable=True)
    cat_s, cat_i = cat_s.gather(1, by_index), cat_i.gather(1, by_index)
    order = torch.argsort(cat_s, dim=1, descending=True, stable=True)[:, :k]
    return cat_s.gather(1, order), cat_i.gather(1, order)


def exact_topk(queries: np.ndarray, docs: np.ndarray | Iterable[tuple[int, np.ndarray]], k: int,
               query_block: int = 4096, doc_block: int = 65536) -> TopK:
    """Top-k documents per query by inner product (cosine on unit vectors), exact, in blocks.

    ``docs``: an (N, D) matrix, or an iterable of (first document index, (n, D) shard) pairs (e.g. Parquet
    shards read one at a time). Memory: one (query_block, doc_block) fp32 block plus the (Q, k) result.
    """
    q = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32))
    n_q = len(q)
    best_s = torch.full((n_q, 0), float("-inf"))
    best_i = torch.zeros((n_q, 0), dtype=torch.int64)
    for offset, block in _blocks(docs, doc_block):
        d = torch.from_numpy(np.array(block, dtype=np.float32))  # a copy: memory-mapped shards are read-only
        kk = min(k, len(d))
        new_s, new_i = [], []
        for a in range(0, n_q, query_block):
            s = q[a : a + query_block] @ d.T
            top = torch.topk(s, kk, dim=1, sorted=True)
            new_s.append(top.values)
            new_i.append(top.indices + offset)
        best_s, best_i = _merge(best_s, best_i, torch.cat(new_s), torch.cat(new_i), k)
    return TopK(best_i.numpy(), best_s.numpy())


def faiss_topk(queries: np.ndarray, docs: np.ndarray, k: int) -> TopK:
    """Exact top-k with a FAISS flat inner-product index (``pip install 'rsretrieval[faiss]'``)."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("faiss_topk needs FAISS: pip install 'rsretrieval[faiss]' (faiss-cpu)") from exc
    d = np.ascontiguousarray(docs, dtype=np.float32)
    index = faiss.IndexFlatIP(d.shape[1])
    index.add(d)
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(d)))
    return TopK(idx.astype(np.int64), scores)


def shortlist_recall(topk: TopK, gold: np.ndarray) -> float:
    """% of queries whose gold document is in their shortlist: the ceiling of any rerank of it."""
    if len(gold) == 0:
        return float("nan")
    gold, hits = np.asarray(gold), 0
    for a in range(0, len(gold), 65536):  # in blocks: the indices may be a memory-mapped (Q, k) file
        hits += int((np.asarray(topk.indices[a : a + 65536]) == gold[a : a + 65536, None]).any(axis=1).sum())
    return float(100.0 * hits / len(gold))


def unit_rows(x: Any) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def store_topk(q_store: Any, q_items: np.ndarray, d_store: Any, k: int, out_dir: Path | None = None,
               query_block: int = 16384, doc_block: int = 65536, backend: str = "exact") -> TopK:
    """The V2V shortlist of queries and documents that live in vector stores (one vector per item).

    Queries ``q_items`` (item numbers of ``q_store``) are read ``query_block`` at a time; documents
    are the store's memory-mapped shards, L2-normalised block by block; document index = store item.
    With ``out_dir``, indices and scores go to memory-mapped ``.npy`` files there, so neither the
    (Q, D) queries, the (N, D) documents nor the (Q, k) result is held in memory. Per block the result
    equals :func:`exact_topk` of the same unit vectors. ``backend="faiss"`` adds the shards to a flat
    inner-product index instead (exact, but FAISS keeps the documents in memory).
    """
    q_items = np.asarray(q_items, np.int64)
    n_q, kk = len(q_items), min(k, len(d_store))
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        indices = np.lib.format.open_memmap(out_dir / "indices.npy", "w+", np.int64, (n_q, kk))
        scores = np.lib.format.open_memmap(out_dir / "scores.npy", "w+", np.float32, (n_q, kk))
    else:
        indices, scores = np.empty((n_q, kk), np.int64), np.empty((n_q, kk), np.float32)
    index = None
    if backend == "faiss":
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("eval.shortlist_backend=faiss needs FAISS: pip install 'rsretrieval[faiss]'") from exc
        index = faiss.IndexFlatIP(d_store.dim)
        for _, shard in d_store.shard_blocks():
            for s in range(0, len(shard), doc_block):
                index.add(unit_rows(shard[s : s + doc_block]))

    def doc_blocks() -> Iterator[tuple[int, np.ndarray]]:
        for first, shard in d_store.shard_blocks():
            for s in range(0, len(shard), doc_block):
                yield first + s, unit_rows(shard[s : s + doc_block])

    for a in range(0, n_q, query_block):
        q = unit_rows(q_store.sets(q_items[a : a + query_block]).vectors.numpy())
        if index is not None:
            sc, ix = index.search(q, kk)
            top = TopK(ix.astype(np.int64), sc)
        else:
            top = exact_topk(q, doc_blocks(), kk, query_block=query_block, doc_block=doc_block)
        indices[a : a + len(q)], scores[a : a + len(q)] = top.indices, top.scores
    if out_dir is not None:
        indices.flush()
        scores.flush()
    return TopK(indices, scores)
