"""Retrieval metrics: ranks of the positives, Recall@K and mean recall.

Definitions (written down because the field mixes them up):

* Every caption is its own query (thesis 6.1). For text-to-image (T2I) a query's positives are
  the images it describes (normally exactly one, the gold image). For image-to-text (I2T) an
  image's positives are all of its captions.
* The rank of a query is 1 + the number of *non-positive* documents whose score is >= the best
  positive's score. Ties are broken against the query, so a constant scorer cannot score well.
* ``R@K`` is the percentage of queries whose rank is <= K.
* ``mR`` (thesis, sec. 6.1) is the mean of T2I R@1, R@5 and R@10.
* ``mR6`` ("mean recall" / rsum/6 of the RS retrieval literature, e.g. AMFMN, GaLR, HarMA) is the
  mean of the six values T2I R@1/5/10 and I2T R@1/5/10. It is not comparable with ``mR``.
"""

from __future__ import annotations

import time

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)

# (query_start, query_end) -> scores of those queries against every document, shape (q, N)
BlockScorer = Callable[[int, int], torch.Tensor]


@dataclass
class Positives:
    """Sparse boolean query x document matrix in CSR form: the positives of each query.

    Shapes: ``indptr`` (Q + 1,), ``indices`` (nnz,) with document indices in [0, N).
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_docs: int

    @property
    def n_queries(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_gold(cls, gold: Sequence[int] | np.ndarray, n_docs: int) -> "Positives":
        """One positive per query (T2I with one gold image per caption)."""
        gold = np.asarray(gold, dtype=np.int64)
        return cls(np.arange(len(gold) + 1, dtype=np.int64), gold, n_docs)

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]], n_docs: int) -> "Positives":
        """Any number (>= 1) of positives per query, e.g. I2T (all captions of an image)."""
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        if (lengths == 0).any():
            raise ValueError(f"query {int(np.argmin(lengths))} has no positive document")
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) if len(lists) else np.zeros(0, np.int64)
        return cls(indptr, indices, n_docs)

    def block_mask(self, start: int, end: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Dense boolean mask of queries [start, end): shape (end - start, N)."""
        mask = torch.zeros(end - start, self.n_docs, dtype=torch.bool, device=device)
        lo, hi = self.indptr[start], self.indptr[end]
        rows = np.repeat(np.arange(end - start), np.diff(self.indptr[start : end + 1]))
        mask[torch.as_tensor(rows, device=device), torch.as_tensor(self.indices[lo:hi], device=device)] = True
        return mask


@dataclass
class RankResult:
    """Per-query outcome of a retrieval run. Shapes: ranks (Q,), topk_idx/topk_scores (Q, k)."""

    ranks: np.ndarray
    topk_idx: np.ndarray
    topk_scores: np.ndarray
    score_seconds: float = 0.0  # time in the scorer (similarity computation)
    rank_seconds: float = 0.0  # time sorting scores into ranks and top-k (Table 14's "rank" step)


# Scores closer than this (relative) count as a tie: the same pair scored by two equal computations
# (a full matrix, a batched rerank, another batching of the text embedder) differs in the last float bits,
# and a tie must not turn into a win on one path and a loss on the other.
TIE_RTOL = 1e-6


def tie_floor(best: Any) -> Any:
    """The lowest score that ties or beats ``best`` (tensor or array): ``best - TIE_RTOL * max(1, |best|)``;
    an infinite ``best`` (no positive scored) is its own floor."""
    if isinstance(best, torch.Tensor):
        return torch.where(torch.isfinite(best), best - TIE_RTOL * best.abs().clamp(min=1.0), best)
    best = np.asarray(best)
    finite = np.isfinite(best)
    return np.where(finite, best - TIE_RTOL * np.maximum(np.abs(np.where(finite, best, 0.0)), 1.0), best)


def ranks_from_block(scores: torch.Tensor, pos_mask: torch.Tensor, top_k: int) -> tuple[torch.Tensor, ...]:
    """Ranks and top-k of one block of queries.

    Shapes: scores (q, N) float, pos_mask (q, N) bool -> ranks (q,), topk idx (q, k), topk scores (q, k).
    """
    scores = scores.float()
    neg_inf = torch.tensor(float("-inf"), device=scores.device)
    best_pos = torch.where(pos_mask, scores, neg_inf).max(dim=1, keepdim=True).values
    beats = (scores >= tie_floor(best_pos)) & ~pos_mask  # ties count against the query
    ranks = beats.sum(dim=1) + 1
    k = min(top_k, scores.shape[1])
    top = torch.topk(scores, k, dim=1)
    return ranks, top.indices, top.values


def rank_queries(
    score_block: BlockScorer,
    positives: Positives,
    chunk_size: int = 1024,
    top_k: int = 10,
    device: torch.device | str = "cpu",
) -> RankResult:
    """Score all queries chunk by chunk (memory O(chunk_size x N)) and rank their positives."""
    q = positives.n_queries
    ranks, tops, top_scores = [], [], []
    score_s = rank_s = 0.0
    for start in range(0, q, chunk_size):
        end = min(q, start + chunk_size)
        t0 = time.perf_counter()
        scores = score_block(start, end)
        _sync(scores)  # CUDA is asynchronous: without a sync the scorer's time lands in the ranking
        t1 = time.perf_counter()
        if scores.shape != (end - start, positives.n_docs):
            raise ValueError(f"score block has shape {tuple(scores.shape)}, expected {(end - start, positives.n_docs)}")
        r, ti, ts = ranks_from_block(scores, positives.block_mask(start, end, scores.device), top_k)
        ranks.append(r.cpu())
        tops.append(ti.cpu())
        top_scores.append(ts.cpu())
        score_s, rank_s = score_s + t1 - t0, rank_s + time.perf_counter() - t1
    if not ranks:
        return RankResult(np.zeros(0, np.int64), np.zeros((0, top_k), np.int64), np.zeros((0, top_k), np.float32))
    return RankResult(
        torch.cat(ranks).numpy().astype(np.int64),
        torch.cat(tops).numpy().astype(np.int64),
        torch.cat(top_scores).numpy().astype(np.float32),
        score_s,
        rank_s,
    )


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percentage of queries with rank <= K, for each K."""
    if len(ranks) == 0:
        return {k: float("nan") for k in ks}
    return {k: float(100.0 * np.mean(ranks <= k)) for k in ks}


def mean_recall(t2i: dict[int, float]) -> float:
    """The thesis' mR: mean of T2I R@1, R@5, R@10."""
    return float(np.mean([t2i[1], t2i[5], t2i[10]]))


def mean_recall_6(t2i: dict[int, float], i2t: dict[int, float]) -> float:
    """The literature's six-value mean recall (rsum / 6): T2I and I2T R@1/5/10."""
    return float(np.mean([t2i[1], t2i[5], t2i[10], i2t[1], i2t[5], i2t[10]]))
