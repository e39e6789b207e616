"""Benchmark: Ray Data embedding stage vs a bare torch loop (same model, images, batch size, run).

    python rayjobs/bench_embed.py --images 1000 --set-batch 64 --concurrency 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsretrieval.config import EmbedConfig, SynthRSOptions, default_cache_dir


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=600, help="synthrs test images to embed")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=1, help="embedding actors")
    p.add_argument("--torch-threads", type=int, default=None, help="torch threads per actor")
    p.add_argument("--num-gpus-per-actor", type=float, default=0.0)
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = p.parse_args(argv)

    from rsretrieval.data.registry import load_synthrs_dataset
    from rsretrieval.benchmarks.embed import random_rs_tiny_checkpoint, run
    from rsretrieval.pipelines.benchmark.run import init_ray
    from rsretrieval.config import RayConfig

    ds = load_synthrs_dataset(SynthRSOptions(n_train=0, n_val=0, n_test=args.images), args.cache_dir).split("test")
    init_ray(RayConfig())
    cfg = EmbedConfig(batch_size=args.batch_size, concurrency=args.concurrency,
                      torch_threads=args.torch_threads, num_gpus_per_actor=args.num_gpus_per_actor)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = random_rs_tiny_checkpoint(Path(tmp) / "rs-tiny-random.pt")
        result = run(ds.images, "rs-tiny", ckpt, cfg)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
