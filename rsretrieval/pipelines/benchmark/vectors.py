"""The embedding step of one dataset split x backbone, and its V2V / scene-mode cells (sec. 5.3.1, 5.3.3).

:func:`embed_backbone` embeds images, captions, crops and text scenes in one Ray Data pass (cached per
table). :class:`EmbeddedBackbone` then serves every cell of that backbone: per caption variant it reads
the vectors once (full-matrix path) or builds the V2V shortlist once (two-stage path, ``eval.shortlist_k``),
and the graph modes take its global vectors from :meth:`EmbeddedBackbone.global_vectors`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsretrieval.config import SCENE_IMAGE_MODES, SCENE_TEXT_MODES, BackboneConfig
from rsretrieval.evaluation.retrieval import evaluate_cell
from rsretrieval.pipelines.benchmark.context import DatasetState, RunContext
from rsretrieval.pipelines.benchmark.costs import record_cached_stage
from rsretrieval.pipelines.benchmark.plan import Cell
from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint

log = logging.getLogger(__name__)


@dataclass
class VariantData:
    """One caption variant of a split: its queries, gold images and global vectors."""

    caps: Any  # captions table of the variant
    cap_ids: list[str]
    gold: np.ndarray
    items: np.ndarray  # the variant's rows in the split's captions table (store items)
    vectors: Any  # FullVectors or StoredVectors (graph modes read them)
    cap_vec: np.ndarray | None = None  # full-matrix path only
    text_sets: Any = None  # PackedVectors of the variant's text scenes (full-matrix path, scene-text modes)
    shortlist_seconds: float = 0.0  # two-stage path: computing the V2V shortlist (V2V's score time)


@dataclass
class EmbeddedBackbone:
    """Embedding folders of one split x backbone and what its cells read from them."""

    name: str
    img_dir: Path
    cap_dir: Path
    crop_dirs: dict[str, Path]
    txt_dir: Path | None
    cached: bool  # every table came from the cache
    seconds: float
    state: DatasetState
    shortlist_k: int | None
    image_vec: np.ndarray | None = None
    image_sets: dict[str, Any] = field(default_factory=dict)
    stores: Any = None  # BackboneStores on the two-stage path
    variants: dict[str, VariantData | None] = field(default_factory=dict)

    def open(self, run_dir: Path) -> None:
        """Read the image side once: in memory (full matrices) or as ordered stores (two-stage)."""
        ds, scenes = self.state.ds, self.state.scenes
        if self.shortlist_k:
            from rsretrieval.pipelines.benchmark.two_stage import open_stores

            self.stores = open_stores(ds, scenes, self.img_dir, self.cap_dir, self.crop_dirs, self.txt_dir)
            return
        from rsretrieval.pipelines.stages.embed import read_embeddings
        from rsretrieval.pipelines.stages.scene_crops import read_packed

        image_ids = ds.images["image_id"].to_pylist()
        self.image_vec = read_embeddings(self.img_dir, image_ids)
        self.image_sets = {m: read_packed(p, image_ids, scenes.image[m], "image_id") for m, p in self.crop_dirs.items()}

    def variant(self, ctx: RunContext, variant: str) -> VariantData | None:
        """The variant's data (None when the split has no caption of it), built on first use."""
        if variant not in self.variants:
            self.variants[variant] = self._build_variant(ctx, variant)
        return self.variants[variant]

    def global_vectors(self, ctx: RunContext) -> dict[str, Any]:
        """variant -> FullVectors / StoredVectors of every configured variant the split has."""
        out = {}
        for v in ctx.cfg.variants:
            data = self.variant(ctx, v)
            if data is not None:
                out[v] = data.vectors
        return out

    def _build_variant(self, ctx: RunContext, variant: str) -> VariantData | None:
        from rsretrieval.pipelines.benchmark.two_stage import FullVectors, StoredVectors, scratch_dir
        from rsretrieval.search.topk import store_topk, unit_rows

        ds, queries = self.state.ds, self.state.queries(variant)
        if queries is None:
            return None
        caps, cap_ids, gold, items = queries.caps, queries.ids, queries.gold, queries.items
        if self.shortlist_k:
            out = scratch_dir(ctx.run_dir) / "shortlists" / f"{ds.name}__{variant}__{self.name}"
            t0 = time.perf_counter()
            shortlist = store_topk(self.stores.captions, items, self.stores.images, self.shortlist_k, out,
                                   query_block=ctx.cfg.eval.chunk_size, backend=ctx.cfg.eval.shortlist_backend)
            return VariantData(caps, cap_ids, gold, items, StoredVectors(self.stores.captions, items, self.stores.images,
                                                                         shortlist),
                               shortlist_seconds=time.perf_counter() - t0)
        from rsretrieval.pipelines.stages.embed import read_embeddings
        from rsretrieval.pipelines.stages.scene_crops import read_packed

        cap_vec = read_embeddings(self.cap_dir, cap_ids)
        text_sets = read_packed(self.txt_dir, cap_ids, self.state.scenes.text, "caption_id") if self.txt_dir else None
        return VariantData(caps, cap_ids, gold, items, FullVectors(unit_rows(cap_vec), unit_rows(self.image_vec)),
                           cap_vec, text_sets)

    def info(self, q_size: float, d_size: float) -> dict[str, Any]:
        return {"query_vectors": q_size, "image_vectors": d_size, "embed_seconds": self.seconds,
                "embeddings_cached": self.cached}

    @property
    def notes(self) -> list[str]:
        return self.state.base_notes + (["embedded rs-tiny"] if self.name == "rs-tiny" else [])


def embed_backbone(ctx: RunContext, state: DatasetState, bcfg: BackboneConfig) -> EmbeddedBackbone:
    """Embed every table of the split the cells need with one backbone, in one Ray Data pass (cached per table)."""
    from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embed_tables
    from rsretrieval.pipelines.stages.scene_crops import SceneCropEmbedStage, scene_crop_table, text_scene_table

    cfg, ds, scenes = ctx.cfg, state.ds, state.scenes
    checkpoint = resolve_checkpoint(bcfg, cfg)
    t0 = time.perf_counter()
    n_caps = ds.captions.num_rows
    # (ledger stage, items it serves, request): all in one Ray Data pass
    wanted = [("embed:images", ds.images.num_rows, EmbedRequest("images", ds.images)),
              ("embed:captions", n_caps, EmbedRequest("captions", ds.captions))]
    wanted += [(f"embed:crops:{scenes.crop_names[m]}", ds.images.num_rows,
                EmbedRequest(f"image_scenes-{m}", scene_crop_table(ds.images, table), SceneCropEmbedStage))
               for m, table in scenes.image.items()]
    if scenes.text is not None:  # items = captions: the stage is charged to a cell per query, not per scene
        wanted.append(("embed:text_scenes", n_caps, EmbedRequest("text_scenes", text_scene_table(scenes.text))))
    done = embed_tables([w[2] for w in wanted], bcfg.name, checkpoint, cfg.embed, cfg.cache_dir)
    for (stage, items, _), (path, cached) in zip(wanted, done):
        record_cached_stage(ctx.ledger, ds.name, stage, bcfg.name, items, path, cached, time.perf_counter() - t0)
    (img_dir, img_cached), (cap_dir, cap_cached) = done[0], done[1]
    crop_dirs: dict[str, Path] = {}
    for m, (path, cached) in zip(scenes.image, done[2:2 + len(scenes.image)]):
        crop_dirs[m] = path
        img_cached &= cached
    txt_dir = None
    if scenes.text is not None:
        txt_dir, cached = done[-1]
        cap_cached &= cached
    out = EmbeddedBackbone(bcfg.name, img_dir, cap_dir, crop_dirs, txt_dir, img_cached and cap_cached,
                           time.perf_counter() - t0, state, cfg.eval.shortlist_k)
    out.open(ctx.run_dir)
    return out


def score_vector_cell(ctx: RunContext, emb: EmbeddedBackbone, cell: Cell) -> None:
    """One V2V / V2S / S2V / S2S cell: full score matrix, or the V2V shortlist (reranked)."""
    data = emb.variant(ctx, cell.variant)
    if data is None:
        ctx.skip(cell, f"the split has no {cell.variant} captions")
        return
    ds, image_ids = emb.state.ds, emb.state.ds.images["image_id"]
    if emb.shortlist_k:
        _score_reranked(ctx, emb, cell, data)
        return
    from rsretrieval.matching.cosine import CosineScorer
    from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors

    ecfg, device = ctx.cfg.eval, scoring_device(ctx.cfg.eval.device)
    if cell.mode == "v2v":
        q, d = data.cap_vec, emb.image_vec
        make = lambda a, b: CosineScorer(a, b, device)  # noqa: E731
    else:
        q = data.text_sets if cell.mode in SCENE_TEXT_MODES else PackedVectors.singletons(data.cap_vec)
        d = emb.image_sets[cell.crop_method] if cell.mode in SCENE_IMAGE_MODES else PackedVectors.singletons(emb.image_vec)
        make = lambda a, b: LateInteractionScorer(a, b, ctx.cfg.late_interaction.aggregation, device)  # noqa: E731
    result = evaluate_cell(make(q, d), data.gold, ds.images.num_rows, ecfg.ks, ecfg.chunk_size, ecfg.top_k_saved,
                           make(d, q) if ecfg.i2t else None)
    ctx.record(cell, result, data.cap_ids, data.gold, image_ids.to_pylist(), emb.info(mean_size(q), mean_size(d)),
               emb.notes)


def _score_reranked(ctx: RunContext, emb: EmbeddedBackbone, cell: Cell, data: VariantData) -> None:
    """Two-stage path: V2V ranked from its shortlist; the scene modes rerank it with late interaction."""
    from rsretrieval.pipelines.benchmark.two_stage import mean_set_size
    from rsretrieval.search.rerank import LateInteractionPairs, evaluate_reranked
    from rsretrieval.search.store import StoreSetPairs

    k, agg, stores = emb.shortlist_k, ctx.cfg.late_interaction.aggregation, emb.stores
    q_store = stores.text_scenes if cell.mode in SCENE_TEXT_MODES else stores.captions
    d_store = stores.crops[cell.crop_method] if cell.mode in SCENE_IMAGE_MODES else stores.images
    scorer = None  # V2V: the shortlist's own scores
    if cell.mode != "v2v":
        scorer = StoreSetPairs(q_store, data.items, d_store, lambda q, d, *_: LateInteractionPairs(q, d, agg))
    result = evaluate_reranked(data.vectors.shortlist, scorer, data.gold, ctx.cfg.eval.ks, ctx.cfg.eval.top_k_saved)
    note = f"V2V top-{k} shortlist (ranks > {k} reported as {k + 1})" if cell.mode == "v2v" else f"reranked V2V top-{k}"
    info = emb.info(mean_set_size(q_store, data.items), mean_set_size(d_store))
    if cell.mode == "v2v":  # V2V's scores are the shortlist's: its time is what V2V's search cost
        info["score_seconds"] = data.shortlist_seconds
    ctx.record(cell, result, data.caps["caption_id"], data.gold, emb.state.ds.images["image_id"], info,
               emb.notes + [note])


def scoring_device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def mean_size(x: Any) -> float:
    """Mean vectors per item: 1 for a plain matrix, the mean set size for packed scene sets."""
    return float(x.sizes.float().mean()) if hasattr(x, "sizes") else 1.0
