"""Benchmark: GMN all-pairs scoring (G2G / VG2VG, thesis eqs. 3-5) vs the fp32 matmul roofline of its node similarities.

    python rayjobs/bench_gmn.py                          # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
    python rayjobs/bench_gmn.py --queries 500 --images 200
    python rayjobs/bench_gmn.py --device cuda

One run on seeded random unit vectors with an untrained (seeded) GMN: prints JSON with the GMN and
roofline seconds, their ratio (target <= 2), a breakdown, and the per-pair reference extrapolated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsretrieval.config import GMNConfig  # noqa: E402
from rsretrieval.benchmarks.gmn import bench  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--q-nodes", type=int, default=20, help="mean query graph size (uniform in mean/2..3 mean/2)")
    p.add_argument("--d-nodes", type=int, default=30, help="mean image graph size")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--chunk-size", type=int, default=None, help="queries per block (default: GMNConfig.chunk_size)")
    p.add_argument("--doc-block", type=int, default=None, help="documents per block (default: automatic)")
    p.add_argument("--bins", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--hist-range", choices=["fixed", "dynamic"], default=None)
    p.add_argument("--soft-binning", action="store_true")
    p.add_argument("--no-global", action="store_true", help="G2G (no sim_vec) instead of VG2VG")
    p.add_argument("--sample-pairs", type=int, default=200, help="pairs timed with the per-pair reference")
    p.add_argument("--repeats", type=int, default=2, help="GMN runs timed (the best is kept)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    overrides = {k: v for k, v in {"bins": a.bins, "heads": a.heads, "hidden": a.hidden,
                                   "hist_range": a.hist_range}.items() if v is not None}
    cfg = GMNConfig(**overrides, soft_binning=a.soft_binning, use_global=not a.no_global)
    result = bench(a.queries, a.images, a.q_nodes, a.d_nodes, a.dim, cfg, a.chunk_size, a.doc_block,
                   a.sample_pairs, a.repeats, a.device, a.seed)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
