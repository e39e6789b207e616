"""Human retrieval evaluation (thesis sec. 6.2): build the forms, then score the collected answers.

    python rayjobs/human_eval.py build --config my.yaml --out runs/human_eval      # form_<variant>.html + answer_key.json
    python rayjobs/human_eval.py score runs/human_eval/answers_*.csv --key runs/human_eval/answer_key.json

The same as ``rsretrieval human-eval`` (``--help`` lists the arguments); the code: rsretrieval/cli/tools.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    """``rsretrieval human-eval`` with these arguments; returns its result."""
    from rsretrieval.cli import main as cli_main  # here, not at the top: the script stays light to import

    return cli_main(["human-eval", *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
