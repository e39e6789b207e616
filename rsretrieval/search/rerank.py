"""Second stage: score only the shortlisted (query, document) pairs with a fine-grained mode.

A *pair scorer* maps (P,) query indices and (P,) document indices to (P,) scores, in the same units as
the mode's full-matrix scorer (so a rerank with k = N ranks exactly like the full matrix):

* :class:`CosinePairs` (V2V), :class:`LateInteractionPairs` (V2S / S2V / S2S, Q-MAM or mean-mean),
* :class:`GMNPairs` (G2G / VG2VG with the GMN), :class:`HungarianPairs` (G2G, and VG2VG's
  ``(1 - w) cosine + w Hungarian`` through :class:`MixedPairs`).

:func:`rerank` scores each query's shortlist and ranks its gold document inside it (ties against the
query, as the full-matrix path does); a gold document outside the shortlist gets rank ``k + 1``: it is
missed at every K <= k, which is why ``eval.shortlist_k`` must be at least the largest K.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rsretrieval.evaluation.metrics import RankResult, tie_floor
from rsretrieval.matching.late_interaction import PackedVectors
from rsretrieval.search.topk import TopK

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def padded_rows(pv: PackedVectors, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Sets ``idx`` of a packed table, zero-padded: (n, L_max, D) vectors and (n, L_max) mask (True = real)."""
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    starts, sizes = pv.offsets[idx_t], pv.sizes[idx_t]
    width = int(sizes.max()) if len(sizes) else 0
    slots = torch.arange(width)
    mask = slots[None, :] < sizes[:, None]
    rows = torch.where(mask, starts[:, None] + slots[None, :], torch.zeros((), dtype=torch.int64))
    vecs = pv.vectors[rows] * mask[..., None].to(pv.vectors.dtype)
    return vecs, mask


class CosinePairs:
    """V2V on pairs: dot products of unit vectors."""

    def __init__(self, queries: np.ndarray, docs: np.ndarray) -> None:
        self.q, self.d = torch.as_tensor(queries, dtype=torch.float32), torch.as_tensor(docs, dtype=torch.float32)

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        return (self.q[torch.as_tensor(qi)] * self.d[torch.as_tensor(di)]).sum(1).numpy()


class LateInteractionPairs:
    """Q-MAM (``max-mean``) or ``mean-mean`` on pairs, batched: (n, Lq, D) x (n, Ld, D) per batch."""

    def __init__(self, queries: PackedVectors, docs: PackedVectors, aggregation: str = "max-mean",
                 batch: int = 8192) -> None:
        if aggregation not in ("max-mean", "mean-mean"):
            raise ValueError(f"aggregation must be 'max-mean' or 'mean-mean', got {aggregation!r}")
        self.q, self.d = queries.normalised(), docs.normalised()
        self.aggregation, self.batch = aggregation, batch
        if aggregation == "mean-mean":
            self.q_means, self.d_means = self.q.means(), self.d.means()

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        out = np.empty(len(qi), np.float32)
        for s in range(0, len(qi), self.batch):
            a, b = qi[s : s + self.batch], di[s : s + self.batch]
            if self.aggregation == "mean-mean":
                out[s : s + len(a)] = (self.q_means[a] * self.d_means[b]).sum(1).numpy()
                continue
            q, qm = padded_rows(self.q, a)
            d, dm = padded_rows(self.d, b)
            sims = torch.einsum("nqd,nld->nql", q, d).masked_fill(~dm[:, None, :], float("-inf"))
            best = sims.amax(dim=2)  # (n, Lq): each query vector's best document vector
            w = qm.to(best.dtype) / qm.sum(1, keepdim=True).to(best.dtype)
            out[s : s + len(a)] = (best.masked_fill(~qm, 0.0) * w).sum(1).numpy()
        return out


class GMNPairs:
    """The GMN (eqs. 3-5) on pairs of node sets; ``cosine`` (pair scorer) gives VG2VG's global term."""

    def __init__(self, gmn: Any, q_nodes: PackedVectors, d_nodes: PackedVectors,
                 cosine: PairScorer | None = None, batch: int = 2048) -> None:
        self.gmn, self.q, self.d, self.cosine, self.batch = gmn, q_nodes, d_nodes, cosine, batch

    @torch.no_grad()
    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        out = np.empty(len(qi), np.float32)
        for s in range(0, len(qi), self.batch):
            a, b = qi[s : s + self.batch], di[s : s + self.batch]
            q, qm = padded_rows(self.q, a)
            d, dm = padded_rows(self.d, b)
            sim = torch.as_tensor(self.cosine(a, b)) if self.cosine is not None else None
            out[s : s + len(a)] = self.gmn.pair_scores(q, qm, d, dm, sim).float().numpy()
        return out


class HungarianPairs:
    """Hungarian node assignment on pairs (the scorer's own shortlist path, multiprocess)."""

    def __init__(self, scorer: Any, q_nodes: PackedVectors, d_nodes: PackedVectors) -> None:
        self.scorer, self.q, self.d = scorer, q_nodes, d_nodes

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        return self.scorer.score(self.q, self.d, shortlist=np.stack([qi, di], axis=1))


class MixedPairs:
    """``(1 - w) * first + w * second``: VG2VG with the Hungarian graph term."""

    def __init__(self, first: PairScorer, second: PairScorer, w: float) -> None:
        self.first, self.second, self.w = first, second, w

    def __call__(self, qi: np.ndarray, di: np.ndarray) -> np.ndarray:
        return (1 - self.w) * self.first(qi, di) + self.w * self.second(qi, di)


def rerank(shortlist: TopK, scorer: PairScorer | None, gold: np.ndarray, top_k: int = 10,
           query_block: int = 4096) -> RankResult:
    """Rescore each query's shortlist with ``scorer``; rank the gold document inside it.

    ``scorer`` None ranks by the shortlist's own (V2V) scores: V2V on the two-stage path, whose ranks
    equal the full matrix's for every gold document inside the shortlist.

    Rank = 1 + shortlisted non-gold documents scoring at least the gold one (ties against the query,
    as :func:`rsretrieval.evaluation.metrics.ranks_from_block`); ``k + 1`` when the gold document is not
    shortlisted. ``topk_idx`` / ``topk_scores``: the reranked best ``top_k`` of the shortlist.
    """
    import time

    n_q, k = shortlist.indices.shape
    ranks = np.empty(n_q, np.int64)
    tops = np.empty((n_q, min(top_k, k)), np.int64)
    top_scores = np.empty((n_q, min(top_k, k)), np.float32)
    score_s = rank_s = 0.0
    gold = np.asarray(gold, np.int64)
    for a in range(0, n_q, query_block):
        idx = np.asarray(shortlist.indices[a : a + query_block])
        n = len(idx)
        t0 = time.perf_counter()
        if scorer is None:
            s = np.asarray(shortlist.scores[a : a + n], np.float32)
        else:
            s = np.asarray(scorer(np.repeat(np.arange(a, a + n), k), idx.reshape(-1)), np.float32).reshape(n, k)
        t1 = time.perf_counter()
        is_gold = idx == gold[a : a + n, None]
        found = is_gold.any(1)
        g_score = np.where(found, np.where(is_gold, s, -np.inf).max(1), np.inf)
        ranks[a : a + n] = np.where(found, 1 + ((s >= tie_floor(g_score[:, None])) & ~is_gold).sum(1), k + 1)
        order = np.argsort(-s, axis=1, kind="stable")[:, : tops.shape[1]]
        tops[a : a + n] = np.take_along_axis(idx, order, 1)
        top_scores[a : a + n] = np.take_along_axis(s, order, 1)
        score_s, rank_s = score_s + t1 - t0, rank_s + time.perf_counter() - t1
    return RankResult(ranks, tops, top_scores, score_s, rank_s)


def evaluate_reranked(shortlist: TopK, scorer: PairScorer | None, gold: np.ndarray, ks: list[int], top_k: int = 10) -> Any:
    """A results cell from a rerank: T2I R@K (K <= k) and mR, plus ``shortlist_k`` and ``shortlist_recall``
    (the % of queries whose gold image was shortlisted: the ceiling of every R@K). No I2T: the shortlist
    is per caption query."""
    from rsretrieval.evaluation.metrics import mean_recall, recall_at_k
    from rsretrieval.evaluation.retrieval import CellResult
    from rsretrieval.search.topk import shortlist_recall

    k = shortlist.indices.shape[1]
    if max(ks) > k:
        raise ValueError(f"shortlist of {k} per query cannot give R@{max(ks)}: set eval.shortlist_k >= {max(ks)}")
    ranks = rerank(shortlist, scorer, gold, top_k)
    t2i = recall_at_k(ranks.ranks, ks)
    mr = mean_recall(t2i) if {1, 5, 10} <= set(ks) else float("nan")
    return CellResult(t2i, mr, None, None, ranks, ranks.score_seconds,
                      {"shortlist_k": float(k), "shortlist_recall": shortlist_recall(shortlist, gold)})
