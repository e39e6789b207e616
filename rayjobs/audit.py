"""Duplicate and leakage audit of every dataset of a config: perceptual image hashes (dHash + pHash) and
normalised caption texts, within and across splits and datasets.

    python rayjobs/audit.py --config rayjobs/configs/ucm_sample.yaml
    python rayjobs/audit.py --config my.yaml --dhash-max 6 --eval-split test --train-splits train val

Writes <output_dir>/<run_name>/ (default runs/audit/): summary.md, summary.csv, image_hashes.parquet,
image_duplicates.csv, caption_duplicates.csv and leaks.csv (logged to MLflow). Evaluate without the
leaked items: `python rayjobs/full_benchmark.py --config my.yaml --set eval.exclude_leaked=runs/audit/leaks.csv`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    from rsretrieval.analysis.audit import AuditOptions, run_audit, write_audit
    from rsretrieval.cli import add_benchmark_args, job_config
    from rsretrieval.data.registry import load_dataset
    from rsretrieval.pipelines.tracking import metric_key, mlflow_run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(parser)
    defaults = AuditOptions()
    parser.add_argument("--eval-split", default=defaults.eval_split, help="split checked for leaks")
    parser.add_argument("--train-splits", nargs="+", default=defaults.train_splits, help="splits a model may train on")
    parser.add_argument("--dhash-max", type=int, default=defaults.dhash_max, help="dHash bits a duplicate may differ")
    parser.add_argument("--phash-max", type=int, default=defaults.phash_max, help="pHash bits a duplicate may differ")
    cfg, args = job_config(parser, argv, "audit")
    opts = AuditOptions(eval_split=args.eval_split, train_splits=args.train_splits, dhash_max=args.dhash_max,
                        phash_max=args.phash_max)
    datasets = [load_dataset(d, cfg.cache_dir) for d in cfg.datasets]  # all splits: leaks cross them
    res = run_audit(datasets, opts)
    with mlflow_run(cfg) as tracker:
        tracker.log_params({f"audit.{k}": v for k, v in opts.model_dump().items()})
        paths = write_audit(res, cfg.run_dir, opts)
        for row in res.summary.to_dict("records"):
            tracker.log_metrics({metric_key("audit", row["dataset"], row["split"], k): float(v) for k, v in row.items()
                                 if k not in ("dataset", "split")})
        for p in paths:
            tracker.log_artifact(p)
    print(paths[-1].read_text(encoding="utf-8"))
    print(f"manifests: {', '.join(p.name for p in paths)} in {cfg.run_dir}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
