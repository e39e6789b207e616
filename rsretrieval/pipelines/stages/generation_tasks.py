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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rsretrieval.config import BenchmarkConfig
from rsretrieval.data.schema import RSDataset
from rsretrieval.generation.gemini import GenerationInput
from rsretrieval.generation.offline import IMAGE_TASKS, offline_generator_name, offline_records
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


class GroundTruthGraphs(Mapping[str, ImageSceneGraph]):
    """image_id -> ground-truth image graph (synthrs; empty for real datasets), parsed on access from the
    dataset's Arrow column: parsed all at once they took ~7 KB per image, 220 MB at NWPU size."""

    def __init__(self, graphs: pa.Table | None) -> None:
        if graphs is None:
            self._json: pa.ChunkedArray | pa.Array = pa.array([], pa.string())
            self._row: dict[str, int] = {}
            return
        truth = graphs.filter(pc.and_(pc.equal(graphs["kind"], "image_graph"), pc.equal(graphs["generator"], "ground_truth")))
        self._json = truth["graph"].combine_chunks()
        self._row = {iid: i for i, iid in enumerate(truth["owner_id"].to_pylist())}  # the last row of an id wins

    def __getitem__(self, image_id: str) -> ImageSceneGraph:
        return ImageSceneGraph.model_validate_json(self._json[self._row[image_id]].as_py())

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._row

    def __iter__(self) -> Iterator[str]:
        return iter(self._row)

    def __len__(self) -> int:
        return len(self._row)


def ground_truth_graphs(ds: RSDataset) -> GroundTruthGraphs:
    """image_id -> ground-truth image graph (synthrs), empty for real datasets."""
    return GroundTruthGraphs(ds.graphs)


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


# offline inputs per block: each block's records become Arrow rows before the next is made, so the
# driver never holds one record object per caption (189,000 text graphs at NWPU size)
OFFLINE_BLOCK = 8192
TOTALS = ("calls", "tokens_in", "tokens_out", "latency_s")


def record_totals(records: dict[str, GenerationRecord]) -> dict[str, float]:
    """Calls, tokens and API seconds of a set of records (what the stored answers cost)."""
    return {k: sum(getattr(r, k) for r in records.values()) for k in TOTALS}


def _offline(task_name: str, inputs: pa.Table, cfg: BenchmarkConfig, ds: RSDataset) -> tuple[dict[str, Any], pa.Table, dict[str, float]]:
    t0 = time.perf_counter()
    truth = ground_truth_graphs(ds) if task_name in IMAGE_TASKS else None
    blocks, totals = [], dict.fromkeys(TOTALS, 0.0)
    for start in range(0, max(inputs.num_rows, 1), OFFLINE_BLOCK):  # an empty input still checks the backend
        records = offline_records(task_name, inputs.slice(start, OFFLINE_BLOCK).to_pylist(), cfg.generation, truth,
                                  cfg.text_scenes, ds.name)
        blocks.append(outputs_table(records))
        totals = {k: totals[k] + v for k, v in record_totals(records).items()}
        del records
    table = pa.concat_tables(blocks)
    ok = table.num_rows - failed_count(table)
    summary = {"task": task_name, "model": offline_generator_name(task_name, cfg.generation, cfg.text_scenes),
               "inputs": inputs.num_rows, "skipped_done": 0, "requested": 0, "ok": ok, "failed": table.num_rows - ok,
               "calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "seconds": time.perf_counter() - t0}
    return _row(task_name, summary, "offline"), table, totals


def run_task(cfg: BenchmarkConfig, ds: RSDataset, task_name: str, inputs: pa.Table) -> tuple[list[dict[str, Any]], pa.Table]:
    """Accounting rows and the task's outputs (``OUTPUTS_SCHEMA``, one row per input that has a record);
    ``image_graph`` on Gemini is the thesis' two-step chain (step 1 counts are sent with the image, and
    accounted as their own row)."""
    if cfg.generation.backend == "offline":
        row, table, totals = _offline(task_name, inputs, cfg, ds)
        return [_with_stored_totals(row, totals, cfg)], table
    rows = []
    if task_name == "image_graph":
        count_row, counts = _remote("object_counts", inputs, cfg)
        rows.append(_with_stored_totals(count_row, record_totals(counts), cfg))
        inputs = _with_counts(inputs, counts)
        del counts
    row, records = _remote(task_name, inputs, cfg)
    return rows + [_with_stored_totals(row, record_totals(records), cfg)], outputs_table(records)


def _with_stored_totals(row: dict[str, Any], totals: dict[str, float], cfg: BenchmarkConfig) -> dict[str, Any]:
    """The accounting row plus what the whole stored set of answers cost, paid in this run or earlier
    (cost tables report the corpus, not only this run's new requests)."""
    gen = cfg.generation
    tin, tout = int(totals["tokens_in"]), int(totals["tokens_out"])
    return {**row, "stored_calls": int(totals["calls"]), "stored_tokens_in": tin, "stored_tokens_out": tout,
            "stored_cost_usd": gen.cost_usd(tin, tout, batch=gen.mode == "batch"), "api_seconds": totals["latency_s"]}


def failed_count(table: pa.Table) -> int:
    """Rows of an outputs table whose status is not ``ok``."""
    return table.num_rows - (pc.sum(pc.equal(table["status"], "ok")).as_py() or 0)


def ok_outputs(table: pa.Table, ids: list[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """The validated output JSON of each id, in ``ids``' order; null where the id has no ``ok`` record."""
    ok = table.filter(pc.equal(table["status"], "ok"))
    ids = pa.array(ids, pa.string()) if isinstance(ids, list) else ids
    pos = pc.index_in(ids, value_set=ok["owner_id"].combine_chunks())
    return ok["output"].combine_chunks().take(pos)


def iter_values(values: pa.Array | pa.ChunkedArray, block: int = OFFLINE_BLOCK) -> Iterator[Any]:
    """The Python values of an Arrow array, converted ``block`` at a time (never the whole list at once)."""
    for start in range(0, len(values), block):
        yield from values.slice(start, block).to_pylist()


def outputs_table(records: dict[str, GenerationRecord]) -> pa.Table:
    """The records of one task as a table (owner_id, kind, output JSON, generator, status, error, tokens)."""
    rows = [{"owner_id": i, "kind": r.task, "output": r.parsed, "generator": r.generator, "status": r.status,
             "error": r.error, "tokens_in": r.tokens_in, "tokens_out": r.tokens_out} for i, r in records.items()]
    return pa.Table.from_pylist(rows, schema=OUTPUTS_SCHEMA)


def save_outputs(cfg: BenchmarkConfig, dataset: str, task_name: str, table: pa.Table) -> pa.Table:
    """``<run_dir>/generated/<dataset>/<task>.parquet``: every output with its generator, status and error."""
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
