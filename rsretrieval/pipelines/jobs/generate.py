"""``rsretrieval generate``: run (or estimate) generation tasks on every configured dataset split."""

from __future__ import annotations

import logging
from typing import Any

from rsretrieval.config import BenchmarkConfig
from rsretrieval.data.registry import evaluation_split, load_dataset
from rsretrieval.pipelines.stages.generation_tasks import dry_run, run_task, save_outputs, task_inputs

log = logging.getLogger(__name__)


def generate(cfg: BenchmarkConfig, tasks: list[str], variant: str = "fine_grained", limit: int | None = None,
             dry: bool = False) -> list[dict[str, Any]]:
    """Run (or estimate) every task on every configured dataset split; outputs are written to
    ``<run_dir>/generated/<dataset>/<task>.parquet``."""
    if dry and cfg.generation.backend != "gemini":
        raise ValueError("--dry-run estimates Gemini requests and cost: set generation.backend=gemini")
    rows: list[dict[str, Any]] = []
    for dcfg in cfg.datasets:
        ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
        for task_name in tasks:
            inputs = task_inputs(ds, task_name, variant, limit)
            if dry:
                task_rows = [dry_run(cfg, task_name, inputs)]
            else:
                task_rows, outputs = run_task(cfg, ds, task_name, inputs)
                save_outputs(cfg, dcfg.name, task_name, outputs)
            for row in task_rows:
                rows.append({"dataset": dcfg.name, **row})
                log.info("%s/%s: %s", dcfg.name, row["task"], row)
    return rows
