"""End to end in-process: quick embedded benchmark on a local Ray, results + per-query + MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from rsretrieval.config import load_config
from rsretrieval.pipelines.benchmark.cells import per_query_name
from tests.conftest import QUICK_CONFIG

SCENE_MODES = "modes=[v2v, v2s, s2v, s2s]"  # graph modes have their own tests (test_graph_modes.py)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, session_cache: Path, ray_local):
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(QUICK_CONFIG, [f"output_dir={out}", f"cache_dir={session_cache}", SCENE_MODES])
    return cfg, run_benchmark(cfg)


def test_results_table(quick_run) -> None:
    cfg, res = quick_run
    df = pd.read_csv(res.results_csv)
    assert set(df["variant"]) == {"original", "fine_grained"}
    assert set(df["mode"]) == {"v2v", "v2s", "s2v", "s2s"}
    cells = set(zip(df["mode"], df["crops"]))
    assert cells == {("v2v", "-"), ("s2v", "-"), ("v2s", "uniform"), ("v2s", "segments"),
                     ("s2s", "uniform"), ("s2s", "segments")}
    assert len(df) == 12 and not df.duplicated(["variant", "mode", "crops"]).any()
    scene = df[df["mode"] != "v2v"]
    assert (scene["similarity"] == "max-mean").all() and (df[df["mode"] == "v2v"]["similarity"] == "cosine").all()
    uniform = df[df["crops"] == "uniform"]
    assert (uniform["image_vectors"] == 10).all()  # full image + 3 x 3 grid
    # short generic captions give no text scenes: their set is the caption alone, so S2V == V2V
    orig = df[df["variant"] == "original"].set_index(["mode", "crops"])
    assert (orig["query_vectors"] == 1).all()
    assert orig.loc[("s2v", "-"), "R@1"] == orig.loc[("v2v", "-"), "R@1"]
    fine = df[df["variant"] == "fine_grained"].set_index(["mode", "crops"])
    assert fine.loc[("s2v", "-"), "query_vectors"] > 3  # fine-grained captions split into scenes
    for col in ["R@1", "R@5", "R@10", "mR", "I2T_R@1", "mR6"]:
        assert df[col].between(0, 100).all()
    row = df.iloc[0]
    assert row["mR"] == pytest.approx((row["R@1"] + row["R@5"] + row["R@10"]) / 3, abs=1e-6)
    assert (df["notes"].str.contains("synthetic")).all()
    md = res.results_md.read_text()
    assert "procedural synthetic dataset" in md and "| synthrs |" in md


def chance_mR(n_images: int) -> float:
    """mR of a random ranking with one gold image per query."""
    return 100 * sum(min(k, n_images) / n_images for k in (1, 5, 10)) / 3


def test_briefly_trained_rs_tiny_beats_chance(quick_run) -> None:
    """Even 8 short epochs on 256 images must put fine-grained V2V well above a random ranking."""
    _, res = quick_run
    df = pd.read_csv(res.results_csv).query("mode == 'v2v'").set_index("variant")
    fine = df.loc["fine_grained"]
    assert fine["mR"] > 2 * chance_mR(int(fine["n_images"])), fine["mR"]


@pytest.mark.slow
def test_default_rs_tiny_far_above_chance(session_cache: Path, tmp_path: Path, ray_local) -> None:
    """The embedded default (10 epochs on 2000 images, a few CPU minutes) on the 300-image test split."""
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg = load_config(None, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "mlflow.enabled=false",
                             "modes=[v2v]"])
    df = pd.read_csv(run_benchmark(cfg).results_csv).set_index("variant")
    for variant in ("original", "fine_grained"):
        assert df.loc[variant, "mR"] > 5 * chance_mR(300), (variant, df.loc[variant, "mR"])


def test_per_query_ranks_agree_with_table(quick_run) -> None:
    cfg, res = quick_run
    df = pd.read_csv(res.results_csv)
    for _, row in df.iterrows():
        pq_path = res.run_dir / "per_query" / f"{per_query_name(row.to_dict())}.parquet"
        t = pq.read_table(pq_path).to_pandas()
        assert len(t) == row["n_queries"]
        assert 100 * (t["rank"] <= 5).mean() == pytest.approx(row["R@5"])
        top1_hit = t.apply(lambda r: r["topk_image_ids"][0] == r["gold_image_id"], axis=1)
        assert (top1_hit == (t["rank"] == 1)).all()


def test_mlflow_run_holds_params_metrics_artifacts(quick_run) -> None:
    import mlflow

    cfg, res = quick_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cfg.output_dir.resolve() / 'mlflow.db'}")
    run = client.get_run(res.mlflow_run_id)
    assert run.data.params["embed.batch_size"] == "32"
    assert "synthrs/fine_grained/rs-tiny/v2v/mR" in run.data.metrics
    assert "synthrs/fine_grained/rs-tiny/s2s-segments/mR" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(res.mlflow_run_id)}
    assert {"results.csv", "results.md", "per_query"} <= arts


def test_mlflow_store_does_not_leak_into_environment(quick_run) -> None:
    """mlflow.set_tracking_uri exports $MLFLOW_TRACKING_URI; a later `ray start` would inherit it."""
    import os

    cfg, _ = quick_run
    assert str(cfg.output_dir.resolve()) not in os.environ.get("MLFLOW_TRACKING_URI", "")


def test_rerun_reuses_embeddings(quick_run, session_cache: Path, tmp_path: Path) -> None:
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "mlflow.enabled=false",
                                     SCENE_MODES])
    again = run_benchmark(cfg)
    assert all(r["embeddings_cached"] for r in again.rows)
    first = pd.read_csv(quick_run[1].results_csv)
    second = pd.read_csv(again.results_csv)
    pd.testing.assert_series_equal(first["mR"], second["mR"])
    # cost tables: cached stages report the seconds recorded when they were computed, not the load time
    cost1 = pd.read_csv(quick_run[1].run_dir / "cost.csv").set_index(["variant", "mode", "crops", "stage"])
    cost2 = pd.read_csv(again.run_dir / "cost.csv").set_index(["variant", "mode", "crops", "stage"])
    prep = cost2[cost2["side"] == "data preparation"]
    assert prep["cached"].all() and (prep["seconds"] > 0).all()
    pd.testing.assert_series_equal(prep["seconds"], cost1.loc[prep.index, "seconds"], rtol=1e-9)


def test_cost_tables(quick_run) -> None:
    cfg, res = quick_run
    steps = pd.read_csv(res.run_dir / "cost.csv")
    summary = pd.read_csv(res.run_dir / "cost_summary.csv")
    assert len(summary) == 12 and steps["seconds"].notna().all() and (steps["detail"] != "not measured").all()
    v2v = steps[(steps["mode"] == "v2v") & (steps["variant"] == "fine_grained")]
    assert list(v2v["step"]) == ["embed images", "embed query captions", "cosine similarity", "rank"]
    s2s = summary[(summary["mode"] == "s2s") & (summary["crops"] == "uniform")].iloc[0]
    prep = steps[(steps["mode"] == "s2s") & (steps["crops"] == "uniform") & (steps["variant"] == s2s["variant"])
                 & (steps["side"] == "data preparation")]
    assert list(prep["step"]) == ["crop images (uniform)", "embed crops"]  # S2S never embeds whole images
    assert s2s["prep_seconds"] == pytest.approx(prep["seconds"].sum()) and s2s["prep_seconds"] > 0
    assert s2s["ms_per_query"] == pytest.approx(1000 * s2s["inference_seconds"] / s2s["n_queries"])
    assert "Table 13" in (res.run_dir / "cost.md").read_text()


def test_crop_config_change_retrains_rs_tiny_and_reuses_no_stale_vector(quick_run, session_cache: Path,
                                                                         tmp_path: Path) -> None:
    """rs-tiny learns from crops cut as the benchmark cuts them, so a 2 x 2 grid is a new rs-tiny checkpoint:
    every vector it embeds (also the unchanged region crops) is recomputed, none is served from the cache."""
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    backbones = session_cache / "backbones"
    before = set(backbones.glob("rs-tiny-*.pt"))
    cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "mlflow.enabled=false",
                                     "modes=[v2v, v2s]", "image_scenes.uniform.grid=2", "variants=[fine_grained]"])
    rows = {(r["mode"], r["crops"]): r for r in run_benchmark(cfg).rows}
    assert len(set(backbones.glob("rs-tiny-*.pt")) - before) == 1
    assert rows[("v2s", "uniform")]["image_vectors"] == 5  # full image + 2 x 2
    assert not any(r["embeddings_cached"] for r in rows.values())
