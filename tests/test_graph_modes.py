"""G2G / VG2VG in the quick embedded benchmark: query graphs from the heuristic parser, image graphs
from the simulated VLM and the synthrs ground truth (oracle), Hungarian and an untrained GMN."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.config import load_config
from tests.conftest import QUICK_CONFIG

CHANCE_MR_48 = 100 * (1 + 5 + 10) / 3 / 48  # mR of a random ranking over 48 images (11.1)


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory, session_cache: Path, ray_local):
    from rsretrieval.pipelines.benchmark import run_benchmark

    out = tmp_path_factory.mktemp("graph-runs")
    cfg = load_config(QUICK_CONFIG, [f"output_dir={out}", f"cache_dir={session_cache}", "modes=[v2v, g2g, vg2vg]",
                                     "graph_matching.untrained_gmn=true"])
    return cfg, run_benchmark(cfg)


def test_graph_cells_are_laid_out_per_source_similarity_and_training(graph_run) -> None:
    _, res = graph_run
    df = pd.read_csv(res.results_csv)
    g = df[df["mode"].isin(["g2g", "vg2vg"])]
    cells = set(zip(g["variant"], g["mode"], g["graphs"], g["similarity"], g["training"]))
    expected = {(v, m, src, sim, "vanilla" if sim == "hungarian" else "untrained")
                for v in ("original", "fine_grained") for m in ("g2g", "vg2vg")
                for src in ("simulated-vlm", "oracle") for sim in ("hungarian", "gmn")}
    assert cells == expected
    assert set(g[g["mode"] == "g2g"]["backbone"]) == {"all-MiniLM-L6-v2"}
    assert set(g[g["mode"] == "vg2vg"]["backbone"]) == {"rs-tiny"}
    assert g[g["training"] == "untrained"]["notes"].str.contains("untrained GMN: not a result").all()
    assert g[g["graphs"] == "simulated-vlm"]["notes"].str.contains("simulated image graphs").all()
    assert set(df[df["mode"] == "v2v"]["graphs"]) == {"-"}


def test_oracle_graph_matching_finds_fine_grained_images(graph_run) -> None:
    """Fine-grained captions spell out counts, colours and relations: matching their parsed graphs
    against the true image graphs must beat chance clearly; the simulated VLM's graphs not better
    than the truth."""
    _, res = graph_run
    df = pd.read_csv(res.results_csv).set_index(["variant", "mode", "graphs", "similarity"])
    oracle = df.loc[("fine_grained", "g2g", "oracle", "hungarian"), "mR"]
    simulated = df.loc[("fine_grained", "g2g", "simulated-vlm", "hungarian"), "mR"]
    assert oracle > 3 * CHANCE_MR_48
    assert simulated <= oracle + 5


def test_graph_outputs_stats_and_accounting(graph_run) -> None:
    cfg, res = graph_run
    stats = pd.read_csv(res.run_dir / "graph_stats.csv")
    assert set(stats["graphs"]) == {"query:original", "query:fine_grained", "image:simulated-vlm", "image:oracle"}
    by = stats.set_index("graphs")
    assert by.loc["query:original", "gcr"] > by.loc["query:fine_grained", "gcr"]  # generic captions collide (Table 19)
    assert by.loc["image:oracle", "nodes_mean"] >= by.loc["image:simulated-vlm", "nodes_mean"]  # the VLM misses objects
    gen = pd.read_csv(res.run_dir / "generation.csv")
    assert set(gen["task"]) == {"text_graph", "image_graph"} and set(gen["backend"]) == {"offline"}
    assert (res.run_dir / "generated" / "synthrs" / "text_graph.parquet").exists()
    md = res.results_md.read_text()
    assert "graph collision rate" in md and "simulated" in md
