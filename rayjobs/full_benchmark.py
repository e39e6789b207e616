"""The main job: every configured dataset x backbone x matching mode, on Ray, logged to MLflow.

    python rayjobs/full_benchmark.py                              # embedded default (synthrs + rs-tiny)
    python rayjobs/full_benchmark.py --config rayjobs/configs/quick.yaml --set embed.batch_size=32
    ray job submit --working-dir . -- python rayjobs/full_benchmark.py --config my.yaml

All logic lives in ``rsretrieval`` (``rsretrieval.cli.benchmark_main``); ``rsretrieval benchmark`` is the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# run as a script (also under `ray job submit --working-dir .`): import the checkout this file is in
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsretrieval.cli import benchmark_main


def main(argv: list[str] | None = None) -> Any:
    return benchmark_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
