"""Benchmark: the two-stage path (V2V shortlist + S2S / G2G / VG2VG rerank) at 10k / 100k / 1M images.

    python rayjobs/bench_scale.py                              # 10k, 100k, 1M (writes ~9 GB of synthetic corpora)
    python rayjobs/bench_scale.py --sizes 10000 100000 --queries 500

Synthetic vectors, no pixels: wall time, ms per query and peak memory per process are real; recall
only shows the shortlist ceiling at work. See rsretrieval/benchmarks/scale.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    from rsretrieval.benchmarks.scale import main as bench

    return bench(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
