"""Benchmark: the two-stage path (V2V shortlist + S2S / G2G / VG2VG rerank) at 10k / 100k / 1M images.

    python rayjobs/bench_scale.py                              # 10k, 100k, 1M (writes ~9 GB of synthetic corpora)
    python rayjobs/bench_scale.py --sizes 10000 100000 --queries 500

The same as ``rsretrieval bench scale`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/scale.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench scale`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "scale", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
