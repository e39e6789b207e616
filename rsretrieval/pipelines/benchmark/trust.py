"""Trust columns of a run's results: duplicate-aware R@K, the ceiling, bootstrap CIs, p-values vs V2V.

Everything is computed after the cells ran, from each cell's per-query Parquet (ranks and saved top-k)
and the caption texts, so every mode (full matrix, reranked, graph) gets the same treatment without
rescoring. Columns added to each results row (K in ``eval.ks``; mR when ks holds 1, 5, 10):

* ``R@K_ci_low`` / ``R@K_ci_high``, ``mR_ci_low`` / ``mR_ci_high``: percentile bootstrap over queries.
* ``dedup_R@K``, ``dedup_mR``, ``dedup_queries``: one query per (normalised text, gold image).
* ``mp_R@K``, ``mp_mR``: multi-positive (images described by an identical text count as hits).
* ``ceiling_R@K``, ``ceiling_mR``: the best standard value any text-only ranker can reach.
* ``p_vs_v2v``: one-sided p-value that the cell beats the V2V cell of the same dataset, variant and
  backbone on the same queries. G2G does not use an image backbone: its p is the largest over the V2V
  cells of every backbone (significant only if it beats all of them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rsretrieval.config import EvalConfig
from rsretrieval.evaluation.duplicates import dedup_mask, multi_positive_ranks_grouped, recall_ceiling, text_groups
from rsretrieval.evaluation.metrics import mean_recall, recall_at_k
from rsretrieval.evaluation.uncertainty import bootstrap_ci, paired_test
from rsretrieval.pipelines.benchmark.cells import per_query_name

log = logging.getLogger(__name__)


def _with_mr(prefix: str, rec: dict[int, float], ks: list[int]) -> dict[str, float]:
    out = {f"{prefix}R@{k}": v for k, v in rec.items()}
    if {1, 5, 10} <= set(ks):
        out[f"{prefix}mR"] = mean_recall(rec)
    return out


def query_texts(query_ids: Any, texts: Mapping[str, str] | pa.Table) -> list[str]:
    """The caption text of each query id (``texts``: caption id -> text, or a table of ``caption_id`` and
    ``text`` columns); an unknown id is its own text (no duplicate)."""
    if not isinstance(texts, pa.Table):
        return [texts.get(q, q) for q in query_ids]
    ids = pa.array(list(query_ids), pa.string())
    rows = pc.index_in(ids, value_set=texts["caption_id"].combine_chunks())
    found = texts["text"].combine_chunks().take(rows)
    return pc.if_else(pc.is_null(rows), ids, found).to_pylist()


def duplicate_aware(table: Any, texts: Mapping[str, str] | pa.Table, ks: list[int]) -> dict[str, float]:
    """dedup_*, mp_*, ceiling_* metrics of one cell's per-query table (pandas) given the caption texts
    (caption id -> text, or a ``caption_id`` / ``text`` table)."""
    q_texts = query_texts(table["query_id"], texts)
    ranks = table["rank"].to_numpy()
    top_ids = np.array([list(x) for x in table["topk_image_ids"]], dtype=object)
    top_scores = np.array([list(x) for x in table["topk_scores"]], dtype=np.float64)
    if top_ids.ndim != 2:  # ragged lists (a gallery smaller than top-k): no top-k shortcut
        top_ids, top_scores = np.zeros((len(ranks), 0), object), np.zeros((len(ranks), 0))
    # one integer code per image id, gold and listed images alike (gold codes first, in first-seen order)
    codes, _ = pd.factorize(np.concatenate([table["gold_image_id"].to_numpy(object), top_ids.ravel()]))
    gold, top_codes = codes[: len(ranks)], codes[len(ranks):].reshape(top_ids.shape)
    keep = dedup_mask(q_texts, gold)
    out = _with_mr("dedup_", recall_at_k(ranks[keep], ks), ks)
    out["dedup_queries"] = int(keep.sum())
    mp = multi_positive_ranks_grouped(ranks, top_codes, top_scores, text_groups(q_texts), gold)
    out.update(_with_mr("mp_", recall_at_k(mp, ks), ks))
    out.update(_with_mr("ceiling_", recall_ceiling(q_texts, gold, ks), ks))
    return out


def _cis(ranks: np.ndarray, ecfg: EvalConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, (lo, hi) in bootstrap_ci(ranks, ecfg.ks, ecfg.bootstrap_resamples, ecfg.confidence,
                                       ecfg.bootstrap_seed).items():
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    return out


def _paired_p(a: Any, b: pd.Series, ecfg: EvalConfig) -> float:
    """p-value of 'a beats b' on the queries they share (``b``: rank by query id; aligned by query id)."""
    rb = b.reindex(a["query_id"].to_numpy())
    common = rb.notna().to_numpy()
    if not common.any():
        return float("nan")
    ra = a["rank"].to_numpy()[common]
    return paired_test(ra, rb.to_numpy()[common].astype(np.int64), ecfg.ks, ecfg.paired_test,
                       ecfg.bootstrap_resamples, ecfg.bootstrap_seed)


def add_trust_columns(rows: list[dict[str, Any]], per_query_dir: Path,
                      texts: Mapping[str, Mapping[str, str] | pa.Table], ecfg: EvalConfig) -> list[str]:
    """Add the trust columns to ``rows`` in place (texts: dataset -> caption id -> text, or its
    ``caption_id`` / ``text`` table); return footnotes.

    One cell's per-query table is read at a time (at corpus size all of them together would be GBs);
    only the V2V cells' ranks, which the p-values compare against, stay while the rows are done."""
    if not rows:
        return []

    def path_of(row: dict[str, Any]) -> Path:
        return Path(per_query_dir) / f"{per_query_name(row)}.parquet"

    base_ranks: dict[int, pd.Series | None] = {}

    def ranks_of(row: dict[str, Any]) -> pd.Series | None:
        if id(row) not in base_ranks:
            path = path_of(row)
            t = pq.read_table(path, columns=["query_id", "rank"]).to_pandas() if path.is_file() else None
            base_ranks[id(row)] = None if t is None else pd.Series(t["rank"].to_numpy(), index=t["query_id"].to_numpy())
        return base_ranks[id(row)]

    for row in rows:
        path = path_of(row)
        if not path.is_file():
            log.warning("no per-query ranks for %s: trust columns left empty", per_query_name(row))
            continue
        t = pq.read_table(path).to_pandas()
        if ecfg.bootstrap_resamples > 0:
            row.update(_cis(t["rank"].to_numpy(), ecfg))
        if ecfg.duplicate_aware:
            row.update(duplicate_aware(t, texts.get(row["dataset"], {}), ecfg.ks))
        if row["mode"] != "v2v" and ecfg.bootstrap_resamples > 0 and {1, 5, 10} <= set(ecfg.ks):
            bases = [b for b in rows if b["mode"] == "v2v" and b["dataset"] == row["dataset"]
                     and b["variant"] == row["variant"] and (row["mode"] == "g2g" or b["backbone"] == row["backbone"])]
            ps = [_paired_p(t, r, ecfg) for r in map(ranks_of, bases) if r is not None]
            row["p_vs_v2v"] = max(ps) if ps else float("nan")
        del t
    notes = []
    if ecfg.bootstrap_resamples > 0:
        notes.append(f"CIs: {100 * ecfg.confidence:g}% percentile bootstrap over queries ({ecfg.bootstrap_resamples} "
                     f"resamples, seed {ecfg.bootstrap_seed}); p_vs_v2v: one-sided paired {ecfg.paired_test} test "
                     "of mR against V2V of the same dataset, variant and backbone, on the same queries (G2G: the "
                     "largest p over the backbones); no multiple-comparison correction")
    if ecfg.duplicate_aware:
        notes.append("dedup_*: one query per (normalised caption text, gold image); mp_*: an image described by an "
                     "identical caption counts as a hit; ceiling_*: the best standard value a text-only ranker can "
                     "reach (identical texts get identical rankings)")
    return notes


def trust_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The trust columns of every row as MLflow metrics (``<dataset>/<variant>/<backbone>/<cell>/<column>``)."""
    from rsretrieval.pipelines.benchmark.cells import cell_name
    from rsretrieval.pipelines.runtime.tracking import metric_key

    out = {}
    for row in rows:
        for k, v in row.items():
            if (k.startswith(("dedup_", "mp_", "ceiling_")) or "_ci_" in k or k == "p_vs_v2v") and v == v:
                out[metric_key(row["dataset"], row["variant"], row["backbone"], cell_name(row), k)] = float(v)
    return out
