"""Benchmark: Ray Data embedding stage vs a bare torch loop (same model, images, batch size, run).

    python rayjobs/bench_embed.py --images 1000 --batch-size 64 --concurrency 2

The same as ``rsretrieval bench embed`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/embed.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench embed`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "embed", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
