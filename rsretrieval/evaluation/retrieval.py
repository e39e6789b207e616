"""Evaluate one (dataset split, variant, backbone, mode) cell: ranks, recalls, per-query table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


def gold_indices(caption_image_ids: Any, image_ids: Any) -> np.ndarray:
    """Index in ``image_ids`` of each caption's gold image (lists or Arrow arrays; an Arrow hash
    lookup, so no Python dict of the gallery)."""
    import pyarrow.compute as pc

    caps = _string_array(caption_image_ids)
    pos = pc.index_in(caps, value_set=_string_array(image_ids))
    if pos.null_count:
        missing = pc.filter(caps, pc.is_null(pos)).slice(0, 3).to_pylist()
        raise KeyError(f"{pos.null_count} captions describe images outside the gallery, e.g. {missing}")
    return pos.to_numpy(zero_copy_only=False).astype(np.int64)


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


def _string_array(ids: Any) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        return ids.combine_chunks()
    return ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())


def per_query_table(query_ids: Any, gold: np.ndarray, image_ids: Any, ranks: RankResult,
                    cell: dict[str, str]) -> pa.Table:
    """One row per query: ids, gold image, rank, top-k image ids and scores, plus the cell keys.

    ``query_ids`` / ``image_ids``: lists or Arrow string arrays. Built with Arrow takes (no Python
    list per query), so a block of a million queries costs its Arrow buffers only."""
    ids = _string_array(image_ids)
    n = len(gold)
    cols: dict[str, Any] = {k: pa.repeat(pa.scalar(v, pa.string()), n) for k, v in cell.items()}
    top_idx, top_scores = np.asarray(ranks.topk_idx, np.int64), np.asarray(ranks.topk_scores, np.float32)
    k = top_idx.shape[1] if top_idx.ndim == 2 else 0
    offsets = pa.array(np.arange(0, n * k + 1, max(k, 1), dtype=np.int32)[: n + 1] if k else np.zeros(n + 1, np.int32))
    cols.update({
        "query_id": _string_array(query_ids),
        "gold_image_id": ids.take(pa.array(np.asarray(gold, np.int64))),
        "rank": pa.array(np.asarray(ranks.ranks, np.int64), pa.int64()),
        "topk_image_ids": pa.ListArray.from_arrays(offsets, ids.take(pa.array(top_idx.reshape(-1)))),
        "topk_scores": pa.ListArray.from_arrays(offsets, pa.array(top_scores.reshape(-1), pa.float32())),
    })
    return pa.table(cols)


def write_per_query(path: Any, query_ids: Any, gold: np.ndarray, image_ids: Any, ranks: RankResult,
                    cell: dict[str, str], block: int = 262_144) -> None:
    """:func:`per_query_table` written ``block`` queries (one Parquet row group) at a time."""
    import pyarrow.parquet as pq

    qids, n = _string_array(query_ids), len(gold)
    writer = None
    try:
        for a in range(0, max(n, 1), block):
            part = RankResult(np.asarray(ranks.ranks[a : a + block]), np.asarray(ranks.topk_idx[a : a + block]),
                              np.asarray(ranks.topk_scores[a : a + block]))
            t = per_query_table(qids.slice(a, block), np.asarray(gold[a : a + block]), image_ids, part, cell)
            writer = writer or pq.ParquetWriter(str(path), t.schema)
            writer.write_table(t)
    finally:
        if writer is not None:
            writer.close()
