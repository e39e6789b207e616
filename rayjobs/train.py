"""Train the graph encoder and the GMN with Ray Train (thesis sec. 5.4), logged to MLflow.

    python rayjobs/train.py                                          # embedded default data (synthrs)
    python rayjobs/train.py --config my.yaml --set graph_matching.train.workers=2 --lr-find
    ray job submit --working-dir . -- python rayjobs/train.py --config my.yaml --run-name train-rsicd

The same as ``rsretrieval train`` (``--help`` lists the arguments); the code: rsretrieval/cli/jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval train`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["train", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
