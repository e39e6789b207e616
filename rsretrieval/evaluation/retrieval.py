"""Evaluate one (dataset split, variant, backbone, mode) cell: ranks, recalls, per-query table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rsretrieval.evaluation.metrics import (
    BlockScorer,
    Positives,
    RankResult,
    mean_recall,
    mean_recall_6,
    rank_queries,
    recall_at_k,
)


@dataclass
class CellResult:
    """Metrics of one cell (percentages) and its per-query ranks."""

    t2i: dict[int, float]
    mR: float
    i2t: dict[int, float] | None
    mR6: float | None
    ranks: RankResult
    score_seconds: float  # similarity computation of the T2I queries (ranking: ranks.rank_seconds)
    extra: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metric dict: R@K, mR, and when computed I2T R@K and mR6."""
        out = {f"R@{k}": v for k, v in self.t2i.items()}
        out["mR"] = self.mR
        if self.i2t is not None:
            out.update({f"I2T_R@{k}": v for k, v in self.i2t.items()})
            out["mR6"] = self.mR6 if self.mR6 is not None else float("nan")
        out["score_seconds"] = self.score_seconds
        out["rank_seconds"] = self.ranks.rank_seconds
        return {**out, **self.extra}


def gold_indices(caption_image_ids: list[str], image_ids: list[str]) -> np.ndarray:
    """Index in ``image_ids`` of each caption's gold image."""
    pos = {iid: i for i, iid in enumerate(image_ids)}
    missing = [c for c in caption_image_ids if c not in pos]
    if missing:
        raise KeyError(f"{len(missing)} captions describe images outside the gallery, e.g. {missing[:3]}")
    return np.array([pos[c] for c in caption_image_ids], dtype=np.int64)


def evaluate_cell(
    t2i_scorer: BlockScorer,
    gold: np.ndarray,
    n_images: int,
    ks: list[int],
    chunk_size: int,
    top_k: int,
    i2t_scorer: BlockScorer | None = None,
) -> CellResult:
    """Rank every caption query (T2I) and optionally every image query (I2T)."""
    t2i_ranks = rank_queries(t2i_scorer, Positives.from_gold(gold, n_images), chunk_size, top_k)
    seconds = t2i_ranks.score_seconds
    t2i = recall_at_k(t2i_ranks.ranks, ks)
    i2t = mr6 = None
    if i2t_scorer is not None:
        lists = [[] for _ in range(n_images)]
        for cap, img in enumerate(gold):
            lists[img].append(cap)
        keep = [i for i, lst in enumerate(lists) if lst]  # images without a caption in this variant
        if len(keep) == n_images:
            i2t_ranks = rank_queries(i2t_scorer, Positives.from_lists(lists, len(gold)), chunk_size, top_k)
            i2t = recall_at_k(i2t_ranks.ranks, ks)
            mr6 = mean_recall_6(t2i, i2t) if {1, 5, 10} <= set(ks) else None
    mr = mean_recall(t2i) if {1, 5, 10} <= set(ks) else float("nan")
    return CellResult(t2i, mr, i2t, mr6, t2i_ranks, seconds)


def per_query_table(query_ids: list[str], gold: np.ndarray, image_ids: list[str], ranks: RankResult,
                    cell: dict[str, str]) -> pa.Table:
    """One row per query: ids, gold image, rank, top-k image ids and scores, plus the cell keys."""
    ids = np.asarray(image_ids, dtype=object)
    n = len(query_ids)
    cols = {k: pa.array([v] * n, pa.string()) for k, v in cell.items()}
    cols.update({
        "query_id": pa.array(query_ids, pa.string()),
        "gold_image_id": pa.array([image_ids[g] for g in gold], pa.string()),
        "rank": pa.array(ranks.ranks, pa.int64()),
        "topk_image_ids": pa.array([list(ids[row]) for row in ranks.topk_idx], pa.list_(pa.string())),
        "topk_scores": pa.array([list(map(float, row)) for row in ranks.topk_scores], pa.list_(pa.float32())),
    })
    return pa.table(cols)
