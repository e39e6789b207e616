"""The driver's memory per step (driver_memory.csv): a step that allocates shows it in its peak, the next
step starts from what is left."""

from __future__ import annotations

import csv

import numpy as np

from rsretrieval.pipelines.runtime.driver_memory import DriverMemory


def test_peak_per_step(tmp_path) -> None:
    live = tmp_path / "live.csv"
    with DriverMemory(interval=0.01, path=live) as mem:
        mem.mark("setup")
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        del block
        big = mem.mark("allocate")
        assert [r["step"] for r in csv.DictReader(live.open())] == ["setup", "allocate"]  # on disk as steps end
        quiet = mem.mark("quiet")
    assert big["peak_anon_mb"] - quiet["end_anon_mb"] >= 250  # the freed block counts in its step only
    assert quiet["peak_anon_mb"] < big["peak_anon_mb"]
    assert mem.peak_mb["anon"] == big["peak_anon_mb"] and mem.peak_mb["rss"] >= big["peak_rss_mb"]
    rows = list(csv.DictReader(mem.write(tmp_path / "driver_memory.csv").open()))
    assert [r["step"] for r in rows] == ["setup", "allocate", "quiet"]
