"""The benchmark scripts run (tiny sizes) and report the ratios they promise."""

from __future__ import annotations

from rayjobs.bench_late_interaction import main as bench_li


def test_late_interaction_bench_reports_ratios() -> None:
    out = bench_li(["--queries", "40", "--images", "30", "--dim", "16", "--repeats", "1", "--loop-sample", "2"])
    assert out["fraction_of_roofline"] > 0 and out["speedup_vs_loop"] > 0
    out = bench_li(["--queries", "40", "--images", "30", "--dim", "16", "--repeats", "1", "--loop-sample", "2",
                    "--variable"])
    assert out["variable_sizes"] is True
