"""Benchmark: Q-MAM late interaction (V2S/S2V/S2S scoring) vs the fp32 GEMM roofline and a per-pair loop.

    python rayjobs/bench_late_interaction.py                 # RSICD size: 5,345 x 1,069, 6 x 10 scenes, D=512
    python rayjobs/bench_late_interaction.py --device cuda

Ratios are measured in one run on synthetic vectors; no absolute target (machines differ).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsretrieval.benchmarks.late_interaction import bench  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--query-scenes", type=int, default=6)
    p.add_argument("--image-scenes", type=int, default=10)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--chunk-size", type=int, default=512, help="queries per block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-sample", type=int, default=20, help="queries timed in the per-pair loop")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variable", action="store_true", help="set sizes uniform in 1..max (padded path)")
    a = p.parse_args(argv)
    result = bench(a.queries, a.images, a.query_scenes, a.image_scenes, a.dim, a.chunk_size, a.repeats,
                   a.loop_sample, a.device, variable=a.variable)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
