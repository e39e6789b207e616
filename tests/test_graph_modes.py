"""G2G / VG2VG in the quick embedded benchmark: query graphs from the heuristic parser, image graphs
from the simulated VLM and the synthrs ground truth (oracle), Hungarian and GMN on vanilla and trained
node embeddings (trained in the run: quick config, in-process Ray Train local mode)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rsretrieval.config import load_config
from tests.conftest import QUICK_CONFIG

CHANCE_MR_48 = 100 * (1 + 5 + 10) / 3 / 48  # mR of a random ranking over 48 images (11.1)


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory, session_cache: Path, ray_local):
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    out = tmp_path_factory.mktemp("graph-runs")
    cfg = load_config(QUICK_CONFIG, [f"output_dir={out}", f"cache_dir={session_cache}", "modes=[v2v, g2g, vg2vg]"])
    return cfg, run_benchmark(cfg)


def test_graph_cells_are_laid_out_per_source_similarity_and_training(graph_run) -> None:
    _, res = graph_run
    df = pd.read_csv(res.results_csv)
    g = df[df["mode"].isin(["g2g", "vg2vg"])]
    cells = set(zip(g["variant"], g["mode"], g["graphs"], g["similarity"], g["training"]))
    expected = {(v, m, src, sim, emb) for v in ("original", "fine_grained") for m in ("g2g", "vg2vg")
                for src in ("simulated-vlm", "oracle") for sim in ("hungarian", "gmn") for emb in ("vanilla", "trained")}
    assert cells == expected
    assert set(g[g["mode"] == "g2g"]["backbone"]) == {"all-MiniLM-L6-v2"}
    assert set(g[g["mode"] == "vg2vg"]["backbone"]) == {"rs-tiny"}
    assert g[g["graphs"] == "simulated-vlm"]["notes"].str.contains("simulated image graphs").all()
    assert set(df[df["mode"] == "v2v"]["graphs"]) == {"-"}
    keys = ["dataset", "variant", "backbone", "mode", "crops", "graphs", "similarity", "training"]
    assert [tuple(r[k] for k in keys) for r in res.rows] == [tuple(c.keys().values()) for c in res.plan.cells]


def test_oracle_graph_matching_finds_fine_grained_images(graph_run) -> None:
    """Fine-grained captions spell out counts, colours and relations: matching their parsed graphs
    against the true image graphs must beat chance clearly; the simulated VLM's graphs not better
    than the truth."""
    _, res = graph_run
    df = pd.read_csv(res.results_csv).set_index(["variant", "mode", "graphs", "similarity", "training"])
    oracle = df.loc[("fine_grained", "g2g", "oracle", "hungarian", "vanilla"), "mR"]
    simulated = df.loc[("fine_grained", "g2g", "simulated-vlm", "hungarian", "vanilla"), "mR"]
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
    assert {"synthrs", "synthrs-train", "synthrs-val"} <= set(gen["dataset"])  # training graphs are accounted too
    assert (res.run_dir / "generated" / "synthrs" / "text_graph.parquet").exists()
    md = res.results_md.read_text()
    assert "graph collision rate" in md and "simulated" in md
    modes = pd.read_csv(res.run_dir / "table_modes_fine_grained.csv").set_index("dataset")
    assert "G2G hungarian trained (oracle)" in modes.columns and "% above baseline" in modes.index


def test_training_outputs_and_checkpoint_reuse(graph_run, tmp_path: Path, session_cache: Path) -> None:
    """Every trained stage is listed, its learning curve is in MLflow, the combined checkpoint files
    load as graph_matching.gmn_checkpoint and reproduce the trained cells without training."""
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg, res = graph_run
    train = pd.read_csv(res.run_dir / "training.csv")
    assert len(train) == 16  # 2 sources x 2 embeddings x 2 caption variants x (G2G + VG2VG rs-tiny)
    assert set(train["head"]) == {"g2g", "vg2vg-rs-tiny"} and (train["epochs"] >= 1).all()
    assert set(train["variant"]) == {"original", "fine_grained"}  # one model per variant
    assert (train["best_val_mr"] > 0).all()
    files = sorted((res.run_dir / "graph_models").glob("*.pt"))
    assert [f.name for f in files] == [f"synthrs-{s}-{e}-{v}.pt" for s in ("oracle", "simulated-vlm")
                                       for e in ("trained", "vanilla") for v in ("fine_grained", "original")]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path(cfg.output_dir).resolve() / 'mlflow.db'}")
    curve = mlflow.tracking.MlflowClient().get_metric_history(res.mlflow_run_id, "train/synthrs/oracle/trained/fine_grained/g2g/val_mr")
    assert [m.step for m in curve] == list(range(1, len(curve) + 1)) and len(curve) == train.query(
        "graphs == 'oracle' and embeddings == 'trained' and variant == 'fine_grained' and head == 'g2g'")["epochs"].item()

    again = load_config(QUICK_CONFIG, [f"output_dir={tmp_path}", f"cache_dir={session_cache}", "modes=[v2v, g2g, vg2vg]",
                                       "graph_matching.train.enabled=false", "graph_matching.untrained_gmn=true",
                                       f"graph_matching.gmn_checkpoint={res.run_dir / 'graph_models' / 'synthrs-oracle-trained-fine_grained.pt'}"])
    df2 = pd.read_csv(run_benchmark(again).results_csv)
    df1 = pd.read_csv(res.results_csv)
    key = ["variant", "mode", "graphs", "similarity", "training"]
    a = df1[df1["graphs"] == "oracle"].set_index(key)["mR"]
    b = df2[df2["graphs"] == "oracle"].set_index(key)["mR"]
    trained = [k for k in a.index if k[4] == "trained" and k[0] == "fine_grained"]  # the file's variant
    assert trained and all(abs(a[k] - b[k]) < 1e-6 for k in trained)
    assert set(df2[df2["similarity"] == "gmn"]["training"]) == {"trained", "untrained"}  # vanilla GMN: not given
    assert df2[df2["training"] == "untrained"]["notes"].str.contains("untrained GMN: not a result").all()
