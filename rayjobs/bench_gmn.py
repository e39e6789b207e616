"""Benchmark: GMN all-pairs scoring (G2G / VG2VG) vs the fp32 matmul roofline of its node similarities.

    python rayjobs/bench_gmn.py                          # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
    python rayjobs/bench_gmn.py --queries 500 --images 200
    python rayjobs/bench_gmn.py --device cuda

The same as ``rsretrieval bench gmn`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/gmn.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench gmn`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "gmn", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
