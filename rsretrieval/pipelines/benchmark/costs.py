"""Filling the benchmark's :class:`~rsretrieval.evaluation.cost.StageLedger` and writing cost.csv / cost.md."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rsretrieval.evaluation.cost import StageLedger, cost_markdown, cost_steps, cost_summary
from rsretrieval.pipelines.stages.embed import recorded_seconds

T = TypeVar("T")

# generation task -> ledger stage (image graphs get the source label appended)
GENERATION_STAGES = {"text_graph": "gen:text_graph", "text_scenes": "gen:text_scenes",
                     "image_graph": "gen:image_graph", "object_counts": "gen:image_graph"}


def timed_cached_stage(ledger: StageLedger, dataset: str, stage: str, items: int, path_of: Callable[[], Path],
                       run: Callable[[], T], backbone: str = "-") -> T:
    """Run ``run`` (which caches its output at ``path_of()``) and record it: the measured seconds, or
    for a cache hit the seconds recorded when the cache was written."""
    cached = path_of().exists()
    t0 = time.perf_counter()
    out = run()
    measured = time.perf_counter() - t0
    record_cached_stage(ledger, dataset, stage, backbone, items, path_of(), cached, measured)
    return out


def record_cached_stage(ledger: StageLedger, dataset: str, stage: str, backbone: str, items: int, path: Path,
                     cached: bool, measured: float) -> None:
    """A cached stage's output at ``path`` (an embeddings folder or a cached file): the seconds recorded
    when it was computed (``_SUCCESS`` / ``.seconds.json``), else the measured ones."""
    recorded = recorded_seconds(path)  # also for a fresh run: the same figure a rerun will report
    ledger.add(dataset, stage, recorded if recorded is not None else measured, items, backbone=backbone, cached=cached,
               detail="" if not cached else ("cached; seconds recorded at compute time" if recorded is not None
                                             else "cached before seconds were recorded: load time only"))


def add_generation(ledger: StageLedger, rows: list[dict[str, Any]], image_graph_label: str = "") -> None:
    """Accounting rows of generation -> ledger stages (tokens and cost of the whole stored set; seconds of
    this run when it requested anything, else the recorded request latencies)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        stage = GENERATION_STAGES.get(r["task"])
        if stage is None:
            continue
        if stage == "gen:image_graph":
            stage += f":{image_graph_label}"
        paid_now = bool(r.get("requested")) or r.get("backend") == "offline"
        seconds = float(r.get("seconds") or 0) if paid_now else float(r.get("api_seconds") or 0)
        m = merged.setdefault((r["dataset"], stage), {"seconds": 0.0, "items": 0, "calls": 0, "tokens_in": 0,
                                                      "tokens_out": 0, "cost_usd": 0.0, "cached": True, "models": set()})
        m["seconds"] += seconds
        m["items"] = max(m["items"], int(r.get("inputs") or 0))
        m["calls"] += int(r.get("stored_calls", r.get("calls")) or 0)
        m["tokens_in"] += int(r.get("stored_tokens_in", r.get("tokens_in")) or 0)
        m["tokens_out"] += int(r.get("stored_tokens_out", r.get("tokens_out")) or 0)
        m["cost_usd"] += float(r.get("stored_cost_usd", r.get("cost_usd")) or 0)
        m["cached"] &= not paid_now
        m["models"].add(f"{r.get('model')} ({r.get('backend')})")
    for (dataset, stage), m in merged.items():
        ledger.add(dataset, stage, m["seconds"], m["items"], cached=m["cached"], calls=m["calls"],
                   tokens_in=m["tokens_in"], tokens_out=m["tokens_out"], cost_usd=m["cost_usd"],
                   detail=", ".join(sorted(m["models"])) + ("; stored answers: seconds = recorded request latency (sum)"
                                                             if m["cached"] else ""))


def write_cost_tables(results: Any, ledger: StageLedger, run_dir: Path, tracker: Any) -> str:
    """cost.csv (cell x step), cost_summary.csv (cell totals), cost.md (Tables 13-14); returns the footnote."""
    steps = cost_steps(results, ledger)
    if steps.empty:
        return ""
    summary = cost_summary(steps)
    paths = [run_dir / "cost.csv", run_dir / "cost_summary.csv", run_dir / "cost.md"]
    steps.to_csv(paths[0], index=False)
    summary.to_csv(paths[1], index=False)
    paths[2].write_text("\n".join(cost_markdown(steps, summary)) + "\n", encoding="utf-8")
    for p in paths:
        tracker.log_artifact(p)
    fastest = summary.loc[summary["ms_per_query"].idxmin()]
    slowest = summary.loc[summary["ms_per_query"].idxmax()]
    return (f"cost and latency per step (Tables 13-14): cost.md; inference {fastest['ms_per_query']:.3f} ms/query "
            f"({fastest['mode']}) to {slowest['ms_per_query']:.2f} ms/query ({slowest['mode']})")
