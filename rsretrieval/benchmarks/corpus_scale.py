"""The real benchmark job at NWPU-Captions shape (issue 20): synthrs with 31,500 x ``fraction`` test images,
5 original-style captions and 1 fine-grained caption each, through the same executor a user runs, on the
two-stage path (V2V shortlist, S2S / G2G / VG2VG rerank it).

Per stage it reports rows, seconds and rows/s from the run's own stage ledger (``cost.csv``), and the
peak memory (RSS) of the driver and of every kind of process the run started (Ray Data actors by
their stage, Ray Train workers, Ray's own daemons), sampled every ``interval`` s by a thread.

Graph training is off (it depends on the train split, not on the corpus size; the matchers come from
``graph_matching.gmn_checkpoint`` when given, else the graph modes score Hungarian only), and rs-tiny
is the default one (trained on the default synthrs train split, cached).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NWPU_IMAGES = 31_500  # NWPU-Captions: 31,500 images x 5 captions (Cheng et al. 2022)


@dataclass
class MemorySampler:
    """Peak RSS (bytes) of this process and of its descendants, grouped by process kind."""

    interval: float = 0.5
    peaks: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "MemorySampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            self.sample(me)
            self._stop.wait(self.interval)

    def sample(self, me: Any) -> None:
        import psutil

        procs = [("driver", me)]
        try:
            procs += [(process_kind(c), c) for c in me.children(recursive=True)]
        except psutil.Error:
            pass
        for kind, p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            self.peaks[kind] = max(self.peaks.get(kind, 0), rss)


def process_kind(p: Any) -> str:
    """'ray::MapWorker(MapBatches(ImageEmbedStage))' -> 'MapWorker(MapBatches(ImageEmbedStage))'; Ray daemons
    by their executable; anything else by its name."""
    try:
        cmd = p.cmdline()
    except Exception:  # noqa: BLE001 - a process that just ended
        return "?"
    head = cmd[0] if cmd else p.name()
    if head.startswith("ray::"):
        name = re.sub(r"\.[A-Za-z_]+$", "", head[5:])  # 'Actor(...).method' -> 'Actor(...)'
        return re.sub(r"\s+", " ", name)[:60]
    for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py", "runtime_env"):
        if any(daemon in part for part in cmd[:3]):
            return daemon
    return Path(head).name[:40]


DEFAULT_MODES = ("v2v", "s2s", "g2g", "vg2vg")


def corpus_config(fraction: float, cache_dir: Path, output_dir: Path, shortlist_k: int = 100,
                  gmn_checkpoint: Path | None = None, modes: tuple[str, ...] = DEFAULT_MODES) -> Any:
    """The embedded default at NWPU shape: ``fraction`` of 31,500 test images, the two-stage path."""
    from rsretrieval.config import load_config

    n_test = max(1, round(NWPU_IMAGES * fraction))
    overrides = [f"cache_dir={cache_dir}", f"output_dir={output_dir}", f"run_name=nwpu-shape-{n_test}",
                 f"datasets.0.synthrs.n_test={n_test}", "datasets.0.synthrs.n_train=0", "datasets.0.synthrs.n_val=0",
                 f"modes=[{', '.join(modes)}]", "image_scenes.methods=[uniform]", f"eval.shortlist_k={shortlist_k}",
                 "graph_matching.train.enabled=false", "report.enabled=true"]
    if gmn_checkpoint is not None:
        overrides.append(f"graph_matching.gmn_checkpoint={gmn_checkpoint}")
    else:
        overrides.append("graph_matching.similarities=[hungarian]")
    return load_config(None, overrides)


def stage_table(run_dir: Path) -> list[dict[str, Any]]:
    """Rows, seconds, rows/s per stage of the run's ledger (``cost.csv``): data stages once each (an embedding
    pass's seconds are shared out by rows); scoring and ranking summed per mode over its cells."""
    import pandas as pd

    cost = pd.read_csv(run_dir / "cost.csv")
    per_cell = cost["stage"].isin(["score", "rank"])
    out = []
    for _, r in cost[~per_cell].drop_duplicates(subset=["dataset", "stage"]).iterrows():
        out.append(_row(r["stage"], int(r["stage_items"]), float(r["stage_seconds"]), bool(r["cached"])))
    cells = cost[per_cell]
    for (stage, mode), g in cells.groupby(["stage", "mode"], sort=False):
        out.append(_row(f"{stage}:{mode} ({len(g)} cells)", int(g["n_queries"].sum()), float(g["seconds"].sum()), False))
    return out


def _row(stage: str, rows: int, seconds: float, cached: bool) -> dict[str, Any]:
    return {"stage": stage, "rows": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1) if seconds > 0 else None, "cached": cached}


def run(fraction: float, cache_dir: Path, output_dir: Path, shortlist_k: int = 100,
        gmn_checkpoint: Path | None = None, interval: float = 0.5, modes: tuple[str, ...] = DEFAULT_MODES
        ) -> dict[str, Any]:
    """Run the job once at ``fraction`` of NWPU size; returns wall time, the stage table, memory peaks per
    process kind and the driver's memory per step."""
    import csv

    from rsretrieval.pipelines.benchmark.run import run_benchmark

    cfg = corpus_config(fraction, cache_dir, output_dir, shortlist_k, gmn_checkpoint, modes)
    t0 = time.perf_counter()
    with MemorySampler(interval) as mem:
        result = run_benchmark(cfg)
    wall = time.perf_counter() - t0
    n_images = cfg.datasets[0].synthrs.n_test
    queries = sum(int(r["n_queries"]) for r in result.rows if r["mode"] == "v2v")
    return {"fraction": fraction, "images": n_images, "queries": queries, "wall_seconds": round(wall, 1),
            "cells": len(result.rows),
            "run_dir": str(result.run_dir), "stages": stage_table(Path(result.run_dir)), "modes": list(modes),
            "shortlist_k": shortlist_k,
            "driver_steps": list(csv.DictReader((Path(result.run_dir) / "driver_memory.csv").open(encoding="utf-8"))),
            "peak_rss_mb": {k: round(v / 2**20) for k, v in sorted(mem.peaks.items(), key=lambda kv: -kv[1])}}


def format_result(res: dict[str, Any]) -> str:
    lines = [f"NWPU shape x {res['fraction']:g}: {res['images']} images, {res['queries']} queries, {res['cells']} cells "
             f"({', '.join(res.get('modes', DEFAULT_MODES))}, shortlist k = {res.get('shortlist_k')}), "
             f"wall {res['wall_seconds']} s ({res['run_dir']})", "",
             "| stage | rows | seconds | rows/s | cached |", "|---|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['rows']} | {s['seconds']} | {s['rows_per_s']} | {s['cached']} |"
              for s in res["stages"]]
    lines += ["", "| process | peak RSS MB |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in res["peak_rss_mb"].items()]
    lines += ["", "| driver step | seconds | peak RSS MB | peak anonymous MB | RSS at end MB |", "|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['seconds']} | {r['peak_rss_mb']} | {r['peak_anon_mb']} | {r['end_rss_mb']} |"
              for r in res.get("driver_steps", [])]
    return "\n".join(lines)
