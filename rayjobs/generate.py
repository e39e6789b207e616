"""Generation alone: Gemini fine-grained captions, image/text graphs and text scenes for the configured datasets.

    GEMINI_API_KEY=... python rayjobs/generate.py --config my.yaml --task text_scenes --set generation.backend=gemini
    python rayjobs/generate.py --config my.yaml --task image_graph --dry-run
    ray job submit --working-dir . -- python rayjobs/generate.py --config my.yaml --task text_graph ...

The same as ``rsretrieval generate`` (``--help`` lists the arguments); the code: rsretrieval/cli/jobs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval generate`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["generate", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
