"""Duplicate and leakage audit of every dataset of a config: perceptual image hashes (dHash + pHash) and
normalised caption texts, within and across splits and datasets (same as ``rsretrieval audit``).

    python rayjobs/audit.py --config rayjobs/configs/ucm_sample.yaml
    python rayjobs/audit.py --config my.yaml --dhash-max 6 --eval-split test --train-splits train val

Writes <output_dir>/<run_name>/ (default runs/audit/): summary.md, summary.csv, image_hashes.parquet,
image_duplicates.csv, caption_duplicates.csv and leaks.csv (logged to MLflow). Evaluate without the
leaked items: `python rayjobs/full_benchmark.py --config my.yaml --set eval.exclude_leaked=runs/audit/leaks.csv`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    from rsretrieval.cli import audit_main

    return audit_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
