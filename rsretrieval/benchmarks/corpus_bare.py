"""Bare-loop equivalents of the corpus run's stages (``rsretrieval bench corpus --bare-loops``): what the
same work costs as the plain loop a researcher would write, measured on a sample after the run, on the
same machine, and extrapolated to the run's rows.

* embedding pass: decode -> preprocess -> encode in one process, batch by batch, for images, crops
  (cut from the image, as the crop stage does) and captions; text scenes at the captions' rate (same
  text encoder, shorter texts: a slight overestimate of the bare loop's cost);
* V2V shortlist: per query, ``images @ q`` and ``argpartition`` over the in-memory image vectors;
* S2S rerank: per (query, candidate) pair, ``max over crops of q . d``, averaged (Q-MAM), in numpy;
* G2G / VG2VG Hungarian rerank: per pair, ``linear_sum_assignment`` on the node similarity matrix, on
  random unit node vectors of the run's mean graph sizes (the time depends on sizes, not values).

The GMN has no bare loop here (its per-pair forward is what ``rsretrieval bench gmn`` compares).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def embed_rates(cfg: Any, sample: int = 96) -> dict[str, float]:
    """Rows/s of bare loops with the run's first backbone: images, crops, captions."""
    import torch
    from PIL import Image

    from rsretrieval.data.registry import evaluation_split, load_dataset
    from rsretrieval.encoders.loader import encode_images, encode_texts, load_backbone
    from rsretrieval.encoders.registry import get_backbone_spec
    from rsretrieval.pipelines.runtime.checkpoints import resolve_checkpoint
    from rsretrieval.scenes.image_scenes import image_scene_boxes

    bcfg, dcfg = cfg.backbones[0], cfg.datasets[0]
    ds = evaluation_split(load_dataset(dcfg, cfg.cache_dir), dcfg)
    bb = load_backbone(get_backbone_spec(bcfg.name), resolve_checkpoint(bcfg, cfg), device="cpu")
    batch = cfg.embed.batch_size
    uris = ds.images["uri"].to_pylist()[:sample]
    t0 = time.perf_counter()
    for i in range(0, len(uris), batch):
        encode_images(bb, torch.stack([bb.preprocess(Image.open(u).convert("RGB")) for u in uris[i : i + batch]]))
    images = _rate(len(uris), time.perf_counter() - t0)
    crops = []
    for u in uris[: max(1, sample // 8)]:
        with Image.open(u) as im:
            rgb = im.convert("RGB")
        crops += [rgb.crop(tuple(int(v) for v in box)) for box, _ in image_scene_boxes(rgb, "uniform", cfg.image_scenes)]
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch):
        encode_images(bb, torch.stack([bb.preprocess(c) for c in crops[i : i + batch]]))
    crop_rate = _rate(len(crops), time.perf_counter() - t0)
    texts = ds.captions["text"].to_pylist()[: sample * 4]
    t0 = time.perf_counter()
    for i in range(0, len(texts), batch):
        encode_texts(bb, texts[i : i + batch])
    return {"images": images, "crops": crop_rate, "captions": _rate(len(texts), time.perf_counter() - t0)}


def shortlist_rate(n_images: int, k: int, dim: int = 512, queries: int = 300, seed: int = 0) -> float:
    """Queries/s of a per-query matrix-vector product + argpartition over ``n_images`` vectors."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, dim), dtype=np.float32)
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    t0 = time.perf_counter()
    for v in q:
        s = images @ v
        np.argpartition(-s, min(k, n_images - 1))[:k]
    return _rate(queries, time.perf_counter() - t0)


def _sets(rng: np.random.Generator, n: int, mean: float, dim: int) -> list[np.ndarray]:
    sizes = np.maximum(1, rng.poisson(max(mean, 1.0), n))
    out = []
    for s in sizes:
        v = rng.standard_normal((int(s), dim)).astype(np.float32)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return out


def rerank_rate(kind: str, q_mean: float, d_mean: float, k: int, dim: int, queries: int = 40, seed: int = 0) -> float:
    """Queries/s of a per-pair loop over each query's ``k`` candidates: 'maxsim' (Q-MAM) or 'hungarian'."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    qs, ds = _sets(rng, queries, q_mean, dim), _sets(rng, queries * k, d_mean, dim)
    t0 = time.perf_counter()
    for i, q in enumerate(qs):
        for d in ds[i * k : (i + 1) * k]:
            s = q @ d.T
            if kind == "maxsim":
                s.max(axis=1).mean()
            else:
                r, c = linear_sum_assignment(s, maximize=True)
                s[r, c].sum() / len(r)
    return _rate(queries, time.perf_counter() - t0)


def bare_table(run_dir: Path, cfg: Any, sample: int = 96) -> list[dict[str, Any]]:
    """Per stage of the run: rows, our rows/s, the bare loop's rows/s and their ratio (ours / bare)."""
    results = pd.read_csv(Path(run_dir) / "results.csv")
    cost = pd.read_csv(Path(run_dir) / "cost.csv")
    k = int(cfg.eval.shortlist_k)
    out = []
    embed = cost[cost["stage"].str.startswith("embed:")].drop_duplicates(subset=["stage"])
    if len(embed) and (embed["stage_seconds"] > 0).all():  # a cached pass keeps the seconds it took when it ran
        rates = embed_rates(cfg, sample)
        per_kind = {"embed:images": rates["images"], "embed:captions": rates["captions"],
                    "embed:text_scenes": rates["captions"]}
        s2s = results[results["mode"] == "s2s"]
        crops_per_image = float(s2s["image_vectors"].iloc[0]) if len(s2s) else 10.0
        scenes_per_caption = (float((s2s["query_vectors"] * s2s["n_queries"]).sum() / s2s["n_queries"].sum())
                              if len(s2s) else 1.0)
        rows, bare_s = 0, 0.0
        for _, r in embed.iterrows():  # ledger items are images / captions; embedded rows are crops / scenes
            per_item = (crops_per_image if r["stage"].startswith("embed:crops")
                        else scenes_per_caption if r["stage"] == "embed:text_scenes" else 1.0)
            n = int(round(int(r["stage_items"]) * per_item))
            rows += n
            bare_s += n / (rates["crops"] if r["stage"].startswith("embed:crops") else per_kind.get(r["stage"], rates["captions"]))
        ours_s = float(embed["stage_seconds"].sum())  # one pass, its seconds shared out over the tables by rows
        out.append(compare_row("embedding pass (images, crops, captions, text scenes)", rows, ours_s, bare_s))
    n_images = int(results["n_images"].iloc[0])
    for mode, label in (("v2v", "V2V shortlist"), ("s2s", "S2S rerank (Q-MAM)"), ("g2g", "G2G Hungarian rerank"),
                        ("vg2vg", "VG2VG Hungarian rerank (graph term only in the bare loop)")):
        cells = results[(results["mode"] == mode) & (results["similarity"] != "gmn")]
        if cells.empty:
            continue
        n_q, ours_s, bare_s = int(cells["n_queries"].sum()), float(cells["score_seconds"].sum()), 0.0
        rates: dict[tuple[float, float], float] = {}
        for _, c in cells.iterrows():  # per cell: its own mean set sizes (original captions give small graphs)
            sizes = (round(float(c["query_vectors"]), 1), round(float(c["image_vectors"]), 1))
            if sizes not in rates:
                if mode == "v2v":
                    rates[sizes] = shortlist_rate(n_images, k)
                else:
                    kind, dim = ("maxsim", 512) if mode == "s2s" else ("hungarian", 384)
                    rates[sizes] = rerank_rate(kind, *sizes, k, dim)
            bare_s += int(c["n_queries"]) / rates[sizes]
        out.append(compare_row(f"{label} ({len(cells)} cells)", n_q, ours_s, bare_s))
    return out


def compare_row(stage: str, rows: int, ours_s: float, bare_s: float) -> dict[str, Any]:
    return {"stage": stage, "rows": rows, "ours_s": round(ours_s, 1), "bare_s": round(bare_s, 1),
            "ours_rows_per_s": round(_rate(rows, ours_s), 1), "bare_rows_per_s": round(_rate(rows, bare_s), 1),
            "ratio": round(bare_s / ours_s, 2) if ours_s > 0 else None}


def format_bare(rows: list[dict[str, Any]]) -> str:
    lines = ["| stage | rows | ours s | bare loop s (extrapolated) | ours rows/s | bare rows/s | ours vs bare |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['stage']} | {r['rows']} | {r['ours_s']} | {r['bare_s']} | {r['ours_rows_per_s']} | "
              f"{r['bare_rows_per_s']} | {r['ratio']}x |" for r in rows]
    return "\n".join(lines)
