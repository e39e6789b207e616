"""Dataset diversity analysis: statistics against a hand computation, Table 2's aggregate rows, Figures 7
and 20 (valid PNGs holding both variants), and the job on the quick data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsretrieval.analysis.diversity import TABLE2_COLUMNS, pairwise_stats, scene_summary
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
    table2 = pd.read_csv(res.run_dir / "scene_summary.csv").set_index("Dataset")
    assert table2.loc["synthrs", "# Scenes"] == 9 - ("unlabelled" in set(scenes["scene"]))
    assert table2.loc["synthrs", "Max Images / Scene"] == scenes.loc[scenes["scene"] != "unlabelled", "images"].max()
    assert all(p.stat().st_size > 5000 for p in res.plots) and len(res.plots) == 4
    fig7 = res.run_dir / "caption_similarity_overlay.png"
    assert fig7 in res.plots and set(_drawn(fig7)["synthrs"]) == {"original", "fine_grained"}
    md = (res.run_dir / "analysis.md").read_text()
    assert "Scene distribution statistics (Table 2)" in md and "caption_similarity_overlay.png" in md


def _drawn(png: Path) -> dict:
    """What a figure says it drew (its Description chunk), after checking it is a PNG that PIL opens."""
    import json

    from PIL import Image

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 200
        return json.loads(im.info["Description"])


def test_scene_summary_is_table_2_per_dataset() -> None:
    # RSITMD-like: 3 scenes of 251 / 6 / 154 images; SYDNEY-like: no labels at all
    scenes = pd.DataFrame({"dataset": ["a", "a", "a", "a", "s"], "scene": ["x", "y", "z", "unlabelled", "unlabelled"],
                           "images": [251, 6, 154, 4, 613]})
    t = scene_summary(scenes).set_index("Dataset")
    assert list(t.columns) == [*TABLE2_COLUMNS, "unlabelled_images"]
    assert t.loc["a", TABLE2_COLUMNS].tolist() == pytest.approx([3, 251, 6, 154, 137.0])
    assert t.loc["a", "unlabelled_images"] == 4 and t.loc["s", "# Scenes"] == 0
    assert t.loc["s", TABLE2_COLUMNS[1:]].isna().all() and t.loc["s", "unlabelled_images"] == 613
    with pytest.raises(ValueError, match="lacks columns"):
        scene_summary(pd.DataFrame({"dataset": ["a"]}))


def test_figure_7_overlays_both_variants_per_dataset(tmp_path: Path) -> None:
    from rsretrieval.analysis.figures import plot_caption_similarity_overlay

    rng = np.random.default_rng(0)
    stats = {"d1": {"original": pairwise_stats(rng.normal(size=(12, 8)) + 2),  # redundant: high similarities
                    "fine_grained": pairwise_stats(rng.normal(size=(6, 8)))},
             "d2": {"original": pairwise_stats(rng.normal(size=(5, 8)))}}
    path = plot_caption_similarity_overlay(stats, tmp_path / "figs" / "fig7.png")
    assert _drawn(path) == {"d1": {"original": 66, "fine_grained": 15}, "d2": {"original": 10}}
    with pytest.raises(ValueError, match="original and the fine-grained"):
        plot_caption_similarity_overlay({"d2": stats["d2"]}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_figure_20_graph_sizes_from_graph_stats_rows(tmp_path: Path) -> None:
    import json

    from rsretrieval.analysis.figures import plot_graph_sizes

    rows = [{"dataset": "d", "graphs": "query:original", "nodes_histogram": json.dumps({"1": 5, "2": 3})},
            {"dataset": "d", "graphs": "query:fine_grained", "nodes_histogram": json.dumps({"4": 2, "7": 6})},
            {"dataset": "d", "graphs": "image:simulated-vlm", "nodes_histogram": {"5": 8}}]
    path = plot_graph_sizes(rows, tmp_path / "graph_sizes.png")
    assert _drawn(path) == {"d": {"query:original": 8, "query:fine_grained": 8, "image:simulated-vlm": 8}}
    with pytest.raises(ValueError, match="nodes_histogram"):
        plot_graph_sizes([{"dataset": "d", "graphs": "query:original", "nodes_histogram": "{}"}], tmp_path / "x.png")


def test_graph_set_stats_carry_the_nodes_histogram_figure_20_reads(tmp_path: Path) -> None:
    from rsretrieval.analysis.figures import plot_graph_sizes
    from rsretrieval.graphs.elements import GraphElements
    from rsretrieval.pipelines.benchmark.graph_modes import graph_set_stats

    small = [GraphElements(["ship", "port"], [(0, 1)], ["in"])] * 3
    big = [GraphElements(["a", "b", "c", "d"], [(0, 1), (2, 3)], ["near", "on"]), GraphElements([])]
    rows = [graph_set_stats("d", "query:original", small), graph_set_stats("d", "query:fine_grained", big)]
    assert rows[0]["nodes_histogram"] == '{"2": 3}' and rows[1]["nodes_histogram"] == '{"0": 1, "4": 1}'
    pd.DataFrame(rows).to_csv(tmp_path / "graph_stats.csv", index=False)  # the run writes it, then the figure
    back = pd.read_csv(tmp_path / "graph_stats.csv").to_dict("records")
    assert _drawn(plot_graph_sizes(back, tmp_path / "graph_sizes.png")) == \
        {"d": {"query:original": 3, "query:fine_grained": 2}}
