"""Benchmark of graph training: the in-process loop vs Ray Train with 1 and with N workers.

All runs train the same stage (the trained graph encoder + G2G GMN) on the same data for the same
epochs, measured in one process one after the other. Per run: mean seconds per epoch (the loop's
own clock: training + validation), the fit's wall time (with Ray Train's start-up), and the best
validation mR. With N workers each takes 1/N of the batches per epoch (DDP averages gradients), so
an epoch makes 1/N as many optimiser updates: the mR columns differ for that reason, not noise.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from rsretrieval.config import BenchmarkConfig


def bench(cfg: BenchmarkConfig, epochs: int = 2, workers: tuple[int, ...] = (0, 1, 2), source: str | None = None,
          synthetic_images: int | None = None) -> dict[str, Any]:
    from rsretrieval.pipelines.runtime.ray_session import init_ray
    from rsretrieval.pipelines.jobs.sweep import sweep_data
    from rsretrieval.pipelines.stages.train_graphs import fit_graph_matcher
    from rsretrieval.training.graph_loop import TrainData
    from rsretrieval.training.graph_model import training_gmn_config

    init_ray(cfg.ray)
    t0 = time.perf_counter()
    if synthetic_images:
        from rsretrieval.training.synthetic_graphs import synthetic_pairs

        data = TrainData(synthetic_pairs(synthetic_images, seed=1, dim=384, captions_per_image=3),
                         synthetic_pairs(max(50, synthetic_images // 10), seed=2, dim=384))
        source = "synthetic graphs"
    else:
        data, source, _ = sweep_data(cfg, source)
    prep = time.perf_counter() - t0
    gm = cfg.graph_matching
    gmn = training_gmn_config(gm.gmn, False)
    runs = []
    with tempfile.TemporaryDirectory() as storage:
        for w in workers:
            tcfg = gm.train.model_copy(update={"epochs": epochs, "patience": epochs + 1, "workers": w})
            res = fit_graph_matcher(data, tcfg, gm.encoder, gmn, f"bench-w{w}", storage)
            hist = res.state["history"]
            runs.append({"workers": w, "label": "in-process loop" if w == 0 else f"Ray Train, {w} worker(s)",
                         "epoch_seconds": sum(h["epoch_seconds"] for h in hist) / len(hist), "fit_seconds": res.seconds,
                         "best_val_mr": res.state["best_mr"], "epochs": len(hist)})
    base = next((r for r in runs if r["workers"] == 1), runs[0])
    for r in runs:
        r["epoch_speedup_vs_1_worker"] = base["epoch_seconds"] / r["epoch_seconds"]
    return {"data": source, "train_queries": len(data.train.queries), "train_images": len(data.train.docs),
            "encoder": gm.encoder.kind, "batch_size": gm.train.batch_size, "prep_seconds": prep, "runs": runs}


def print_report(result: dict[str, Any]) -> None:
    print(f"graph training, {result['encoder']} encoder + G2G GMN, {result['train_queries']} captions / "
          f"{result['train_images']} images ({result['data']}), batch {result['batch_size']} per worker; "
          f"data preparation {result['prep_seconds']:.1f} s")
    print(f"{'run':<26}{'s/epoch':>10}{'x 1 worker':>12}{'fit wall s':>12}{'best val mR':>13}")
    for r in result["runs"]:
        print(f"{r['label']:<26}{r['epoch_seconds']:>10.2f}{r['epoch_speedup_vs_1_worker']:>12.2f}"
              f"{r['fit_seconds']:>12.1f}{r['best_val_mr']:>13.2f}")
