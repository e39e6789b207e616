"""Benchmark: absolute similarity times at RSICD test size next to the thesis' Table 14 (A6000).

    python rayjobs/bench_table14.py                 # CUDA when available, else the CPU (the device is printed)
    python rayjobs/bench_table14.py --device cuda --out table14.csv

Seeded random unit vectors (timings real, scores not): cosine (V2V), S2S (Q-MAM, 6 x 10 scenes,
D = 512) and the VG2VG GMN (~20 x ~30 nodes, D = 384) over 5,345 captions x 1,069 images. See
rsretrieval/benchmarks/table14.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    import pandas as pd

    from rsretrieval.benchmarks.table14 import bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="CSV of the rows")
    args = p.parse_args(argv)
    df = pd.DataFrame(bench(args.queries, args.images, device=args.device, repeats=args.repeats))
    print("seeded random vectors: timings are real, scores are not; thesis figures: NVIDIA A6000, RSICD test")
    print(df.round(4).to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
    return df


if __name__ == "__main__":
    main(sys.argv[1:])
