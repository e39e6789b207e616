"""Generation as a job: inputs from the configured datasets, every task, dry runs, accounting.

Text tasks (text_graph, text_scenes) take the captions of one variant; image tasks take the
images; ``image_graph`` is the thesis' two-step chain: it runs ``object_counts`` first and sends
each image's validated counts along with the image. Summaries (requests, tokens, cost) are
written to ``<run_dir>/generation.csv`` and logged to MLflow.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rsretrieval.config import BenchmarkConfig
from rsretrieval.data.registry import evaluation_split, load_dataset
from rsretrieval.data.schema import RSDataset
from rsretrieval.generation.gemini import GenerationInput
from rsretrieval.generation.store import ResponseStore, record_key
from rsretrieval.generation.tasks import get_task
from rsretrieval.pipelines.generation import read_input

log = logging.getLogger(__name__)


def store_dir(cfg: BenchmarkConfig) -> Path:
    return cfg.generation.store_dir or Path(cfg.cache_dir) / "generation"


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
    return {"task": task_name, "model": gen.model, "inputs": inputs.num_rows, "skipped_done": inputs.num_rows - todo,
            "requested": todo, "tokens_in": tokens_in, "tokens_out": tokens_out,
            "cost_usd": gen.cost_usd(tokens_in, tokens_out), "estimate": True,
            "minutes_at_quota": todo / gen.requests_per_minute}


def _with_counts(cfg: BenchmarkConfig, inputs: pa.Table) -> pa.Table:
    """Image inputs plus their step-1 object counts (A.1.2 step 2 sees the image and the counts)."""
    from rsretrieval.pipelines.generation import run_generation

    _, counts = run_generation("object_counts", inputs, cfg.generation, store_dir(cfg))
    keep = [i for i, iid in enumerate(inputs["input_id"].to_pylist()) if iid in counts and counts[iid].status == "ok"]
    kept = inputs.take(keep)
    extra = [f"Object counts from step 1: {json.dumps(json.loads(counts[i].parsed))}" for i in kept["input_id"].to_pylist()]
    return kept.append_column("extra_text", pa.array(extra, pa.string()))


def generate(cfg: BenchmarkConfig, tasks: list[str], variant: str = "fine_grained", limit: int | None = None,
             dry: bool = False) -> list[dict[str, Any]]:
    """Run (or estimate) every task on every configured dataset split."""
    from rsretrieval.pipelines.generation import run_generation

    if cfg.generation.backend != "gemini" and not dry:
        raise ValueError("generate runs the Gemini backend (generation.backend=gemini, key in GEMINI_API_KEY); "
                         "use --dry-run to count requests and cost without a key")
    rows: list[dict[str, Any]] = []
    for dcfg in cfg.datasets:
        ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
        for task_name in tasks:
            inputs = task_inputs(ds, task_name, variant, limit)
            if dry:
                row = dry_run(cfg, task_name, inputs)
            else:
                if task_name == "image_graph":
                    inputs = _with_counts(cfg, inputs)
                summary, _ = run_generation(task_name, inputs, cfg.generation, store_dir(cfg))
                row = {**summary.as_dict(), "estimate": False}
            rows.append({"dataset": dcfg.name, **row})
            log.info("%s/%s: %s", dcfg.name, task_name, row)
    return rows
