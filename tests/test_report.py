"""The self-contained HTML report of a run: content, no external references, renders in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.analysis.html import markdown_html
from rsretrieval.config import load_config
from tests.conftest import QUICK_CONFIG, looks_rendered, needs_chromium, screenshot


@pytest.fixture(scope="module")
def report_run(tmp_path_factory: pytest.TempPathFactory, session_cache: Path, ray_local):
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    out = tmp_path_factory.mktemp("report-runs")
    cfg = load_config(QUICK_CONFIG, [f"output_dir={out}", f"cache_dir={session_cache}", "modes=[v2v, s2s, g2g]",
                                     "graph_matching.train.enabled=false", "mlflow.enabled=false",
                                     "report.queries=2", "report.top_k=4"])
    return cfg, run_benchmark(cfg)


def test_report_shows_tables_examples_and_graphs(report_run) -> None:
    cfg, res = report_run
    html = (res.run_dir / "report.html").read_text()
    assert "<script" not in html and not re.search(r"""(src|href)=['"]?https?:""", html)  # self-contained
    assert "Read these numbers with their caveats" in html and "procedural synthetic dataset" in html
    assert "V2V baseline (Table 7, in full Table 16)" in html and "Table 14" in html
    assert html.count("data:image/png;base64,") >= 2  # mR plot and accuracy-latency plot
    # examples: 2 queries x 2 variants, each with a gold image and 4 thumbnails per method (v2v, s2s, g2g)
    assert html.count("class='q'") == 4
    assert html.count("gold image synthrs:") == 4
    assert html.count("gold at rank") == 4 * 3
    assert html.count("class='thumb") == 4 * (1 + 3 * 4)
    assert html.count("<b>query graph</b>") == 4  # one graph cell (the best G2G) per example
    assert "gold image graph (oracle)" in html or "gold image graph (simulated-vlm)" in html
    # the ranks shown are the per-query file's
    df = pd.read_csv(res.results_csv)
    v2v = df[(df["mode"] == "v2v") & (df["variant"] == "fine_grained")].iloc[0]
    ranks = re.findall(r"V2V[^<]*<br><span class='meta'>gold at rank (\d+)", html)
    assert len(ranks) == 4 and all(1 <= int(r) <= v2v["n_images"] for r in ranks)


def test_report_command_rebuilds_with_other_options(report_run, tmp_path: Path) -> None:
    from rsretrieval.cli import main

    _, res = report_run
    out = main(["report", str(res.run_dir), "--out", str(tmp_path / "r.html"), "--queries", "1"])
    assert out.read_text().count("class='q'") == 2
    with pytest.raises(FileNotFoundError, match="config.yaml not found"):
        main(["report", str(tmp_path)])


def test_markdown_tables_and_lists() -> None:
    html = markdown_html("# T\n\n| a | b |\n|---|---|\n| 1 | <x> |\n\n- one\n- two\ntext")
    assert "<h2>T</h2>" in html and "<td>&lt;x&gt;</td>" in html and html.count("<li>") == 2 and "<p>text</p>" in html


@needs_chromium
def test_report_renders_in_headless_chromium(report_run, tmp_path: Path) -> None:
    _, res = report_run
    im = screenshot(res.run_dir / "report.html", tmp_path / "shot.png")
    assert im.size == (1280, 2400) and looks_rendered(im)
