"""Benchmark: graph training per epoch, in-process loop vs Ray Train with 1 and 2 workers (one run).

    python rayjobs/bench_train.py                      # the embedded default's training data (synthrs train)
    python rayjobs/bench_train.py --synthetic 2000     # synthetic graphs: no dataset preparation

Prints seconds per epoch, the speed-up over 1 worker, the fit wall time (Ray Train start-up
included) and the best validation mR; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from rsretrieval.cli import add_benchmark_args
    from rsretrieval.config import load_config
    from rsretrieval.benchmarks.train import bench, print_report

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(p)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts (0 = in-process loop)")
    p.add_argument("--graphs", default=None, help="image-graph source (default: the generated graphs)")
    p.add_argument("--synthetic", type=int, default=None, metavar="N", help="N synthetic image graphs instead of a dataset")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    a = p.parse_args(argv)
    cfg = load_config(a.config, list(a.overrides) + ([f"output_dir={a.output_dir}"] if a.output_dir else []))
    result = bench(cfg, a.epochs, tuple(a.workers), a.graphs, a.synthetic)
    print_report(result)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
