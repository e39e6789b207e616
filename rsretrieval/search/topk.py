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
    return float(100.0 * np.mean((topk.indices == np.asarray(gold)[:, None]).any(axis=1)))
