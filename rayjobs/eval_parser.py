"""Score the offline A.1.3 text-graph parser against the hand-written UCM gold graphs.

    python rayjobs/eval_parser.py                                   # table of P/R/F1 per category
    python rayjobs/eval_parser.py --out runs/parser_eval.csv --per-caption runs/parser_eval_captions.csv

The same as ``rsretrieval eval-parser`` (``--help`` lists the arguments); the code: rsretrieval/cli/tools.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval eval-parser`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["eval-parser", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
