"""Dataset diversity analysis (thesis sec. 3.3-3.4): similarity matrices and histograms, caption
lengths, scene distribution, for every dataset of the config.

    python rayjobs/analyze_datasets.py                                  # the embedded default (synthrs)
    python rayjobs/analyze_datasets.py --config rayjobs/configs/ucm_sample.yaml

Writes <output_dir>/<run_name>/ (default runs/analysis/): analysis.md, diversity.csv, caption_stats.csv,
scenes.csv and one PNG per similarity matrix; everything is logged to MLflow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> Any:
    from rsretrieval.cli import add_benchmark_args, job_config
    from rsretrieval.pipelines.jobs.analyze import run_analysis

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_benchmark_args(parser)
    cfg, _ = job_config(parser, argv, "analysis")
    res = run_analysis(cfg)
    print((res.run_dir / "analysis.md").read_text(encoding="utf-8"))
    print(f"plots: {', '.join(p.name for p in res.plots)} in {res.run_dir}")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
