"""Benchmark: absolute similarity times at RSICD test size next to the thesis' Table 14 (A6000).

    python rayjobs/bench_table14.py                 # CUDA when available, else the CPU (the device is printed)
    python rayjobs/bench_table14.py --device cuda --out table14.csv

The same as ``rsretrieval bench table14`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/table14.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench table14`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "table14", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
