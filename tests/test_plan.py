"""The benchmark as data: config -> plan of cells (order = results rows), and ``--plan`` printing it
without running anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsretrieval.config import load_config
from rsretrieval.pipelines.benchmark.plan import build_plan, graph_cell_kinds
from tests.conftest import QUICK_CONFIG


def test_default_plan_has_every_cell_of_the_embedded_benchmark() -> None:
    cfg = load_config(None)
    plan = build_plan(cfg)
    cells = plan.cells
    assert len(cells) == 44  # 16 G2G + 12 V2V/scene + 16 VG2VG
    assert len({tuple(c.keys().values()) for c in cells}) == len(cells)  # one row each
    assert [s.kind for s in plan.steps] == ["data", "graphs", "score", "embed", "score", "train_vg2vg", "score", "models"]
    g2g = [c for c in cells if c.mode == "g2g"]
    assert {c.backbone for c in g2g} == {"all-MiniLM-L6-v2"} and all(c.rerank_of is None for c in g2g)
    assert cells.index(g2g[-1]) < min(i for i, c in enumerate(cells) if c.backbone == "rs-tiny")  # G2G first
    assert {c.crops for c in cells if c.mode == "v2s"} == {"uniform", "segments"}
    assert all("train_vg2vg:synthrs:rs-tiny" in c.needs for c in cells if c.mode == "vg2vg")


def test_shortlist_plan_reranks_the_first_backbone_once() -> None:
    cfg = load_config(None, ["eval.shortlist_k=20", "modes=[v2v, g2g, vg2vg]"])
    cells = build_plan(cfg).cells
    g2g = [c for c in cells if c.mode == "g2g"]
    assert g2g and all(c.rerank_of == "rs-tiny" for c in g2g)
    first_v2v = next(i for i, c in enumerate(cells) if c.mode == "v2v")
    assert cells.index(g2g[0]) > first_v2v  # after the shortlist it reranks exists
    assert all(c.rerank_of == "rs-tiny" for c in cells if c.mode in ("v2v", "vg2vg"))


@pytest.mark.parametrize("args, expected", [
    # (similarities, embeddings, has_model, model_global, vg2vg, untrained_gmn, train_enabled)
    ((["hungarian", "gmn"], "vanilla", False, False, False, False, False), [("hungarian", "vanilla")]),
    ((["hungarian", "gmn"], "trained", False, False, False, False, False), []),
    ((["hungarian", "gmn"], "vanilla", False, False, False, True, False), [("hungarian", "vanilla"), ("gmn", "untrained")]),
    ((["hungarian", "gmn"], "vanilla", False, False, False, True, True), [("hungarian", "vanilla")]),
    ((["hungarian", "gmn"], "trained", True, False, True, False, True), [("hungarian", "trained")]),  # VG2VG needs global
    ((["gmn", "hungarian"], "trained", True, True, True, False, True), [("gmn", "trained"), ("hungarian", "trained")]),
])
def test_graph_cell_kinds(args: tuple, expected: list) -> None:
    assert graph_cell_kinds(*args) == expected


def test_plan_flag_prints_the_plan_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rsretrieval.cli import benchmark_main

    plan = benchmark_main(["--config", str(QUICK_CONFIG), "--plan", "--set", f"cache_dir={tmp_path / 'cache'}",
                           "--set", f"output_dir={tmp_path / 'runs'}", "--set", "generation.backend=gemini"])
    out = capsys.readouterr().out
    assert len(plan.cells) == 44
    assert "data:synthrs" in out and "to run" in out
    assert "synthrs not generated yet" in out  # no estimate without the data, and says so
    for c in plan.cells[:3]:
        assert c.mode in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # nothing ran, nothing written


def test_gemini_estimate_counts_the_configured_tasks(tmp_path: Path, session_cache: Path) -> None:
    from rsretrieval.data.registry import load_synthrs_dataset
    from rsretrieval.pipelines.benchmark.plan_report import PlanCache, gemini_estimate

    cfg = load_config(QUICK_CONFIG, [f"cache_dir={session_cache}", f"output_dir={tmp_path}", "modes=[v2v, s2v, g2g]",
                                     "text_scenes.generator=gemini", "generation.backend=gemini",
                                     "graph_matching.train.enabled=false"])
    load_synthrs_dataset(cfg.datasets[0].synthrs, session_cache)
    rows, notes = gemini_estimate(cfg, PlanCache(cfg))
    by_task = {r["task"]: r for r in rows}
    assert set(by_task) == {"text_graph", "object_counts", "image_graph", "text_scenes"}
    assert by_task["image_graph"]["requested"] == 48 and by_task["object_counts"]["requested"] == 48
    assert by_task["text_graph"]["requested"] == by_task["text_scenes"]["requested"] > 48  # every caption
    assert all(r["cost_usd"] > 0 and r["split"] == "test" for r in rows) and notes == []

