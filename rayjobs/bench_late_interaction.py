"""Benchmark: Q-MAM late interaction (V2S/S2V/S2S scoring) vs the fp32 GEMM roofline and a per-pair loop.

    python rayjobs/bench_late_interaction.py                 # RSICD size: 5,345 x 1,069, 6 x 10 scenes, D=512
    python rayjobs/bench_late_interaction.py --device cuda

The same as ``rsretrieval bench late-interaction`` (``--help`` lists the arguments);
the code: rsretrieval/cli/bench.py and rsretrieval/benchmarks/late_interaction.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval bench late-interaction`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["bench", "late-interaction", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
