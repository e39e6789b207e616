"""The stages of a benchmark run, one function per step kind of the plan (``data``, ``graphs``,
``train_vg2vg``, ``models``; ``embed`` is :func:`~rsretrieval.pipelines.benchmark.vectors.embed_backbone`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from rsretrieval.config import BackboneConfig, BenchmarkConfig, DatasetConfig
from rsretrieval.data.registry import duplicate_summary, evaluation_split, load_dataset
from rsretrieval.data.schema import RSDataset
from rsretrieval.pipelines.benchmark.context import SYNTHETIC_NOTE, DatasetState, RunContext
from rsretrieval.pipelines.benchmark.costs import add_generation
from rsretrieval.pipelines.benchmark.generation import add_generated_captions, run_requested_tasks
from rsretrieval.pipelines.benchmark.scenes import prepare_scenes, scene_notes
from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint

log = logging.getLogger(__name__)


def prepare_dataset(ctx: RunContext, dcfg: DatasetConfig) -> DatasetState:
    """Read the split, drop undecodable and leaked items, add generated captions, run the requested
    generation tasks, and compute (or load) its crops and text scenes."""
    cfg, tracker, notes = ctx.cfg, ctx.tracker, ctx.footnotes
    full = ctx.keep_dataset(load_dataset(dcfg, cfg.cache_dir))  # memory-mapped: no per-row data in the driver's heap
    if full.report is not None and full.report.skipped:  # web-scale formats leave bad samples out, counted
        tracker.log_metrics({f"data.{dcfg.name}.skipped_entries": len(full.report.skipped)})
        tracker.log_artifact(full.report.write_skipped(ctx.run_dir, dcfg.name))
        notes.append(full.report.skipped_note(dcfg.name))
    ds = evaluation_split(full, dcfg)
    if dcfg.verify_images == "decode":  # undecodable images leave with their captions, counted
        from rsretrieval.data.quarantine import quarantine_images

        quarantined = quarantine_images(ds, cache_dir=cfg.cache_dir)
        ds = quarantined.dataset
        tracker.log_metrics({f"data.{dcfg.name}.quarantined_images": quarantined.rows.num_rows})
        if quarantined.rows.num_rows:
            tracker.log_artifact(quarantined.write(ctx.run_dir))
            notes.append(quarantined.note())
    if cfg.eval.exclude_leaked is not None:
        from rsretrieval.analysis.audit import drop_leaked

        ds, n_img, n_cap = drop_leaked(ds, cfg.eval.exclude_leaked)
        notes.append(f"{dcfg.name} {dcfg.split}: {n_img} leaked images (with their captions) and "
                     f"{n_cap} captions in all removed before evaluation ({cfg.eval.exclude_leaked})")
    dups = duplicate_summary(ds)
    tracker.log_params({f"data.{dcfg.name}.{k}": v for k, v in dups.items()})
    if dups["duplicate_caption_texts"]:
        notes.append(f"{dcfg.name} {dcfg.split}: {dups['duplicate_caption_texts']} caption texts occur "
                     f"more than once ({dups['duplicate_caption_texts_cross_image']} across images); "
                     "each is still its own query")
    if dcfg.format == "synthrs":
        notes.append(SYNTHETIC_NOTE)
    elif dcfg.format == "fit_rs":
        from rsretrieval.data.fit_rs import FIT_RS_NOTE

        notes.append(f"{dcfg.name}: {FIT_RS_NOTE}")
    ds, gen_rows, gen_notes = add_generated_captions(cfg, ds)
    ds = ctx.keep_dataset(ds)
    ctx.texts[ds.name] = ds.captions.select(["caption_id", "text"])  # Arrow: no Python string per caption
    ctx.fingerprints[ds.name] = ds.fingerprint()
    task_rows, task_notes = run_requested_tasks(cfg, ds)
    state = DatasetState(dcfg, full, ds)
    state.scenes = scenes = prepare_scenes(cfg, ds, ctx.ledger)
    scenes.image = {m: ctx.keep(t, f"{ds.name}-image_scenes-{m}") for m, t in scenes.image.items()}
    scenes.text = ctx.keep(scenes.text, f"{ds.name}-text_scenes")
    ctx.generation += gen_rows + task_rows + state.scenes.generation
    notes += gen_notes + task_notes + scene_notes(cfg, state.scenes)
    return state


def prepare_dataset_graphs(ctx: RunContext, state: DatasetState) -> None:
    """Query and image graphs of the split, the node embedder, and (training on) the G2G matchers."""
    from rsretrieval.pipelines.benchmark.graph_modes import GraphScoring, prepare_graphs

    cfg, ds = ctx.cfg, state.ds
    graphs = state.graphs = prepare_graphs(cfg, ds)
    graphs.keep(ctx.keep, ds.name)
    ctx.generation += graphs.generation
    add_generation(ctx.ledger, graphs.generation, graphs.generated_label)
    if "oracle" in graphs.images:
        ctx.ledger.add(ds.name, "gen:image_graph:oracle", 0.0, ds.images.num_rows, detail="ground truth (given)")
    ctx.footnotes += graphs.notes
    ctx.graph_stats += graphs.stats
    scoring = ctx.graph_scoring = ctx.graph_scoring or GraphScoring(cfg)
    ctx.footnotes += scoring.notes
    scoring.models = None  # trained models are per dataset
    if cfg.graph_matching.train.enabled:
        from rsretrieval.pipelines.benchmark.graph_training import train_g2g_models

        scoring.models = train_g2g_models(cfg, state.full, state.dcfg, list(graphs.images), scoring.embedder,
                                          ctx.tracker)
        ctx.footnotes += scoring.models.notes
        ctx.generation += scoring.models.generation


def train_vg2vg(ctx: RunContext, state: DatasetState, bcfg: BackboneConfig) -> None:
    """The backbone's VG2VG matchers, trained end to end on its train / val vectors (warm-started from G2G)."""
    models = ctx.graph_scoring.models if ctx.graph_scoring is not None else None
    if models is None or not models.g2g:
        return
    from rsretrieval.pipelines.benchmark.graph_training import train_vg2vg_heads

    split_vecs = split_vectors(ctx.cfg, bcfg, {"train": models.train_ds, "val": models.val_ds})
    train_vg2vg_heads(ctx.cfg, models, bcfg.name, split_vecs, ctx.graph_scoring.embedder, ctx.tracker)


def write_models(ctx: RunContext) -> None:
    """The dataset's trained graph models into the run folder (usable as ``graph_matching.gmn_checkpoint``)."""
    scoring = ctx.graph_scoring
    if scoring is None or scoring.models is None:
        return
    from rsretrieval.pipelines.benchmark.graph_training import write_model_files

    write_model_files(scoring.models, ctx.run_dir, ctx.tracker)
    ctx.training += scoring.models.summary


def split_vectors(cfg: BenchmarkConfig, bcfg: BackboneConfig, splits: dict[str, RSDataset]
                  ) -> dict[str, tuple[dict[str, int], np.ndarray, np.ndarray]]:
    """Per split: (caption id -> row, unit caption vectors, unit image vectors); all splits embedded in one pass."""
    from rsretrieval.pipelines.stages.embed import read_embeddings
    from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embed_tables
    from rsretrieval.search.topk import unit_rows

    names = list(splits)
    requests = [EmbedRequest(kind, getattr(splits[n], kind), label=f"{n} {kind}") for n in names
                for kind in ("images", "captions")]
    done = embed_tables(requests, bcfg.name, resolve_checkpoint(bcfg, cfg), cfg.embed, cfg.cache_dir)
    out: dict[str, Any] = {}
    for k, n in enumerate(names):
        (img_dir, _), (cap_dir, _) = done[2 * k], done[2 * k + 1]
        cap_ids = splits[n].captions["caption_id"].to_pylist()
        out[n] = ({c: i for i, c in enumerate(cap_ids)}, unit_rows(read_embeddings(cap_dir, cap_ids)),
                  unit_rows(read_embeddings(img_dir, splits[n].images["image_id"].to_pylist())))
    return out
