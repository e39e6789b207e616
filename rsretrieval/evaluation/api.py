"""``evaluate``: Recall@K, mR and mR6 of your own embeddings or scores, with the benchmark's ranking.

A thin front door to :func:`rsretrieval.evaluation.retrieval.evaluate_cell`: same ranks (ties count
against the query), same R@K, mR (thesis: mean of T2I R@1/5/10) and mR6 (literature: mean of T2I and
I2T R@1/5/10); only the inputs are checked and converted here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rsretrieval.evaluation.metrics import DEFAULT_KS, BlockScorer
from rsretrieval.evaluation.retrieval import evaluate_cell, gold_indices
from rsretrieval.matching.cosine import CosineScorer

Array = np.ndarray | torch.Tensor
# (start, end) -> (end - start, N) scores of queries [start, end) against every document
ScoreFn = Callable[[int, int], Any]


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate`. Recalls are percentages; ``ranks`` (Q,) are 1-based ranks of each
    query's gold document; ``i2t_recall`` / ``mR6`` are None unless ``i2t=True`` (mR6 also needs K 1, 5, 10)."""

    recall: dict[int, float]
    mR: float
    mR6: float | None
    ranks: np.ndarray
    i2t_recall: dict[int, float] | None = None

    def as_dict(self) -> dict[str, float]:
        """Flat metrics with the benchmark's column names: ``R@K``, ``mR``, ``I2T_R@K``, ``mR6``."""
        out = {f"R@{k}": v for k, v in self.recall.items()}
        out["mR"] = self.mR
        if self.i2t_recall is not None:
            out.update({f"I2T_R@{k}": v for k, v in self.i2t_recall.items()})
            out["mR6"] = self.mR6 if self.mR6 is not None else float("nan")
        return out


def _matrix(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {tuple(t.shape)}")
    return t


def _gold(gold: Any, image_ids: Sequence[str] | None) -> np.ndarray:
    """Gold document index per query: ``gold`` itself, or its ids looked up in ``image_ids``."""
    if gold is None:
        raise ValueError("gold is required: the index (or, with image_ids, the id) of each query's relevant document")
    if image_ids is not None:
        return gold_indices(gold, image_ids)
    g = gold.cpu().numpy() if isinstance(gold, torch.Tensor) else np.asarray(gold)
    if g.ndim != 1:
        raise ValueError(f"gold must be 1-D (one document index per query), got shape {g.shape}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        raise TypeError(f"gold must hold integer document indices, got dtype {g.dtype} "
                        "(for document ids pass image_ids= as well)")
    return g.astype(np.int64)


def _check_range(g: np.ndarray, n_docs: int, image_ids: Sequence[str] | None) -> None:
    if image_ids is not None and len(image_ids) != n_docs:
        raise ValueError(f"image_ids has {len(image_ids)} ids but there are {n_docs} documents")
    bad = np.flatnonzero((g < 0) | (g >= n_docs))
    if len(bad):
        q = int(bad[0])
        raise IndexError(f"gold[{q}] = {int(g[q])} (query {q}) is out of range for {n_docs} documents "
                         f"({len(bad)} queries out of range)")


class _FirstBlockProbe:
    """A block score function whose first block is computed up front (it tells N) and served once from memory."""

    def __init__(self, fn: ScoreFn, first_end: int, device: str | torch.device) -> None:
        self.fn, self.device = fn, device
        self.first: torch.Tensor | None = self.compute(0, first_end)
        self.shape = tuple(self.first.shape)

    def compute(self, start: int, end: int) -> torch.Tensor:
        out = self.fn(start, end)
        return (out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))).to(self.device)

    def __call__(self, start: int, end: int) -> torch.Tensor:
        if self.first is not None and start == 0 and end == self.shape[0]:
            first, self.first = self.first, None
            return first
        return self.compute(start, end)


def _scorers(queries: Array | None, documents: Array | None, score_fn: ScoreFn | Array | None, i2t: bool,
             n_gold: int, chunk_size: int, device: str | torch.device
             ) -> tuple[BlockScorer, BlockScorer | None, int, tuple[int, ...]]:
    """T2I and (with ``i2t``) I2T block scorers, the number of documents, and the shape Q is read from."""
    if (queries is None) == (score_fn is None):
        raise ValueError("give either queries and documents embeddings or score_fn, not both and not neither")
    if queries is not None:
        if documents is None:
            raise ValueError("documents is required with queries (or pass score_fn instead)")
        q, d = _matrix(queries, "queries"), _matrix(documents, "documents")
        if q.shape[1] != d.shape[1]:
            raise ValueError(f"queries {tuple(q.shape)} and documents {tuple(d.shape)} have different "
                             f"embedding dims ({q.shape[1]} != {d.shape[1]})")
        return CosineScorer(q, d, device), CosineScorer(d, q, device) if i2t else None, d.shape[0], tuple(q.shape)
    if documents is not None:
        raise ValueError("documents is not used with score_fn; pass one or the other")
    if callable(score_fn):
        if i2t:
            raise ValueError("i2t needs the document x query scores: pass embeddings or a full score matrix, "
                             "not a block score function")
        first = min(chunk_size, n_gold)
        probe = _FirstBlockProbe(score_fn, first, device)
        if len(probe.shape) != 2 or probe.shape[0] != first:
            raise ValueError(f"score_fn(0, {first}) returned shape {probe.shape}, expected ({first}, documents)")
        return probe, None, probe.shape[1], (n_gold, probe.shape[1])
    s = _matrix(score_fn, "score matrix").to(device)
    st = s.T

    def t2i_block(a: int, b: int) -> torch.Tensor:
        return s[a:b]

    def i2t_block(a: int, b: int) -> torch.Tensor:
        return st[a:b]

    return t2i_block, i2t_block if i2t else None, s.shape[1], tuple(s.shape)


def evaluate(
    queries: Array | None = None,
    documents: Array | None = None,
    gold: Any = None,
    *,
    image_ids: Sequence[str] | None = None,
    score_fn: ScoreFn | Array | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    i2t: bool = False,
    chunk_size: int = 1024,
    device: str | torch.device = "cpu",
) -> EvaluationResult:
    """Text-to-image retrieval metrics of one query set against one document (image) gallery.

    Give either ``queries`` (Q, D) and ``documents`` (N, D) embeddings (numpy or torch; scored by cosine
    similarity), or ``score_fn``: a (Q, N) score matrix or a callable ``(start, end) -> (end - start, N)``
    scores of queries [start, end) (it is called ``chunk_size`` queries at a time, so Q x N never has to be
    in memory). ``gold``: for each query the index of its relevant document (int array of length Q), or,
    with ``image_ids`` (the N document ids), the id of its relevant document. ``i2t=True`` also ranks every
    document as a query against the queries (every document must be gold of >= 1 query; needs embeddings
    or a score matrix) and gives mR6.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    g = _gold(gold, image_ids)
    if len(g) == 0:
        raise ValueError("no queries to evaluate (gold is empty)")
    scorer, i2t_scorer, n_docs, shape = _scorers(queries, documents, score_fn, i2t, len(g), chunk_size, device)
    if len(g) != shape[0]:
        what = "queries" if queries is not None else "the score matrix"
        raise ValueError(f"gold has shape ({len(g)},) but {what} has shape {shape}: one gold entry per query")
    _check_range(g, n_docs, image_ids)
    if i2t:
        orphans = np.setdiff1d(np.arange(n_docs), g)
        if len(orphans):
            raise ValueError(f"i2t needs every document to be the gold of at least one query; {len(orphans)} "
                             f"are not, e.g. document {int(orphans[0])}")
    with torch.no_grad():  # embeddings that require grad give scores without a graph
        cell = evaluate_cell(scorer, g, n_docs, ks, chunk_size, max(ks), i2t_scorer)
    ranks = np.asarray(cell.ranks.ranks, np.int64)
    ranks.setflags(write=False)
    return EvaluationResult(dict(cell.t2i), cell.mR, cell.mR6, ranks, dict(cell.i2t) if cell.i2t is not None else None)
