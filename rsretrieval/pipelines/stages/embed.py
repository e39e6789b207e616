"""Ray Data embedding stage: images and captions -> L2-normalised vectors, cached as Parquet.

The stage is a callable class for ``map_batches`` run in an actor pool (one model load per
actor; GPU actors when ``num_gpus_per_actor`` > 0). Each actor decodes and preprocesses its batch
with the backbone's own eval transform from the original file (never from an already-normalised
tensor), then embeds it. Outputs are written as Parquet under
``<cache_dir>/embeddings/<kind>-<key>/`` where the key hashes (rows embedded, backbone, checkpoint,
preprocess); the folder is renamed into place only when complete, so a rerun reuses it and an
interrupted run never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rsretrieval.config import EmbedConfig
from rsretrieval.pipelines.runtime.ray_session import ensure_ray

log = logging.getLogger(__name__)

EMBEDDINGS_VERSION = 1  # bump when the stored layout or the encoding changes


def dataset_from_table(table: pa.Table, batch_size: int, actors: int):
    """A Ray Dataset of ``table`` in about one block per batch (at least one per actor).

    A map operator gets one task per block, so a single block would leave all but one actor idle.
    The blocks are sliced and described here in the driver, as ``ray.data.from_items`` does, not
    by ``from_arrow`` + ``repartition``, which runs a remote task per block for its metadata and
    then a shuffle round (split + reduce tasks) before the first batch is mapped.
    """
    import ray

    n = min(max(actors, -(-table.num_rows // max(1, batch_size))), max(1, table.num_rows))
    try:
        return _presliced_dataset(table, n)
    except (ImportError, AttributeError, TypeError):  # Ray's internals moved (pyproject allows >= 2.40)
        return ray.data.from_arrow(table).repartition(n)


def _presliced_dataset(table: pa.Table, n: int):
    """``n`` contiguous blocks of ``table`` as a materialized Ray Dataset, metadata computed here
    (Ray Data internals of 2.5x-2.6x, as ``from_items`` builds its dataset)."""
    import ray
    from ray.data._internal.logical.interfaces import LogicalPlan
    from ray.data._internal.logical.operators.from_operators import FromArrow
    from ray.data._internal.stats import DatasetStats
    from ray.data.block import BlockMetadataWithSchema
    from ray.data.context import DataContext

    step, extra = divmod(table.num_rows, n)
    blocks, meta, start = [], [], 0
    for i in range(n):
        block = table.slice(start, step + (i < extra)).combine_chunks()
        start += block.num_rows
        meta.append(BlockMetadataWithSchema.from_block(block))
        blocks.append(ray.put(block))
    context = DataContext.get_current().copy()
    return ray.data.dataset.MaterializedDataset(
        LogicalPlan(FromArrow(blocks, meta), context), context,
        DatasetStats(metadata={"FromArrow": meta}, parent=None))


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def vectors_table(ids: list[str], vectors: np.ndarray) -> pa.Table:
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.table({"owner_id": pa.array(ids, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


class EmbedStage:
    """Shared actor set-up: load the backbone once per actor."""

    def __init__(self, backbone_name: str, checkpoint: str | None, device: str = "auto",
                 torch_threads: int | None = None, concurrency: int = 1) -> None:
        import torch

        from rsretrieval.encoders.loader import load_backbone
        from rsretrieval.encoders.registry import get_backbone_spec

        # Ray starts workers with OMP_NUM_THREADS=1; a CPU actor that is one of `concurrency` on this
        # node may use its share of the cores instead (explicit torch_threads wins)
        torch.set_num_threads(torch_threads or max(1, (os.cpu_count() or 1) // max(1, concurrency)))
        self.device = resolve_device(device)
        self.backbone = load_backbone(get_backbone_spec(backbone_name),
                                      Path(checkpoint) if checkpoint else None, device=self.device)
        self._setup()

    def _setup(self) -> None:
        """Per-instance state besides the backbone (subclasses)."""

    @classmethod
    def sharing(cls, other: "EmbedStage") -> "EmbedStage":
        """An instance of this stage using ``other``'s loaded backbone (several tables in one actor)."""
        stage = cls.__new__(cls)
        stage.device, stage.backbone = other.device, other.backbone
        stage._setup()
        return stage


class ImageEmbedStage(EmbedStage):
    """``map_batches`` callable: columns image_id, uri -> owner_id, vector."""

    input_columns = ("image_id", "uri")

    decode_threads = 4

    def _setup(self) -> None:
        self.pool = ThreadPoolExecutor(self.decode_threads)

    def load_image(self, uri: str):
        from rsretrieval.data.quarantine import open_rgb

        # a bad file fails naming itself (ImageDecodeError); verify_images: decode keeps such files out
        return self.backbone.preprocess(open_rgb(uri, "image embedding"))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import torch

        from rsretrieval.encoders.loader import encode_images

        pixels = torch.stack(list(self.pool.map(self.load_image, [str(u) for u in batch["uri"]])))
        vectors = encode_images(self.backbone, pixels)
        return vectors_table([str(i) for i in batch["image_id"]], vectors)


class TextEmbedStage(EmbedStage):
    """``map_batches`` callable: columns caption_id, text -> owner_id, vector."""

    input_columns = ("caption_id", "text")

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from rsretrieval.encoders.loader import encode_texts

        vectors = encode_texts(self.backbone, [str(t) for t in batch["text"]])
        return vectors_table([str(i) for i in batch["caption_id"]], vectors)


def file_digest(path: Path) -> str:
    """sha256 of a checkpoint file, memoised in a sidecar keyed by size and mtime (big files)."""
    path = Path(path)
    if path.is_dir():
        return hashlib.sha256("|".join(sorted(
            f"{p.name}:{file_digest(p)}" for p in path.iterdir() if p.is_file())).encode()).hexdigest()
    st = path.stat()
    sidecar = path.with_name(path.name + ".sha256.json")
    try:
        memo = json.loads(sidecar.read_text())
        if memo["size"] == st.st_size and memo["mtime_ns"] == st.st_mtime_ns:
            return memo["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        sidecar.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}))
    except OSError:
        pass  # read-only checkpoint folder: just recompute next time
    return digest


def embedding_key(kind: str, table: pa.Table, columns: tuple[str, ...], backbone_name: str,
                  checkpoint: Path | None) -> str:
    """Cache key of one embedding table: rows, backbone, checkpoint content, preprocessing."""
    from rsretrieval.encoders.registry import get_backbone_spec

    h = hashlib.sha256()
    h.update(json.dumps({"kind": kind, "v": EMBEDDINGS_VERSION,
                         "spec": get_backbone_spec(backbone_name).model_dump(mode="json"),
                         "checkpoint": file_digest(checkpoint) if checkpoint else None}, sort_keys=True).encode())
    for col in columns:
        hash_json_list(h, table[col])
    return h.hexdigest()[:20]


def hash_json_list(h: Any, column: Any, chunk: int = 65536) -> None:
    """Feed ``json.dumps(column.to_pylist())`` to ``h`` chunk by chunk: the same bytes (so cache keys do
    not change), without a Python list and a JSON string of the whole column at corpus scale."""
    h.update(b"[")
    for a in range(0, len(column), chunk):
        part = ", ".join(json.dumps(v) for v in column.slice(a, chunk).to_pylist())
        h.update(((", " if a else "") + part).encode())
    h.update(b"]")


def recorded_seconds(path: Path) -> float | None:
    """Compute seconds recorded when a cached stage output was made: an embeddings folder's
    ``_SUCCESS`` or a file's ``<name>.seconds.json`` sidecar; None for caches older than the record."""
    path = Path(path)
    meta = path / "_SUCCESS" if path.is_dir() else path.with_name(path.name + ".seconds.json")
    try:
        return float(json.loads(meta.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_seconds(path: Path, seconds: float) -> None:
    """The sidecar :func:`recorded_seconds` reads for a cached file."""
    Path(path).with_name(Path(path).name + ".seconds.json").write_text(json.dumps({"seconds": seconds}))


def read_embeddings(path: Path, ids: list[str]) -> np.ndarray:
    """Vectors of ``ids`` in that order from an embeddings folder. Shape: (len(ids), D) float32."""
    table = pq.read_table(path)
    col = table["vector"].combine_chunks()
    dim = col.type.list_size
    vectors = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    index = {oid: i for i, oid in enumerate(table["owner_id"].to_pylist())}
    missing = [i for i in ids if i not in index]
    if missing:
        raise KeyError(f"{path}: {len(missing)} ids have no embedding, e.g. {missing[:3]}")
    return vectors[[index[i] for i in ids]].astype(np.float32, copy=False)


def pool_size(cfg: EmbedConfig) -> int:
    """CPU actors (1 CPU each) that leave a CPU for Ray Data's read/write tasks: a pool holding every CPU
    of the cluster would wait forever for its own writer."""
    import ray

    ensure_ray()
    if cfg.num_gpus_per_actor or cfg.concurrency <= 1:
        return cfg.concurrency
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if cfg.concurrency >= cpus:
        log.warning("embed.concurrency=%d CPU actors on a %d-CPU cluster would leave no CPU for writing; using %d",
                    cfg.concurrency, cpus, max(1, cpus - 1))
        return max(1, cpus - 1)
    return cfg.concurrency


def embed_table(kind: str, table: pa.Table, backbone_name: str, checkpoint: Path | None,
                cfg: EmbedConfig, cache_dir: Path, stage: type[EmbedStage] | None = None) -> tuple[Path, bool]:
    """Embed ``table`` with Ray Data: the columns of ``stage.input_columns`` (images: image_id, uri;
    captions and text scenes: caption_id, text; ``stage`` given for other kinds).

    Returns (folder of the Parquet embeddings, whether it came from the cache).
    """
    import ray

    from rsretrieval.pipelines.runtime.ray_memory import spill_delta, spill_note, spill_stats

    stage = stage or {"images": ImageEmbedStage, "captions": TextEmbedStage, "text_scenes": TextEmbedStage}[kind]
    key = embedding_key(kind, table, stage.input_columns, backbone_name, checkpoint)
    final = Path(cache_dir) / "embeddings" / f"{kind}-{backbone_name}-{key}"
    if (final / "_SUCCESS").exists():
        log.info("embeddings %s: cached at %s", kind, final)
        return final, True
    ensure_ray()
    tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    spill_before = spill_stats()
    size = pool_size(cfg)
    ds = dataset_from_table(table.select(list(stage.input_columns)), cfg.batch_size, size)
    ds = ds.map_batches(
        stage,
        fn_constructor_kwargs={"backbone_name": backbone_name,
                               "checkpoint": str(checkpoint) if checkpoint else None,
                               "device": cfg.device, "torch_threads": cfg.torch_threads,
                               "concurrency": size},
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_gpus=cfg.num_gpus_per_actor or None,
        batch_format="numpy",
    )
    ds.write_parquet(str(tmp))
    spilled = spill_delta(spill_before, spill_stats())  # memory pressure: a note, the stage still completed
    if note := spill_note(f"embeddings {kind}", spilled):
        log.warning(note)
    (tmp / "_SUCCESS").write_text(json.dumps({"rows": table.num_rows, "backbone": backbone_name,
                                               "seconds": time.perf_counter() - t0, "object_store_spill": spilled}))
    if final.exists():  # a stale incomplete folder from an older layout
        shutil.rmtree(final)
    os.replace(tmp, final)
    log.info("embeddings %s: %d rows computed with %s in %.1f s", kind, table.num_rows, backbone_name,
             time.perf_counter() - t0)
    return final, False
