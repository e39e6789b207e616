"""Train the graph encoder and the GMN with Ray Train (thesis sec. 5.4), logged to MLflow.

    python rayjobs/train.py                                          # embedded default data (synthrs)
    python rayjobs/train.py --config my.yaml --set graph_matching.train.workers=2 --lr-find
    ray job submit --working-dir . -- python rayjobs/train.py --config my.yaml --run-name train-rsicd

Restarting the same job resumes its Ray Train runs from their last checkpoints. The checkpoints in
<output_dir>/<run_name>/graph_models/ plug into the benchmark as graph_matching.gmn_checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    from rsretrieval.cli import add_benchmark_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(parser)
    parser.add_argument("--graphs", action="append", default=None,
                        help="image-graph source(s) to train on (default: every available one)")
    parser.add_argument("--no-vg2vg", action="store_true", help="skip the VG2VG heads (no backbone embeddings)")
    parser.add_argument("--lr-find", action="store_true", help="run the LR range test first; save lr_finder.png")
    from rsretrieval.cli import job_config
    from rsretrieval.pipelines.jobs.train import run_training

    cfg, args = job_config(parser, argv, "train")
    res = run_training(cfg, args.graphs, not args.no_vg2vg, args.lr_find)
    for row in res.summary:
        print(f"{row['graphs']:>14} {row['embeddings']:>8} {row['head']:>14}: {row['epochs']} epochs, best val mR "
              f"{row['best_val_mr']:.2f} (epoch {row['best_epoch']}){' cached' if row['cached'] else ''}")
    if res.steepest_lr is not None:
        print(f"LR finder: steepest descent at {res.steepest_lr:.2e} ({res.run_dir / 'lr_finder.png'})")
    print("checkpoints:\n" + "\n".join(f"  {p}" for p in res.checkpoints))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
