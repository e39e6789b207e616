"""Benchmark: generation under a requests/min quota, injected 429/5xx, and a job killed half-way.

    python rayjobs/bench_generation.py                       # 600 RPM quota, 8 actors, 30% faults
    python rayjobs/bench_generation.py --rows 1200 --actors 8 --quota-rpm 600

The same as ``rsretrieval bench generation`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/generation.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench generation`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "generation", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
