"""Generation in Gemini Batch mode (``generation.mode: batch``), driven from the driver process.

Same contract as :func:`rsretrieval.pipelines.stages.generation.run_generation`: the inputs table goes in,
the run's :class:`GenerationSummary` and input_id -> the record that counts come out. There is no
Ray work: the driver reads the inputs, submits what the store lacks as batch jobs
(:mod:`rsretrieval.generation.batch`), waits for them and stores the answers. Cost is reported at
``batch_price_factor`` of the online prices. A job still running when the wait ends raises
:class:`~rsretrieval.generation.batch.BatchStillRunning`; rerunning the same command resumes it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from rsretrieval.generation.batch import DEFAULT_MAX_WAIT_S, BatchRunner
from rsretrieval.generation.config import GenerationConfig
from rsretrieval.generation.gemini import GenerationInput, api_key_from_env
from rsretrieval.generation.store import GenerationRecord, ResponseStore, record_key
from rsretrieval.generation.tasks import get_task
from rsretrieval.pipelines.stages.generation import INPUT_COLUMNS, GenerationSummary, read_input

log = logging.getLogger(__name__)


def run_batch_generation(task_name: str, inputs: pa.Table, cfg: GenerationConfig, store_dir: Path, *,
                         max_wait_s: float = DEFAULT_MAX_WAIT_S, client: Any = None) -> tuple[
        GenerationSummary, dict[str, GenerationRecord]]:
    """Generate ``task_name`` for every row of ``inputs`` (columns of INPUT_COLUMNS; text/uri/extra
    optional) with the Gemini Batch API. ``calls``/tokens/cost count the answers this run collected
    (including those of jobs resumed from an earlier run); ``max_wait_s`` bounds the polling."""
    t0 = time.perf_counter()
    task = get_task(task_name)
    api_key = None if client is not None else api_key_from_env()  # fail fast, before reading inputs
    rows = [{c: row.get(c) for c in INPUT_COLUMNS} for row in inputs.to_pylist()]
    store = ResponseStore(store_dir)
    done = store.done_keys(task_name, cfg.retry_failed)
    items: list[GenerationInput] = []
    keys: list[str | None] = []  # per row; None: the input could not be read
    for row in rows:
        try:
            inp = read_input(row)
        except OSError as exc:  # a bad file is this row's problem, never the run's
            log.warning("generation %s: cannot read %s: %s", task_name, row.get("uri"), exc)
            keys.append(None)
            continue
        items.append(inp)
        keys.append(record_key(task_name, cfg.model, task.prompt_version, inp.hash()))
    try:
        fresh = BatchRunner(cfg, store, api_key=api_key, client=client, max_wait_s=max_wait_s).run(task, items)
    finally:
        store.close()
    latest = ResponseStore(store_dir).latest(task_name)
    by_input = {str(row["input_id"]): latest[k] for row, k in zip(rows, keys) if k is not None and k in latest}
    ok = sum(r.status == "ok" for r in by_input.values())
    skipped = sum(k is not None and k in done for k in keys)
    tokens_in, tokens_out = sum(r.tokens_in for r in fresh), sum(r.tokens_out for r in fresh)
    summary = GenerationSummary(
        task=task_name, model=cfg.model, inputs=len(rows), skipped_done=skipped, requested=len(rows) - skipped,
        ok=ok, failed=len(rows) - ok, calls=sum(r.calls for r in fresh), tokens_in=tokens_in, tokens_out=tokens_out,
        cost_usd=cfg.cost_usd(tokens_in, tokens_out, batch=True), seconds=time.perf_counter() - t0)
    log.info("generation %s (batch): %s", task_name, summary.as_dict())
    return summary, by_input
