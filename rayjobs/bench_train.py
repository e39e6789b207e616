"""Benchmark: graph training per epoch, in-process loop vs Ray Train with 1 and 2 workers (one run).

    python rayjobs/bench_train.py                      # the embedded default's training data (synthrs train)
    python rayjobs/bench_train.py --synthetic 2000     # synthetic graphs: no dataset preparation

The same as ``rsretrieval bench train`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/train.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench train`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "train", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
