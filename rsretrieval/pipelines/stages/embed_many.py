"""Several embedding tables of one backbone in one Ray Data pass.

A backbone needs up to five tables at once (images, captions, the crops of each crop method, text
scenes) and, for VG2VG training, four more (train/val images and captions). One Ray Data pass per
table starts an actor pool per table, and on 2 CPU cores an actor's start (a process, torch,
open_clip, the model) costs ~5 s, more than embedding a few hundred rows. Here the tables that are
not cached travel as one dataset with a request column; each actor loads the backbone once and hands
every row to the stage of its table (:class:`~rsretrieval.pipelines.stages.embed.ImageEmbedStage`, ...).
The result is split back into one cache folder per table, exactly where :func:`embed_table` puts it,
so the two share their caches. The pass's seconds are shared out by rows in each folder's
``_SUCCESS`` (``seconds``; ``pass_seconds`` and ``pass_rows`` give the whole pass).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rsretrieval.config import EmbedConfig
from rsretrieval.pipelines.stages.embed import (ImageEmbedStage, TextEmbedStage, EmbedStage, pool_size, dataset_from_table,
                                         embed_table, embedding_key)
from rsretrieval.pipelines.runtime.ray_session import ensure_ray

log = logging.getLogger(__name__)
REQUEST = "_request"  # the column naming a row's table
DEFAULT_STAGES = {"images": ImageEmbedStage, "captions": TextEmbedStage, "text_scenes": TextEmbedStage}


@dataclass
class EmbedRequest:
    """One table to embed: ``kind`` names its cache folder; ``stage`` reads its columns (default by kind);
    ``label`` names it on the console (default: the kind)."""

    kind: str
    table: pa.Table
    stage: type[EmbedStage] | None = None
    label: str = ""

    @property
    def stage_cls(self) -> type[EmbedStage]:
        return self.stage or DEFAULT_STAGES[self.kind]


class MultiEmbedStage(EmbedStage):
    """``map_batches`` callable: rows of several tables -> owner_id, vector, request (one backbone load)."""

    def __init__(self, *args: Any, stages: list[type[EmbedStage]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stages = [cls.sharing(self) for cls in stages]

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        request = np.asarray(batch[REQUEST])
        parts = []
        for r in np.unique(request):
            rows = request == r
            stage = self.stages[int(r)]
            out = stage({c: np.asarray(batch[c])[rows] for c in stage.input_columns})
            parts.append(out.append_column(REQUEST, pa.array(np.full(out.num_rows, r, np.int32))))
        return pa.concat_tables(parts)


def embedding_dir(cache_dir: Path, req: EmbedRequest, backbone_name: str, checkpoint: Path | None) -> Path:
    key = embedding_key(req.kind, req.table, req.stage_cls.input_columns, backbone_name, checkpoint)
    return Path(cache_dir) / "embeddings" / f"{req.kind}-{backbone_name}-{key}"


def embed_tables(requests: list[EmbedRequest], backbone_name: str, checkpoint: Path | None, cfg: EmbedConfig,
                 cache_dir: Path) -> list[tuple[Path, bool]]:
    """(folder, cached) per request, in order: cached tables read as they are, the others embedded together."""
    import ray

    finals = [embedding_dir(cache_dir, r, backbone_name, checkpoint) for r in requests]
    todo = [i for i, f in enumerate(finals) if not (f / "_SUCCESS").exists()]
    for i, f in enumerate(finals):
        if i not in todo:
            log.info("embeddings %s: cached at %s", requests[i].label or requests[i].kind, f)
    if len(todo) == 1:  # nothing to share
        i = todo[0]
        return [embed_table(r.kind, r.table, backbone_name, checkpoint, cfg, cache_dir, r.stage_cls)
                if j == i else (f, True) for j, (r, f) in enumerate(zip(requests, finals))]
    if not todo:
        return [(f, True) for f in finals]
    ensure_ray()
    t0 = time.perf_counter()
    union = pa.concat_tables(
        [requests[i].table.select(list(requests[i].stage_cls.input_columns))
         .append_column(REQUEST, pa.array(np.full(requests[i].table.num_rows, n, np.int32)))
         for n, i in enumerate(todo)], promote_options="default")  # columns a table lacks are null there
    size = pool_size(cfg)
    tmp = Path(cache_dir) / "embeddings" / f".pass-{uuid.uuid4().hex[:8]}"
    ds = dataset_from_table(union, cfg.batch_size, size).map_batches(
        MultiEmbedStage,
        fn_constructor_kwargs={"backbone_name": backbone_name, "checkpoint": str(checkpoint) if checkpoint else None,
                               "device": cfg.device, "torch_threads": cfg.torch_threads, "concurrency": size,
                               "stages": [requests[i].stage_cls for i in todo]},
        batch_size=cfg.batch_size, compute=ray.data.ActorPoolStrategy(size=size),
        num_gpus=cfg.num_gpus_per_actor or None, batch_format="numpy")
    try:
        ds.write_parquet(str(tmp))
        seconds = time.perf_counter() - t0
        _split(pq.read_table(tmp), [requests[i] for i in todo], [finals[i] for i in todo], backbone_name, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("embeddings %s: %d rows computed with %s in one pass, %.1f s",
             ", ".join(requests[i].label or requests[i].kind for i in todo), union.num_rows, backbone_name, time.perf_counter() - t0)
    return [(f, i not in todo) for i, f in enumerate(finals)]


def _split(result: pa.Table, requests: list[EmbedRequest], finals: list[Path], backbone_name: str,
           seconds: float) -> None:
    """One complete cache folder per request (written aside, renamed into place)."""
    request = result[REQUEST].to_numpy()
    total = max(1, sum(r.table.num_rows for r in requests))
    for n, (req, final) in enumerate(zip(requests, finals)):
        part = result.filter(pa.array(request == n)).drop_columns([REQUEST])
        if part.num_rows != req.table.num_rows:
            raise RuntimeError(f"embeddings {req.kind}: {part.num_rows} vectors for {req.table.num_rows} rows")
        tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        pq.write_table(part, tmp / "part-0.parquet")
        share = seconds * req.table.num_rows / total
        (tmp / "_SUCCESS").write_text(json.dumps({"rows": req.table.num_rows, "backbone": backbone_name,
                                                   "seconds": share, "pass_seconds": seconds, "pass_rows": total}))
        if final.exists():  # a stale incomplete folder from an older layout
            shutil.rmtree(final)
        os.replace(tmp, final)
