"""Several training seeds: the aggregate (mean, sample sd, min/max, count) against a naive
per-cell computation, and the benchmark run once per seed (slow)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rsretrieval.evaluation.seeds import aggregate_seeds, mean_sd, write_seed_tables
from rsretrieval.evaluation.tables import KEY_COLUMNS


def _results(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for mode, training, moved in (("v2v", None, False), ("g2g", "vanilla", False), ("g2g", "trained", True)):
        r1 = 20.0 + (rng.uniform(-5, 5) if moved else 0.0)
        rows.append({"dataset": "synthrs", "variant": "fine_grained", "backbone": None if mode == "g2g" else "rs-tiny",
                     "mode": mode, "crops": None, "graphs": "oracle" if mode == "g2g" else None,
                     "similarity": "gmn" if mode == "g2g" else None, "training": training,
                     "R@1": r1, "R@5": r1 + 10, "R@10": r1 + 20, "mR": r1 + 10})
    return pd.DataFrame(rows)


def test_aggregate_matches_a_naive_per_cell_computation() -> None:
    runs = {s: _results(s) for s in (0, 1, 2)}
    agg = aggregate_seeds(runs)
    assert len(agg) == 3 and list(agg.columns[:len(KEY_COLUMNS)]) == KEY_COLUMNS
    for _, row in agg.iterrows():
        same = lambda df: (df["mode"] == row["mode"]) & (df["training"].fillna("-") == (row["training"] if isinstance(row["training"], str) else "-"))  # noqa: E731
        values = [float(df.loc[same(df), "mR"].iloc[0]) for df in runs.values()]
        assert row["mR"] == pytest.approx(statistics.mean(values))
        assert row["mR_sd"] == pytest.approx(statistics.stdev(values))
        assert (row["mR_min"], row["mR_max"]) == (min(values), max(values))
        assert row["n_seeds"] == 3 and row["seeds"] == "0 1 2"
    trained = agg[agg["training"] == "trained"].iloc[0]
    assert trained["mR_sd"] > 0  # the seed moves the trained cell ...
    assert (agg[agg["training"] != "trained"]["mR_sd"] == 0).all()  # ... and nothing else
    assert agg.loc[agg["mode"] == "v2v", "backbone"].iloc[0] == "rs-tiny"  # keys keep their values


def test_one_seed_has_unknown_spread_and_tables_say_so(tmp_path: Path) -> None:
    agg = aggregate_seeds({0: _results(0)})
    assert agg["mR_sd"].isna().all() and (agg["n_seeds"] == 1).all()
    assert mean_sd(45.2, float("nan")) == "45.20" and mean_sd(45.2, 1.314) == "45.20 ± 1.31"
    csv, md = write_seed_tables(aggregate_seeds({s: _results(s) for s in (0, 1)}), tmp_path, [tmp_path / "a"])
    text = md.read_text()
    assert "± " in text and "1 of 3 cells change with the seed" in text
    assert len(pd.read_csv(csv)) == 3


def test_cells_missing_from_a_seed_keep_the_seeds_they_have() -> None:
    runs = {0: _results(0), 1: _results(1).iloc[:2]}
    agg = aggregate_seeds(runs)
    trained = agg[agg["training"] == "trained"].iloc[0]
    assert trained["n_seeds"] == 1 and trained["seeds"] == "0"


@pytest.mark.slow
def test_benchmark_once_per_seed(tmp_path: Path, session_cache: Path, ray_local) -> None:
    """Two seeds of the trained G2G cells on the quick config: the V2V and vanilla Hungarian cells
    agree exactly across seeds, the trained cells are reported with their spread."""
    from rsretrieval.cli import benchmark_main
    from tests.conftest import QUICK_CONFIG

    out = benchmark_main(["--config", str(QUICK_CONFIG), "--output-dir", str(tmp_path), "--run-name", "s",
                          "--set", f"cache_dir={session_cache}", "--set", "mlflow.enabled=false",
                          "--set", "report.enabled=false", "--set", "modes=[v2v, g2g]",
                          "--set", "graph_matching.image_graphs=[oracle]", "--seeds", "0", "1"])
    agg = pd.read_csv(out / "results_seeds.csv")
    assert (agg["n_seeds"] == 2).all()
    assert (tmp_path / "s-seed0" / "results.csv").exists() and (tmp_path / "s-seed1" / "results.csv").exists()
    # the seed moves only trained models: Hungarian on trained node embeddings may move, on vanilla never
    fixed = agg[(agg["mode"] == "v2v") | ((agg["similarity"] == "hungarian") & (agg["training"] == "vanilla"))]
    assert len(fixed) and (fixed["mR_sd"] == 0).all()
    assert (agg["training"] == "trained").any()
    print("\n[seeds]\n" + (out / "results_seeds.md").read_text())
