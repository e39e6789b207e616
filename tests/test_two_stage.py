"""The benchmark's two-stage path (eval.shortlist_k): k = N gives the full-matrix results exactly;
a smaller k reports the shortlist's recall as the ceiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rsretrieval.config import load_config
from rsretrieval.pipelines.benchmark.cells import per_query_name
from tests.conftest import QUICK_CONFIG

MODES = "modes=[v2v, v2s, s2s, g2g, vg2vg]"
KEYS = ["dataset", "variant", "backbone", "mode", "crops", "graphs", "similarity", "training"]


def _run(tmp: Path, cache: Path, *extra: str):
    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg = load_config(QUICK_CONFIG, [f"output_dir={tmp}", f"cache_dir={cache}", MODES, "mlflow.enabled=false",
                                     "report.enabled=false", "graph_matching.train.enabled=false",
                                     "graph_matching.untrained_gmn=true", *extra])
    return run_benchmark(cfg)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, session_cache: Path, ray_local):
    return _run(tmp_path_factory.mktemp("full"), session_cache)


def _no_whole_reads(*args, **kwargs):
    raise AssertionError("the two-stage path read an embeddings folder whole")


def test_shortlist_of_every_image_equals_the_full_matrix(full_run, tmp_path: Path, session_cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the two-stage path reads every vector through ordered memory-mapped stores, never a whole folder
    monkeypatch.setattr("rsretrieval.pipelines.stages.embed.read_embeddings", _no_whole_reads)
    monkeypatch.setattr("rsretrieval.pipelines.stages.scene_crops.read_packed", _no_whole_reads)
    two = _run(tmp_path, session_cache, "eval.shortlist_k=48")  # quick test split: 48 images
    assert list(session_cache.glob("embeddings/images-*/_store-*/meta.json"))
    assert list(session_cache.glob("embeddings/text_scenes-*/_store-*/meta.json"))
    assert not (two.run_dir / "scratch").exists()  # memory-mapped shortlists and node stores, removed at the end
    a = pd.read_csv(full_run.results_csv).set_index(KEYS)
    b = pd.read_csv(two.results_csv).set_index(KEYS)
    assert set(a.index) == set(b.index) and len(a) == 2 * (1 + 2 + 2 + 2 * 2 + 2 * 2)  # graphs: 2 sources x (hungarian, untrained gmn)
    for col in ["R@1", "R@5", "R@10", "mR"]:
        pd.testing.assert_series_equal(a[col], b.loc[a.index, col], check_names=False)
    for run in (full_run, two):  # rows come in the order of the plan, one per planned cell
        assert [tuple(r[k] for k in KEYS) for r in run.rows] == [tuple(c.keys().values()) for c in run.plan.cells]
    reranked = b[b.index.get_level_values("mode") != "v2v"]
    assert (b["shortlist_recall"] == 100).all() and (b["shortlist_k"] == 48).all()
    assert reranked["notes"].str.contains("reranked V2V top-48").all()
    for keys in a.index:
        name = per_query_name(dict(zip(KEYS, keys))) + ".parquet"
        ra = pq.read_table(full_run.run_dir / "per_query" / name)["rank"].to_numpy()
        rb = pq.read_table(two.run_dir / "per_query" / name)["rank"].to_numpy()
        np.testing.assert_array_equal(ra, rb, err_msg=name)


def test_short_shortlist_reports_its_ceiling(full_run, tmp_path: Path, session_cache: Path) -> None:
    two = _run(tmp_path, session_cache, "eval.shortlist_k=10", "variants=[fine_grained]", "eval.bootstrap_resamples=0")
    df = pd.read_csv(two.results_csv)
    assert two.findings is not None and (two.run_dir / "findings.csv").exists()  # no CI columns, findings still tested
    assert (df.loc[df["mode"] == "v2v", "score_seconds"] > 0).all()  # the shortlist's time is V2V's search time
    mem = pd.read_csv(two.run_dir / "driver_memory.csv")  # the driver's memory per step and per cell
    assert mem["step"].iloc[0] == "setup" and mem["step"].iloc[-1] == "outputs"
    assert mem["step"].str.startswith("score:").sum() == len(df)
    assert (mem["peak_rss_mb"] >= mem["end_rss_mb"]).all() and (mem["peak_anon_mb"] > 100).all()
    v2v = df[df["mode"] == "v2v"].iloc[0]
    rr = df[df["mode"] != "v2v"]
    # the shortlist is V2V's top 10, so its recall is V2V's R@10, and no rerank can beat it at any K
    np.testing.assert_allclose(rr["shortlist_recall"], v2v["R@10"])
    assert (rr["R@10"] <= rr["shortlist_recall"] + 1e-9).all()
    full = pd.read_csv(full_run.results_csv).set_index(KEYS)
    oracle = rr[(rr["mode"] == "g2g") & (rr["graphs"] == "oracle") & (rr["similarity"] == "hungarian")].iloc[0]
    assert oracle["R@1"] <= full.loc[tuple(oracle[KEYS]), "R@1"] + 1e-9  # a rerank cannot find what V2V missed
