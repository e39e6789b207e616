"""Generation tasks as a stage: inputs of a dataset split, every task, dry-run estimates, accounting.

Text tasks (text_graph, text_scenes) take the captions of one variant; image tasks take the
images; ``image_graph`` on Gemini is the thesis' two-step chain: it runs ``object_counts`` first and
sends each image's validated counts along with the image. The backend is Gemini (online on Ray
actors, or the Batch API) or offline (heuristic parser, splitter, simulated VLM). Summaries
(requests, tokens, cost, seconds; the thesis' Table 14 columns) are written to
``<run_dir>/generation.csv`` and logged to MLflow.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rsretrieval.config import BenchmarkConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.generation.gemini import GenerationInput
from rsretrieval.generation.offline import offline_generator_name, offline_records
from rsretrieval.generation.store import GenerationRecord, ResponseStore, record_key
from rsretrieval.generation.tasks import get_task
from rsretrieval.graphs.schema import ImageSceneGraph
from rsretrieval.pipelines.stages.generation import read_input

log = logging.getLogger(__name__)

OUTPUTS_SCHEMA = pa.schema([
    ("owner_id", pa.string()), ("kind", pa.string()), ("output", pa.string()),  # validated JSON, null if failed
    ("generator", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("tokens_in", pa.int64()), ("tokens_out", pa.int64()),
])


def store_dir(cfg: BenchmarkConfig) -> Path:
    """The response store: ``generation.store_dir``, else ``<cache_dir>/generation``; with a ``base_url``
    (a proxy, the fake server) ``<cache_dir>/generation@<host_port>``, so answers of another endpoint
    (a rehearsal) are never taken for paid ones by a later run against the real API."""
    gen = cfg.generation
    if gen.store_dir:
        return gen.store_dir
    if gen.base_url:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", gen.base_url.split("://", 1)[-1]).strip("_")
        return Path(cfg.cache_dir) / f"generation@{slug}"
    return Path(cfg.cache_dir) / "generation"


def task_inputs(ds: RSDataset, task_name: str, variant: str, limit: int | None) -> pa.Table:
    """Rows (input_id, text, uri) of ``task_name`` for one dataset split."""
    if get_task(task_name).input_kind == "text":
        caps = ds.captions
        if variant in set(caps["variant"].to_pylist()):
            caps = caps.filter(pc.equal(caps["variant"], variant))
        out = pa.table({"input_id": caps["caption_id"], "text": caps["text"]})
    else:
        out = pa.table({"input_id": ds.images["image_id"], "uri": ds.images["uri"]})
    return out.slice(0, limit) if limit else out


def dry_run(cfg: BenchmarkConfig, task_name: str, inputs: pa.Table) -> dict[str, Any]:
    """Count what a real run would request and estimate its tokens and cost; sends nothing."""
    task, gen = get_task(task_name), cfg.generation
    done = ResponseStore(store_dir(cfg)).done_keys(task_name, gen.retry_failed)
    todo = tokens_in = 0
    system_tokens = len(task.system_prompt) // 4 + 1
    for row in inputs.to_pylist():
        inp: GenerationInput = read_input(row)
        if record_key(task_name, gen.model, task.prompt_version, inp.hash()) in done:
            continue
        todo += 1
        tokens_in += system_tokens + inp.estimated_tokens()
    tokens_out = todo * gen.estimated_output_tokens
    phase, used_by = TASK_ROLE[task_name]
    return {"task": task_name, "model": gen.model, "inputs": inputs.num_rows, "skipped_done": inputs.num_rows - todo,
            "requested": todo, "tokens_in": tokens_in, "tokens_out": tokens_out,
            "cost_usd": gen.cost_usd(tokens_in, tokens_out, batch=gen.mode == "batch"), "backend": f"gemini-{gen.mode}",
            "phase": phase, "used_by": used_by, "estimate": True, "minutes_at_quota": todo / gen.requests_per_minute}


# the thesis' Table 13/14: which side of the pipeline a task serves and which modes use it
TASK_ROLE = {
    "fine_grained_caption": ("data preparation", "fine-grained caption variant"),
    "object_counts": ("data preparation", "image graphs, step 1 (G2G/VG2VG)"),
    "image_graph": ("data preparation", "image graphs (G2G/VG2VG)"),
    "text_graph": ("inference", "query graphs (G2G/VG2VG)"),
    "text_scenes": ("inference", "query scenes (S2V/S2S)"),
}


def ground_truth_graphs(ds: RSDataset) -> dict[str, ImageSceneGraph]:
    """image_id -> ground-truth image graph (synthrs), empty for real datasets."""
    if ds.graphs is None:
        return {}
    return {r["owner_id"]: ImageSceneGraph.model_validate_json(r["graph"]) for r in ds.graphs.to_pylist()
            if r["kind"] == "image_graph" and r["generator"] == "ground_truth"}


def _row(task_name: str, summary: dict[str, Any], backend: str) -> dict[str, Any]:
    phase, used_by = TASK_ROLE[task_name]
    return {**summary, "backend": backend, "phase": phase, "used_by": used_by, "estimate": False}


def _remote(task_name: str, inputs: pa.Table, cfg: BenchmarkConfig) -> tuple[dict[str, Any], dict[str, GenerationRecord]]:
    """Gemini, online (Ray actors) or through the Batch API (driver), per ``generation.mode``."""
    gen = cfg.generation
    if gen.mode == "batch":
        from rsretrieval.pipelines.stages.generation_batch import run_batch_generation as run
    else:
        from rsretrieval.pipelines.stages.generation import run_generation as run
    summary, records = run(task_name, inputs, gen, store_dir(cfg))
    return _row(task_name, summary.as_dict(), f"gemini-{gen.mode}"), records


def _offline(task_name: str, inputs: pa.Table, cfg: BenchmarkConfig, ds: RSDataset) -> tuple[dict[str, Any], dict[str, GenerationRecord]]:
    t0 = time.perf_counter()
    records = offline_records(task_name, inputs.to_pylist(), cfg.generation, ground_truth_graphs(ds), cfg.text_scenes, ds.name)
    ok = sum(r.status == "ok" for r in records.values())
    summary = {"task": task_name, "model": offline_generator_name(task_name, cfg.generation, cfg.text_scenes),
               "inputs": inputs.num_rows, "skipped_done": 0, "requested": 0, "ok": ok, "failed": len(records) - ok,
               "calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "seconds": time.perf_counter() - t0}
    return _row(task_name, summary, "offline"), records


def run_task(cfg: BenchmarkConfig, ds: RSDataset, task_name: str, inputs: pa.Table) -> tuple[
        list[dict[str, Any]], dict[str, GenerationRecord]]:
    """Accounting rows and input_id -> record of one task; ``image_graph`` on Gemini is the thesis'
    two-step chain (step 1 counts are sent with the image, and accounted as their own row)."""
    if cfg.generation.backend == "offline":
        row, records = _offline(task_name, inputs, cfg, ds)
        return [_with_stored_totals(row, records, cfg)], records
    rows = []
    if task_name == "image_graph":
        count_row, counts = _remote("object_counts", inputs, cfg)
        rows.append(_with_stored_totals(count_row, counts, cfg))
        inputs = _with_counts(inputs, counts)
    row, records = _remote(task_name, inputs, cfg)
    return rows + [_with_stored_totals(row, records, cfg)], records


def _with_stored_totals(row: dict[str, Any], records: dict[str, GenerationRecord], cfg: BenchmarkConfig) -> dict[str, Any]:
    """The accounting row plus what the whole stored set of answers cost, paid in this run or earlier
    (cost tables report the corpus, not only this run's new requests)."""
    gen = cfg.generation
    tin, tout = sum(r.tokens_in for r in records.values()), sum(r.tokens_out for r in records.values())
    return {**row, "stored_calls": sum(r.calls for r in records.values()), "stored_tokens_in": tin,
            "stored_tokens_out": tout, "stored_cost_usd": gen.cost_usd(tin, tout, batch=gen.mode == "batch"),
            "api_seconds": sum(r.latency_s for r in records.values())}


def outputs_table(records: dict[str, GenerationRecord]) -> pa.Table:
    """The records of one task as a table (owner_id, kind, output JSON, generator, status, error, tokens)."""
    rows = [{"owner_id": i, "kind": r.task, "output": r.parsed, "generator": r.generator, "status": r.status,
             "error": r.error, "tokens_in": r.tokens_in, "tokens_out": r.tokens_out} for i, r in records.items()]
    return pa.Table.from_pylist(rows, schema=OUTPUTS_SCHEMA)


def save_outputs(cfg: BenchmarkConfig, dataset: str, task_name: str, records: dict[str, Any]) -> pa.Table:
    """``<run_dir>/generated/<dataset>/<task>.parquet``: every output with its generator, status and error."""
    table = outputs_table(records)
    out = cfg.run_dir / "generated" / dataset / f"{task_name}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return table


def _with_counts(inputs: pa.Table, counts: dict[str, GenerationRecord]) -> pa.Table:
    """Image inputs plus their step-1 object counts (A.1.2 step 2 sees the image and the counts)."""
    keep = [i for i, iid in enumerate(inputs["input_id"].to_pylist()) if iid in counts and counts[iid].status == "ok"]
    kept = inputs.take(keep)
    extra = [f"Object counts from step 1: {json.dumps(json.loads(counts[i].parsed))}" for i in kept["input_id"].to_pylist()]
    return kept.append_column("extra_text", pa.array(extra, pa.string()))
