"""Duplicate and leakage audit of every dataset of a config (image hashes, caption texts).

    python rayjobs/audit.py --config rayjobs/configs/ucm_sample.yaml
    python rayjobs/audit.py --config my.yaml --dhash-max 6 --eval-split test --train-splits train val

The same as ``rsretrieval audit`` (``--help`` lists the arguments); the code: rsretrieval/cli/jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval audit`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["audit", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
