"""The benchmark once per training seed, then mean ± sd per cell (issue: several seeds for
anything trained).

Each seed is a full benchmark run named ``<run_name>-seed<s>`` with ``graph_matching.train.seed``
and ``graph_matching.seed`` set to ``s``; everything that does not depend on the seed (embeddings,
crops, scenes, graphs, rs-tiny) comes from the cache after the first run, so each extra seed costs
its training and scoring. The aggregate goes to ``<output_dir>/<run_name>-seeds/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from rsretrieval.config import BenchmarkConfig
from rsretrieval.evaluation.seeds import aggregate_seeds, write_seed_tables
from rsretrieval.storage import RemoteFolder, is_uri, join_uri

log = logging.getLogger(__name__)


def seed_config(cfg: BenchmarkConfig, seed: int) -> BenchmarkConfig:
    """``cfg`` with every training / initialisation seed of the graph models set to ``seed``."""
    out = cfg.model_copy(deep=True)
    out.graph_matching.train.seed = seed
    out.graph_matching.seed = seed
    out.run_name = f"{cfg.run_name}-seed{seed}"
    return out


def run_seeds(cfg: BenchmarkConfig, seeds: list[int]) -> Path:
    """Run the benchmark for every seed; returns the folder of the aggregated tables."""
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds needs distinct seeds, got {seeds}")
    results, runs = {}, []
    for seed in seeds:
        res = run_benchmark(seed_config(cfg, seed))
        log.info("seed %d: %s", seed, res.results_csv)
        results[seed] = pd.read_csv(res.results_csv)
        runs.append(res.run_dir)
    out = cfg.local_output_dir / f"{cfg.run_name}-seeds"  # output_dir a URI: the local staging folder
    write_seed_tables(aggregate_seeds(results), out, runs)
    if is_uri(cfg.output_dir):
        RemoteFolder(join_uri(str(cfg.output_dir), out.name)).push(out)
    return out
