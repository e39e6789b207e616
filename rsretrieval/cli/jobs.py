"""The config-driven jobs: ``rsretrieval generate|train|sweep|analyze-datasets|audit``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

from rsretrieval.cli.common import (REPO_ROOT, add_benchmark_args, basic_logging, job_overrides, load_user_config,
                                    print_config, resolve_job_config)
from rsretrieval.config import GenerationTaskName

GENERATE_HELP = """Generate fine-grained captions, image/text graphs and text scenes with Gemini.

  GEMINI_API_KEY=... rsretrieval generate --config my.yaml --task text_scenes --set generation.backend=gemini
  rsretrieval generate --config my.yaml --task image_graph --dry-run     # count requests, tokens, cost
  ray job submit --working-dir . -- python rayjobs/generate.py --config my.yaml --task text_graph

Responses go to an append-only store (generation.store_dir, default <cache_dir>/generation) as they
arrive; a rerun or resubmitted job requests only what is missing.
"""
TASK_NAMES = list(get_args(GenerationTaskName))


def add_generate_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval generate``."""
    add_benchmark_args(p)
    p.add_argument("--task", action="append", choices=TASK_NAMES, help="task(s) to run (default: text_graph, text_scenes)")
    p.add_argument("--variant", default="fine_grained", help="caption variant fed to text tasks (if the dataset has it)")
    p.add_argument("--limit", type=int, default=None, help="only the first N inputs per dataset and task")
    p.add_argument("--dry-run", action="store_true", help="count requests, tokens and cost; send nothing")


def generate_cmd(args: argparse.Namespace) -> Any:
    """Run the generation tasks; writes generation.csv (or generation_estimate.csv); returns its rows."""
    import pandas as pd

    from rsretrieval.pipelines.jobs.generate import generate
    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.runtime.tracking import metric_key, mlflow_run

    cfg = resolve_job_config(args, "generate")
    if cfg is None:
        return None
    if not args.dry_run:
        init_ray(cfg.ray)
    with mlflow_run(cfg) as tracker:
        rows = generate(cfg, args.task or ["text_graph", "text_scenes"], args.variant, args.limit, args.dry_run)
        df = pd.DataFrame(rows)
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        out = cfg.run_dir / ("generation_estimate.csv" if args.dry_run else "generation.csv")
        df.to_csv(out, index=False)
        tracker.log_artifact(out)
        tracker.log_metrics({metric_key("generation", r["dataset"], r["task"], k): float(r[k]) for r in rows
                             for k in ("requested", "tokens_in", "tokens_out", "cost_usd") if k in r})
    print(df.to_string(index=False))
    print(f"{'estimate' if args.dry_run else 'summary'}: {out}")
    return rows


TRAIN_HELP = """Train the graph encoder and the GMN with Ray Train (thesis sec. 5.4), logged to MLflow.

  rsretrieval train                                          # embedded default data (synthrs)
  rsretrieval train --config my.yaml --set graph_matching.train.workers=2 --lr-find
  ray job submit --working-dir . -- python rayjobs/train.py --config my.yaml --run-name train-rsicd

Restarting the same job resumes its Ray Train runs from their last checkpoints. The checkpoints in
<output_dir>/<run_name>/graph_models/ plug into the benchmark as graph_matching.gmn_checkpoint.
"""


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval train``."""
    add_benchmark_args(p)
    p.add_argument("--graphs", action="append", default=None,
                   help="image-graph source(s) to train on (default: every available one)")
    p.add_argument("--no-vg2vg", action="store_true", help="skip the VG2VG heads (no backbone embeddings)")
    p.add_argument("--lr-find", action="store_true", help="run the LR range test first; save lr_finder.png")


def train_cmd(args: argparse.Namespace) -> Any:
    """Train the graph models; prints one line per head and the checkpoints. Returns the TrainingResult."""
    from rsretrieval.pipelines.jobs.train import run_training

    cfg = resolve_job_config(args, "train")
    if cfg is None:
        return None
    res = run_training(cfg, args.graphs, not args.no_vg2vg, args.lr_find)
    for row in res.summary:
        print(f"{row['graphs']:>14} {row['embeddings']:>8} {row['head']:>14}: {row['epochs']} epochs, best val mR "
              f"{row['best_val_mr']:.2f} (epoch {row['best_epoch']}){' cached' if row['cached'] else ''}")
    if res.steepest_lr is not None:
        print(f"LR finder: steepest descent at {res.steepest_lr:.2e} ({res.run_dir / 'lr_finder.png'})")
    print("checkpoints:\n" + "\n".join(f"  {p}" for p in res.checkpoints))
    return res


SWEEP_HELP = """Hyperparameter sweep of the graph matcher with Ray Tune (ASHA), every trial in MLflow.

  rsretrieval sweep --space tune_spaces/gmn.yaml                      # embedded default data
  rsretrieval sweep --space tune_spaces/gmn.yaml --config my.yaml --name gmn-rsicd
  ray job submit --working-dir . -- python rayjobs/sweep.py --space tune_spaces/encoder.yaml

Run again with the same --name to resume an interrupted sweep (finished trials are not re-run).
Writes <output_dir>/sweeps/<name>/best_config.yaml: `rsretrieval benchmark --config` it.
"""


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval sweep``."""
    p.add_argument("--space", type=Path, default=REPO_ROOT / "tune_spaces" / "gmn.yaml",
                   help="search space YAML (tune_spaces/)")
    p.add_argument("--config", type=Path, help="base benchmark config (default: the embedded default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config value")
    p.add_argument("--output-dir", help="root of run outputs (config: output_dir); the sweep goes to <it>/sweeps/")
    p.add_argument("--name", default=None, help="sweep name (default: the space file's stem); same name = resume")
    p.add_argument("--graphs", default=None, help="image-graph source to train on (default: the generated graphs)")
    p.add_argument("--embeddings", choices=["trained", "vanilla"], default="trained",
                   help="trained = encoder + GMN; vanilla = GMN on frozen node embeddings")
    p.add_argument("--num-samples", type=int, default=None, help="trials (default: the space file's num_samples)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as CPUs allow)")
    p.add_argument("--debug", action="store_true", help="show the traceback of configuration and input errors")


def sweep_cmd(args: argparse.Namespace) -> Any:
    """Run (or resume) the sweep; prints the best trial. Returns the SweepResult."""
    from rsretrieval.pipelines.jobs.sweep import run_sweep
    from rsretrieval.pipelines.runtime.object_storage import verify_storage
    from rsretrieval.training.search_space import load_space

    basic_logging()
    output_dir = [f"output_dir={args.output_dir}"] if args.output_dir else []
    cfg = load_user_config(args.config, list(args.overrides) + output_dir, allow_uris=True)
    verify_storage(cfg)  # a bucket that is not there fails now, not after the training graphs are built
    space = load_space(args.space, cfg)
    res = run_sweep(cfg, space, args.name or args.space.stem, args.graphs, args.embeddings, args.num_samples,
                    args.max_concurrent)
    print(f"sweep: {res.n_trials} trials in {res.seconds:.0f} s{' (resumed)' if res.restored else ''}; best "
          f"{space.metric} = {res.best_metric:.2f} with {res.best_values}")
    print(f"best config: {res.best_config}\ntrials: {res.trials_csv}")
    if res.location != str(res.sweep_dir):
        print(f"uploaded to {res.location}")
    return res


ANALYZE_HELP = """Dataset diversity analysis (thesis sec. 3.3-3.4): similarity matrices and histograms, caption
lengths, scene distribution, for every dataset of the config.

  rsretrieval analyze-datasets                                  # the embedded default (synthrs)
  rsretrieval analyze-datasets --config rayjobs/configs/ucm_sample.yaml

Writes <output_dir>/<run_name>/ (default runs/analysis/): analysis.md, diversity.csv, caption_stats.csv,
scenes.csv and one PNG per similarity matrix; everything is logged to MLflow.
"""


def analyze_cmd(args: argparse.Namespace) -> Any:
    """Run the diversity analysis; prints analysis.md. Returns the AnalysisResult."""
    from rsretrieval.pipelines.jobs.analyze import run_analysis

    cfg = resolve_job_config(args, "analysis")
    if cfg is None:
        return None
    res = run_analysis(cfg)
    print((res.run_dir / "analysis.md").read_text(encoding="utf-8"))
    print(f"plots: {', '.join(p.name for p in res.plots)} in {res.run_dir}")
    return res


AUDIT_HELP = """Duplicate and leakage audit of every configured dataset (all splits): perceptual image hashes
(dHash + pHash) and normalised caption texts, within and across splits and datasets.

  rsretrieval audit --config rayjobs/configs/ucm_sample.yaml
  rsretrieval audit --config my.yaml --dhash-max 6 --train-splits train val

Writes <output_dir>/<run_name>/ (default runs/audit/): summary.md/.csv, image_hashes.parquet,
image_duplicates.csv, caption_duplicates.csv, leaks.csv (logged to MLflow). Evaluate without the leaked
items: --set eval.exclude_leaked=runs/audit/leaks.csv on the benchmark.
"""


def add_audit_args(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsretrieval audit``."""
    from rsretrieval.analysis.audit import AuditOptions

    add_benchmark_args(p)
    d = AuditOptions()
    p.add_argument("--eval-split", default=d.eval_split, help="split checked for leaks (default: test)")
    p.add_argument("--train-splits", nargs="+", default=d.train_splits, help="splits a model may train on")
    p.add_argument("--dhash-max", type=int, default=d.dhash_max, help="dHash bits (of 64) a duplicate may differ by")
    p.add_argument("--phash-max", type=int, default=d.phash_max, help="pHash bits (of 64) a duplicate may differ by")
    p.add_argument("--workers", choices=["auto", "ray", "local"], default="auto",
                   help="hash images with Ray Data ('ray'), in this process ('local'), or Ray from 5,000 images on (auto)")


def audit(args: argparse.Namespace) -> Any:
    """Run the audit of the configured datasets; print summary.md. Returns the AuditResult."""
    from rsretrieval.analysis.audit import AuditOptions, run_audit, write_audit
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.pipelines.runtime.tracking import metric_key, mlflow_run

    cfg = load_user_config(args.config, job_overrides(args, "audit"))
    if args.print_config:
        print_config(cfg)
        return None
    opts = AuditOptions(eval_split=args.eval_split, train_splits=args.train_splits, dhash_max=args.dhash_max,
                        phash_max=args.phash_max)
    datasets = [load_dataset(d, cfg.cache_dir) for d in cfg.datasets]  # all splits: leaks cross them
    hashes = None
    if args.workers != "local":
        from rsretrieval.pipelines.runtime.ray_session import init_ray
        from rsretrieval.pipelines.stages.image_hashes import audit_hashes

        init_ray(cfg.ray, lazy_local=True)
        hashes = audit_hashes(datasets, args.workers)
    res = run_audit(datasets, opts, hashes)
    with mlflow_run(cfg) as tracker:
        tracker.log_params({f"audit.{k}": v for k, v in opts.model_dump().items()})
        paths = write_audit(res, cfg.run_dir, opts)
        for row in res.summary.to_dict("records"):
            tracker.log_metrics({metric_key("audit", row["dataset"], row["split"], k): float(v)
                                 for k, v in row.items() if k not in ("dataset", "split")})
        for p in paths:
            tracker.log_artifact(p)
    print(paths[-1].read_text(encoding="utf-8"))
    print(f"manifests: {', '.join(p.name for p in paths)} in {cfg.run_dir}")
    return res
