"""``rayjobs/train.py``: train the graph models of one dataset outside the benchmark, logged to MLflow.

The same stages as the benchmark (:mod:`rsretrieval.pipelines.benchmark.graph_training`): per image-graph
source, caption variant and node-embedding kind a G2G matcher, then an end-to-end VG2VG matcher per
configured backbone. Ray Train
runs are named by the hash of data + config, so restarting the same job resumes its runs from their
last checkpoints, and a finished one is loaded from the cache. Outputs in ``<output_dir>/<run_name>/``:
``graph_models/<dataset>-<source>-<embeddings>-<variant>.pt`` (use one as ``graph_matching.gmn_checkpoint``),
``training.csv``, and with ``lr_find`` ``lr_finder.png`` (steepest-descent LR, sec. 5.4.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsretrieval.config import BenchmarkConfig

log = logging.getLogger(__name__)


@dataclass
class TrainJobResult:
    run_dir: Path
    checkpoints: list[Path]
    summary: list[dict[str, Any]]
    steepest_lr: float | None
    mlflow_run_id: str | None


def run_training(cfg: BenchmarkConfig, sources: list[str] | None = None, vg2vg: bool = True,
                 lr_find: bool = False) -> TrainJobResult:
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.graphs.embedder import CachedTextEmbedder, load_text_embedder
    from rsretrieval.pipelines.benchmark.run import write_training_summary
    from rsretrieval.pipelines.benchmark.steps import split_vectors
    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.benchmark.graph_training import train_g2g_models, train_vg2vg_heads, write_model_files
    from rsretrieval.pipelines.runtime.tracking import mlflow_run

    init_ray(cfg.ray)
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    dcfg = cfg.datasets[0]
    embedder = CachedTextEmbedder(load_text_embedder(cfg.graph_matching.embedder), Path(cfg.cache_dir) / "node_embeddings")
    steepest = None
    with mlflow_run(cfg) as tracker:
        full = load_dataset(dcfg, cfg.cache_dir)
        if lr_find:
            steepest = _lr_find(cfg, sources, run_dir, tracker)
        models = train_g2g_models(cfg, full, dcfg, sources, embedder, tracker)
        if vg2vg and models.g2g:
            for bcfg in cfg.backbones:
                vecs = split_vectors(cfg, bcfg, {"train": models.train_ds, "val": models.val_ds})
                train_vg2vg_heads(cfg, models, bcfg.name, vecs, embedder, tracker)
        paths = write_model_files(models, run_dir, tracker)
        if models.summary:
            log.info(write_training_summary(models.summary, run_dir, tracker))
        for note in models.notes:
            log.info(note)
        run_id = tracker.run_id
    return TrainJobResult(run_dir, paths, models.summary, steepest, run_id)


def _lr_find(cfg: BenchmarkConfig, sources: list[str] | None, run_dir: Path, tracker: Any) -> float:
    from rsretrieval.pipelines.benchmark.graph_training import VANILLA_ENCODER
    from rsretrieval.pipelines.jobs.sweep import sweep_data
    from rsretrieval.training.graph_loop import find_lr
    from rsretrieval.training.graph_model import training_gmn_config
    from rsretrieval.training.lr_finder import save_plot

    gm = cfg.graph_matching
    data, source, _ = sweep_data(cfg, sources[0] if sources else None)
    encoder = gm.encoder if "trained" in gm.embeddings else VANILLA_ENCODER
    result = find_lr(data, gm.train, encoder, training_gmn_config(gm.gmn, False))
    plot = save_plot(result, run_dir / "lr_finder.png")
    tracker.log_artifact(plot)
    tracker.log_metrics({"lr_finder/steepest_lr": result.steepest_lr})
    log.info("LR finder (%s graphs, %s encoder): steepest descent at lr=%.2e%s; plot %s", source, encoder.kind,
             result.steepest_lr, " (diverged)" if result.diverged else "", plot)
    return result.steepest_lr
