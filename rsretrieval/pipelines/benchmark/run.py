"""The benchmark executor: config -> :func:`~rsretrieval.pipelines.benchmark.plan.build_plan` -> every step
run once, in order, each cell scored -> results.csv/.md, per-query Parquet, tables, findings, the report
and one MLflow run."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from rsretrieval.config import GRAPH_MODES, BenchmarkConfig
from rsretrieval.evaluation.cell_names import cell_name
from rsretrieval.evaluation.tables import results_frame, write_results
from rsretrieval.evaluation.thesis_tables import summary_metrics, write_thesis_tables
from rsretrieval.pipelines.benchmark.context import DatasetState, RunContext
from rsretrieval.pipelines.benchmark.costs import write_cost_tables
from rsretrieval.pipelines.benchmark.generation import write_generation_accounting
from rsretrieval.pipelines.benchmark.plan import Cell, Plan, build_plan
from rsretrieval.pipelines.benchmark.provenance import HashCache, build_record, run_checkpoints, write_provenance
from rsretrieval.pipelines.benchmark.steps import (prepare_dataset, prepare_dataset_graphs, split_vectors, train_vg2vg,
                                                   write_models)
from rsretrieval.pipelines.benchmark.trust import add_trust_columns, trust_metrics
from rsretrieval.pipelines.benchmark.vectors import embed_backbone, score_vector_cell
from rsretrieval.pipelines.runtime.arrow_spill import ArrowSpill
from rsretrieval.pipelines.runtime.driver_memory import DriverMemory
from rsretrieval.pipelines.runtime.object_storage import RunStorage
from rsretrieval.pipelines.runtime.preflight import preflight
from rsretrieval.pipelines.runtime.ray_session import init_ray
from rsretrieval.pipelines.runtime.tracking import Tracker, mlflow_run

log = logging.getLogger(__name__)

RS_TINY_NOTE = "rs-tiny is the embedded backbone trained only on synthrs train; it knows nothing of real imagery"
__all__ = ["BenchmarkResult", "run_benchmark", "execute", "split_vectors", "write_training_summary"]


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
    plan: Plan | None = None


def run_benchmark(cfg: BenchmarkConfig) -> BenchmarkResult:
    """Run every cell of the plan; write results.csv/.md, per-query Parquet, and the MLflow run."""
    t_start = time.perf_counter()
    preflight(cfg)  # paths, backbones, checkpoints, buckets: fail in seconds, before Ray starts
    storage = RunStorage(cfg)  # s3:// / gs:// output_dir or cache_dir: local copies, synced with the bucket
    storage.pull()
    declared, cfg = cfg, storage.local_config()
    plan = build_plan(cfg)
    run_dir = cfg.run_dir
    (run_dir / "per_query").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(declared.model_dump(mode="json"), sort_keys=False))
    init_ray(cfg.ray, lazy_local=True)  # a local instance starts when a stage first needs Ray
    try:
        with mlflow_run(cfg) as tracker, DriverMemory(path=run_dir / "driver_memory.csv") as memory, \
                ArrowSpill() as spill:
            ctx = RunContext(cfg, tracker, run_dir, memory=memory, spill=spill)
            ctx.mark("setup")
            execute(ctx, plan, storage.after_step if storage.cache else None)
            result = finish(ctx, t_start)
    except BaseException as exc:
        storage.finish(exc)
        raise
    storage.finish(None)
    result.plan = plan
    if cfg.eval.shortlist_k:
        from rsretrieval.pipelines.benchmark.two_stage import drop_scratch

        drop_scratch(run_dir)
    return result


def execute(ctx: RunContext, plan: Plan, after_step: Callable[[], None] | None = None) -> None:
    """Run the plan's steps in order: each stage once, then the cells of each score step; ``after_step``
    runs after every step that writes the cache (the object-storage push)."""
    cfg = ctx.cfg
    datasets = {d.name: d for d in cfg.datasets}
    backbones = {b.name: b for b in cfg.backbones}
    states: dict[str, DatasetState] = {}
    graph_scorers: dict[tuple[str, str | None], Any] = {}  # (dataset, VG2VG backbone or None) -> GraphCellScorer
    for step in plan.steps:
        if step.kind == "data":
            states[step.dataset] = prepare_dataset(ctx, datasets[step.dataset])
            ctx.mark(step.name)
            if after_step is not None:
                after_step()
            continue
        state = states[step.dataset]
        if step.kind == "graphs":
            prepare_dataset_graphs(ctx, state)
        elif step.kind == "embed":
            if step.backbone == "rs-tiny":
                ctx.footnotes.append(RS_TINY_NOTE)
            state.backbones[step.backbone] = embed_backbone(ctx, state, backbones[step.backbone])
        elif step.kind == "train_vg2vg":
            train_vg2vg(ctx, state, backbones[step.backbone])
        elif step.kind == "models":
            write_models(ctx)
        else:
            for cell in step.cells:
                score_cell(ctx, state, cell, graph_scorers)
                ctx.mark(f"score:{cell.dataset}:{cell.variant}:{cell.backbone}:{cell_name(cell.keys())}")
            continue
        ctx.mark(step.name)
        if after_step is not None:
            after_step()


def score_cell(ctx: RunContext, state: DatasetState, cell: Cell, graph_scorers: dict[tuple[str, str | None], Any]) -> None:
    """Score one planned cell with the stages' outputs."""
    if cell.mode not in GRAPH_MODES:
        score_vector_cell(ctx, state.backbones[cell.backbone], cell)
        return
    from rsretrieval.pipelines.benchmark.graph_cells import GraphCellScorer

    backbone = cell.backbone if cell.mode == "vg2vg" else None
    key = (state.ds.name, backbone)
    if key not in graph_scorers:
        source = backbone or cell.rerank_of  # whose global vectors: VG2VG's own; reranked G2G's shortlist
        vectors = state.backbones[source].global_vectors(ctx) if source else None
        graph_scorers[key] = GraphCellScorer(ctx, state, backbone, vectors)
    graph_scorers[key].score(cell)


def finish(ctx: RunContext, t_start: float) -> BenchmarkResult:
    """Write every output of the run from the context: tables, accounting, findings, provenance, report."""
    cfg, run_dir, tracker = ctx.cfg, ctx.run_dir, ctx.tracker
    per_query_dir, rows, footnotes = ctx.per_query_dir, ctx.rows, ctx.footnotes
    footnotes.append(ctx.skipped_note())
    if ctx.generation:
        footnotes.append(write_generation_accounting(ctx.generation, run_dir, tracker))
    if ctx.graph_stats:
        import pandas as pd

        from rsretrieval.analysis.figures import plot_graph_sizes

        pd.DataFrame(ctx.graph_stats).to_csv(run_dir / "graph_stats.csv", index=False)
        tracker.log_artifact(run_dir / "graph_stats.csv")
        # Figure 20: nodes per graph, original vs fine-grained query graphs (image-graph sources dashed)
        if any(r.get("nodes_histogram", "{}") != "{}" for r in ctx.graph_stats):
            tracker.log_artifact(plot_graph_sizes(ctx.graph_stats, run_dir / "graph_sizes.png"))
        footnotes.append("graph collision rate (A.2.3): " + ", ".join(
            f"{r['dataset']} {r['graphs']} {r['gcr']:.2f}%" for r in ctx.graph_stats)
            + " (graph_stats.csv; nodes per graph, Figure 20: graph_sizes.png)")
    if ctx.training:
        footnotes.append(write_training_summary(ctx.training, run_dir, tracker))
    footnotes += add_trust_columns(rows, per_query_dir, ctx.texts, cfg.eval)
    tracker.log_metrics(trust_metrics(rows))
    df = results_frame(rows)
    footnotes.append(write_cost_tables(df, ctx.ledger, run_dir, tracker))
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
    write_provenance(build_record(cfg, run_checkpoints(cfg, run_dir), ctx.fingerprints,
                                  HashCache(Path(cfg.cache_dir) / "provenance_hashes.json")), run_dir, tracker)
    if cfg.report.enabled:
        from rsretrieval.analysis.report import build_report

        tracker.log_artifact(build_report(run_dir, cfg.report))
    if ctx.memory is not None:
        ctx.mark("outputs")
        tracker.log_artifact(ctx.memory.path or ctx.memory.write(run_dir / "driver_memory.csv"))
        tracker.log_metrics({f"driver_peak_{k}_mb": v for k, v in ctx.memory.peak_mb.items()})
    return BenchmarkResult(run_dir, paths["csv"], paths["md"], rows, tracker.run_id, seconds, findings)


def write_training_summary(rows: list[dict[str, Any]], run_dir: Path, tracker: Tracker) -> str:
    """training.csv (one row per trained stage) and its footnote."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(run_dir / "training.csv", index=False)
    tracker.log_artifact(run_dir / "training.csv")
    fresh = df[~df["cached"]]
    return (f"graph models: {len(df)} trained stages ({len(df) - len(fresh)} from the cache), "
            f"{fresh['seconds'].sum():.0f} s of Ray Train time in this run; best validation mR per stage in training.csv")


def _write_findings(df: Any, run_dir: Path, cfg: BenchmarkConfig, tracker: Tracker) -> Any:
    """findings.csv/.md: each claim of the thesis tested on this run's cells (paired bootstrap over queries)."""
    from rsretrieval.evaluation.findings import compute_findings, write_findings

    # a verdict needs its bootstrap: eval.bootstrap_resamples=0 turns off the table's CI columns, not the
    # findings (the report falls back to the same 1000)
    findings = compute_findings(df, run_dir / "per_query", cfg.eval.confidence, cfg.eval.bootstrap_resamples or 1000,
                                cfg.eval.bootstrap_seed)
    path = write_findings(findings, run_dir)
    tracker.log_artifact(path)
    tracker.log_artifact(path.with_suffix(".md"))
    tested = findings[findings["verdict"] != "not tested"]
    tracker.log_metrics({f"findings/{v.replace(' ', '_')}": int((tested["verdict"] == v).sum())
                         for v in ("holds", "fails", "inconclusive")})
    return findings
