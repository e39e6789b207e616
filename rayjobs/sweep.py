"""Hyperparameter sweep of the graph matcher with Ray Tune (ASHA), every trial in MLflow.

    python rayjobs/sweep.py --space tune_spaces/gmn.yaml                      # embedded default data
    python rayjobs/sweep.py --space tune_spaces/gmn.yaml --config my.yaml --name gmn-rsicd
    ray job submit --working-dir . -- python rayjobs/sweep.py --space tune_spaces/encoder.yaml

The same as ``rsretrieval sweep`` (``--help`` lists the arguments); the code: rsretrieval/cli/jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval sweep`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["sweep", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
