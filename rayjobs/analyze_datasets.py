"""Dataset diversity analysis (thesis sec. 3.3-3.4) of every dataset of the config.

    python rayjobs/analyze_datasets.py                                  # the embedded default (synthrs)
    python rayjobs/analyze_datasets.py --config rayjobs/configs/ucm_sample.yaml

The same as ``rsretrieval analyze-datasets`` (``--help`` lists the arguments); the code: rsretrieval/cli/jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval analyze-datasets`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["analyze-datasets", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
