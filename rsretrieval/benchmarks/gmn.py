"""GMN full-matrix scoring speed vs the fp32 matmul roofline of its node similarities, in one run.

The roofline is the time of the node-similarity FLOPs alone, 2 * sum over pairs of N_q * N_d * D,
done as one plain fp32 GEMM (all query nodes) x (all document nodes) in output tiles (the fastest of a
few tilings) into a reused buffer: no padding, no histograms, no MLPs. It is timed before and after
the GMN and the faster of the two is kept; the GMN time is the best of ``repeats`` runs (both
conservative for the ratio on a shared machine). ``ratio`` = GMN seconds / roofline seconds (target
<= 2). The breakdown (one extra, synchronised run) splits the GMN time into the similarity GEMMs
(padded, bin map folded in), the histograms, the MLPs and the rest. The per-pair reference (eqs. 3-5
literally) runs on a random sample of pairs and is extrapolated to all pairs; its max abs difference
from the batched scores on that sample is reported. Load averages are reported as machines are shared.
"""

from __future__ import annotations

import os
import time

import torch

from rsretrieval.config import GMNConfig
from rsretrieval.matching.gmn import GraphMatchingNetwork, gmn_reference
from rsretrieval.matching.gmn_blocks import default_doc_block
from rsretrieval.matching.late_interaction import PackedVectors


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_graphs(n: int, mean_nodes: int, dim: int, g: torch.Generator) -> PackedVectors:
    """``n`` sets of unit vectors, sizes uniform in [mean/2, 3 mean/2] (mean ``mean_nodes``, at least 1)."""
    low, high = max(1, round(mean_nodes / 2)), max(1, round(3 * mean_nodes / 2))
    sizes = torch.randint(low, high + 1, (n,), generator=g)
    vectors = torch.nn.functional.normalize(torch.randn(int(sizes.sum()), dim, generator=g), dim=1)
    return PackedVectors(vectors, torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)]))


def padded_entries(q_sizes: torch.Tensor, d_sizes: torch.Tensor, chunk: int, doc_block: int) -> int:
    """Similarity entries the blocks compute, padding included (same size-sorted cut as the scorer)."""
    qs, ds = q_sizes.sort().values, d_sizes.sort().values
    rows = sum(len(qs[s : s + chunk]) * int(qs[s : s + chunk].max()) for s in range(0, len(qs), chunk))
    cols = sum(len(ds[s : s + doc_block]) * int(ds[s : s + doc_block].max()) for s in range(0, len(ds), doc_block))
    return rows * cols


TILES = ((1024, 2048), (1280, 1024), (640, 4096), (2048, 8192), (1024, 1 << 30))  # (rows, cols) candidates


def roofline_seconds(queries: PackedVectors, docs: PackedVectors, device: str,
                     tile: tuple[int, int] = (1024, 2048)) -> float:
    """One plain GEMM (all query nodes, D) x (D, all document nodes) in output tiles of ``tile``."""
    a, bt = queries.vectors.to(device), docs.vectors.to(device).T.contiguous()
    rows, cols = tile
    out = torch.empty((min(rows, len(a)), min(cols, bt.shape[1])), device=device)  # reused: no page faults
    _sync(device)
    t0 = time.perf_counter()
    for s in range(0, len(a), rows):
        blk = a[s : s + rows]
        for c in range(0, bt.shape[1], cols):
            b = bt[:, c : c + cols]
            torch.mm(blk, b, out=out[: len(blk), : b.shape[1]])
    _sync(device)
    return time.perf_counter() - t0


def best_tile(queries: PackedVectors, docs: PackedVectors, device: str) -> tuple[int, int]:
    """The fastest GEMM tiling on a slice of the query nodes (the roofline is the best plain GEMM)."""
    n = int(queries.offsets[min(len(queries), 256)])
    head = PackedVectors(queries.vectors[:n], queries.offsets[queries.offsets <= n])
    roofline_seconds(head, docs, device)  # warm-up
    return min(TILES, key=lambda t: min(roofline_seconds(head, docs, device, t) for _ in range(2)))


def bench(n_queries: int = 5345, n_images: int = 1069, q_nodes: int = 20, d_nodes: int = 30, dim: int = 384,
          cfg: GMNConfig | None = None, chunk_size: int | None = None, doc_block: int | None = None,
          sample_pairs: int = 200, repeats: int = 2, device: str = "cpu", seed: int = 0) -> dict:
    """Time GMN ``score_matrix`` on seeded random graphs (default: RSICD test size) against its roofline."""
    cfg = cfg or GMNConfig()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    g = torch.Generator().manual_seed(seed)
    queries, docs = random_graphs(n_queries, q_nodes, dim, g), random_graphs(n_images, d_nodes, dim, g)
    sim_vec = torch.rand((n_queries, n_images), generator=g) * 2 - 1 if cfg.use_global else None
    model = GraphMatchingNetwork(cfg, seed=seed).to(device).eval()
    q_dev, d_dev = queries.to(device), docs.to(device)
    sv_dev = None if sim_vec is None else sim_vec.to(device)
    chunk = chunk_size or cfg.chunk_size
    n_small = min(n_queries, 2 * chunk)  # warm-up: allocator, BLAS threads, CUDA kernels
    small = PackedVectors(queries.vectors[: int(queries.offsets[n_small])], queries.offsets[: n_small + 1])
    model.score_matrix(small.to(device), d_dev, None if sv_dev is None else sv_dev[:n_small], chunk, doc_block)
    tile = best_tile(queries, docs, device)

    t_roof = roofline_seconds(queries, docs, device, tile)
    t_gmn = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        scores = model.score_matrix(q_dev, d_dev, sv_dev, chunk, doc_block)
        _sync(device)
        t_gmn = min(t_gmn, time.perf_counter() - t0)
    profile: dict[str, float] = {}
    model.score_matrix(q_dev, d_dev, sv_dev, chunk, doc_block, profile=profile)  # breakdown (synchronised)
    t_roof = min(t_roof, roofline_seconds(queries, docs, device, tile))

    # per-pair reference on a random sample of pairs, on the CPU
    model_cpu = model.cpu()
    qi = torch.randint(0, n_queries, (sample_pairs,), generator=g)
    di = torch.randint(0, n_images, (sample_pairs,), generator=g)
    t0 = time.perf_counter()
    ref = [gmn_reference(model_cpu, queries.item(int(a)), docs.item(int(b)),
                         None if sim_vec is None else float(sim_vec[a, b])) for a, b in zip(qi, di)]
    t_ref = (time.perf_counter() - t0) * n_queries * n_images / sample_pairs
    diff = (scores.cpu()[qi, di] - torch.tensor(ref)).abs().max().item()

    real = int(queries.sizes.sum()) * int(docs.sizes.sum())  # sum over pairs of N_q * N_d
    doc_block = doc_block or default_doc_block(chunk, float(queries.sizes.float().mean()),
                                               float(docs.sizes.float().mean()), device)
    padded = padded_entries(queries.sizes, docs.sizes, chunk, doc_block)
    return {
        "queries": n_queries, "images": n_images, "pairs": n_queries * n_images,
        "mean_query_nodes": float(queries.sizes.float().mean()), "mean_image_nodes": float(docs.sizes.float().mean()),
        "dim": dim, "device": device, "threads": torch.get_num_threads(), "config": cfg.model_dump(),
        "chunk_size": chunk, "doc_block": doc_block,
        "similarity_gflop": 2.0 * real * dim / 1e9, "padding_overhead": padded / real - 1.0,
        "roofline_tile": list(tile), "roofline_seconds": t_roof, "gmn_seconds": t_gmn, "ratio": t_gmn / t_roof,
        "roofline_gflops": 2.0 * real * dim / t_roof / 1e9,
        "breakdown_seconds": {k: round(v, 3) for k, v in profile.items()},
        "per_pair_reference_seconds_extrapolated": t_ref, "speedup_vs_reference": t_ref / t_gmn,
        "reference_sample_pairs": sample_pairs, "max_abs_diff_vs_reference": diff,
        "score_std": float(scores.std()),
        "load_average_1min": [load_before, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
    }
