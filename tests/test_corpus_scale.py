"""The NWPU-shape harness (``rsretrieval bench corpus``): its config and its memory sampler."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rsretrieval.benchmarks.corpus_scale import NWPU_IMAGES, MemorySampler, corpus_config, process_kind


def test_corpus_config_is_nwpu_shaped_and_two_stage(tmp_path: Path) -> None:
    cfg = corpus_config(0.1, tmp_path / "c", tmp_path / "o", shortlist_k=50)
    syn = cfg.datasets[0].synthrs
    assert syn.n_test == round(NWPU_IMAGES * 0.1) == 3150 and syn.n_train == 0
    assert cfg.eval.shortlist_k == 50 and set(cfg.modes) == {"v2v", "s2s", "g2g", "vg2vg"}
    assert cfg.graph_matching.similarities == ["hungarian"]  # no checkpoint: no GMN cells, no training
    assert not cfg.graph_matching.train.enabled


def test_memory_sampler_sees_children_by_kind() -> None:
    child = subprocess.Popen([sys.executable, "-c", "x = bytearray(64 * 2**20); import time; time.sleep(3)"])
    try:
        time.sleep(1.0)
        with MemorySampler(interval=0.1) as mem:
            time.sleep(0.5)
    finally:
        child.kill()
    assert mem.peaks["driver"] > 0
    kinds = [k for k in mem.peaks if k != "driver"]
    assert kinds and max(mem.peaks[k] for k in kinds) > 60 * 2**20  # the child's 64 MB


def test_process_kind_names_ray_actors() -> None:
    class P:
        def __init__(self, cmd: list[str]) -> None:
            self.cmd = cmd

        def cmdline(self) -> list[str]:
            return self.cmd

        def name(self) -> str:
            return "x"

    assert process_kind(P(["ray::MapWorker(MapBatches(ImageEmbedStage)).__init__"])) == "MapWorker(MapBatches(ImageEmbedStage))"
    assert process_kind(P(["ray::MapWorker(MapBatches(ImageEmbedStage))"])) == "MapWorker(MapBatches(ImageEmbedStage))"
    assert process_kind(P(["ray::IDLE"])) == "IDLE"
    assert process_kind(P(["/usr/lib/ray/core/src/ray/raylet/raylet", "--x"])) == "raylet"


def test_bare_loops_time_what_they_claim() -> None:
    """The bare-loop equivalents run and give a rate (no timing is asserted: machines differ); the
    comparison row divides the right way round."""
    import math

    from rsretrieval.benchmarks.corpus_bare import compare_row, rerank_rate, shortlist_rate

    rates = [shortlist_rate(2000, 10, dim=64, queries=50), rerank_rate("maxsim", 6, 9, k=10, dim=64, queries=20),
             rerank_rate("hungarian", 6, 9, k=10, dim=64, queries=20)]
    assert all(math.isfinite(r) and r > 0 for r in rates)
    row = compare_row("x", 100, ours_s=2.0, bare_s=5.0)
    assert row["ratio"] == 2.5 and row["ours_rows_per_s"] == 50.0 and row["bare_rows_per_s"] == 20.0
