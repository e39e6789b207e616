"""The benchmark scripts run (tiny sizes) and report the ratios they promise."""

from __future__ import annotations

from rayjobs.bench_late_interaction import main as bench_li


def test_late_interaction_bench_reports_ratios() -> None:
    out = bench_li(["--queries", "40", "--images", "30", "--dim", "16", "--repeats", "1", "--loop-sample", "2"])
    assert out["fraction_of_roofline"] > 0 and out["speedup_vs_loop"] > 0
    out = bench_li(["--queries", "40", "--images", "30", "--dim", "16", "--repeats", "1", "--loop-sample", "2",
                    "--variable"])
    assert out["variable_sizes"] is True


def test_train_bench_reports_epoch_times(ray_local, tmp_path) -> None:
    from rayjobs.bench_train import main as bench_train

    out = bench_train(["--synthetic", "128", "--workers", "0", "--epochs", "1", "--output-dir", str(tmp_path),
                       "--set", "graph_matching.train.batch_size=32"])
    (run,) = out["runs"]
    assert run["workers"] == 0 and run["epochs"] == 1 and run["epoch_seconds"] > 0
    assert run["epoch_speedup_vs_1_worker"] == 1.0  # no 1-worker run: compared with itself
