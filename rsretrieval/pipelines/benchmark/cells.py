"""One evaluated cell -> its results row, per-query file, MLflow metrics and log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.evaluation.cell_names import cell_name, per_query_name
from rsretrieval.evaluation.retrieval import CellResult, write_per_query
from rsretrieval.pipelines.runtime.tracking import Tracker, metric_key

log = logging.getLogger(__name__)


def record_cell(keys: dict[str, Any], cell: CellResult, query_ids: Any, gold: np.ndarray, image_ids: Any,
                info: dict[str, Any], notes: list[str], tracker: Tracker, per_query_dir: Path) -> dict[str, Any]:
    """Write the cell's per-query ranks and metrics; return its results row."""
    row = {**keys, **cell.metrics(), "n_queries": len(query_ids), "n_images": len(image_ids), **info,
           "notes": "; ".join(notes)}
    write_per_query(per_query_dir / f"{per_query_name(keys)}.parquet", query_ids, gold, image_ids, cell.ranks, keys)
    name = cell_name(keys)
    tracker.log_metrics({metric_key(keys["dataset"], keys["variant"], keys["backbone"], name, k): float(v)
                         for k, v in cell.metrics().items() if v == v})
    log.info("%s/%s/%s/%s: R@1 %.2f R@5 %.2f R@10 %.2f mR %.2f", keys["dataset"], keys["variant"], keys["backbone"],
             name, cell.t2i[1], cell.t2i[5], cell.t2i[10], cell.mR)
    return row
