"""Ray Data stages of scene matching: image scene boxes, scene crops -> vectors, text scenes.

* :class:`SceneBoxStage` (actor pool; SAM 2 on GPU when configured): image_id, uri -> the
  ``image_scenes`` rows of one crop method. Cached as Parquet under
  ``<cache>/image_scenes/<method>-<crop key>-<data key>.parquet``; boxes do not depend on the
  backbone, so every backbone reuses them.
* :class:`SceneCropEmbedStage`: scene_id, uri, box -> vector. Each batch opens a file once, cuts
  the crops from the original-resolution pixels and runs the backbone's own transform on each.
  Cached through :func:`rsretrieval.pipelines.stages.embed.embed_table`, whose key hashes the boxes, so
  a different crop config is a different cache entry.
* :func:`text_scenes` runs the text scene generator and caches its table the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rsretrieval.config import CropMethod, EmbedConfig, ImageScenesConfig, TextScenesConfig
from rsretrieval.matching.late_interaction import PackedVectors
from rsretrieval.pipelines.runtime.ray_session import ensure_ray
from rsretrieval.pipelines.stages.embed import (EmbedStage, dataset_from_table, embed_table, read_embeddings, record_seconds,
                                         resolve_device, vectors_table)
from rsretrieval.scenes.image_scenes import IMAGE_SCENES_SCHEMA, crop_key, image_scene_boxes, scene_id, scenes_rows
from rsretrieval.scenes.text_scenes import make_text_scene_generator, text_scenes_table

log = logging.getLogger(__name__)


class SceneBoxStage:
    """``map_batches`` callable: image_id, uri -> image_scenes rows (one segmenter per actor)."""

    def __init__(self, method: CropMethod, cfg_json: str) -> None:
        self.method = method
        self.cfg = ImageScenesConfig.model_validate_json(cfg_json)
        self.segmenter = None
        if method == "regions":
            from rsretrieval.scenes.segmenters import make_segmenter

            self.segmenter = make_segmenter(self.cfg.regions, resolve_device(self.cfg.device))

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from PIL import Image

        from rsretrieval.data.errors import ImageDecodeError
        from rsretrieval.data.quarantine import open_rgb

        rows: list[dict] = []
        for iid, uri in zip(batch["image_id"], batch["uri"]):
            if self.segmenter is not None:
                image = open_rgb(str(uri), "scene boxes")
            else:  # uniform boxes need the size only: the header, not the pixels
                try:
                    with Image.open(str(uri)) as im:
                        image = im
                except Exception as exc:
                    raise ImageDecodeError(str(uri), "scene boxes", exc) from exc
            rows += scenes_rows(str(iid), image_scene_boxes(image, self.method, self.cfg, self.segmenter))
        return pa.Table.from_pylist(rows, schema=IMAGE_SCENES_SCHEMA)


def _table_key(table: pa.Table, columns: list[str], extra: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for col in columns:
        h.update(json.dumps(table[col].to_pylist()).encode())
    return h.hexdigest()[:16]


def _write_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def image_scenes(images: pa.Table, method: CropMethod, cfg: ImageScenesConfig, cache_dir: Path) -> pa.Table:
    """The image_scenes table of ``images`` for one crop method (Ray Data, cached)."""
    import ray

    path = image_scenes_path(images, method, cfg, cache_dir)
    if path.exists():
        log.info("image scenes %s: cached at %s", method, path)
        return pq.read_table(path)
    ensure_ray()
    t0 = time.perf_counter()
    ds = dataset_from_table(images.select(["image_id", "uri"]), 8, cfg.concurrency).map_batches(
        SceneBoxStage,
        fn_constructor_kwargs={"method": method, "cfg_json": cfg.model_dump_json()},
        batch_size=8,
        compute=ray.data.ActorPoolStrategy(size=cfg.concurrency),
        num_gpus=cfg.num_gpus_per_actor or None,
        batch_format="numpy",
    )
    table = pa.concat_tables([t.cast(IMAGE_SCENES_SCHEMA) for t in ray.get(ds.to_arrow_refs())])
    order = {iid: i for i, iid in enumerate(images["image_id"].to_pylist())}
    rank = pa.array([order[i] for i in table["image_id"].to_pylist()], pa.int64())
    idx = pc.sort_indices(pa.table({"r": rank, "s": table["scene_idx"]}), [("r", "ascending"), ("s", "ascending")])
    table = table.take(idx)
    _write_atomically(table, path)
    record_seconds(path, time.perf_counter() - t0)
    log.info("image scenes %s: %d crops of %d images in %.1f s", method, table.num_rows, images.num_rows,
             time.perf_counter() - t0)
    return table


class SceneCropEmbedStage(EmbedStage):
    """``map_batches`` callable: scene_id, uri, x0, y0, x1, y1 -> owner_id (= scene_id), vector."""

    input_columns = ("scene_id", "uri", "x0", "y0", "x1", "y1")

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        import torch

        from rsretrieval.data.quarantine import open_rgb
        from rsretrieval.encoders.loader import encode_images

        pixels, opened = [], {}
        for uri, *box in zip(batch["uri"], batch["x0"], batch["y0"], batch["x1"], batch["y1"]):
            uri = str(uri)
            if uri not in opened:  # scene rows of one image are adjacent: decode it once per batch
                opened.clear()
                opened[uri] = open_rgb(uri, "scene crop embedding")
            pixels.append(self.backbone.preprocess(opened[uri].crop(tuple(int(v) for v in box))))
        vectors = encode_images(self.backbone, torch.stack(pixels))
        return vectors_table([str(i) for i in batch["scene_id"]], vectors)


def scene_crop_table(images: pa.Table, scenes: pa.Table) -> pa.Table:
    """image_scenes rows with their scene_id and source file: the input of SceneCropEmbedStage."""
    uri = dict(zip(images["image_id"].to_pylist(), images["uri"].to_pylist()))
    ids = scenes["image_id"].to_pylist()
    return pa.table({
        "scene_id": [scene_id(i, s) for i, s in zip(ids, scenes["scene_idx"].to_pylist())],
        "uri": [uri[i] for i in ids],
        **{c: scenes[c] for c in ("x0", "y0", "x1", "y1")},
    })


def text_scenes(captions: pa.Table, cfg: TextScenesConfig, cache_dir: Path) -> pa.Table:
    """The text_scenes table of ``captions`` (caption_id, scene_idx, text, source), cached."""
    gen = make_text_scene_generator(cfg)
    path = text_scenes_path(captions, cfg, cache_dir)
    if path.exists():
        return pq.read_table(path)
    t0 = time.perf_counter()
    ids, texts = captions["caption_id"].to_pylist(), captions["text"].to_pylist()
    table = text_scenes_table(ids, texts, gen.generate(texts), gen.name, cfg)
    _write_atomically(table, path)
    record_seconds(path, time.perf_counter() - t0)
    log.info("text scenes: %d scenes of %d captions in %.1f s (%s)", table.num_rows, len(texts),
             time.perf_counter() - t0, gen.name)
    return table


def image_scenes_path(images: pa.Table, method: CropMethod, cfg: ImageScenesConfig, cache_dir: Path) -> Path:
    """Where :func:`image_scenes` caches the table of ``images`` (for its recorded seconds)."""
    return Path(cache_dir) / "image_scenes" / (
        f"{method}-{crop_key(method, cfg)}-{_table_key(images, ['image_id', 'uri'], {})}.parquet")


def text_scenes_path(captions: pa.Table, cfg: TextScenesConfig, cache_dir: Path) -> Path:
    """Where :func:`text_scenes` caches the table of ``captions``."""
    gen = make_text_scene_generator(cfg)
    key = _table_key(captions, ["caption_id", "text"], {"cfg": cfg.model_dump(mode="json"), "gen": gen.name})
    return Path(cache_dir) / "text_scenes" / f"{gen.name.replace('/', '_')}-{key}.parquet"


def embed_image_scenes(images: pa.Table, scenes: pa.Table, method: CropMethod, backbone: str,
                       checkpoint: Path | None, cfg: EmbedConfig, cache_dir: Path) -> tuple[Path, bool]:
    """Embed every scene crop with ``backbone`` (Ray Data actor pool, cached)."""
    return embed_table(f"image_scenes-{method}", scene_crop_table(images, scenes), backbone, checkpoint,
                       cfg, cache_dir, stage=SceneCropEmbedStage)


def text_scene_table(scenes: pa.Table) -> pa.Table:
    """text_scenes rows as TextEmbedStage reads them: caption_id (= the scene id), text."""
    ids = [scene_id(c, s) for c, s in zip(scenes["caption_id"].to_pylist(), scenes["scene_idx"].to_pylist())]
    return pa.table({"caption_id": ids, "text": scenes["text"]})


def embed_text_scenes(scenes: pa.Table, backbone: str, checkpoint: Path | None, cfg: EmbedConfig,
                      cache_dir: Path) -> tuple[Path, bool]:
    return embed_table("text_scenes", text_scene_table(scenes), backbone, checkpoint, cfg, cache_dir)


def read_packed(path: Path, owner_ids: list[str], scenes: pa.Table, owner_column: str) -> PackedVectors:
    """Scene vectors of ``owner_ids`` (in that order, scenes by scene_idx) as packed sets."""
    per_owner: dict[str, list[int]] = {}
    for o, s in zip(scenes[owner_column].to_pylist(), scenes["scene_idx"].to_pylist()):
        per_owner.setdefault(o, []).append(s)
    missing = [o for o in owner_ids if o not in per_owner]
    if missing:
        raise KeyError(f"{len(missing)} items have no scenes, e.g. {missing[:3]}")
    ids = [scene_id(o, s) for o in owner_ids for s in sorted(per_owner[o])]
    sizes = [len(per_owner[o]) for o in owner_ids]
    return PackedVectors(np.asarray(read_embeddings(path, ids)), np.concatenate([[0], np.cumsum(sizes)]))
