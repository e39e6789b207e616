"""Benchmark: Hungarian G2G scoring (thesis 5.3.2) vs a per-pair scipy loop, 1 worker vs all cores.

    python rayjobs/bench_hungarian.py                              # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
    python rayjobs/bench_hungarian.py --queries 500 --images 200   # quick

Ratios are measured in one run on synthetic vectors; the per-pair loop is timed on a sample of pairs
and extrapolated (the output says so). No absolute target (machines differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # imported here, not at the top: spawned pool workers re-import this script, and should stay light
    from rsretrieval.benchmarks.hungarian import bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--q-nodes", type=float, default=20, help="mean query graph size")
    p.add_argument("--d-nodes", type=float, default=30, help="mean image graph size")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--workers", type=int, default=0, help="processes for the parallel run; 0 = all cores")
    p.add_argument("--normalise", choices=("matched", "query"), default="matched")
    p.add_argument("--loop-pairs", type=int, default=20_000, help="~pairs timed in the per-pair loop (whole queries)")
    p.add_argument("--check-pairs", type=int, default=2000, help="pairs checked against the reference")
    p.add_argument("--shortcut-queries", type=int, default=300, help="queries in the shortcut on/off runs")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    result = bench(a.queries, a.images, a.q_nodes, a.d_nodes, a.dim, a.workers, a.normalise, a.loop_pairs,
                   a.check_pairs, a.shortcut_queries, a.seed)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
