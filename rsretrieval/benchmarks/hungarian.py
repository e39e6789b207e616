"""Hungarian G2G scoring vs a per-pair scipy loop, measured in one run (thesis sec. 5.3.2).

Synthetic graphs at RSICD test size by default: 5,345 query graphs (text, ~20 nodes) x 1,069
document graphs (images, ~30 nodes), sizes 1 + Poisson(mean - 1), random unit node vectors of
D=384, seeded. Measured:
- the per-pair loop (numpy S = E_q E_d^T + ``linear_sum_assignment`` per pair) on a random sample
  of pairs (random queries x all images, in loop order), *extrapolated* to the full matrix;
- ``HungarianScorer`` on the full matrix with 1 worker (BLAS capped at 1 thread: one core) and with
  all workers; ratios, pairs/s, and CPU-seconds split into GEMM / shortcuts / assignment;
- the exact shortcuts forced on/off: single-node queries (min size 1 -> max) and the distinct-argmax
  check on the queries as generated and cut to 5 nodes;
- correctness on a sample of pairs: max |ours - float64 per-pair reference|, shortlist == matrix;
- the rerank path: k = 10 and 100 random candidates per query, ours vs the per-pair loop on the same pairs.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from rsretrieval.config import HungarianConfig
from rsretrieval.matching.hungarian import HungarianScorer, hungarian_pair
from rsretrieval.matching.late_interaction import PackedVectors


def _graphs(rng: np.random.Generator, n: int, mean_nodes: float, dim: int) -> list[np.ndarray]:
    sizes = 1 + rng.poisson(max(mean_nodes - 1, 0), n)
    vecs = rng.standard_normal((int(sizes.sum()), dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return np.split(vecs, np.cumsum(sizes)[:-1])


def _one_core() -> contextlib.AbstractContextManager:
    """Cap BLAS at one thread so that 'workers=1' is one core (the GEMM would use all otherwise)."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:
        return contextlib.nullcontext()


def _timed(scorer: HungarianScorer, q: PackedVectors, d: PackedVectors, **kw: Any) -> tuple[np.ndarray, dict]:
    t0 = time.perf_counter()
    out = scorer.score(q, d, **kw)
    return out, {**scorer.last_stats, "wall_s": time.perf_counter() - t0}


def _summary(stats: dict, n_pairs: int, loop_s: float) -> dict[str, float]:
    cpu = stats["gemm_s"] + stats["shortcut_s"] + stats["assign_s"]
    return {
        "wall_s": stats["wall_s"], "pairs_per_s": n_pairs / stats["wall_s"],
        "speedup_vs_loop": loop_s / stats["wall_s"],
        "cpu_s_gemm": stats["gemm_s"], "cpu_s_shortcuts": stats["shortcut_s"], "cpu_s_assignment": stats["assign_s"],
        "fraction_gemm": stats["gemm_s"] / cpu, "fraction_assignment": stats["assign_s"] / cpu,
        "pairs_min1_shortcut": stats["pairs_min1"], "pairs_greedy_shortcut": stats["pairs_greedy"],
        "pairs_scipy": stats["pairs_lsa"],
    }


def bench(n_queries: int = 5345, n_images: int = 1069, q_nodes: float = 20, d_nodes: float = 30, dim: int = 384,
          workers: int = 0, normalise: str = "matched", loop_pairs: int = 20_000, check_pairs: int = 2000,
          shortcut_queries: int = 300, seed: int = 0, rerank_ks: tuple[int, ...] = (10, 100)) -> dict[str, Any]:
    """Run every measurement once on one synthetic dataset; returns a JSON-able dict."""
    rng = np.random.default_rng(seed)
    qs, ds = _graphs(rng, n_queries, q_nodes, dim), _graphs(rng, n_images, d_nodes, dim)
    qp, dp = PackedVectors.from_lists(qs), PackedVectors.from_lists(ds)
    n_pairs, all_workers = n_queries * n_images, workers or os.cpu_count() or 1
    cfg = HungarianConfig(normalise=normalise, workers=1)

    # (a) per-pair loop on a sample (vectors already unit-norm, as the scorer's are)
    # in the order a plain loop runs (query by query, every image), on random queries
    loop_queries = rng.choice(n_queries, min(n_queries, -(-loop_pairs // n_images)), replace=False).tolist()
    with _one_core():  # a single-core algorithm; 2 BLAS threads on tiny matmuls only add overhead
        t0 = time.perf_counter()
        for qi in loop_queries:
            for d in ds:
                s = qs[qi] @ d.T
                rows, cols = linear_sum_assignment(s, maximize=True)
                s[rows, cols].sum() / (len(rows) if normalise == "matched" else len(s))
        loop_per_pair = (time.perf_counter() - t0) / (len(loop_queries) * n_images)
    loop_s = loop_per_pair * n_pairs

    # (b) our scorer, full matrix: one core, then all workers
    with _one_core():
        full, st1 = _timed(HungarianScorer(cfg), qp, dp)
    out: dict[str, Any] = {
        "queries": n_queries, "images": n_images, "mean_query_nodes": float(np.mean([len(q) for q in qs])),
        "mean_image_nodes": float(np.mean([len(d) for d in ds])), "dim": dim, "normalise": normalise,
        "cpu_count": os.cpu_count(), "pairs": n_pairs,
        "per_pair_loop": {"sample": f"{len(loop_queries)} random queries x all {n_images} images",
                          "sample_pairs": len(loop_queries) * n_images, "seconds_per_pair": loop_per_pair,
                          "seconds_full_matrix_extrapolated": loop_s, "extrapolated": True},
        "ours_workers_1": _summary(st1, n_pairs, loop_s),
    }
    if all_workers > 1:
        pooled = HungarianScorer(cfg.model_copy(update={"workers": all_workers}), pool_min_pairs=0)  # always the pool
        tiny = PackedVectors.from_lists(qs[:1]), PackedVectors.from_lists(ds[:1])
        startup = _timed(pooled, *tiny)[1]["wall_s"]  # spawn + imports + sending the documents, ~no work
        full_w, stw = _timed(pooled, qp, dp)
        out[f"ours_workers_{all_workers}"] = {**_summary(stw, n_pairs, loop_s), "workers": all_workers,
                                              "pool_startup_s_included": startup,
                                              "speedup_vs_workers_1": st1["wall_s"] / stw["wall_s"],
                                              "max_abs_diff_vs_workers_1": float(np.abs(full_w - full).max())}

    # correctness on a sample: float64 per-pair reference, and the shortlist path
    check = rng.integers(0, [n_queries, n_images], (min(check_pairs, n_pairs), 2))
    ref = np.array([hungarian_pair(qs[a], ds[b], normalise) for a, b in check.tolist()])
    short = HungarianScorer(cfg).score(qp, dp, shortlist=check)
    picked = full[check[:, 0], check[:, 1]]
    out["correctness"] = {"sample_pairs": len(check), "max_abs_diff_vs_reference": float(np.abs(picked - ref).max()),
                          "max_abs_diff_shortlist_vs_matrix": float(np.abs(short - picked).max())}
    out["shortcuts"] = _shortcuts(qs[:shortcut_queries], dp, cfg)
    out["shortlist_rerank"] = {f"k{k}": _rerank(qs, ds, qp, dp, k, cfg, rng) for k in rerank_ks if k <= n_images}
    return out


def _rerank(qs: list[np.ndarray], ds: list[np.ndarray], qp: PackedVectors, dp: PackedVectors, k: int,
            cfg: HungarianConfig, rng: np.random.Generator) -> dict[str, Any]:
    """The rerank path (``eval.shortlist_k``): ``k`` random candidates per query, ours vs the per-pair loop over
    the same pairs, one core, in one run."""
    pairs = np.stack([np.repeat(np.arange(len(qs)), k),
                      np.concatenate([rng.choice(len(ds), k, replace=False) for _ in qs])], 1)
    with _one_core():
        t0 = time.perf_counter()
        loop = np.empty(len(pairs), np.float32)
        for i, (a, b) in enumerate(pairs.tolist()):
            s = qs[a] @ ds[b].T
            rows, cols = linear_sum_assignment(s, maximize=True)
            loop[i] = s[rows, cols].sum() / (len(rows) if cfg.normalise == "matched" else len(s))
        loop_s = time.perf_counter() - t0
        ours, st = _timed(HungarianScorer(cfg), qp, dp, shortlist=pairs)
    return {"pairs": len(pairs), "loop_s": loop_s, "ours_s": st["wall_s"], "speedup_vs_loop": loop_s / st["wall_s"],
            "queries_per_s": len(qs) / st["wall_s"], "fraction_pairs_shortcut": (st["pairs_min1"] + st["pairs_greedy"])
            / len(pairs), "max_abs_diff_vs_loop": float(np.abs(ours - loop).max())}


def _shortcuts(qs: list[np.ndarray], dp: PackedVectors, cfg: HungarianConfig) -> dict[str, Any]:
    """Each exact shortcut forced on vs off, one core, on the first queries vs all images.

    min1: the queries cut to one node. greedy: the queries as they are, and cut to 5 nodes (where
    distinct best partners are likely; the default 'auto' tries the check only on such sizes).
    """
    res: dict[str, Any] = {"queries": len(qs)}
    runs = (("min1_single_node_queries", [q[:1] for q in qs], "min1", "pairs_min1"),
            ("greedy_queries_as_generated", qs, "greedy", "pairs_greedy"),
            ("greedy_queries_cut_to_5_nodes", [q[:5] for q in qs], "greedy", "pairs_greedy"))
    for name, sets, flag, hits_key in runs:
        q = PackedVectors.from_lists(sets)
        with _one_core():
            on, st_on = _timed(HungarianScorer(cfg, **{flag: True}), q, dp)
            off, st_off = _timed(HungarianScorer(cfg, **{flag: False}), q, dp)
        res[name] = {"seconds_on": st_on["wall_s"], "seconds_off": st_off["wall_s"],
                     "speedup": st_off["wall_s"] / st_on["wall_s"],
                     "fraction_pairs_shortcut": st_on[hits_key] / on.size,
                     "max_abs_diff_on_vs_off": float(np.abs(on - off).max())}
    return res
