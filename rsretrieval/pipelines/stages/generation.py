"""Ray glue of generation: a cluster-wide pacer actor and a Ray Data stage for every task.

* a pacer actor (:class:`rsretrieval.generation.limiter.Pacer`, one per job) books request slots
  for every generation actor on every node, so ``requests_per_minute`` / ``tokens_per_minute``
  hold for the whole job, not per actor. Concurrent jobs sharing one key need their own quotas.
* :class:`GenerationStage` (actor pool, ``concurrency_per_actor`` requests in flight each) skips
  inputs whose answers are already in the store, requests the rest, and appends every record to
  the store the moment it arrives; a killed actor loses only its requests in flight.
* :func:`run_generation` drives a table of inputs through the stage and returns the records that
  count for each input, plus token/cost accounting; ``dry_run`` only counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import SecretStr

from rsretrieval.generation.config import GenerationConfig
from rsretrieval.generation.gemini import GeminiGenerator, GenerationInput, api_key_from_env
from rsretrieval.generation.store import GenerationRecord, ResponseStore, record_key
from rsretrieval.generation.tasks import get_task
from rsretrieval.pipelines.stages.embed import dataset_from_table
from rsretrieval.pipelines.runtime.ray_session import ensure_ray

log = logging.getLogger(__name__)

NAMESPACE = "rsretrieval"
PACER_NAME = "rsretrieval-gemini-pacer"
INPUT_COLUMNS = ("input_id", "text", "uri", "extra_text")


_PACERS: dict[tuple[str, str, int, int], Any] = {}


def pacer_actor(cfg: GenerationConfig) -> Any:
    """The pacer actor of this driver for the configured quotas: one per job, shared by every
    generation actor and stage of the job. The handle is kept for the life of the driver (an
    actor whose handles are all dropped is collected, and a name lookup could race with that)."""
    import ray

    from rsretrieval.generation.limiter import Pacer

    ctx = ray.get_runtime_context()
    # the driver's node id tells Ray sessions apart: job ids repeat ("01000000") when a process shuts
    # Ray down and starts it again, and a handle from the old session must not be reused
    key = (ctx.get_node_id(), ctx.get_job_id(), cfg.requests_per_minute, cfg.tokens_per_minute)
    if key not in _PACERS:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # On the driver's node: a worker node lost mid-run must not take the job's quota book with
        # it (if the driver's node goes, the job goes anyway). Restartable all the same: a restarted
        # pacer starts an empty book, so at worst one burst of at most `actors x concurrency`.
        here = NodeAffinitySchedulingStrategy(ctx.get_node_id(), soft=True)
        remote = ray.remote(num_cpus=0, max_concurrency=64, max_restarts=-1, max_task_retries=-1)(Pacer)
        _PACERS[key] = remote.options(name=f"{PACER_NAME}-{key[1]}-{key[2]}-{key[3]}", namespace=NAMESPACE,
                                      scheduling_strategy=here).remote(cfg.requests_per_minute, cfg.tokens_per_minute)
    return _PACERS[key]


class RayLimiter:
    """Limiter that books slots from the shared pacer actor."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def acquire(self, tokens: int) -> None:
        wait = await self.handle.reserve.remote(tokens)
        if wait > 0:
            await asyncio.sleep(wait)


def read_input(row: dict[str, Any]) -> GenerationInput:
    """A stage row -> GenerationInput (the image is read here, in the worker)."""
    image = None
    uri = row.get("uri")
    if uri:
        with open(str(uri), "rb") as f:
            image = f.read()
    mime = "image/png" if str(uri).lower().endswith(".png") else "image/jpeg" if uri else "image/png"
    if uri and str(uri).lower().endswith((".tif", ".tiff")):
        image, mime = _tiff_as_png(image), "image/png"  # Gemini does not take TIFF
    return GenerationInput(str(row["input_id"]), row.get("text") or None, image, mime, row.get("extra_text") or None)


def _tiff_as_png(data: bytes) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, format="PNG")
    return out.getvalue()


class GenerationStage:
    """``map_batches`` callable: input rows -> (input_id, key, status, skipped) per row."""

    def __init__(self, task_name: str, cfg_json: str, store_dir: str, pacer: Any, api_key: SecretStr) -> None:
        self.cfg = GenerationConfig.model_validate_json(cfg_json)
        self.task = get_task(task_name)
        self.store = ResponseStore(store_dir)
        self.done = self.store.done_keys(task_name, self.cfg.retry_failed)
        self.generator = GeminiGenerator(self.cfg, RayLimiter(pacer), api_key=api_key.get_secret_value())
        self.loop = asyncio.new_event_loop()

    async def _one(self, sem: asyncio.Semaphore, row: dict[str, Any]) -> dict[str, Any]:
        try:
            inp = read_input(row)
        except OSError as exc:  # a bad file is this row's problem, never the job's
            return {"input_id": str(row["input_id"]), "key": "", "status": "failed", "skipped": False,
                    "error": f"cannot read {row.get('uri')}: {exc}"}
        key = record_key(self.task.name, self.cfg.model, self.task.prompt_version, inp.hash())
        if key in self.done:
            return {"input_id": inp.input_id, "key": key, "status": "done", "skipped": True, "error": None}
        async with sem:
            rec = await self.generator.generate(self.task, inp)
        self.store.append(rec)  # durable before the row is reported
        return {"input_id": inp.input_id, "key": rec.key, "status": rec.status, "skipped": False, "error": rec.error}

    def __del__(self) -> None:
        """Close the client's HTTP session (best effort: an actor may be killed without it)."""
        try:
            self.loop.run_until_complete(self.generator.aclose())
            self.loop.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown, loop already closed
            pass

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows = [{c: (batch[c][i] if c in batch else None) for c in INPUT_COLUMNS} for i in range(len(batch["input_id"]))]
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows]

        async def run() -> list[dict[str, Any]]:
            sem = asyncio.Semaphore(self.cfg.concurrency_per_actor)
            return await asyncio.gather(*(self._one(sem, r) for r in rows))

        out = self.loop.run_until_complete(run())
        return pa.Table.from_pylist(out, schema=pa.schema([("input_id", pa.string()), ("key", pa.string()),
                                                           ("status", pa.string()), ("skipped", pa.bool_()),
                                                           ("error", pa.string())]))


@dataclass
class GenerationSummary:
    """What one generation run did and cost (the thesis' Table 14 columns)."""

    task: str
    model: str
    inputs: int
    skipped_done: int
    requested: int
    ok: int
    failed: int
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cpus_per_actor(cfg: GenerationConfig) -> float:
    """The CPU share each generation actor reserves, shrunk so the pool leaves a CPU free.

    The actors mostly wait on the network; if their reservations took every CPU, Ray Data's
    upstream tasks (read, split) could never be scheduled and the job would wait forever."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    fit = max(total - 1.0, total / 2) / cfg.actors
    if fit < cfg.cpus_per_actor:
        log.warning("generation: %d actors x %.2f CPUs would fill the cluster's %.1f CPUs; reserving %.3f each",
                    cfg.actors, cfg.cpus_per_actor, total, fit)
        return fit
    return cfg.cpus_per_actor


def run_generation(task_name: str, inputs: pa.Table, cfg: GenerationConfig, store_dir: Path) -> tuple[
        GenerationSummary, dict[str, GenerationRecord]]:
    """Generate ``task_name`` for every row of ``inputs`` (columns of INPUT_COLUMNS; text/uri/extra
    optional) on Ray. Returns the summary of this run and input_id -> the record that counts."""
    import ray

    t0 = time.perf_counter()
    # the key is read from the driver's environment (fail fast, before any Ray work) and handed to
    # the actors, which on a cluster do not see the driver's environment
    api_key = SecretStr(api_key_from_env())  # shown as '**********' if Ray ever prints the actor's arguments
    ensure_ray()
    pacer = pacer_actor(cfg)  # held for the whole run: an unreferenced actor would be collected
    cols = {c: inputs[c] if c in inputs.column_names else pa.nulls(inputs.num_rows, pa.string()) for c in INPUT_COLUMNS}
    ds = dataset_from_table(pa.table(cols), cfg.batch_size, cfg.actors).map_batches(
        GenerationStage,
        fn_constructor_kwargs={"task_name": task_name, "cfg_json": cfg.model_dump_json(), "store_dir": str(store_dir),
                               "pacer": pacer, "api_key": api_key},
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.actors),
        num_cpus=_cpus_per_actor(cfg),
        batch_format="numpy",
    )
    rows = pa.concat_tables(ray.get(ds.to_arrow_refs())).to_pylist()
    latest = ResponseStore(store_dir).latest(task_name)
    by_input = {r["input_id"]: latest[r["key"]] for r in rows if r["key"] in latest}
    fresh = [latest[r["key"]] for r in rows if not r["skipped"] and r["key"] in latest]
    summary = GenerationSummary(
        task=task_name, model=cfg.model, inputs=len(rows), skipped_done=sum(r["skipped"] for r in rows),
        requested=sum(not r["skipped"] for r in rows), ok=sum(r["status"] in ("ok", "done") for r in rows),
        failed=sum(r["status"] == "failed" for r in rows), calls=sum(r.calls for r in fresh),
        tokens_in=sum(r.tokens_in for r in fresh), tokens_out=sum(r.tokens_out for r in fresh),
        cost_usd=cfg.cost_usd(sum(r.tokens_in for r in fresh), sum(r.tokens_out for r in fresh)),
        seconds=time.perf_counter() - t0)
    log.info("generation %s: %s", task_name, summary.as_dict())
    return summary, by_input
