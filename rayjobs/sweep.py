"""Hyperparameter sweep of the graph matcher with Ray Tune (ASHA), every trial in MLflow.

    python rayjobs/sweep.py --space tune_spaces/gmn.yaml                      # embedded default data
    python rayjobs/sweep.py --space tune_spaces/gmn.yaml --config my.yaml --name gmn-rsicd
    ray job submit --working-dir . -- python rayjobs/sweep.py --space tune_spaces/encoder.yaml

Run again with the same --name to resume an interrupted sweep (finished trials are not re-run).
Writes <output_dir>/sweeps/<name>/best_config.yaml: `python rayjobs/full_benchmark.py --config` it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))



def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=Path(__file__).resolve().parents[1] / "tune_spaces" / "gmn.yaml",
                        help="search space YAML (tune_spaces/)")
    parser.add_argument("--config", type=Path, help="base benchmark config (default: the embedded default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a base config value")
    parser.add_argument("--output-dir", help="root of run outputs (config: output_dir); the sweep goes to <it>/sweeps/")
    parser.add_argument("--name", default=None, help="sweep name (default: the space file's stem); same name = resume")
    parser.add_argument("--graphs", default=None, help="image-graph source to train on (default: the generated graphs)")
    parser.add_argument("--embeddings", choices=["trained", "vanilla"], default="trained",
                        help="trained = encoder + GMN; vanilla = GMN on frozen node embeddings")
    parser.add_argument("--num-samples", type=int, default=None, help="trials (default: the space file's num_samples)")
    parser.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as CPUs allow)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rsretrieval.config import load_config
    from rsretrieval.pipelines.jobs.sweep import run_sweep
    from rsretrieval.training.search_space import load_space

    cfg = load_config(args.config, list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else []))
    space = load_space(args.space, cfg)
    res = run_sweep(cfg, space, args.name or args.space.stem, args.graphs, args.embeddings, args.num_samples,
                    args.max_concurrent)
    print(f"sweep: {res.n_trials} trials in {res.seconds:.0f} s{' (resumed)' if res.restored else ''}; best "
          f"{space.metric} = {res.best_metric:.2f} with {res.best_values}")
    print(f"best config: {res.best_config}\ntrials: {res.trials_csv}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
