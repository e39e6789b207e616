"""The benchmark: datasets x backbones x variants x modes, embedded with Ray, logged to MLflow."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import yaml

from rsretrieval.config import GRAPH_MODES, SCENE_IMAGE_MODES, SCENE_TEXT_MODES, BackboneConfig, BenchmarkConfig
from rsretrieval.data.registry import duplicate_summary, evaluation_split, load_dataset
from rsretrieval.data.schema import RSDataset
from rsretrieval.evaluation.retrieval import evaluate_cell, gold_indices
from rsretrieval.evaluation.tables import results_frame, write_results
from rsretrieval.evaluation.thesis_tables import summary_metrics, write_thesis_tables
from rsretrieval.matching.cosine import CosineScorer
from rsretrieval.pipelines.benchmark.generation import add_generated_captions, run_requested_tasks, write_generation_accounting
from rsretrieval.evaluation.cost import StageLedger
from rsretrieval.pipelines.benchmark.scenes import DatasetScenes, prepare_scenes, scene_notes
from rsretrieval.pipelines.benchmark.cells import record_cell
from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint
from rsretrieval.pipelines.benchmark.costs import add_generation, record_cached_stage, write_cost_tables
from rsretrieval.pipelines.stages.embed import read_embeddings
from rsretrieval.pipelines.runtime.preflight import preflight
from rsretrieval.pipelines.benchmark.provenance import HashCache, build_record, run_checkpoints, write_provenance
from rsretrieval.pipelines.runtime.ray_session import init_ray
from rsretrieval.pipelines.runtime.tracking import Tracker, mlflow_run
from rsretrieval.search.topk import unit_rows
from rsretrieval.pipelines.benchmark.trust import add_trust_columns, trust_metrics

log = logging.getLogger(__name__)

SYNTHETIC_NOTE = "synthrs is a procedural synthetic dataset: its numbers measure the pipeline, not real-world retrieval"
RS_TINY_NOTE = "rs-tiny is the embedded backbone trained only on synthrs train; it knows nothing of real imagery"


@dataclass
class BenchmarkResult:
    """What a benchmark run produced."""

    run_dir: Path
    results_csv: Path
    results_md: Path
    rows: list[dict[str, Any]]
    mlflow_run_id: str | None
    seconds: float
    findings: Any = None  # DataFrame of findings.csv: does each thesis claim hold in this run?


def _scoring_device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _cells(cfg: BenchmarkConfig) -> list[tuple[str, str | None]]:
    """(mode, crop method or None) of every configured cell, in the order of the config."""
    out: list[tuple[str, str | None]] = []
    for mode in cfg.modes:
        out += [(mode, m) for m in cfg.image_scenes.methods] if mode in SCENE_IMAGE_MODES else [(mode, None)]
    return out


def _run_backbone(cfg: BenchmarkConfig, ds: RSDataset, scenes: DatasetScenes, bcfg: BackboneConfig,
                  tracker: Tracker, per_query_dir: Path, synthetic: bool, ledger: StageLedger) -> tuple[
                      list[dict[str, Any]], dict[str, Any]]:
    """Embed one dataset split with one backbone and evaluate every variant, mode and crop method.
    Also returns variant -> its global vectors for the graph modes (``FullVectors`` in memory, or on
    the two-stage path ``StoredVectors`` with the V2V shortlist)."""
    from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors
    from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embed_tables
    from rsretrieval.pipelines.stages.scene_crops import SceneCropEmbedStage, read_packed, scene_crop_table, text_scene_table

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
        record_cached_stage(ledger, ds.name, stage, bcfg.name, items, path, cached, time.perf_counter() - t0)
    (img_dir, img_cached), (cap_dir, cap_cached) = done[0], done[1]
    crop_dirs: dict[str, Path] = {}
    for m, (path, cached) in zip(scenes.image, done[2:2 + len(scenes.image)]):
        crop_dirs[m] = path
        img_cached &= cached
    txt_dir = None
    if scenes.text is not None:
        txt_dir, cached = done[-1]
        cap_cached &= cached
    embed_seconds = time.perf_counter() - t0
    base_notes = (["synthetic data"] if synthetic else []) + (["embedded rs-tiny"] if bcfg.name == "rs-tiny" else [])
    if cfg.eval.shortlist_k:  # two-stage: every vector read from ordered memory-mapped stores
        from rsretrieval.pipelines.benchmark.two_stage import open_stores, two_stage_cells

        def record(keys: dict[str, Any], cell: Any, caps: Any, gold: np.ndarray, q_size: float, d_size: float,
                   note: str) -> dict[str, Any]:
            info = {"query_vectors": q_size, "image_vectors": d_size, "embed_seconds": embed_seconds,
                    "embeddings_cached": img_cached and cap_cached}
            return record_cell(keys, cell, caps["caption_id"], gold, ds.images["image_id"], info, base_notes + [note],
                               tracker, per_query_dir)

        stores = open_stores(ds, scenes, img_dir, cap_dir, crop_dirs, txt_dir)
        return two_stage_cells(cfg, ds, scenes, bcfg.name, stores, per_query_dir.parent, _cells(cfg), record)
    from rsretrieval.pipelines.benchmark.two_stage import FullVectors

    image_ids = ds.images["image_id"].to_pylist()
    img_vec = read_embeddings(img_dir, image_ids)
    img_sets = {m: read_packed(p, image_ids, scenes.image[m], "image_id") for m, p in crop_dirs.items()}
    device = _scoring_device(cfg.eval.device)
    agg = cfg.late_interaction.aggregation
    rows: list[dict[str, Any]] = []
    vectors: dict[str, Any] = {}
    for variant in cfg.variants:
        caps = ds.captions.filter(pc.equal(ds.captions["variant"], variant))
        if caps.num_rows == 0:
            log.info("%s: no %s captions, variant skipped", ds.name, variant)
            continue
        cap_ids = caps["caption_id"].to_pylist()
        cap_vec = read_embeddings(cap_dir, cap_ids)
        vectors[variant] = FullVectors(unit_rows(cap_vec), unit_rows(img_vec))
        txt_set = read_packed(txt_dir, cap_ids, scenes.text, "caption_id") if txt_dir else None
        gold = gold_indices(caps["image_id"].to_pylist(), image_ids)
        for mode, method in _cells(cfg):
            if mode in GRAPH_MODES:
                continue  # scored in graph_modes
            if mode == "v2v":
                q, d = cap_vec, img_vec
                make = lambda a, b: CosineScorer(a, b, device)  # noqa: E731
            else:
                q = txt_set if mode in SCENE_TEXT_MODES else PackedVectors.singletons(cap_vec)
                d = img_sets[method] if mode in SCENE_IMAGE_MODES else PackedVectors.singletons(img_vec)
                make = lambda a, b: LateInteractionScorer(a, b, agg, device)  # noqa: E731
            cell = evaluate_cell(make(q, d), gold, len(image_ids), cfg.eval.ks, cfg.eval.chunk_size,
                                 cfg.eval.top_k_saved, make(d, q) if cfg.eval.i2t else None)
            keys = {"dataset": ds.name, "variant": variant, "backbone": bcfg.name, "mode": mode,
                    "crops": scenes.crop_names[method] if method else "-", "graphs": "-",
                    "similarity": "cosine" if mode == "v2v" else agg, "training": "none"}
            info = {"query_vectors": _mean_size(q), "image_vectors": _mean_size(d), "embed_seconds": embed_seconds,
                    "embeddings_cached": img_cached and cap_cached}
            rows.append(record_cell(keys, cell, cap_ids, gold, image_ids, info, base_notes, tracker, per_query_dir))
    return rows, vectors


def split_vectors(cfg: BenchmarkConfig, bcfg: BackboneConfig, splits: dict[str, RSDataset]
                  ) -> dict[str, tuple[dict[str, int], np.ndarray, np.ndarray]]:
    """Per split: (caption id -> row, unit caption vectors, unit image vectors); all splits embedded in one pass."""
    from rsretrieval.pipelines.stages.embed_many import EmbedRequest, embed_tables

    names = list(splits)
    requests = [EmbedRequest(kind, getattr(splits[n], kind), label=f"{n} {kind}") for n in names
                for kind in ("images", "captions")]
    done = embed_tables(requests, bcfg.name, resolve_checkpoint(bcfg, cfg), cfg.embed, cfg.cache_dir)
    out = {}
    for k, n in enumerate(names):
        (img_dir, _), (cap_dir, _) = done[2 * k], done[2 * k + 1]
        cap_ids = splits[n].captions["caption_id"].to_pylist()
        out[n] = ({c: i for i, c in enumerate(cap_ids)}, unit_rows(read_embeddings(cap_dir, cap_ids)),
                  unit_rows(read_embeddings(img_dir, splits[n].images["image_id"].to_pylist())))
    return out


def write_training_summary(rows: list[dict[str, Any]], run_dir: Path, tracker: Tracker) -> str:
    """training.csv (one row per trained stage) and its footnote."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(run_dir / "training.csv", index=False)
    tracker.log_artifact(run_dir / "training.csv")
    fresh = df[~df["cached"]]
    return (f"graph models: {len(df)} trained stages ({len(df) - len(fresh)} from the cache), "
            f"{fresh['seconds'].sum():.0f} s of Ray Train time in this run; best validation mR per stage in training.csv")


def _mean_size(x: Any) -> float:
    """Mean vectors per item: 1 for a plain matrix, the mean set size for packed scene sets."""
    return float(x.sizes.float().mean()) if hasattr(x, "sizes") else 1.0


def run_benchmark(cfg: BenchmarkConfig) -> BenchmarkResult:
    """Run every configured cell; write results.csv/.md, per-query Parquet, and the MLflow run."""
    t_start = time.perf_counter()
    preflight(cfg)  # paths, backbones, checkpoints: fail in seconds, before Ray starts
    run_dir = cfg.run_dir
    per_query_dir = run_dir / "per_query"
    per_query_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    init_ray(cfg.ray, lazy_local=True)  # a local instance starts when a stage first needs Ray
    rows: list[dict[str, Any]] = []
    footnotes: list[str] = []
    generation: list[dict[str, Any]] = []  # accounting rows of every generation step
    scoring = None  # graph node embedder and similarity modules, built on first use
    graph_stats: list[dict[str, Any]] = []  # GCR and sizes per graph set (Table 19, Figure 20)
    training: list[dict[str, Any]] = []  # one row per trained graph model stage
    ledger = StageLedger()  # seconds, tokens and cost of every stage (cost.md, Tables 13-14)
    texts: dict[str, dict[str, str]] = {}  # dataset -> caption id -> text (duplicate-aware metrics)
    fingerprints: dict[str, str] = {}  # dataset -> content hash of the evaluated split (provenance)
    with mlflow_run(cfg) as tracker:
        for dcfg in cfg.datasets:
            full = load_dataset(dcfg, cfg.cache_dir)
            ds = evaluation_split(full, dcfg)
            if dcfg.verify_images == "decode":  # undecodable images leave with their captions, counted
                from rsretrieval.data.quarantine import quarantine_images

                quarantined = quarantine_images(ds, cache_dir=cfg.cache_dir)
                ds = quarantined.dataset
                tracker.log_metrics({f"data.{dcfg.name}.quarantined_images": quarantined.rows.num_rows})
                if quarantined.rows.num_rows:
                    tracker.log_artifact(quarantined.write(run_dir))
                    footnotes.append(quarantined.note())
            if cfg.eval.exclude_leaked is not None:
                from rsretrieval.analysis.audit import drop_leaked

                ds, n_img, n_cap = drop_leaked(ds, cfg.eval.exclude_leaked)
                footnotes.append(f"{dcfg.name} {dcfg.split}: {n_img} leaked images (with their captions) and "
                                 f"{n_cap} captions in all removed before evaluation ({cfg.eval.exclude_leaked})")
            dups = duplicate_summary(ds)
            tracker.log_params({f"data.{dcfg.name}.{k}": v for k, v in dups.items()})
            if dups["duplicate_caption_texts"]:
                footnotes.append(f"{dcfg.name} {dcfg.split}: {dups['duplicate_caption_texts']} caption texts occur "
                                 f"more than once ({dups['duplicate_caption_texts_cross_image']} across images); "
                                 "each is still its own query")
            if dcfg.format == "synthrs":
                footnotes.append(SYNTHETIC_NOTE)
            ds, gen_rows, notes = add_generated_captions(cfg, ds)
            texts[ds.name] = dict(zip(ds.captions["caption_id"].to_pylist(), ds.captions["text"].to_pylist()))
            fingerprints[ds.name] = ds.fingerprint()
            task_rows, task_notes = run_requested_tasks(cfg, ds)
            scenes = prepare_scenes(cfg, ds, ledger)
            generation += gen_rows + task_rows + scenes.generation
            footnotes += notes + task_notes + scene_notes(cfg, scenes)
            synthetic = dcfg.format == "synthrs"
            graphs = None
            if any(m in GRAPH_MODES for m in cfg.modes):
                from rsretrieval.pipelines.benchmark.graph_modes import GraphScoring, graph_cells, prepare_graphs

                graphs = prepare_graphs(cfg, ds)
                generation += graphs.generation
                add_generation(ledger, graphs.generation, graphs.generated_label)
                if "oracle" in graphs.images:
                    ledger.add(ds.name, "gen:image_graph:oracle", 0.0, ds.images.num_rows, detail="ground truth (given)")
                footnotes += graphs.notes
                graph_stats += graphs.stats
                scoring = scoring or GraphScoring(cfg)
                footnotes += scoring.notes
                scoring.models = None
                if cfg.graph_matching.train.enabled:
                    from rsretrieval.pipelines.benchmark.graph_training import train_g2g_models

                    scoring.models = train_g2g_models(cfg, full, dcfg, list(graphs.images), scoring.embedder, tracker)
                    footnotes += scoring.models.notes
                    generation += scoring.models.generation
                if "g2g" in cfg.modes and not cfg.eval.shortlist_k:
                    rows += graph_cells(cfg, ds, graphs, scoring, None, None, tracker, per_query_dir, synthetic, ledger)
            for bcfg in cfg.backbones:
                if bcfg.name == "rs-tiny":
                    footnotes.append(RS_TINY_NOTE)
                backbone_rows, vectors = _run_backbone(cfg, ds, scenes, bcfg, tracker, per_query_dir, synthetic, ledger)
                rows += backbone_rows
                if graphs is not None and "g2g" in cfg.modes and cfg.eval.shortlist_k and bcfg is cfg.backbones[0]:
                    # two-stage G2G reranks the first backbone's V2V shortlist (its rows' notes say which)
                    rows += graph_cells(cfg, ds, graphs, scoring, None, vectors, tracker, per_query_dir, synthetic,
                                        ledger, shortlist_backbone=bcfg.name)
                if graphs is not None and "vg2vg" in cfg.modes:
                    if scoring.models is not None and scoring.models.g2g:
                        from rsretrieval.pipelines.benchmark.graph_training import train_vg2vg_heads

                        split_vecs = split_vectors(cfg, bcfg, {"train": scoring.models.train_ds,
                                                               "val": scoring.models.val_ds})
                        train_vg2vg_heads(cfg, scoring.models, bcfg.name, split_vecs, scoring.embedder, tracker)
                    rows += graph_cells(cfg, ds, graphs, scoring, bcfg.name, vectors, tracker, per_query_dir, synthetic,
                                        ledger)
            if scoring is not None and scoring.models is not None:
                from rsretrieval.pipelines.benchmark.graph_training import write_model_files

                write_model_files(scoring.models, run_dir, tracker)
                training += scoring.models.summary
        if generation:
            footnotes.append(write_generation_accounting(generation, run_dir, tracker))
        if graph_stats:
            import pandas as pd

            pd.DataFrame(graph_stats).to_csv(run_dir / "graph_stats.csv", index=False)
            tracker.log_artifact(run_dir / "graph_stats.csv")
            footnotes.append("graph collision rate (A.2.3): " + ", ".join(
                f"{r['dataset']} {r['graphs']} {r['gcr']:.2f}%" for r in graph_stats) + " (graph_stats.csv)")
        if training:
            footnotes.append(write_training_summary(training, run_dir, tracker))
        footnotes += add_trust_columns(rows, per_query_dir, texts, cfg.eval)
        tracker.log_metrics(trust_metrics(rows))
        df = results_frame(rows)
        footnotes.append(write_cost_tables(df, ledger, run_dir, tracker))
        footnotes = [f for f in dict.fromkeys(footnotes) if f]
        paths = write_results(df, run_dir, footnotes)
        seconds = time.perf_counter() - t_start
        errors = run_dir / "generation_errors.csv"  # written with generation.csv when any input failed
        failed = sum(1 for _ in csv.reader(errors.open(encoding="utf-8"))) - 1 if errors.exists() else 0
        (run_dir / "summary.json").write_text(json.dumps(
            {"seconds": seconds, "mlflow_run_id": tracker.run_id, "cells": len(rows),
             "status": "partial" if failed else "complete", "generation_failed": failed}, indent=2))
        tracker.log_metrics({"benchmark_seconds": seconds})
        for path in (paths["csv"], paths["md"], run_dir / "config.yaml", *write_thesis_tables(df, run_dir, footnotes, 1 - cfg.eval.confidence)):
            tracker.log_artifact(path)
        tracker.log_metrics(summary_metrics(df, 1 - cfg.eval.confidence))
        tracker.log_artifact(per_query_dir, "per_query")
        findings = _write_findings(df, run_dir, cfg, tracker)
        write_provenance(build_record(cfg, run_checkpoints(cfg, run_dir), fingerprints,
                                      HashCache(Path(cfg.cache_dir) / "provenance_hashes.json")), run_dir, tracker)
        if cfg.report.enabled:
            from rsretrieval.analysis.report import build_report

            tracker.log_artifact(build_report(run_dir, cfg.report))
        run_id = tracker.run_id
    if cfg.eval.shortlist_k:
        from rsretrieval.pipelines.benchmark.two_stage import drop_scratch

        drop_scratch(run_dir)
    return BenchmarkResult(run_dir, paths["csv"], paths["md"], rows, run_id, seconds, findings)


def _write_findings(df: Any, run_dir: Path, cfg: BenchmarkConfig, tracker: Tracker) -> Any:
    """findings.csv/.md: each claim of the thesis tested on this run's cells (paired bootstrap over queries)."""
    from rsretrieval.evaluation.findings import compute_findings, write_findings

    findings = compute_findings(df, run_dir / "per_query", cfg.eval.confidence, cfg.eval.bootstrap_resamples,
                                cfg.eval.bootstrap_seed)
    path = write_findings(findings, run_dir)
    tracker.log_artifact(path)
    tracker.log_artifact(path.with_suffix(".md"))
    tested = findings[findings["verdict"] != "not tested"]
    tracker.log_metrics({f"findings/{v.replace(' ', '_')}": int((tested["verdict"] == v).sum())
                         for v in ("holds", "fails", "inconclusive")})
    return findings
