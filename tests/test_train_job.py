"""rayjobs/train.py: Ray Train stages on the quick synthrs data, LR finder plot, reusable checkpoint, cache hit."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import QUICK_CONFIG

pytest.importorskip("torch_geometric")


def test_train_job_writes_checkpoint_plot_and_reuses_the_cache(tmp_path: Path, session_cache: Path, ray_local) -> None:
    from rayjobs.train import main
    from rsretrieval.training.graph_model import load_matcher_file, matcher_from_state

    args = ["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--graphs", "oracle",
            "--set", f"cache_dir={session_cache}", "--set", "graph_matching.embeddings=[trained]",
            "--set", "graph_matching.train.workers=1", "--set", "graph_matching.train.epochs=2",
            "--set", "graph_matching.train.seed=7"]  # a seed no other test uses: this job trains for real
    res = main(args + ["--lr-find"])
    assert (res.run_dir / "lr_finder.png").stat().st_size > 1000
    assert 1e-6 <= res.steepest_lr <= 1.0 and math.isfinite(res.steepest_lr)
    assert [p.name for p in res.checkpoints] == ["synthrs-oracle-trained-original.pt",
                                                 "synthrs-oracle-trained-fine_grained.pt"]
    summary = pd.read_csv(res.run_dir / "training.csv")
    assert list(summary["head"]) == ["g2g", "g2g", "vg2vg-rs-tiny", "vg2vg-rs-tiny"] and not summary["cached"].any()
    state = load_matcher_file(res.checkpoints[0])
    assert state["embeddings"] == "trained" and state["encoder_config"]["kind"] == "gat"
    assert state["variant"] == "original"
    assert matcher_from_state(state, "rs-tiny").gmn.cfg.use_global

    again = main(args + ["--run-name", "again"])  # same data + config: loaded from the cache
    assert all(row["cached"] for row in again.summary)
