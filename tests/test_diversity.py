"""Dataset diversity analysis: statistics against a hand computation, and the job on the quick data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsretrieval.analysis.diversity import pairwise_stats
from tests.conftest import QUICK_CONFIG


def test_pairwise_stats_use_off_diagonal_pairs_only() -> None:
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    s = pairwise_stats(v)  # pairs: 0 (a, b), 0.7071 (a, c), 0.7071 (b, c)
    assert s["pairs"] == 3 and s["median"] == pytest.approx(2 ** -0.5) and s["mean"] == pytest.approx(2 * 2 ** -0.5 / 3)
    assert s["counts"].sum() == 3 and s["matrix"].shape == (3, 3)
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_stats(v[:1])


def test_analysis_job_writes_tables_and_plots(tmp_path: Path, session_cache: Path, ray_local) -> None:
    from rayjobs.analyze_datasets import main

    res = main(["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--set", f"cache_dir={session_cache}"])
    div = pd.read_csv(res.run_dir / "diversity.csv")
    assert set(div["set"]) == {"images (rs-tiny)", "captions original (all-MiniLM-L6-v2)",
                               "captions fine_grained (all-MiniLM-L6-v2)"}
    assert div["pairs"].tolist() == [n * (n - 1) // 2 for n in div["items"]]
    caps = pd.read_csv(res.run_dir / "caption_stats.csv").set_index("variant")
    assert caps.loc["fine_grained", "words_mean"] > caps.loc["original", "words_mean"]  # the point of fine-grained
    assert caps.loc["original", "unique_texts"] < caps.loc["original", "captions"]  # generic captions repeat
    scenes = pd.read_csv(res.run_dir / "scenes.csv")
    assert scenes["images"].sum() == 48 and len(scenes) == 9
    assert all(p.stat().st_size > 5000 for p in res.plots) and len(res.plots) == 3
