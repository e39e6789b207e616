"""Q-MAM scoring speed vs the fp32 matmul roofline and vs a per-pair loop, measured in one run.

The roofline is one plain GEMM of the same shape as the scorer's work: (queries x query
vectors, D) @ (D, images x image vectors). The scorer adds the padding bias, the max over each
image's vectors and the mean over each query's vectors; ``fraction_of_roofline`` = GEMM seconds /
scorer seconds (1.0 = the extra work is free). The per-pair loop (eq. 2 literally, one small
matmul per pair) runs on a sample of queries and is extrapolated.
"""

from __future__ import annotations

import time

import torch

from rsretrieval.matching.late_interaction import LateInteractionScorer, PackedVectors, late_interaction_reference


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(n_queries: int = 5345, n_images: int = 1069, query_scenes: int = 6, image_scenes: int = 10,
          dim: int = 512, chunk_size: int = 512, repeats: int = 3, loop_sample: int = 20,
          device: str = "cpu", seed: int = 0, variable: bool = False) -> dict[str, float]:
    """Time full query x image Q-MAM scoring on synthetic unit vectors (default: RSICD test size).

    ``variable``: set sizes drawn uniformly from 1..max (as region crops and text scenes give),
    which exercises the padded path; the FLOP count then uses the padded shapes the GEMM runs.
    """
    g = torch.Generator().manual_seed(seed)

    def packed(n: int, size: int) -> PackedVectors:
        sizes = torch.randint(1, size + 1, (n,), generator=g) if variable else torch.full((n,), size)
        return PackedVectors(torch.randn(int(sizes.sum()), dim, generator=g),
                             torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)]))

    queries, docs = packed(n_queries, query_scenes), packed(n_images, image_scenes)
    scorer = LateInteractionScorer(queries, docs, "max-mean", device)

    def score_all() -> None:
        for s in range(0, n_queries, chunk_size):
            scorer(s, min(s + chunk_size, n_queries))

    qn, dt = scorer.queries.padded()[0].reshape(-1, dim), scorer.doc_matrix_t

    def gemm_all() -> None:  # the same FLOPs in the same blocks, nothing else
        rows = chunk_size * qn.shape[0] // n_queries
        for s in range(0, len(qn), rows):
            qn[s : s + rows] @ dt

    score_all(), gemm_all()  # warm-up
    t_gemm = _best_of(gemm_all, repeats)
    t_ours = _best_of(score_all, repeats)
    qs, ds_ = [queries.item(k) for k in range(loop_sample)], [docs.item(k) for k in range(n_images)]
    t0 = time.perf_counter()
    for qk in qs:
        for dk in ds_:
            late_interaction_reference(qk, dk)
    t_loop = (time.perf_counter() - t0) * n_queries / loop_sample
    flops = 2.0 * qn.shape[0] * dt.shape[1] * dim
    return {
        "queries": n_queries, "images": n_images, "query_scenes": query_scenes, "image_scenes": image_scenes,
        "variable_sizes": variable, "dim": dim, "device": device, "threads": torch.get_num_threads(),
        "gemm_seconds": t_gemm, "qmam_seconds": t_ours, "per_pair_loop_seconds_extrapolated": t_loop,
        "gemm_gflops": flops / t_gemm / 1e9, "qmam_gflops": flops / t_ours / 1e9,
        "fraction_of_roofline": t_gemm / t_ours, "speedup_vs_loop": t_loop / t_ours,
    }
