"""Benchmark: Hungarian G2G scoring (thesis 5.3.2) vs a per-pair scipy loop, 1 worker vs all cores.

    python rayjobs/bench_hungarian.py                              # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
    python rayjobs/bench_hungarian.py --queries 500 --images 200   # quick

The same as ``rsretrieval bench hungarian`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/hungarian.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench hungarian`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: spawned pool workers re-import this script, and should stay light

    return cli_main(["bench", "hungarian", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
