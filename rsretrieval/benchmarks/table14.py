"""Absolute scoring times next to the thesis' Table 14 (RSICD test size, NVIDIA A6000).

Table 14 reports the similarity step of three methods on RSICD's test split (5,345 captions x 1,069
images): cosine (V2V) 0.03 s, S2S (Q-MAM) 0.33 s, GMN 2.11 s. :func:`bench` times our scorers on the
same shapes, on whatever device is given (``auto``: CUDA when available), with seeded random unit
vectors: timings are real, scores are not. Each method is timed ``repeats`` times after one warm-up,
synchronised on CUDA, and reported as mean ± sd (sample sd, 0 for a single repeat) next to the thesis'
own "mean ± sd" (Table 14: 0.03 ± 0.01, 0.33 ± 0.05, 2.11 ± 0.1 s); the minimum is kept too. The
device name goes into every row, so a CPU figure is never read as a GPU one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

RSICD_TEST = (5345, 1069)  # captions x images of the thesis' timing
THESIS_A6000_SECONDS = {"cosine (V2V)": 0.03, "S2S (Q-MAM)": 0.33, "GMN (VG2VG)": 2.11}
THESIS_A6000_SD = {"cosine (V2V)": 0.01, "S2S (Q-MAM)": 0.05, "GMN (VG2VG)": 0.1}  # Table 14's "±"
DEFAULT_REPEATS = 5


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({torch.get_num_threads()} threads)"


def repeated_timings(fn: Callable[[], Any], device: str, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after one untimed warm-up (allocator, BLAS threads, CUDA kernels)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn()
    out = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("no timings")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """'0.053 ± 0.004', the thesis' notation."""
    return f"{mean:.{digits}f} \u00b1 {sd:.{digits}f}"


def bench(n_queries: int = 5345, n_images: int = 1069, dim: int = 512, node_dim: int = 384, query_scenes: int = 6,
          image_scenes: int = 10, q_nodes: int = 20, d_nodes: int = 30, device: str = "auto",
          repeats: int = DEFAULT_REPEATS, seed: int = 0) -> list[dict[str, Any]]:
    """One row per method: our seconds (mean ± sd over ``repeats``) for the full query x image similarity,
    and the thesis' A6000 figure."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    from rsretrieval.config import GMNConfig
    from rsretrieval.benchmarks.gmn import random_graphs
    from rsretrieval.matching.cosine import CosineScorer
    from rsretrieval.matching.gmn import GraphMatchingNetwork
    from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors

    device = _device(device)
    g = torch.Generator().manual_seed(seed)
    cap, img = torch.randn(n_queries, dim, generator=g), torch.randn(n_images, dim, generator=g)

    def sets(n: int, size: int) -> PackedVectors:
        return PackedVectors(torch.randn(n * size, dim, generator=g), torch.arange(0, n * size + 1, size))

    cosine = CosineScorer(cap, img, device)
    qmam = LateInteractionScorer(sets(n_queries, query_scenes), sets(n_images, image_scenes), "max-mean", device)
    qg, dg = random_graphs(n_queries, q_nodes, node_dim, g), random_graphs(n_images, d_nodes, node_dim, g)
    gmn_cfg = GMNConfig(use_global=True)
    gmn = GraphMatchingNetwork(gmn_cfg, seed=seed).to(device).eval()
    qg_d, dg_d = qg.to(device), dg.to(device)
    sim = (cosine(0, n_queries)).to(device)

    def blocks(scorer: Any, chunk: int) -> Callable[[], None]:
        return lambda: [scorer(s, min(s + chunk, n_queries)) for s in range(0, n_queries, chunk)]

    def run_gmn() -> None:
        with torch.no_grad():
            gmn.score_matrix(qg_d, dg_d, sim, gmn_cfg.chunk_size)

    ours = {"cosine (V2V)": repeated_timings(blocks(cosine, 1024), device, repeats),
            "S2S (Q-MAM)": repeated_timings(blocks(qmam, 512), device, repeats),
            "GMN (VG2VG)": repeated_timings(run_gmn, device, repeats)}
    return table14_rows(ours, n_queries, n_images, _device_name(device))


def table14_rows(timings: dict[str, list[float]], n_queries: int, n_images: int, device: str) -> list[dict[str, Any]]:
    """Rows from each method's repeated seconds: mean, sd, min, 'mean ± sd' next to the thesis' figure."""
    rows = []
    for m, times in timings.items():
        mean, sd = mean_sd(times)
        rows.append({"method": m, "queries": n_queries, "images": n_images, "device": device, "repeats": len(times),
                     "seconds": mean, "seconds_sd": sd, "seconds_min": min(times), "ours": format_mean_sd(mean, sd),
                     "thesis_a6000": format_mean_sd(THESIS_A6000_SECONDS[m], THESIS_A6000_SD[m], 2),
                     "thesis_a6000_seconds": THESIS_A6000_SECONDS[m],
                     # only like for like: the thesis timed 5,345 x 1,069
                     "ratio_to_thesis": mean / THESIS_A6000_SECONDS[m] if (n_queries, n_images) == RSICD_TEST
                     else float("nan")})
    return rows
