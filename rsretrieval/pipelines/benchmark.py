"""The benchmark: datasets x backbones x variants x modes, embedded with Ray, logged to MLflow."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from rsretrieval.config import BackboneConfig, BenchmarkConfig, RayConfig
from rsretrieval.data.registry import duplicate_summary, evaluation_split, load_dataset, load_synthrs_dataset
from rsretrieval.data.schema import RSDataset
from rsretrieval.evaluation.retrieval import evaluate_cell, gold_indices, per_query_table
from rsretrieval.evaluation.tables import results_frame, write_results
from rsretrieval.matching.cosine import CosineScorer
from rsretrieval.pipelines.embed import embed_table, read_embeddings
from rsretrieval.pipelines.tracking import Tracker, metric_key, mlflow_run

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


def init_ray(cfg: RayConfig) -> None:
    """Connect to $RAY_ADDRESS / the configured cluster, or start a local one."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, **kwargs)
    ray.data.DataContext.get_current().enable_progress_bars = False


def resolve_checkpoint(bcfg: BackboneConfig, cfg: BenchmarkConfig) -> Path | None:
    """The checkpoint of a backbone: trained on first use for rs-tiny, from the config otherwise."""
    if bcfg.name == "rs-tiny":
        from rsretrieval.encoders.rs_tiny import ensure_rs_tiny

        train = load_synthrs_dataset(bcfg.rs_tiny.train_data, cfg.cache_dir).split("train")
        return ensure_rs_tiny(train, bcfg.rs_tiny, cfg.cache_dir)
    from rsretrieval.encoders.registry import get_backbone_spec, resolve_checkpoint as find

    spec = get_backbone_spec(bcfg.name)
    ckpt_dir = bcfg.checkpoint_dir or (Path(os.environ["RSR_CHECKPOINT_DIR"]) if os.environ.get("RSR_CHECKPOINT_DIR") else None)
    return find(spec, ckpt_dir, bcfg.checkpoint)


def _scoring_device(name: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _run_backbone(cfg: BenchmarkConfig, ds: RSDataset, bcfg: BackboneConfig, tracker: Tracker,
                  per_query_dir: Path, synthetic: bool) -> list[dict[str, Any]]:
    """Embed one dataset split with one backbone and evaluate every variant and mode."""
    checkpoint = resolve_checkpoint(bcfg, cfg)
    t0 = time.perf_counter()
    img_dir, img_cached = embed_table("images", ds.images, bcfg.name, checkpoint, cfg.embed, cfg.cache_dir)
    cap_dir, cap_cached = embed_table("captions", ds.captions, bcfg.name, checkpoint, cfg.embed, cfg.cache_dir)
    embed_seconds = time.perf_counter() - t0
    image_ids = ds.images["image_id"].to_pylist()
    img_vec = read_embeddings(img_dir, image_ids)
    device = _scoring_device(cfg.eval.device)
    rows = []
    for variant in cfg.variants:
        caps = ds.captions.filter(pc.equal(ds.captions["variant"], variant))
        if caps.num_rows == 0:
            log.info("%s: no %s captions, variant skipped", ds.name, variant)
            continue
        cap_ids = caps["caption_id"].to_pylist()
        cap_vec = read_embeddings(cap_dir, cap_ids)
        gold = gold_indices(caps["image_id"].to_pylist(), image_ids)
        for mode in cfg.modes:  # only v2v exists so far; other modes plug in here
            t2i = CosineScorer(cap_vec, img_vec, device)
            i2t = CosineScorer(img_vec, cap_vec, device) if cfg.eval.i2t else None
            cell = evaluate_cell(t2i, gold, len(image_ids), cfg.eval.ks, cfg.eval.chunk_size,
                                 cfg.eval.top_k_saved, i2t)
            keys = {"dataset": ds.name, "variant": variant, "backbone": bcfg.name, "mode": mode,
                    "similarity": "cosine", "training": "none"}
            notes = []
            if synthetic:
                notes.append("synthetic data")
            if bcfg.name == "rs-tiny":
                notes.append("embedded rs-tiny")
            row = {**keys, **cell.metrics(), "n_queries": len(cap_ids), "n_images": len(image_ids),
                   "embed_seconds": embed_seconds, "embeddings_cached": img_cached and cap_cached,
                   "notes": "; ".join(notes)}
            rows.append(row)
            pq.write_table(per_query_table(cap_ids, gold, image_ids, cell.ranks, keys),
                           per_query_dir / f"{ds.name}__{variant}__{bcfg.name}__{mode}.parquet")
            tracker.log_metrics({metric_key(ds.name, variant, bcfg.name, mode, k): float(v)
                                 for k, v in cell.metrics().items() if v == v})
            log.info("%s/%s/%s/%s: R@1 %.2f R@5 %.2f R@10 %.2f mR %.2f", ds.name, variant, bcfg.name,
                     mode, cell.t2i[1], cell.t2i[5], cell.t2i[10], cell.mR)
    return rows


def run_benchmark(cfg: BenchmarkConfig) -> BenchmarkResult:
    """Run every configured cell; write results.csv/.md, per-query Parquet, and the MLflow run."""
    t_start = time.perf_counter()
    run_dir = cfg.run_dir
    per_query_dir = run_dir / "per_query"
    per_query_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    init_ray(cfg.ray)
    rows: list[dict[str, Any]] = []
    footnotes: list[str] = []
    with mlflow_run(cfg) as tracker:
        for dcfg in cfg.datasets:
            full = load_dataset(dcfg, cfg.cache_dir)
            ds = evaluation_split(full, dcfg)
            dups = duplicate_summary(ds)
            tracker.log_params({f"data.{dcfg.name}.{k}": v for k, v in dups.items()})
            if dups["duplicate_caption_texts"]:
                footnotes.append(f"{dcfg.name} {dcfg.split}: {dups['duplicate_caption_texts']} caption texts occur "
                                 f"more than once ({dups['duplicate_caption_texts_cross_image']} across images); "
                                 "each is still its own query")
            if dcfg.format == "synthrs":
                footnotes.append(SYNTHETIC_NOTE)
            for bcfg in cfg.backbones:
                if bcfg.name == "rs-tiny":
                    footnotes.append(RS_TINY_NOTE)
                rows.extend(_run_backbone(cfg, ds, bcfg, tracker, per_query_dir, dcfg.format == "synthrs"))
        footnotes = list(dict.fromkeys(footnotes))
        df = results_frame(rows)
        paths = write_results(df, run_dir, footnotes)
        seconds = time.perf_counter() - t_start
        (run_dir / "summary.json").write_text(json.dumps(
            {"seconds": seconds, "mlflow_run_id": tracker.run_id, "cells": len(rows)}, indent=2))
        tracker.log_metrics({"benchmark_seconds": seconds})
        for path in (paths["csv"], paths["md"], run_dir / "config.yaml"):
            tracker.log_artifact(path)
        tracker.log_artifact(per_query_dir, "per_query")
        run_id = tracker.run_id
    return BenchmarkResult(run_dir, paths["csv"], paths["md"], rows, run_id, seconds)
